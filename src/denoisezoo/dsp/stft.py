"""STFT analysis / synthesis with one framing convention shared by offline and streaming paths.

Convention (``StftGeometry``): the signal is preceded by ``n_fft - hop`` zeros and followed by enough
zeros to complete the last frame that overlaps it; frame ``t`` covers padded samples
``[t * hop, t * hop + n_fft)``. The analysis and synthesis windows are the same power-complementary
window (``sum_t w[n - t hop]^2 == 1``), so overlap-add needs no normalisation: the streaming engine
reproduces :func:`istft` exactly, one hop at a time, with an output delay of ``n_fft - hop`` samples.
For ``n_fft == 2 * hop`` this equals ``torch.stft(center=True, pad_mode="constant")``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F

__all__ = ["StftGeometry", "sqrt_hann", "stft", "istft", "num_frames"]


def sqrt_hann(n: int, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """Square root of the periodic Hann window (power-complementary at 50 % overlap)."""
    return torch.hann_window(n, periodic=True, dtype=torch.float64).sqrt().to(dtype)


@dataclass(frozen=True)
class StftGeometry:
    """Frame geometry of a spectral model: everything derived from these four numbers."""

    sample_rate: int
    n_fft: int
    hop_length: int
    window: str = "sqrt_hann"

    def __post_init__(self) -> None:
        if self.hop_length <= 0 or self.n_fft < self.hop_length:
            raise ValueError(f"need 0 < hop_length <= n_fft, got {self.hop_length}, {self.n_fft}")
        if self.window not in ("sqrt_hann", "vorbis"):
            raise ValueError(f"unknown window {self.window!r}")

    @property
    def n_freqs(self) -> int:
        return self.n_fft // 2 + 1

    @property
    def delay(self) -> int:
        """Output delay in samples of the causal overlap-add (``n_fft - hop``)."""
        return self.n_fft - self.hop_length

    @property
    def latency_ms(self) -> float:
        """Algorithmic latency: one window (hop buffering + overlap-add delay)."""
        return 1000.0 * self.n_fft / self.sample_rate

    def make_window(self, dtype: torch.dtype = torch.float32) -> torch.Tensor:
        if self.window == "sqrt_hann":
            return sqrt_hann(self.n_fft, dtype)
        return vorbis_window(self.n_fft, self.hop_length, dtype)


def vorbis_window(n_fft: int, hop: int, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """Vorbis power-complementary window (RNNoise), ``n_fft == 2 * hop``."""
    if n_fft != 2 * hop:
        raise ValueError("the Vorbis window needs n_fft == 2 * hop")
    n = torch.arange(n_fft, dtype=torch.float64)
    w = torch.sin(0.5 * math.pi * torch.sin(math.pi * (n + 0.5) / n_fft) ** 2)
    return w.to(dtype)


def num_frames(n_samples: int, n_fft: int, hop: int) -> int:
    """Frames needed so that every input sample is covered by all frames that overlap it."""
    return (n_samples - 1 + n_fft - hop) // hop + 1 if n_samples > 0 else 0


def stft(wav: torch.Tensor, geom: StftGeometry, window: torch.Tensor | None = None) -> torch.Tensor:
    """Analysis STFT.

    Args:
        wav: ``(..., N)`` waveform.
        geom: frame geometry.
        window: optional precomputed ``(n_fft,)`` window (e.g. a module buffer).

    Returns:
        ``(..., F, T, 2)`` real/imaginary spectrum, ``F = n_fft // 2 + 1``, ``T = num_frames(N)``.
    """
    n_fft, hop = geom.n_fft, geom.hop_length
    w = geom.make_window(wav.dtype).to(wav.device) if window is None else window
    lead = wav.shape[:-1]
    x = wav.reshape(-1, wav.shape[-1])
    n = x.shape[-1]
    t = num_frames(n, n_fft, hop)
    total = (t - 1) * hop + n_fft
    x = F.pad(x, (n_fft - hop, total - n - (n_fft - hop)))
    frames = x.unfold(-1, n_fft, hop) * w  # B, T, n_fft
    spec = torch.fft.rfft(frames, dim=-1)  # B, T, F
    spec = torch.view_as_real(spec).transpose(1, 2)  # B, F, T, 2
    return spec.reshape(*lead, geom.n_freqs, t, 2)


def istft(spec: torch.Tensor, geom: StftGeometry, length: int,
          window: torch.Tensor | None = None) -> torch.Tensor:
    """Synthesis by windowed overlap-add, the exact inverse of :func:`stft` for unmodified spectra.

    Args:
        spec: ``(..., F, T, 2)`` spectrum.
        geom: frame geometry.
        length: number of output samples ``N`` (as given to :func:`stft`).

    Returns:
        ``(..., N)`` waveform.
    """
    n_fft, hop = geom.n_fft, geom.hop_length
    w = geom.make_window(spec.dtype).to(spec.device) if window is None else window
    lead = spec.shape[:-3]
    s = spec.reshape(-1, *spec.shape[-3:])
    t = s.shape[-2]
    frames = torch.fft.irfft(torch.view_as_complex(s.transpose(1, 2).contiguous()), n=n_fft, dim=-1)
    frames = frames * w  # B, T, n_fft
    total = (t - 1) * hop + n_fft
    y = F.fold(frames.transpose(1, 2), output_size=(1, total), kernel_size=(1, n_fft),
               stride=(1, hop)).reshape(s.shape[0], total)
    start = n_fft - hop
    return y[:, start : start + length].reshape(*lead, length)
