"""``LiveProcessor``: the audio-callback logic of the live demo, free of any device code.

One call of :meth:`LiveProcessor.process` handles one full-duplex block at the device rate::

    indata (frames, C_in) -> mono -> Resampler(device -> model rate) -> Streamer.feed
        -> Resampler(model -> device rate) -> output FIFO (pre-filled with ``prefill`` zeros)
        -> ``frames`` samples -> outdata (frames, C_out), the same signal on every channel

Alignment (exact, in device-rate samples): with ``D = latency_samples = prefill +
round(streamer.delay * device_rate / model_rate)``, output sample ``n`` is the denoised input
sample ``n - D``. At equal rates (no resampling) ``out[prefill + j]`` is sample ``j`` of the
Streamer's output for the same input (itself the input delayed by ``streamer.delay``); with
resampling, ``out[prefill:]`` equals ``resample(streamer(resample(in)))`` (soxr streams are
chunking-invariant and delay-free; recipe :data:`DEFAULT_QUALITY`).

If the FIFO ever runs dry (blocks shorter, longer or more irregular than planned), the missing
samples are played as silence, the late ones follow, and ``latency_samples`` grows by the
shortfall (``starved_samples``), for bypass too: a glitch once, then a stable larger delay.

``prefill`` is the smallest FIFO pre-fill that never lets the output run dry with blocks of
``blocksize`` frames: hop buffering of the Streamer plus the look-ahead the two resamplers hold
back, found by running the same resampler/hop arithmetic on silence (:func:`plan_prefill`).

Bypass outputs the input delayed by the same ``D`` samples (a delay line), so switching is
seamless and compares like with like; the model keeps running while bypassed (its state stays
warm and the load shown stays honest).

Nothing here blocks: the callback does a fixed amount of numpy work in preallocated rings, the
Streamer's per-hop budget and fallback keep the model on time, and recording only hands copies of
the blocks to a callable (a queue ``put``) that returns at once. Status flags from the device
(under/overruns) are counted, never raised.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from typing import Any

import numpy as np

from denoisezoo.dsp.resample import Resampler
from denoisezoo.streaming.streamer import Streamer

__all__ = ["LiveProcessor", "plan_prefill", "status_bits", "STATUS_BITS", "default_blocksize",
           "default_budget_ms", "DEFAULT_QUALITY"]

# PortAudio's PaStreamCallbackFlags, as exposed by sounddevice.CallbackFlags attributes
# soxr recipe inside the audio path: "LQ" holds back ~20 ms per direction in streaming use,
# "HQ" ~37 ms (measured with 10 ms blocks); both are far above the model's 8 kHz band edge needs
DEFAULT_QUALITY = "LQ"

STATUS_BITS: dict[str, int] = {"input_underflow": 1, "input_overflow": 2, "output_underflow": 4,
                               "output_overflow": 8, "priming_output": 16}


def status_bits(status: Any) -> int:
    """PortAudio callback flags as an int: accepts ``None``, an int bitmask or an object with
    boolean attributes named as in :data:`STATUS_BITS` (``sounddevice.CallbackFlags``)."""
    if status is None:
        return 0
    if isinstance(status, (int, np.integer)):
        return int(status)
    bits = 0
    for name, bit in STATUS_BITS.items():
        if getattr(status, name, False):
            bits |= bit
    return bits


def default_blocksize(device_rate: int, hop_length: int, model_rate: int) -> int:
    """One model hop at the device rate (rounded): one model call per callback on average."""
    return max(16, int(round(hop_length * device_rate / model_rate)))


def default_budget_ms(hop_ms: float, block_ms: float) -> float:
    """Half of the shorter of a hop and a block: leaves room for resampling and the device."""
    return 0.5 * min(hop_ms, block_ms)


def plan_prefill(device_rate: int, model_rate: int, hop_length: int, blocksize: int,
                 seconds: float = 2.0, quality: str = DEFAULT_QUALITY) -> int:
    """Smallest output-FIFO pre-fill (device samples) that never underflows with fixed blocks.

    Replays the sample-count arithmetic of :class:`LiveProcessor` on silence with fresh
    resamplers (soxr's output counts depend only on the chunk lengths, not on the data) for
    ``seconds`` (at least 64 blocks) and returns the largest shortfall seen.
    """
    if blocksize < 1:
        raise ValueError(f"blocksize must be >= 1, got {blocksize}")
    rs_in = Resampler(device_rate, model_rate, 1, quality)
    rs_out = Resampler(model_rate, device_rate, 1, quality)
    block = np.zeros((blocksize, 1), np.float32)
    pending = fifo = worst = 0
    for _ in range(max(64, math.ceil(seconds * device_rate / blocksize))):
        pending += rs_in.process(block).shape[0]
        k = pending // hop_length
        pending -= k * hop_length
        if k:
            fifo += rs_out.process(np.zeros((k * hop_length, 1), np.float32)).shape[0]
        fifo -= blocksize
        worst = max(worst, -fifo)
    return worst


class _Ring:
    """Fixed-capacity float32 FIFO on a preallocated array (no allocation per call)."""

    def __init__(self, capacity: int, fill: int = 0):
        if fill > capacity:
            raise ValueError("fill exceeds capacity")
        self.buf = np.zeros(capacity, np.float32)
        self.cap = capacity
        self.start = 0
        self.size = fill

    def write(self, x: np.ndarray) -> int:
        """Append as much of ``x`` as fits; returns how many samples were written."""
        n = min(x.shape[0], self.cap - self.size)
        end = (self.start + self.size) % self.cap
        first = min(n, self.cap - end)
        self.buf[end : end + first] = x[:first]
        self.buf[: n - first] = x[first:n]
        self.size += n
        return n

    def unread_zeros(self, k: int) -> None:
        """Put ``k`` zeros in front of the oldest sample (the next reads return them first)."""
        k = min(k, self.cap - self.size)
        self.start = (self.start - k) % self.cap
        first = min(k, self.cap - self.start)
        self.buf[self.start : self.start + first] = 0.0
        self.buf[: k - first] = 0.0
        self.size += k

    def read(self, out: np.ndarray, n: int) -> int:
        """Move up to ``n`` samples into ``out[:n]``; returns how many were available."""
        n = min(n, self.size)
        first = min(n, self.cap - self.start)
        out[:first] = self.buf[self.start : self.start + first]
        out[first:n] = self.buf[: n - first]
        self.start = (self.start + n) % self.cap
        self.size -= n
        return n


class LiveProcessor:
    """Full-duplex block processing for the live demo (drive it from a device or from a file).

    Args:
        streamer: the streaming session (model, budget, fallback); its output is resampled back.
        device_rate: sample rate of the audio device (Hz).
        blocksize: frames per callback the FIFO pre-fill is planned for (larger blocks still
            work but may run dry: counted in ``starved_samples``, and the latency grows by as
            much, which is the pre-fill those blocks need: the FIFO heals itself).
        out_channels: output channels; the mono result is copied to each.
        bypass: start bypassed (input passed through, delayed by ``latency_samples``).
        record: called from the callback with ``(raw (frames,), played (frames,))`` copies at
            the device rate, e.g. :meth:`denoisezoo.live.Recorder.put`; must not block.
        clock: seconds counter for the load / real-time-factor measurement.
        resample_quality: soxr recipe of both resamplers (``"QQ"``, ``"LQ"``, ``"MQ"``,
            ``"HQ"``, ``"VHQ"``): higher costs more look-ahead latency.

    Attributes read by the display (plain numbers, updated by the callback): ``callbacks``,
    ``frames``, ``busy_s``, ``max_callback_s``, ``late_callbacks`` (callbacks that took longer
    than their block), ``in_peak`` / ``out_peak`` (peak since :meth:`take_levels`),
    ``in_rms`` / ``out_rms`` (last block), ``flags`` (counts per :data:`STATUS_BITS` name),
    ``starved_samples``, ``dropped_samples``, ``errors``.

    Example:
        >>> from denoisezoo.gtcrn import gtcrn_tiny
        >>> p = LiveProcessor(Streamer(gtcrn_tiny(), budget_ms=8.0), device_rate=48000,
        ...                   blocksize=480)
        >>> x = np.zeros((480, 1), np.float32); y = np.empty((480, 2), np.float32)
        >>> p.process(x, y, 480, None)
        >>> p.frames, p.latency_samples == p.prefill + 3 * p.streamer.delay
        (480, True)
    """

    def __init__(self, streamer: Streamer, device_rate: int, blocksize: int, *,
                 out_channels: int = 1, bypass: bool = False,
                 record: Callable[[np.ndarray, np.ndarray], None] | None = None,
                 clock: Callable[[], float] = time.perf_counter,
                 resample_quality: str = DEFAULT_QUALITY):
        if streamer.batch != 1:
            raise ValueError(f"the live processor runs one (mono) stream, got batch={streamer.batch}")
        if device_rate <= 0 or blocksize < 1 or out_channels < 1:
            raise ValueError(f"bad device_rate={device_rate}, blocksize={blocksize} or "
                             f"out_channels={out_channels}")
        g = streamer.geometry
        self.streamer = streamer
        self.device_rate = int(device_rate)
        self.model_rate = int(g.sample_rate)
        self.blocksize = int(blocksize)
        self.out_channels = out_channels
        self.bypass = bypass
        self.record = record
        self.clock = clock
        self.resample_quality = resample_quality
        self.prefill = plan_prefill(self.device_rate, self.model_rate, g.hop_length, self.blocksize,
                                    quality=resample_quality)
        self.latency_samples = self.prefill + int(round(streamer.delay * self.device_rate
                                                        / self.model_rate))
        self._rs_in = Resampler(self.device_rate, self.model_rate, 1, resample_quality)
        self._rs_out = Resampler(self.model_rate, self.device_rate, 1, resample_quality)
        hop_dev = math.ceil(g.hop_length * self.device_rate / self.model_rate)
        room = 4 * (self.blocksize + hop_dev) + 4096  # bursts of whole hops + resampler chunks
        self._wet = _Ring(self.prefill + room, fill=self.prefill)
        self._dry = _Ring(self.latency_samples + room, fill=self.latency_samples)
        self._wet_buf = np.zeros(room, np.float32)
        self._dry_buf = np.zeros(room, np.float32)
        self.callbacks = 0
        self.frames = 0
        self.busy_s = 0.0
        self.max_callback_s = 0.0
        self.late_callbacks = 0
        self.in_peak = self.out_peak = 0.0
        self.in_rms = self.out_rms = 0.0
        self.flags: dict[str, int] = dict.fromkeys(STATUS_BITS, 0)
        self.starved_samples = 0
        self.dropped_samples = 0
        self.errors = 0

    # ----------------------------------------------------------------- public
    @property
    def latency_ms(self) -> float:
        """Input-to-output delay added by the processing (device buffers not included)."""
        return 1000.0 * self.latency_samples / self.device_rate

    @property
    def prefill_ms(self) -> float:
        """Hop buffering + resampler look-ahead + block alignment, in milliseconds."""
        return 1000.0 * self.prefill / self.device_rate

    @property
    def overlap_add_ms(self) -> float:
        """The Streamer's output delay ``n_fft - hop`` in milliseconds."""
        return 1000.0 * self.streamer.delay / self.model_rate

    @property
    def rtf(self) -> float:
        """Callback compute time / audio time since the start (0 before the first block)."""
        return self.busy_s * self.device_rate / self.frames if self.frames else 0.0

    def take_levels(self) -> tuple[float, float]:
        """Input and output peaks since the last call (linear), then reset them."""
        a, b = self.in_peak, self.out_peak
        self.in_peak = self.out_peak = 0.0
        return a, b

    def process(self, indata: np.ndarray, outdata: np.ndarray, frames: int, status: Any) -> None:
        """One full-duplex block: ``indata (frames, C_in)`` -> ``outdata (frames, C_out)``.

        Matches the ``sounddevice.Stream`` callback minus ``time``. ``status`` (see
        :func:`status_bits`) is counted; nothing is raised for under/overruns.
        """
        t0 = self.clock()
        bits = status_bits(status)
        if bits:
            for name, bit in STATUS_BITS.items():
                if bits & bit:
                    self.flags[name] += 1
        if frames > self._wet_buf.shape[0]:  # a block far beyond the plan: grow once
            self._grow(frames)
        x = indata[:frames]
        mono = x[:, 0] if x.shape[1] == 1 else x.mean(axis=1, dtype=np.float32)
        mono = np.ascontiguousarray(mono, dtype=np.float32)
        self._dry.write(mono)
        m = self._rs_in.process(mono[:, None])  # model-rate samples, (m, 1)
        if m.shape[0]:
            y = self.streamer.feed(m[:, 0])  # (k hop,) at the model rate
            if y.shape[0]:
                self._push(self._rs_out.process(y.numpy()[:, None])[:, 0])
        wet = self._wet_buf[:frames]
        got = self._wet.read(wet, frames)
        if got < frames:  # ran dry: silence now; the late samples follow, so latency grows
            wet[got:] = 0.0
            self.starved_samples += frames - got
            self.latency_samples += frames - got
            self._dry.unread_zeros(frames - got)  # bypass keeps the same latency
        dry = self._dry_buf[:frames]
        self._dry.read(dry, frames)
        out = dry if self.bypass else wet
        outdata[:frames] = out[:, None]
        if self.record is not None:
            self.record(mono.copy(), out.copy())
        self.in_rms = float(np.sqrt(np.mean(np.square(mono)))) if frames else 0.0
        self.out_rms = float(np.sqrt(np.mean(np.square(out)))) if frames else 0.0
        self.in_peak = max(self.in_peak, float(np.max(np.abs(mono)))) if frames else self.in_peak
        self.out_peak = max(self.out_peak, float(np.max(np.abs(out)))) if frames else self.out_peak
        self.callbacks += 1
        self.frames += frames
        dt = self.clock() - t0
        self.busy_s += dt
        self.max_callback_s = max(self.max_callback_s, dt)
        if dt * self.device_rate > frames:
            self.late_callbacks += 1

    def summary(self) -> dict[str, Any]:
        """Counters of the session so far (JSON-serialisable)."""
        s = self.streamer.stats
        return {
            "device_rate": self.device_rate, "model_rate": self.model_rate,
            "blocksize": self.blocksize, "callbacks": self.callbacks, "frames": self.frames,
            "seconds": self.frames / self.device_rate, "rtf": self.rtf,
            "max_callback_ms": 1000.0 * self.max_callback_s, "late_callbacks": self.late_callbacks,
            "latency_samples": self.latency_samples, "latency_ms": self.latency_ms,
            "prefill_samples": self.prefill, "bypass": self.bypass,
            "hops": s["hops"], "model_hops": s["model_hops"], "fallback_hops": s["fallback_hops"],
            "deadline_misses": s["deadline_misses"], "budget_ms": s["budget_ms"],
            "fallback": s["fallback"], "starved_samples": self.starved_samples,
            "dropped_samples": self.dropped_samples, "errors": self.errors,
            **{f"status_{k}": v for k, v in self.flags.items()},
        }

    # --------------------------------------------------------------- internal
    def _grow(self, frames: int) -> None:
        for name in ("_wet", "_dry"):
            old: _Ring = getattr(self, name)
            new = _Ring(old.cap + 2 * frames)
            tmp = np.empty(old.size, np.float32)
            old.read(tmp, old.size)
            new.write(tmp)
            setattr(self, name, new)
        self._wet_buf = np.zeros(2 * frames, np.float32)
        self._dry_buf = np.zeros(2 * frames, np.float32)

    def _push(self, y: np.ndarray) -> None:
        n = self._wet.write(y)
        self.dropped_samples += y.shape[0] - n  # FIFO full: only if blocks exceed the plan
