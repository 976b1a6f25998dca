"""``StreamPool``: many independent streams of one model, advanced together by one batched step.

A server holds hundreds of calls; a :class:`~denoisezoo.streaming.Streamer` per call pays the
per-call overhead of a model step (or an ONNX Runtime ``session.run``) once per stream and hop.
The pool keeps every stream's state (input history, overlap-add tail, model state, strength and
VAD) and advances all the streams given in one :meth:`StreamPool.process` call with **one** model
step: their states are gathered along each state tensor's batch axis, run, and scattered back.
Streams open and close at any hop; a stream's output equals a lone ``Streamer`` fed the same hops
(within float rounding of the batched kernels, ~1e-7). Each hop is framed, denoised and
overlap-added exactly as the Streamer does (:func:`~denoisezoo.streaming.streamer.frame_spectra`,
:func:`~denoisezoo.streaming.streamer.run_step`, :func:`~denoisezoo.streaming.streamer.overlap_add`,
:class:`~denoisezoo.dsp.strength.StrengthRamps`), so the output is delayed by ``delay = n_fft - hop``
samples against the input.

Backends: ``"torch"`` (a PyTorch model, e.g. GTCRN or the RNNoise port, in eval mode) and
``"onnx"`` (an :class:`~denoisezoo.streaming.OnnxStepModel` exported with
``export_onnx(model, path, dynamic_batch=True)``, or the path of such a file: one ``session.run``
per hop for all streams) and ``"c"`` (a built C library: ``CStepModel``, ``CLibrary`` or its path;
build it with :func:`denoisezoo.export.c.c_model`): one ``DzModel`` per stream (created on open,
destroyed on close), one ``dz_process_many`` call per hop for the streams served. **The C library
does its own STFT, mask, attenuation limit and overlap-add: the pool's framing is bypassed** for
it. The limit goes to ``dz_set_atten_lim_db`` (ramped in C over the same 4 hops); the pool mixes
dry/wet on the output hop (``wet * C out + (1 - wet) * delayed input``, ramped per hop: with both
set, the mix comes after the limit, the other backends mix first); a stream the deadline skips
goes through ``dz_bypass_many`` (input delayed through the C overlap-add, network state kept),
so ``overload="mask"`` is refused there. Each stream equals the library's lone ``dz_process``.

Deadline (``budget_ms``, default: the hop duration) and overload policy
---------------------------------------------------------------------------
Every :meth:`~StreamPool.process` call is timed (``clock``); its latency is kept for p50/p99 and a
call over the budget is a deadline miss. With ``overload="passthrough"`` (default) or ``"mask"``
the pool does not fall behind when the model cannot serve every stream in time:

- it keeps running estimates of the model cost per served stream and of the rest of a hop
  (framing all streams), and before each hop admits at most as many streams as fit in 90 % of
  the budget, minus any **debt** (the overrun of late hops, paid back by the following ones);
- the streams admitted are those that went longest without the model (round robin under
  sustained overload: no stream starves);
- the others get their hop from the fallback, at almost no cost: ``"passthrough"`` outputs the
  delayed input exactly, ``"mask"`` applies the stream's last complex ratio mask (as the
  Streamer's fallbacks; the model state skips that frame). Such hops are counted
  (``overload_stream_hops`` in :attr:`~StreamPool.stats`, per stream in :meth:`~StreamPool.stream_stats`).

Every call returns one hop for every stream given, aligned, whatever the load. With
``overload=None`` every stream goes through the model every hop (latency and misses are still
recorded): the mode for files, where there is no deadline.
"""

from __future__ import annotations

import time
import weakref
from collections import deque
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch

from denoisezoo.dsp.stft import StftGeometry
from denoisezoo.dsp.strength import StrengthRamps
from denoisezoo.streaming.c_runtime import CLibrary, CStepModel
from denoisezoo.streaming.onnx_runtime import OnnxStepModel
from denoisezoo.streaming.streamer import (
    FALLBACKS,
    StreamableModel,
    frame_spectra,
    overlap_add,
    ratio_mask,
    run_step,
)

