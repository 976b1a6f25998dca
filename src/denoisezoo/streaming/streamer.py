"""``Streamer``: a streaming session (buffering, STFT, state, overlap-add) around a model.

The model is anything that follows :class:`StreamableModel`: a frame geometry, an
``initial_state`` and a ``forward_stateful(spec, state)`` that accepts any number of frames
(:class:`denoisezoo.gtcrn.GTCRN` in PyTorch, :class:`denoisezoo.streaming.OnnxStepModel` on
ONNX Runtime). ``feed`` takes any chunk size and processes every complete hop it holds.

Alignment: the emitted stream is delayed by ``delay = n_fft - hop`` samples against the input;
after ``feed`` of ``N`` samples and ``flush``, exactly ``delay + N`` samples have been emitted and
``emitted[delay:]`` equals the offline ``istft(model(stft(x)))``.

Latency budget (``budget_ms``)
------------------------------
Without a budget, ``feed`` runs all complete hops in one model call (fastest for files). With a
budget, every hop is processed on its own and its time (STFT + model + iSTFT, read from
``clock``) is compared with ``budget_ms``. Two ways to keep the audio path on time:

- ``worker=False`` (default, synchronous): a call cannot be pre-empted, so a hop that overruns
  still returns its (correct) model output, late; the overrun is booked as a time debt, and while
  the debt is positive the following hops skip the model and are served by the **fallback** in
  a few tens of microseconds, each paying back one budget. The stream never falls behind for
  longer than one overrun.
- ``worker=True``: the model runs in one worker thread and ``feed`` waits for it at most until
  the hop's deadline (``budget_ms`` after the hop started). A late hop gets the fallback output
  at once; its model result still updates the state when it arrives, and hops that come while
  the worker is busy get the fallback too. ``feed`` therefore never takes much longer than
  ``budget_ms`` per hop (PyTorch and ONNX Runtime release the GIL while computing).

Fallbacks:

- ``"mask"`` (default): apply the last complex ratio mask the model produced
  (``mask = Y X* / (|X|^2 + eps)``, magnitude clipped to 1) to the new frame's spectrum;
- ``"passthrough"``: output the input spectrum unchanged (the delayed noisy input, exactly).

A hop served by the fallback is not seen by the model (its state skips that frame). Deadline
misses and fallback hops are counted in :attr:`Streamer.stats`.

Voice activity (``vad=True``): every hop also gets a speech-presence value in ``[0, 1]``, collected
by :meth:`Streamer.pop_vad`: the model's own VAD when it has one (``forward_with_vad``: the RNNoise
port's VAD head, GTCRN's kept-power fraction), else (exported step backends) the fraction of input
power the model kept in the speech band (:func:`denoisezoo.dsp.vad.speech_presence`, which is
GTCRN's definition). Fallback hops repeat the last model value. :meth:`Streamer.calibrate` runs
the model on noise before starting and says whether the model + backend meets the budget on this
machine.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import asdict, dataclass
from typing import Any, Protocol

import numpy as np
import torch

from denoisezoo.dsp.stft import StftGeometry, num_frames
from denoisezoo.dsp.strength import StrengthRamps
from denoisezoo.dsp.vad import speech_presence

__all__ = ["Streamer", "StreamableModel", "CalibrationResult", "FALLBACKS", "frame_spectra",
           "overlap_add", "ratio_mask", "run_step"]

FALLBACKS = ("mask", "passthrough")
_MASK_EPS = 1e-10


# ------------------------------------------------- one hop's pieces (shared with the StreamPool)
def frame_spectra(seq: np.ndarray, k: int, window: torch.Tensor, n_fft: int,
                  hop: int) -> torch.Tensor:
    """Samples ``seq (B, n_fft - hop + k hop)`` -> windowed spectra ``(B, k, F)`` of its ``k``
    frames (complex)."""
    with torch.inference_mode():
        xt = torch.from_numpy(seq)
        frames = xt[:, None] if k == 1 else xt.unfold(-1, n_fft, hop)  # B, k, n_fft
        return torch.fft.rfft(frames * window, dim=-1)  # B, k, F


def overlap_add(spec: torch.Tensor, tail: np.ndarray, window: torch.Tensor, n_fft: int,
                hop: int) -> tuple[np.ndarray, np.ndarray]:
    """Spectra ``(B, k, F)`` -> iSTFT, windowed, overlap-added onto ``tail (B, n_fft - hop)``:
    ``(finished samples (B, k hop), next tail)``."""
    k = spec.shape[1]
    with torch.inference_mode():
        y = (torch.fft.irfft(spec, n=n_fft, dim=-1) * window).numpy()  # B, k, n_fft
    ola = np.empty((y.shape[0], (k - 1) * hop + n_fft), np.float32)
    ola[:, : n_fft - hop] = tail
    ola[:, n_fft - hop :] = 0.0
    for i in range(k):
        ola[:, i * hop : i * hop + n_fft] += y[:, i]
    return ola[:, : k * hop], ola[:, k * hop :].copy()


def run_step(model: StreamableModel, spec: torch.Tensor, state: Any,
             vad: bool) -> tuple[torch.Tensor, np.ndarray | None, Any]:
    """``spec (B, k, F)`` complex through ``model`` from ``state``: ``(enhanced (B, k, F)
    complex, VAD (B, k) or None, next state)``. With ``vad``, the value is the model's own
    (``forward_with_vad``), else the fraction of input power it kept in the speech band."""
    with torch.inference_mode():
        x = torch.view_as_real(spec).transpose(1, 2)  # B, F, k, 2
        v = None
        if not vad:
            enh, state = model.forward_stateful(x, state)
        elif hasattr(model, "forward_with_vad"):
            enh, v, state = model.forward_with_vad(x, state)
        else:
            enh, state = model.forward_stateful(x, state)
            v = speech_presence(x, enh, model.geometry.sample_rate)
        out = torch.view_as_complex(enh.transpose(1, 2).contiguous())  # B, k, F
    if v is not None:
        v = v.detach().float().cpu().numpy().reshape(spec.shape[0], -1)
    return out, v, state


def ratio_mask(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Complex ratio mask ``Y X* / (|X|^2 + eps)`` of a model's input ``x`` and output ``y``,
    magnitude clipped to 1 (never amplifies)."""
    mask = y * x.conj() / (x.real.square() + x.imag.square() + _MASK_EPS)
    return mask / mask.abs().clamp(min=1.0)


