"""ERB-scale triangular filterbank (the GTCRN band layout).

The lowest ``low_bins`` STFT bins are kept as they are; the bins above are mapped onto ``bands``
triangular bands spaced uniformly on the ERB-rate scale between the frequency of bin ``low_bins``
and ``high_hz`` (Nyquist by default).
"""

from __future__ import annotations

import torch

__all__ = ["hz_to_erb", "erb_to_hz", "erb_filterbank"]


def hz_to_erb(freq_hz: torch.Tensor | float) -> torch.Tensor:
    """ERB-rate (Glasberg & Moore style, ``21.4 log10(1 + 0.00437 f)``)."""
    f = torch.as_tensor(freq_hz, dtype=torch.float64)
    return 21.4 * torch.log10(0.00437 * f + 1.0)


def erb_to_hz(erb: torch.Tensor | float) -> torch.Tensor:
    """Inverse of :func:`hz_to_erb`."""
    e = torch.as_tensor(erb, dtype=torch.float64)
    return (torch.pow(10.0, e / 21.4) - 1.0) / 0.00437


def erb_filterbank(
    n_fft: int, sample_rate: int, low_bins: int, bands: int, high_hz: float | None = None
) -> torch.Tensor:
    """Triangular ERB filterbank over the bins above ``low_bins``.

    Args:
        n_fft: FFT size; the spectrum has ``n_fft // 2 + 1`` bins.
        sample_rate: sampling rate in Hz.
        low_bins: number of low bins passed through unbanded.
        bands: number of ERB bands covering the remaining bins.
        high_hz: upper edge of the last band (default Nyquist).

    Returns:
        ``(bands, n_fft // 2 + 1 - low_bins)`` float32 matrix; ``bands @ spectrum_high`` gives band values.

    Example:
        >>> fb = erb_filterbank(512, 16000, 65, 64)
        >>> tuple(fb.shape)
        (64, 192)
    """
    n_bins = n_fft // 2 + 1
    if not 0 < low_bins < n_bins:
        raise ValueError(f"low_bins must be in (0, {n_bins}), got {low_bins}")
    if bands < 2:
        raise ValueError(f"bands must be >= 2, got {bands}")
    high = sample_rate / 2 if high_hz is None else high_hz
    low_hz = low_bins / n_fft * sample_rate
    centres = torch.linspace(float(hz_to_erb(low_hz)), float(hz_to_erb(high)), bands, dtype=torch.float64)
    # torch.round rounds half to even, like numpy's round used by the reference implementation
    edges = [int(v) for v in torch.round(erb_to_hz(centres) / sample_rate * n_fft).tolist()]
    eps = 1e-12
    fb = torch.zeros(bands, n_bins, dtype=torch.float64)

    def ramp(lo: int, hi: int, rising: bool) -> torch.Tensor:
        k = torch.arange(lo, hi, dtype=torch.float64)
        num = (k - lo + eps) if rising else (hi - k + eps)
        return num / (hi - lo + eps)

    # first band: falling half only; middle bands: full triangles; last band: complement of the
    # previous band's falling edge (inclusive of the last edge), so adjacent bands sum to one.
    fb[0, edges[0] : edges[1]] = ramp(edges[0], edges[1], rising=False)
    for b in range(1, bands - 1):
        lo, mid, hi = edges[b - 1], edges[b], edges[b + 1]
        fb[b, lo:mid] = ramp(lo, mid, rising=True)
        fb[b, mid:hi] = ramp(mid, hi, rising=False)
    fb[-1, edges[-2] : edges[-1] + 1] = 1.0 - fb[-2, edges[-2] : edges[-1] + 1]
    return fb[:, low_bins:].abs().to(torch.float32)