__all__ = ["StreamPool", "POOL_BACKENDS", "batch_axis_of", "state_batch_axes"]

POOL_BACKENDS = ("torch", "onnx", "c")
_ADMIT_SHARE = 0.9  # share of the budget the admission plans to use
_EMA = 0.3  # weight of the newest hop in the cost estimates


def batch_axis_of(a: Any, b: Any) -> int:
    """Axis along which two state tensors of batch 1 and 2 differ."""
    axes = [i for i, (x, y) in enumerate(zip(a.shape, b.shape, strict=True)) if x != y]
    if len(axes) != 1:
        raise ValueError(f"cannot find the batch axis of a state tensor ({a.shape} vs {b.shape})")
    return axes[0]


def state_batch_axes(model: StreamableModel) -> list[int]:
    """Batch axis of each tensor of ``model``'s state (sidecar of an exported step, else found by
    comparing the states of 1 and 2 streams)."""
    if hasattr(model, "state_batch_axes"):
        return list(model.state_batch_axes)
    one, two = model.initial_state(1, None, torch.float32), model.initial_state(2, None, torch.float32)
    if not isinstance(one, tuple):
        raise TypeError("the model state must be a (Named)Tuple of tensors")
    return [batch_axis_of(a, b) for a, b in zip(one, two, strict=True)]


# ------------------------------------------------- state tensors: torch tensors or numpy arrays
def _take(t, idx: np.ndarray, ax: int):
    if torch.is_tensor(t):
        return t.index_select(ax, torch.from_numpy(idx))
    return np.take(t, idx, axis=ax)


def _put(t, idx: np.ndarray, ax: int, v) -> None:
    if torch.is_tensor(t):
        t.index_copy_(ax, torch.from_numpy(idx), v)
    else:
        t[(slice(None),) * ax + (idx,)] = v


def _cat(parts: list, ax: int):
    if torch.is_tensor(parts[0]):
        return torch.cat(parts, dim=ax)
    return np.concatenate(parts, axis=ax)


def _destroy_all(lib: CLibrary, handles: set[int]) -> None:
    for h in handles:
        lib.destroy(h)