class StreamableModel(Protocol):
    """What :class:`Streamer` needs from a model (PyTorch module or ONNX Runtime wrapper)."""

    geometry: StftGeometry

    def initial_state(self, batch: int = 1, device: Any = None, dtype: torch.dtype = ...) -> Any: ...

    def forward_stateful(self, spec: torch.Tensor, state: Any) -> tuple[torch.Tensor, Any]:
        """``spec (B, F, T, 2)`` -> ``(enhanced (B, F, T, 2), next state)``."""
        ...


@dataclass(frozen=True)
class CalibrationResult:
    """Outcome of :meth:`Streamer.calibrate` (times in milliseconds per hop)."""

    ok: bool
    backend: str
    budget_ms: float
    hop_ms: float
    hops: int
    p50_ms: float
    p99_ms: float
    max_ms: float
    mean_ms: float
    misses: int
    rtf: float
    message: str

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def __str__(self) -> str:
        return self.message


class Streamer:
    """Streaming session with any chunk size, optional per-hop latency budget.

    Args:
        model: a streamable model (e.g. :class:`denoisezoo.gtcrn.GTCRN`, put in eval mode, or
            :class:`denoisezoo.streaming.OnnxStepModel`).
        batch: number of parallel streams (e.g. channels).
        budget_ms: compute budget per hop in milliseconds (``None``: no deadline, all complete
            hops of a ``feed`` go through the model in one call).
        fallback: what a hop skipped after an overrun outputs, one of :data:`FALLBACKS`.
        worker: run the model in a worker thread and wait at most until each hop's deadline
            (needs ``budget_ms``; see the module docstring). Call :meth:`close` when done.
        clock: seconds counter used for timing (injectable for tests).
        max_history: per-hop timings kept for percentiles (counters cover the whole session).
        vad: also compute a voice-activity value per hop (read with :meth:`pop_vad`).

    Example:
        >>> from denoisezoo.gtcrn import gtcrn_tiny
        >>> s = Streamer(gtcrn_tiny())
        >>> x = torch.randn(1000)
        >>> y = torch.cat([s.feed(x[:333]), s.feed(x[333:]), s.flush()], dim=-1)
        >>> y.shape[-1] == s.delay + 1000
        True
    """

    def __init__(self, model: StreamableModel, batch: int = 1, *, budget_ms: float | None = None,
                 fallback: str = "mask", worker: bool = False,
                 clock: Callable[[], float] = time.perf_counter, max_history: int = 100_000,
                 vad: bool = False):
        if isinstance(model, torch.nn.Module):
            model.eval()
        if batch < 1:
            raise ValueError(f"batch must be >= 1, got {batch}")
        if budget_ms is not None and not budget_ms > 0:
            raise ValueError(f"budget_ms must be positive, got {budget_ms}")
        if fallback not in FALLBACKS:
            raise ValueError(f"fallback must be one of {FALLBACKS}, got {fallback!r}")
        if worker and budget_ms is None:
            raise ValueError("worker=True needs a budget_ms (the longest wait per hop)")
        self.model = model
        self.batch = batch
        self.budget_ms = budget_ms
        self.fallback = fallback
        self.clock = clock
        self.worker = worker
        self.vad = vad
        self._executor: ThreadPoolExecutor | None = None
        self._job: Future | None = None  # the worker's current model call
        self._lock = threading.Lock()  # guards state / last spectra between worker and caller
        self.geometry: StftGeometry = model.geometry
        self.window = self.geometry.make_window(torch.float32)
        self.frame_times: deque[float] = deque(maxlen=max_history)
        self._strength_ctl = StrengthRamps(1, self.strength_ramp_frames)
        self.reset_stats()
        self.reset()

    # ----------------------------------------------------------------- public
    @property
    def delay(self) -> int:
        """Output delay in samples (``n_fft - hop``)."""
        return self.geometry.delay

    @property
    def latency_ms(self) -> float:
        """Algorithmic latency: hop buffering plus overlap-add delay (one window)."""
        return self.geometry.latency_ms

    @property
    def hop_ms(self) -> float:
        """Duration of one hop (the real-time deadline of one frame) in milliseconds."""
        return 1000.0 * self.geometry.hop_length / self.geometry.sample_rate

    @property
    def backend(self) -> str:
        """``"onnxruntime"`` for an ONNX step model, else ``"torch"``."""
        return str(getattr(self.model, "backend", "torch"))

    def reset(self) -> None:
        """Forget all audio history: the next ``feed`` starts a new stream (stats are kept)."""
        self._wait_worker()
        g = self.geometry
        b = self.batch
        self.state = self.model.initial_state(b, None, torch.float32)
        self._history = np.zeros((b, g.n_fft - g.hop_length), np.float32)  # last input (pre-pad 0)
        self._pending = np.zeros((b, 0), np.float32)  # input samples not yet forming a hop
        self._ola = np.zeros((b, g.n_fft - g.hop_length), np.float32)  # overlap-add tail
        self._fed = 0
        self._frames = 0
        self._one_d = False  # last feed was (n,): flush answers (m,) too
        self._debt = 0.0  # seconds of overrun still to pay back with fallback hops
        self._last: tuple[torch.Tensor, torch.Tensor] | None = None  # last model hop's X, Y
        self._mask: torch.Tensor | None = None  # B, 1, F complex ratio mask (from _last, lazily)
        self._vad: list[np.ndarray] = []  # per-hop VAD (B, k) blocks not yet popped
        self._last_vad = np.zeros(b, np.float32)
        self._strength_ctl.restart()  # a new stream starts at the requested strength

    def reset_stats(self) -> None:
        """Clear timing history and counters."""
        self.frame_times.clear()
        self._n_hops = 0
        self._n_model = 0
        self._n_fallback = 0
        self._n_miss = 0
        self._max_time = 0.0

    def feed(self, samples: torch.Tensor | np.ndarray) -> torch.Tensor:
        """Push ``(n,)`` or ``(batch, n)`` samples; returns the ``(batch, m)`` samples now ready
        (``m`` a multiple of the hop), or ``(m,)`` for a 1-D input with ``batch == 1``."""
        x, squeeze = self._as_batch(samples)
        self._one_d = squeeze
        self._fed += x.shape[-1]
        self._pending = np.concatenate([self._pending, x], axis=-1)  # a copy: callers reuse buffers
        out = torch.from_numpy(self._process_pending())
        return out[0] if squeeze else out

    def flush(self) -> torch.Tensor:
        """Complete the stream with zeros, return the remaining output, then :meth:`reset`.

        After ``flush`` the session has emitted exactly ``delay + total fed`` samples. The
        returned tensor is ``(m,)`` if the last ``feed`` was 1-D, else ``(batch, m)``.
        """
        g = self.geometry
        need = num_frames(self._fed, g.n_fft, g.hop_length) - self._frames
        emitted_so_far = self._frames * g.hop_length
        target = g.delay + self._fed
        pad = max(0, need * g.hop_length - self._pending.shape[-1])
        self._pending = np.concatenate([self._pending, np.zeros((self.batch, pad), np.float32)], -1)
        out = self._process_pending() if need > 0 else np.zeros((self.batch, 0), np.float32)
        out = torch.from_numpy(out[:, : max(0, target - emitted_so_far)])
        one_d = self._one_d
        vad = self._vad
        self.reset()
        self._vad = vad  # the flushed hops' VAD stays readable by pop_vad
        return out[0] if one_d else out

    def pop_vad(self) -> np.ndarray:
        """Voice-activity values ``(batch, n)`` of the ``n`` hops processed since the last call
        (needs ``vad=True``). Hop ``t`` of a stream is the input hop ``[t * hop, (t + 1) * hop)``
        samples; :meth:`flush` processes the last hops, so pop after it to get them all."""
        if not self.vad:
            raise RuntimeError("this Streamer was created without vad=True")
        out = (np.concatenate(self._vad, axis=-1) if self._vad
               else np.zeros((self.batch, 0), np.float32))
        self._vad = []
        return out

    @property
    def stats(self) -> dict[str, Any]:
        """Session counters and per-hop compute time (microseconds).

        Keys: ``hops`` (emitted), ``model_hops`` (output by the model), ``fallback_hops``,
        ``deadline_misses`` (hops over ``budget_ms``; in worker mode, hops whose model result
        missed the deadline), ``budget_ms``, ``fallback``, ``worker``, and the timing keys of
        :meth:`timing` (time per hop as seen by the caller) over the last ``max_history`` hops
        (``max_us`` over the whole session).
        """
        return {"hops": self._n_hops, "model_hops": self._n_model,
                "fallback_hops": self._n_fallback, "deadline_misses": self._n_miss,
                "budget_ms": self.budget_ms, "fallback": self.fallback, "worker": self.worker,
                **self.timing()}

    def timing(self) -> dict[str, float]:
        """Compute time per hop (microseconds): frames, mean, p50, p99, max."""
        if not self.frame_times:
            return {"frames": 0}
        t = np.asarray(self.frame_times) * 1e6
        return {"frames": int(t.size), "mean_us": float(t.mean()),
                "p50_us": float(np.percentile(t, 50)), "p99_us": float(np.percentile(t, 99)),
                "max_us": float(max(t.max(), self._max_time * 1e6))}

    def calibrate(self, seconds: float = 1.0, budget_ms: float | None = None,
                  warmup_hops: int = 10, seed: int = 0) -> CalibrationResult:
        """Time the model + backend hop by hop on ``seconds`` of noise, as in real time.

        Runs on a separate session (this one's state and stats are untouched) with one hop per
        ``feed``. The verdict compares the p99 hop time with the budget (``budget_ms``, else this
        session's budget, else the hop duration).

        Returns:
            A :class:`CalibrationResult`; ``str(result)`` is a one-line human-readable verdict.
        """
        g = self.geometry
        budget = budget_ms or self.budget_ms or self.hop_ms
        probe = Streamer(self.model, self.batch, budget_ms=None, clock=self.clock)
        n_hops = max(1, int(round(seconds * g.sample_rate / g.hop_length)))
        rng = np.random.default_rng(seed)
        noise = torch.from_numpy(
            (0.1 * rng.standard_normal((self.batch, (n_hops + warmup_hops) * g.hop_length)))
            .astype(np.float32))
        hop = g.hop_length
        for i in range(warmup_hops + n_hops):
            if i == warmup_hops:
                probe.reset_stats()
            probe.feed(noise[:, i * hop : (i + 1) * hop])
        t = np.asarray(probe.frame_times) * 1e3  # ms
        p50, p99, mx, mean = (float(np.percentile(t, 50)), float(np.percentile(t, 99)),
                              float(t.max()), float(t.mean()))
        misses = int((t > budget).sum())
        ok = p99 <= budget
        rtf = mean / self.hop_ms
        name = (getattr(self.model, "name", None)
                or getattr(self.model, "checkpoint_meta", {}).get("name")
                or type(self.model).__name__)
        head = (f"{name} on {self.backend}: p50 {p50:.3f} ms, p99 {p99:.3f} ms, max {mx:.3f} ms "
                f"per {self.hop_ms:g} ms hop (RTF {rtf:.3f}); budget {budget:g} ms")
        if ok:
            tail = f": MEETS the budget on this machine ({budget / max(p99, 1e-9):.1f}x margin at p99)"
            if misses:
                tail += f"; {misses} of {t.size} hops overran and would fall back"
        else:
            tail = (f": DOES NOT MEET the budget on this machine ({misses} of {t.size} hops over "
                    f"budget); overruns will be served by the '{self.fallback}' fallback")
        return CalibrationResult(ok=ok, backend=self.backend, budget_ms=float(budget),
                                 hop_ms=self.hop_ms, hops=int(t.size), p50_ms=p50, p99_ms=p99,
                                 max_ms=mx, mean_ms=mean, misses=misses, rtf=rtf,
                                 message=head + tail)

    # --------------------------------------------------------------- internal
    def _as_batch(self, samples) -> tuple[np.ndarray, bool]:
        if torch.is_tensor(samples):
            samples = samples.detach().cpu().numpy()
        x = np.asarray(samples, dtype=np.float32)
        squeeze = x.ndim == 1
        if squeeze:
            x = x[None]
        if x.ndim != 2 or x.shape[0] != self.batch:
            raise ValueError(f"expected (n,) or ({self.batch}, n) samples, got {tuple(x.shape)}")
        return x, squeeze and self.batch == 1

    def _process_pending(self) -> np.ndarray:
        hop = self.geometry.hop_length
        k = self._pending.shape[-1] // hop
        if k == 0:
            return np.zeros((self.batch, 0), np.float32)
        if self.budget_ms is None:
            t0 = self.clock()
            spec = self._analysis(k)
            out = self._synthesis(self._strength(spec, self._model_hops(spec)))
            dt = (self.clock() - t0) / k
            self._count(k, dt, used_model=True)
            return out
        budget = self.budget_ms / 1000.0
        outs = []
        for _ in range(k):
            t0 = self.clock()
            spec = self._analysis(1)
            if self.worker:
                enh, used_model, missed = self._run_in_worker(spec, t0 + budget)
            else:
                used_model = missed = False
                if self._debt <= 0.0:
                    enh, used_model = self._model_hops(spec), True
                else:
                    enh = self._fallback_spec(spec)
            outs.append(self._synthesis(self._strength(spec, enh)))
            dt = self.clock() - t0
            self._count(1, dt, used_model=used_model)
            if missed or (not self.worker and dt > budget):
                self._n_miss += 1
            if not self.worker:  # an overrun is paid back by fast fallback hops, one budget each
                self._debt = max(0.0, self._debt + dt - budget if used_model else self._debt - budget)
        return np.concatenate(outs, axis=-1)

    def _count(self, k: int, dt: float, used_model: bool) -> None:
        self._n_hops += k
        if used_model:
            self._n_model += k
        else:
            self._n_fallback += k
            if self.vad:  # fallback hops repeat the last model VAD
                self._vad.append(np.repeat(self._last_vad[:, None], k, axis=1))
        self._max_time = max(self._max_time, dt)
        self.frame_times.extend([dt] * k)

    def _analysis(self, k: int) -> torch.Tensor:
        """The next ``k`` pending hops -> windowed spectra ``(B, k, F)`` complex."""
        g = self.geometry
        hop, n_fft = g.hop_length, g.n_fft
        seq = np.concatenate([self._history, self._pending[:, : k * hop]], axis=-1)  # B, delay + k hop
        self._pending = self._pending[:, k * hop :]
        self._history = seq[:, seq.shape[-1] - (n_fft - hop) :]
        return frame_spectra(seq, k, self.window, n_fft, hop)

    def _run_model(self, spec: torch.Tensor) -> tuple[torch.Tensor, np.ndarray | None]:
        """``spec (B, k, F)`` complex -> (enhanced ``(B, k, F)``, VAD ``(B, k)`` or None);
        advances the state."""
        out, v, state = run_step(self.model, spec, self.state, self.vad)
        with self._lock:
            if v is not None:
                self._last_vad = v[:, -1].copy()
            self.state = state
            self._last = (spec[:, -1:], out[:, -1:])
            self._mask = None
        return out, v

    def _model_hops(self, spec: torch.Tensor) -> torch.Tensor:
        """:meth:`_run_model` for hops whose output is emitted (their VAD is kept)."""
        out, v = self._run_model(spec)
        if v is not None:
            self._vad.append(v)
        return out

    def _run_in_worker(self, spec: torch.Tensor, deadline: float):
        """Model call in the worker, waited for until ``deadline`` (``clock`` seconds).

        Returns ``(enhanced spectrum, used_model, missed)``."""
        if self._job is not None and not self._job.done():
            return self._fallback_spec(spec), False, False  # still busy with a late hop
        if self._job is not None:
            self._job.result()  # re-raise a late failure
        if self._executor is None:
            self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="denoisezoo")
        self._job = self._executor.submit(self._run_model, spec)
        try:
            out, v = self._job.result(timeout=max(0.0, deadline - self.clock()))
        except FutureTimeout:
            return self._fallback_spec(spec), False, True
        self._job = None
        if v is not None:
            self._vad.append(v)
        return out, True, False

    def _wait_worker(self) -> None:
        job, self._job = getattr(self, "_job", None), None
        if job is not None:
            job.result()

    def close(self) -> None:
        """Wait for the worker (if any) and stop its thread."""
        self._wait_worker()
        if self._executor is not None:
            self._executor.shutdown(wait=True)
            self._executor = None

    def __enter__(self) -> Streamer:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def _fallback_spec(self, spec: torch.Tensor) -> torch.Tensor:
        if self.fallback == "passthrough":
            return spec
        with self._lock:
            return spec * self._fallback_mask()

    # ------------------------------------------------------------ strength control
    strength_ramp_frames = 4

    def set_strength(self, atten_lim_db: float | None = None, wet: float = 1.0) -> None:
        """Set the attenuation limit (dB; ``None`` = unlimited, 0 = no suppression) and the
        dry/wet mix. While streaming, the applied values ramp linearly from the current ones to
        the new ones over ``strength_ramp_frames`` frames, so changing them makes no click
        (:class:`~denoisezoo.dsp.strength.StrengthRamps`; all channels share one setting)."""
        self._strength_ctl.set(0, atten_lim_db, wet, started=self._frames > 0)

    def _strength(self, spec: torch.Tensor, enh: torch.Tensor) -> torch.Tensor:
        """Apply the strength controls to ``(B, k, F)`` spectra, one value per frame."""
        return self._strength_ctl.apply(slice(None), spec, enh)

    def _synthesis(self, spec: torch.Tensor) -> np.ndarray:
        """``(B, k, F)`` spectra -> iSTFT and overlap-add -> ``(B, k * hop)`` output samples."""
        g = self.geometry
        out, self._ola = overlap_add(spec, self._ola, self.window, g.n_fft, g.hop_length)
        self._frames += spec.shape[1]
        return out

    def _fallback_mask(self) -> torch.Tensor | float:
        """Complex ratio mask of the last model hop, ``Y X* / (|X|^2 + eps)`` with magnitude
        clipped to 1 (never amplifies); 1 before the first model hop. Computed on first use."""
        if self._last is None:
            return 1.0
        if self._mask is None:
            self._mask = ratio_mask(*self._last)
        return self._mask
