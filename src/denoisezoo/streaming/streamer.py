"""``Streamer``: a streaming session (buffering, STFT, state, overlap-add) around a model.

The model is anything that follows :class:`StreamableModel`: a frame geometry, an
``initial_state`` and a ``forward_stateful(spec, state)`` that accepts any number of frames.
``feed`` processes every complete hop it has in one call (one frame for real-time chunks, many for
file processing), so the same session serves the live demo, the WAV CLI and the benchmarks.

Alignment: the emitted stream is delayed by ``delay = n_fft - hop`` samples against the input;
after ``feed`` of ``N`` samples and ``flush``, exactly ``delay + N`` samples have been emitted and
``emitted[delay:]`` equals the offline ``istft(model(stft(x)))``.
"""

from __future__ import annotations

import time
from typing import Any, Protocol

import numpy as np
import torch
import torch.nn.functional as F

from denoisezoo.dsp.stft import StftGeometry, num_frames

__all__ = ["Streamer", "StreamableModel"]


class StreamableModel(Protocol):
    geometry: StftGeometry

    def initial_state(self, batch: int = 1, device: Any = None, dtype: torch.dtype = ...) -> Any: ...

    def forward_stateful(self, spec: torch.Tensor, state: Any) -> tuple[torch.Tensor, Any]: ...


class Streamer:
    """Streaming session with any chunk size.

    Args:
        model: a streamable model (e.g. :class:`denoisezoo.gtcrn.GTCRN`), put in eval mode.
        batch: number of parallel streams (e.g. channels).

    Example:
        >>> from denoisezoo.gtcrn import gtcrn_tiny
        >>> s = Streamer(gtcrn_tiny())
        >>> x = torch.randn(1000)
        >>> y = torch.cat([s.feed(x[:333]), s.feed(x[333:]), s.flush()], dim=-1)
        >>> y.shape[-1] == s.delay + 1000
        True
    """

    def __init__(self, model: StreamableModel, batch: int = 1):
        if isinstance(model, torch.nn.Module):
            model.eval()
        self.model = model
        self.batch = batch
        self.geometry: StftGeometry = model.geometry
        self.window = self.geometry.make_window(torch.float32)
        self.frame_times: list[float] = []
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

    def reset(self) -> None:
        """Forget all history: the next ``feed`` starts a new stream."""
        g = self.geometry
        b = self.batch
        self.state = self.model.initial_state(b, None, torch.float32)
        self._history = torch.zeros(b, g.n_fft - g.hop_length)  # last input samples (pre-pad = 0)
        self._pending = torch.zeros(b, 0)  # input samples not yet forming a hop
        self._ola = torch.zeros(b, g.n_fft - g.hop_length)  # overlap-add tail
        self._fed = 0
        self._frames = 0

    def feed(self, samples: torch.Tensor | np.ndarray) -> torch.Tensor:
        """Push ``(n,)`` or ``(batch, n)`` samples; returns the ``(batch, m)`` samples now ready
        (``m`` a multiple of the hop), or ``(n_ready,)`` for a 1-D input."""
        x, squeeze = self._as_batch(samples)
        self._fed += x.shape[-1]
        self._pending = torch.cat([self._pending, x], dim=-1)
        out = self._process_pending()
        return out[0] if squeeze else out

    def flush(self) -> torch.Tensor:
        """Complete the stream with zeros, return the remaining output, then :meth:`reset`.

        After ``flush`` the session has emitted exactly ``delay + total fed`` samples.
        """
        g = self.geometry
        need = num_frames(self._fed, g.n_fft, g.hop_length) - self._frames
        emitted_so_far = self._frames * g.hop_length
        target = g.delay + self._fed
        pad = max(0, need * g.hop_length - self._pending.shape[-1])
        self._pending = torch.cat([self._pending, self._pending.new_zeros(self.batch, pad)], dim=-1)
        out = self._process_pending() if need > 0 else self._pending.new_zeros(self.batch, 0)
        out = out[:, : max(0, target - emitted_so_far)]
        self.reset()
        return out

    def timing(self) -> dict[str, float]:
        """Compute time per hop over this session's calls (microseconds), p50/p99/max/mean."""
        if not self.frame_times:
            return {"frames": 0}
        t = np.asarray(self.frame_times) * 1e6
        return {"frames": int(t.size), "mean_us": float(t.mean()), "p50_us": float(np.percentile(t, 50)),
                "p99_us": float(np.percentile(t, 99)), "max_us": float(t.max())}

    # --------------------------------------------------------------- internal
    def _as_batch(self, samples) -> tuple[torch.Tensor, bool]:
        x = torch.as_tensor(np.asarray(samples) if not torch.is_tensor(samples) else samples,
                            dtype=torch.float32)
        squeeze = x.ndim == 1
        if squeeze:
            x = x.unsqueeze(0)
        if x.ndim != 2 or x.shape[0] != self.batch:
            raise ValueError(f"expected ({self.batch}, n) samples, got {tuple(x.shape)}")
        return x, squeeze and self.batch == 1

    @torch.inference_mode()
    def _process_pending(self) -> torch.Tensor:
        g = self.geometry
        hop, n_fft = g.hop_length, g.n_fft
        k = self._pending.shape[-1] // hop
        if k == 0:
            return self._pending.new_zeros(self.batch, 0)
        t0 = time.perf_counter()
        seq = torch.cat([self._history, self._pending[:, : k * hop]], dim=-1)  # B, delay + k hop
        self._pending = self._pending[:, k * hop :]
        self._history = seq[:, seq.shape[-1] - (n_fft - hop) :]
        frames = seq.unfold(-1, n_fft, hop) * self.window  # B, k, n_fft
        spec = torch.view_as_real(torch.fft.rfft(frames, dim=-1)).transpose(1, 2)  # B, F, k, 2
        enh, self.state = self.model.forward_stateful(spec, self.state)
        y = torch.fft.irfft(torch.view_as_complex(enh.transpose(1, 2).contiguous()), n=n_fft, dim=-1)
        y = y * self.window  # B, k, n_fft
        total = (k - 1) * hop + n_fft
        ola = F.fold(y.transpose(1, 2), output_size=(1, total), kernel_size=(1, n_fft),
                     stride=(1, hop)).reshape(self.batch, total)
        ola[:, : n_fft - hop] += self._ola
        out, self._ola = ola[:, : k * hop], ola[:, k * hop :].clone()
        self._frames += k
        dt = (time.perf_counter() - t0) / k
        self.frame_times.extend([dt] * k)
        return out