class StreamPool:
    """Many independent streams of one model, all advanced by one batched step per hop.

    Args:
        model: a streamable model (``backend="torch"``), or an exported step with a dynamic batch
            axis: an :class:`~denoisezoo.streaming.OnnxStepModel` or the ``.onnx`` path
            (``backend="onnx"``); a built C library: a :class:`~denoisezoo.streaming.CStepModel`,
            :class:`~denoisezoo.streaming.CLibrary` or its path (``backend="c"``).
        backend: ``"torch"``, ``"onnx"`` or ``"c"``.
        budget_ms: compute budget of one :meth:`process` call (default: the hop duration).
        overload: what a stream the pool cannot serve in time gets, ``"passthrough"`` or
            ``"mask"``; ``None``: serve every stream every hop (no deadline policy).
        vad: also compute a voice-activity value per stream and hop (:meth:`pop_vad`).
        clock: seconds counter used for timing (injectable for tests).
        max_history: per-hop latencies kept for the percentiles.

    Example:
        >>> from denoisezoo.gtcrn import gtcrn_tiny
        >>> pool = StreamPool(gtcrn_tiny())
        >>> a, b = pool.open(), pool.open(atten_lim_db=12.0)
        >>> outs = pool.process({a: np.zeros(pool.hop_size, np.float32),
        ...                      b: np.ones(pool.hop_size, np.float32)})
        >>> sorted(outs) == [a, b], outs[a].shape == (pool.hop_size,)
        (True, True)
        >>> pool.close(a)
        >>> list(pool.process({b: np.ones(pool.hop_size, np.float32)}))  # a left, b goes on
        [1]
    """

    def __init__(self, model: StreamableModel | str | Path, backend: str = "torch",
                 budget_ms: float | None = None, overload: str | None = "passthrough", *,
                 vad: bool = False, clock: Callable[[], float] = time.perf_counter,
                 max_history: int = 100_000):
        if backend not in POOL_BACKENDS:
            raise ValueError(f"backend must be one of {POOL_BACKENDS}, got {backend!r}")
        if overload is not None and overload not in FALLBACKS:
            raise ValueError(f"overload must be one of {FALLBACKS} or None, got {overload!r}")
        self.library: CLibrary | None = None
        if backend == "c":
            if overload == "mask":
                raise ValueError("backend='c' runs the STFT in C: its overload fallback is "
                                 "'passthrough' (or None), not 'mask'")
            lib = model.library if isinstance(model, CStepModel) else model
            lib = CLibrary(lib) if isinstance(lib, str | Path) else lib
            if not isinstance(lib, CLibrary):
                raise ValueError("backend='c' takes a built C library (CStepModel, CLibrary or its "
                                 "path); build it with denoisezoo.export.c.c_model(model)")
            self.library = model = lib
            self._handles = np.zeros(0, np.uintp)  # one DzModel per open stream, slot order
            self._owned: set[int] = set()
            weakref.finalize(self, _destroy_all, lib, self._owned)
        elif backend == "onnx":
            model = OnnxStepModel(model) if isinstance(model, str | Path) else model
            if not isinstance(model, OnnxStepModel):
                raise ValueError("backend='onnx' takes an OnnxStepModel or an .onnx path; export "
                                 "the model with denoisezoo.export.export_onnx(model, path, "
                                 "dynamic_batch=True)")
            if not model.dynamic_batch:
                raise ValueError(f"{model.path}: exported with batch 1; re-export it with "
                                 "export_onnx(..., dynamic_batch=True) to run many streams per call")
        elif not isinstance(model, torch.nn.Module):
            raise ValueError(f"backend='torch' takes a PyTorch model, got {type(model).__name__} "
                             "(an exported step runs with backend='onnx')")
        else:
            model.eval()
        self.model = model
        self.backend = backend
        self.geometry: StftGeometry = model.geometry
        self.budget_ms = float(budget_ms) if budget_ms is not None else self.hop_ms
        if not self.budget_ms > 0:
            raise ValueError(f"budget_ms must be positive, got {budget_ms}")
        self.overload = overload
        self.vad = vad
        self.clock = clock
        self.window = self.geometry.make_window(torch.float32)
        if self.library is None:
            self._axes = state_batch_axes(model)
            self._state_type = type(model.initial_state(1, None, torch.float32))
        g = self.geometry
        d = g.n_fft - g.hop_length
        # one row per open stream, in slot order (the order of ``_sids``)
        self._sids: list[int] = []
        self._slot: dict[int, int] = {}
        self._next_sid = 0
        self._hist = np.zeros((0, d), np.float32)  # last input samples (pre-pad 0)
        self._ola = np.zeros((0, d), np.float32)  # overlap-add tails
        self._ramps = StrengthRamps(0)
        self._frames = np.zeros(0, np.int64)  # hops emitted per stream
        self._model_hops = np.zeros(0, np.int64)
        self._last_served = np.zeros(0, np.int64)  # pool hop of each stream's last model hop
        self._last_vad = np.zeros(0, np.float32)
        self._vad: dict[int, list[float]] = {}
        f = g.n_freqs
        self._last_x = torch.zeros(0, f, dtype=torch.complex64)  # last model hop's input / output
        self._last_y = torch.zeros(0, f, dtype=torch.complex64)
        self._has_last = np.zeros(0, bool)
        # model state of the streams in ``_state_sids`` (rebuilt lazily when streams come and go)
        self._state: tuple | None = None
        self._state_owned = True  # False while it holds the model's output tensors
        self._state_sids: list[int] = []
        self.latencies: deque[float] = deque(maxlen=max_history)
        self.reset_stats()

    # ----------------------------------------------------------------- public
    @property
    def hop_size(self) -> int:
        """Samples per stream in each :meth:`process` call."""
        return self.geometry.hop_length

    @property
    def hop_ms(self) -> float:
        """Duration of one hop (the real-time deadline) in milliseconds."""
        return 1000.0 * self.geometry.hop_length / self.geometry.sample_rate

    @property
    def delay(self) -> int:
        """Output delay in samples (``n_fft - hop``), as the Streamer's."""
        return self.geometry.delay

    @property
    def streams(self) -> list[int]:
        """Ids of the open streams."""
        return list(self._sids)

    def __len__(self) -> int:
        return len(self._sids)

    def open(self, atten_lim_db: float | None = None, wet: float = 1.0) -> int:
        """Open a stream (fresh state, given strength); returns its id."""
        strength = atten_lim_db is not None or wet != 1.0
        if strength:
            StrengthRamps(1).set(0, atten_lim_db, wet)  # a bad value raises before anything opens
        sid = self._next_sid
        self._next_sid += 1
        d = self._hist.shape[1]
        self._slot[sid] = len(self._sids)
        self._sids.append(sid)
        self._hist = np.concatenate([self._hist, np.zeros((1, d), np.float32)])
        self._ola = np.concatenate([self._ola, np.zeros((1, d), np.float32)])
        self._ramps.append(1)
        for name in ("_frames", "_model_hops", "_last_served", "_last_vad", "_has_last"):
            arr = getattr(self, name)
            setattr(self, name, np.concatenate([arr, np.zeros(1, arr.dtype)]))
        self._last_served[-1] = self._hop_index  # starts the admission queue now
        zero = torch.zeros(1, self._last_x.shape[1], dtype=self._last_x.dtype)
        self._last_x, self._last_y = torch.cat([self._last_x, zero]), torch.cat([self._last_y, zero])
        if self.vad:
            self._vad[sid] = []
        if self.library is not None:
            h = self.library.create()
            self._owned.add(h)
            self._handles = np.append(self._handles, np.uintp(h))
        if strength:
            self.set_strength(sid, atten_lim_db, wet)
        return sid

    def close(self, sid: int) -> None:
        """Close stream ``sid`` (the others are not disturbed). Its last ``delay`` samples are not
        emitted: feed ``ceil(delay / hop)`` hops of zeros first to drain them."""
        i = self._row(sid)
        del self._slot[sid]
        self._sids.pop(i)
        for s in self._sids[i:]:
            self._slot[s] -= 1
        self._hist, self._ola = np.delete(self._hist, i, 0), np.delete(self._ola, i, 0)
        self._ramps.delete(i)
        for name in ("_frames", "_model_hops", "_last_served", "_last_vad", "_has_last"):
            setattr(self, name, np.delete(getattr(self, name), i))
        keep = torch.from_numpy(np.delete(np.arange(self._last_x.shape[0]), i))
        self._last_x, self._last_y = self._last_x[keep], self._last_y[keep]
        self._vad.pop(sid, None)
        if self.library is not None:
            h = int(self._handles[i])
            self._handles = np.delete(self._handles, i)
            self._owned.discard(h)
            self.library.destroy(h)

    def set_strength(self, sid: int, atten_lim_db: float | None = None, wet: float = 1.0) -> None:
        """Strength controls of stream ``sid`` (as :meth:`Streamer.set_strength
        <denoisezoo.streaming.Streamer.set_strength>`: ramped over a few hops once it runs)."""
        i = self._row(sid)
        self._ramps.set(i, atten_lim_db, wet, started=bool(self._frames[i] > 0))
        if self.library is not None:  # C: 0 = no limit; a 0 dB limit (no suppression) = tiny dB
            db = 0.0 if atten_lim_db is None or np.isinf(atten_lim_db) else max(atten_lim_db, 1e-30)
            self.library.set_atten_lim_db(int(self._handles[i]), db)

    def pop_vad(self, sid: int) -> np.ndarray:
        """Voice-activity values ``(n,)`` of stream ``sid``'s hops since the last call (needs
        ``vad=True``); hops the model skipped repeat its last value."""
        if not self.vad:
            raise RuntimeError("this StreamPool was created without vad=True")
        self._row(sid)
        out, self._vad[sid] = np.asarray(self._vad[sid], np.float32), []
        return out

    def process(self, hops: Mapping[int, np.ndarray | torch.Tensor]) -> dict[int, np.ndarray]:
        """Advance the streams given by one hop each: ``{sid: (hop_size,) float32}`` ->
        ``{sid: (hop_size,) output}`` (float32 numpy arrays), in one model step."""
        t0 = self.clock()
        if not hops:
            return {}
        sids, rows, x = self._gather_input(hops)
        g = self.geometry
        hop, n_fft = g.hop_length, g.n_fft
        n = rows.shape[0]
        seq = np.concatenate([self._hist[rows], x], axis=-1)  # N, n_fft
        self._hist[rows] = seq[:, hop:]
        serve = self._admit(rows)
        if self.library is not None:  # the C library frames, denoises, limits and overlap-adds
            y, vad, t_model = self._run_c(rows, serve, x)
            vals = self._ramps.values(rows, 1)  # wet (its limit is ramped in C)
            if vals is not None and (vals[1] != 1.0).any():
                wet = vals[1].astype(np.float32)  # N, 1
                y = wet * y + (1 - wet) * seq[:, :hop]  # dry: the input delayed by n_fft - hop
        else:
            spec = frame_spectra(seq, 1, self.window, n_fft, hop)  # N, 1, F
            enh, vad, t_model = self._run_served(rows, serve, spec)
            out_spec = self._ramps.apply(rows, spec, enh)
            y, self._ola[rows] = overlap_add(out_spec, self._ola[rows], self.window, n_fft, hop)
        self._frames[rows] += 1
        if self.vad:
            if vad is not None:
                self._last_vad[rows[serve]] = vad
            for sid, v in zip(sids, self._last_vad[rows], strict=True):
                self._vad[sid].append(float(v))
        self._account(n, int(serve.size), t_model, self.clock() - t0)
        return {sid: y[i] for i, sid in enumerate(sids)}

    def reset_stats(self) -> None:
        """Clear the latency history and counters."""
        self.latencies.clear()
        self._hop_index = getattr(self, "_hop_index", 0)
        self._n_hops = 0
        self._n_stream_hops = 0
        self._n_model = 0
        self._n_miss = 0
        self._max_time = 0.0
        self._debt = 0.0
        self._cost: float | None = None  # model seconds per served stream (EMA)
        self._rest: float | None = None  # seconds of a hop outside the model (EMA)

    @property
    def stats(self) -> dict[str, Any]:
        """Counters and per-hop latency (one :meth:`process` call, microseconds).

        Keys: ``hops`` (process calls), ``streams`` (open now), ``stream_hops`` (stream x hop
        outputs), ``model_stream_hops``, ``overload_stream_hops`` (served by the fallback),
        ``deadline_misses`` (calls over the budget), ``budget_ms``, ``overload``, ``backend``,
        then ``frames``, ``mean_us``, ``p50_us``, ``p99_us``, ``max_us`` over the last
        ``max_history`` calls (``max_us`` over the whole session).
        """
        return {"hops": self._n_hops, "streams": len(self._sids),
                "stream_hops": self._n_stream_hops, "model_stream_hops": self._n_model,
                "overload_stream_hops": self._n_stream_hops - self._n_model,
                "deadline_misses": self._n_miss, "budget_ms": self.budget_ms,
                "overload": self.overload, "backend": self.backend, **self.timing()}

    def timing(self) -> dict[str, float]:
        """Latency of one :meth:`process` call (microseconds): frames, mean, p50, p99, max."""
        if not self.latencies:
            return {"frames": 0}
        t = np.asarray(self.latencies) * 1e6
        return {"frames": int(t.size), "mean_us": float(t.mean()),
                "p50_us": float(np.percentile(t, 50)), "p99_us": float(np.percentile(t, 99)),
                "max_us": float(max(t.max(), self._max_time * 1e6))}

    def stream_stats(self, sid: int) -> dict[str, int]:
        """Hops of stream ``sid``: emitted, by the model, by the overload fallback."""
        i = self._row(sid)
        return {"hops": int(self._frames[i]), "model_hops": int(self._model_hops[i]),
                "overload_hops": int(self._frames[i] - self._model_hops[i])}

    # --------------------------------------------------------------- internal
    def _row(self, sid: int) -> int:
        try:
            return self._slot[sid]
        except KeyError:
            raise KeyError(f"no open stream {sid!r}") from None

    def _gather_input(self, hops: Mapping) -> tuple[list[int], np.ndarray, np.ndarray]:
        """The streams given, in slot order: ``(ids, rows, samples (N, hop))``."""
        sids = sorted(hops, key=self._row)
        rows = np.fromiter((self._slot[s] for s in sids), np.int64, len(sids))
        x = np.empty((len(sids), self.hop_size), np.float32)
        for i, sid in enumerate(sids):
            h = hops[sid]
            a = np.asarray(h.detach().cpu().numpy() if torch.is_tensor(h) else h)
            if a.shape != (self.hop_size,):
                raise ValueError(f"stream {sid}: expected ({self.hop_size},) samples, got "
                                 f"{tuple(a.shape)}")
            x[i] = a
        return sids, rows, x

    def _admit(self, rows: np.ndarray) -> np.ndarray:
        """Indices (into ``rows``) of the streams the model serves this hop."""
        n = rows.shape[0]
        if self.overload is None or self._cost is None:
            return np.arange(n)
        room = _ADMIT_SHARE * self.budget_ms / 1000.0 - self._debt - (self._rest or 0.0)
        cap = int(max(0.0, room) // max(self._cost, 1e-9))
        if cap >= n:
            return np.arange(n)
        order = np.argsort(self._last_served[rows], kind="stable")  # longest without model first
        return np.sort(order[:cap])

    def _run_served(self, rows: np.ndarray, serve: np.ndarray, spec: torch.Tensor):
        """Model step for ``rows[serve]``, fallback for the others: ``(enhanced (N, 1, F), VAD of
        the served or None, model seconds)``."""
        n = rows.shape[0]
        self._hop_index += 1
        if serve.size == 0:
            return self._fallback(rows, spec), None, 0.0
        srows = rows[serve]
        t0 = self.clock()
        state, full = self._gathered_state(srows)
        enh, vad, nxt = run_step(self.model, spec if serve.size == n else spec[serve], state,
                                 self.vad)
        if full:  # keep the model's own tensors: no copy in the steady state
            self._state, self._state_owned = tuple(nxt), False
        else:
            self._scatter_state(srows, nxt)
        t_model = self.clock() - t0
        self._mark_served(srows)
        if self.overload == "mask":
            self._last_x[srows], self._last_y[srows] = spec[serve, 0], enh[:, 0]
            self._has_last[srows] = True
        if serve.size == n:
            return enh, (None if vad is None else vad[:, 0]), t_model
        out = self._fallback(rows, spec)
        out[serve] = enh
        return out, (None if vad is None else vad[:, 0]), t_model

    def _mark_served(self, srows: np.ndarray) -> None:
        self._model_hops[srows] += 1
        self._last_served[srows] = self._hop_index

    def _run_c(self, rows: np.ndarray, serve: np.ndarray, x: np.ndarray):
        """``dz_process_many`` for ``rows[serve]``, ``dz_bypass_many`` for the rest: ``(y, vad, s)``."""
        n, lib = rows.shape[0], self.library
        self._hop_index += 1
        handles = self._handles[rows]
        if serve.size == n:
            t0 = self.clock()
            y, vad = lib.process_many(handles, x)
            t_model = self.clock() - t0
        else:
            y, vad, t_model = np.empty_like(x), None, 0.0
            if serve.size:
                t0 = self.clock()
                y[serve], vad = lib.process_many(handles[serve], x[serve])
                t_model = self.clock() - t0
            skip = np.setdiff1d(np.arange(n), serve, assume_unique=True)
            y[skip] = lib.bypass_many(handles[skip], x[skip])
        if serve.size:
            self._mark_served(rows[serve])
        return y, vad, t_model

    def _fallback(self, rows: np.ndarray, spec: torch.Tensor) -> torch.Tensor:
        if self.overload != "mask":
            return spec.clone()
        mask = torch.ones(rows.shape[0], 1, spec.shape[-1], dtype=spec.dtype)
        has = np.flatnonzero(self._has_last[rows])
        if has.size:
            r = torch.from_numpy(rows[has])
            mask[has] = ratio_mask(self._last_x[r], self._last_y[r])[:, None]
        return spec * mask

    def _gathered_state(self, srows: np.ndarray):
        """The model state of streams ``srows`` and whether it is the whole stored state."""
        if self._state_sids != self._sids:
            self._rebuild_state()
        if srows.size == len(self._sids) and (srows == np.arange(srows.size)).all():
            return self._state_type(*self._state) if self._is_named else self._state, True
        parts = [_take(t, srows, ax) for t, ax in zip(self._state, self._axes, strict=True)]
        return (self._state_type(*parts) if self._is_named else tuple(parts)), False

    def _scatter_state(self, srows: np.ndarray, nxt) -> None:
        """Write the next state of streams ``srows`` into the stored state (slot order)."""
        with torch.inference_mode():
            if not self._state_owned:  # the model's output tensors may be views: own a copy
                self._state = tuple(t.clone() if torch.is_tensor(t) else np.array(t)
                                    for t in self._state)
                self._state_owned = True
            for t, ax, v in zip(self._state, self._axes, nxt, strict=True):
                _put(t, srows, ax, v)

    @property
    def _is_named(self) -> bool:
        return hasattr(self._state_type, "_fields")

    def _rebuild_state(self) -> None:
        """Stored model state for the open streams, in slot order: the rows of streams still
        open, then a fresh state for each stream opened since the last hop."""
        old = {s: i for i, s in enumerate(self._state_sids)}
        keep = np.asarray([old[s] for s in self._sids if s in old], np.int64)
        new = sum(1 for s in self._sids if s not in old)
        parts: list[list] = [[] for _ in self._axes]
        if keep.size:
            for p, t, ax in zip(parts, self._state, self._axes, strict=True):
                p.append(_take(t, keep, ax))
        if new:
            fresh = self.model.initial_state(new, None, torch.float32)
            for p, t in zip(parts, fresh, strict=True):
                p.append(t)
        with torch.inference_mode():
            self._state = tuple(p[0] if len(p) == 1 else _cat(p, ax)
                                for p, ax in zip(parts, self._axes, strict=True))
        self._state_owned = True
        self._state_sids = list(self._sids)

    def _account(self, n: int, served: int, t_model: float, dt: float) -> None:
        budget = self.budget_ms / 1000.0
        self.latencies.append(dt)
        self._max_time = max(self._max_time, dt)
        self._n_hops += 1
        self._n_stream_hops += n
        self._n_model += served
        if dt > budget:
            self._n_miss += 1
        self._debt = max(0.0, self._debt + dt - budget)
        rest = dt - t_model
        self._rest = rest if self._rest is None else (1 - _EMA) * self._rest + _EMA * rest
        if served:
            c = t_model / served
            self._cost = c if self._cost is None else (1 - _EMA) * self._cost + _EMA * c
