"""Functional DSP of the RNNoise port: band matrices, DCT, time-domain recovery, pitch search.

Pure functions on tensors (torch only), vectorised over frames: every function takes a leading
``(..., )`` batch of frames and never loops over time. :class:`~denoisezoo.rnnoise_port.RNNoise`
registers the matrices as buffers and chains the functions.

Conventions follow the RNNoise C code (Valin 2018): band energies use triangular weights between
band edges (the first and last band doubled, ``compute_band_energy``), gains are interpolated
linearly between band edges (``interp_band_gain``), and the DCT is the orthonormal DCT-II.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F

__all__ = [
    "band_matrices",
    "dct_matrix",
    "triangle_kernel",
    "normalized_xcorr",
    "pitch_search",
    "gather_delayed",
    "log_spectrum_floor",
    "spectral_variability",
]


def band_matrices(edges: Sequence[int], n_freqs: int,
                  dtype: torch.dtype = torch.float32) -> tuple[torch.Tensor, torch.Tensor]:
    """Triangular band analysis and linear gain interpolation matrices.

    Args:
        edges: band edges (= band centres of the triangles) in bins, strictly increasing.
        n_freqs: number of STFT bins.

    Returns:
        ``analysis (bands, F)``: ``E = analysis @ |X|^2`` (RNNoise ``compute_band_energy``; the
        last edge bin is included in the last band); ``synthesis (F, bands)``: ``g_bins =
        synthesis @ g_bands`` (``interp_band_gain``; bins above the last edge get 0).
    """
    nb = len(edges)
    ana = torch.zeros(nb, n_freqs, dtype=torch.float64)
    syn = torch.zeros(n_freqs, nb, dtype=torch.float64)
    for i in range(nb - 1):
        size = edges[i + 1] - edges[i]
        for j in range(size):
            frac = j / size
            k = edges[i] + j
            ana[i, k] += 1 - frac
            ana[i + 1, k] += frac
            syn[k, i] = 1 - frac
            syn[k, i + 1] = frac
    ana[nb - 1, edges[-1]] += 1.0
    syn[edges[-1], nb - 1] = 1.0
    ana[0] *= 2
    ana[nb - 1] *= 2
    return ana.to(dtype), syn.to(dtype)


def dct_matrix(n: int, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """Orthonormal DCT-II ``(n, n)`` (RNNoise ``dct``): ``ceps = x @ M.T``."""
    i = torch.arange(n, dtype=torch.float64)[:, None]
    j = torch.arange(n, dtype=torch.float64)[None, :]
    m = torch.cos((j + 0.5) * i * torch.pi / n) * (2.0 / n) ** 0.5
    m[0] *= 0.5**0.5
    return m.to(dtype)


def triangle_kernel(decimation: int, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """Low-pass before decimating by ``d``: a triangle of ``2d - 1`` taps summing to one
    (``[.25, .5, .25]`` for ``d = 2``, RNNoise's ``pitch_downsample`` filter)."""
    d = decimation
    k = torch.cat([torch.arange(1, d + 1), torch.arange(d - 1, 0, -1)]).to(torch.float64)
    return (k / k.sum()).to(dtype)


def _next_pow2(n: int) -> int:
    return 1 << max(0, (n - 1).bit_length())


def normalized_xcorr(buf: torch.Tensor, win: int, floor: float = 1.0) -> torch.Tensor:
    """Normalised cross-correlation of the last ``win`` samples with all earlier delays.

    Args:
        buf: ``(..., L)`` signal buffers (newest sample last).
        win: analysis window length (``win < L``).
        floor: mean power per sample below which a segment counts as silent: its correlation is
            exactly 0 (never FFT rounding noise, so silent buffers give deterministic decisions).

    Returns:
        ``(..., L - win + 1)``: entry ``lag`` is ``<x, y_lag> / sqrt(|x|^2 |y_lag|^2)`` with
        ``x = buf[L - win:]`` and ``y_lag = buf[L - win - lag : L - lag]``.
    """
    n = buf.shape[-1]
    n_lags = n - win + 1
    nfft = _next_pow2(n)
    seg = buf[..., n - win :]
    spec = torch.fft.rfft(buf, n=nfft) * torch.fft.rfft(seg, n=nfft).conj()
    corr = torch.fft.irfft(spec, n=nfft)[..., :n_lags].flip(-1)  # ..., lags: k = n - win - lag
    sq = F.pad(buf.double().square().cumsum(-1), (1, 0))  # ..., L + 1 (float64: no cancellation)
    energy = (sq[..., win:] - sq[..., : n_lags]).flip(-1).clamp_min(0.0)  # ..., lags
    e_min = floor * win
    silent = (energy < e_min) | (energy[..., :1] < e_min)
    norm = (energy[..., :1] * energy).clamp_min(e_min * e_min).sqrt().to(buf.dtype)
    return (corr / norm).masked_fill(silent, 0.0)


def _take(x: torch.Tensor, idx: torch.Tensor) -> torch.Tensor:
    return torch.gather(x, -1, idx)


def pitch_search(buf: torch.Tensor, win: int, min_period: int, max_period: int, decimation: int,
                 kernel: torch.Tensor, threshold: float) -> torch.Tensor:
    """Causal two-stage pitch period search on per-frame buffers (vectorised over frames).

    1. low-pass (``kernel``) and decimate by ``decimation``; normalised cross-correlation of the
       last ``win / decimation`` samples over the period range; best lag ``T``;
    2. period-doubling removal: the largest ``k`` whose sub-multiple ``T / k`` (best of +-1) still
       reaches ``threshold`` times the correlation of ``T`` replaces ``T``;
    3. parabolic interpolation of the peak, then the best full-rate lag within ``+-decimation``.

    Args:
        buf: ``(..., L)`` full-rate buffers, newest sample last, ``L >= win + max_period +
            3 decimation + len(kernel) - 1``.
        win: analysis window (the frame, ``n_fft`` samples).
        min_period, max_period: period range in samples.
        decimation: coarse-search decimation factor ``d``.
        kernel: ``(2d - 1,)`` low-pass taps.
        threshold: sub-multiple acceptance ratio.

    Returns:
        ``(...)`` integer pitch periods (int64) in ``[min_period, max_period]``.
    """
    lead = buf.shape[:-1]
    x = buf.reshape(-1, buf.shape[-1])
    n = x.shape[-1]
    d = decimation
    k = kernel.numel()
    off = (n - k) % d  # align the decimation grid with the newest sample
    ld = (n - off - k) // d + 1
    # sum of strided slices, not conv1d: its result depends on the batch size (oneDNN blocking),
    # which would make offline and frame-by-frame pitch decisions differ
    xd = sum(kernel[j] * x[:, off + j : off + j + d * (ld - 1) + 1 : d] for j in range(k))  # N, Ld
    wd = win // d
    rd = normalized_xcorr(xd, wd)  # N, lags_d
    lo = max(1, min_period // d)
    hi = -(-max_period // d)
    if hi + 1 >= rd.shape[-1]:
        raise ValueError(f"pitch buffer too short: {n} samples for max period {max_period}")
    lags = torch.arange(rd.shape[-1], device=x.device)
    masked = rd.masked_fill((lags < lo) | (lags > hi), float("-inf"))
    r0, t0 = masked.max(-1)  # N

    # period doubling: test T / k for k = 2 .. hi // lo
    kmax = max(1, hi // lo)
    if kmax >= 2:
        ks = torch.arange(2, kmax + 1, device=x.device)  # K
        cand = torch.div(2 * t0[:, None] + ks, 2 * ks, rounding_mode="floor")  # N, K (round T / k)
        near = (cand[..., None] + torch.arange(-1, 2, device=x.device)).clamp(lo, hi)  # N, K, 3
        rn = _take(rd[:, None].expand(-1, ks.numel(), -1), near)  # N, K, 3
        rbest, j = rn.max(-1)
        cand = _take(near, j[..., None])[..., 0]  # N, K
        ok = (cand >= lo) & (rbest >= threshold * r0[:, None])
        score = torch.where(ok, ks, torch.zeros_like(ks))  # N, K
        best_k = score.argmax(-1, keepdim=True)
        use = _take(score, best_k)[:, 0] > 0
        t0 = torch.where(use, _take(cand, best_k)[:, 0], t0)

    # parabolic interpolation around the coarse peak, then full-rate refinement
    rm, rc, rp = (_take(rd, (t0 + o)[:, None])[:, 0] for o in (-1, 0, 1))
    den = rm - 2 * rc + rp
    delta = torch.where(den < 0, 0.5 * (rm - rp) / den.clamp(max=-1e-12), torch.zeros_like(den))
    centre = torch.round(d * (t0.to(rd.dtype) + delta.clamp(-0.5, 0.5))).long()  # N
    if d == 1:
        return centre.clamp(min_period, max_period).reshape(lead)
    rf = normalized_xcorr(x, win)  # N, lags
    fine = centre[:, None] + torch.arange(-d, d + 1, device=x.device)
    fine = fine.clamp(min_period, max_period)
    j = _take(rf, fine).argmax(-1, keepdim=True)
    return _take(fine, j)[:, 0].reshape(lead)


def gather_delayed(buf: torch.Tensor, period: torch.Tensor, length: int) -> torch.Tensor:
    """The last ``length`` samples of each buffer delayed by its period.

    ``buf (..., L)``, ``period (...)`` -> ``(..., length)`` = ``buf[L - length - p : L - p]``.
    """
    n = buf.shape[-1]
    idx = (n - length - period)[..., None] + torch.arange(length, device=buf.device)
    return torch.gather(buf, -1, idx)


def log_spectrum_floor(ly: torch.Tensor) -> torch.Tensor:
    """RNNoise's floor on log band energies (``(..., bands) -> (..., bands)``).

    The C loop over bands ``v_i = max(M_{i-1} - 7, f_{i-1} - 1.5, l_i)``,
    ``M_i = max(M_{i-1}, v_i)``, ``f_i = max(f_{i-1} - 1.5, v_i)`` (``M_{-1} = f_{-1} = -2``), in
    closed form with cumulative maxima: ``M_i = max(-2, max_{j<=i} l_j)`` and, with
    ``a_i = max(l_i, M_{i-1} - 7)``: ``f_i = max_{-1<=j<=i} (a_j + 1.5 j) - 1.5 i``, a_{-1} = -2.
    """
    nb = ly.shape[-1]
    m = ly.cummax(-1).values.clamp_min(-2.0)  # M_i
    m_prev = torch.cat([torch.full_like(ly[..., :1], -2.0), m[..., :-1]], dim=-1)  # M_{i-1}
    a = torch.maximum(ly, m_prev - 7.0)
    ramp = 1.5 * torch.arange(-1, nb, device=ly.device, dtype=ly.dtype)  # 1.5 j, j = -1 .. nb-1
    a_ext = torch.cat([torch.full_like(ly[..., :1], -2.0), a], dim=-1) + ramp
    f = a_ext.cummax(-1).values - ramp  # f_{j}, j = -1 .. nb-1
    return torch.maximum(a, f[..., :-1] - 1.5)


def spectral_variability(ceps: torch.Tensor, memory: int) -> torch.Tensor:
    """Non-stationarity: over the last ``memory`` cepstra, the mean of each one's squared distance
    to its nearest other one (RNNoise ``spec_variability``, before its ``- 2.1`` offset).

    Args:
        ceps: ``(B, memory - 1 + T, C)`` cepstra (history first).

    Returns:
        ``(B, T)``.
    """
    win = ceps.unfold(1, memory, 1)  # B, T, C, M
    win = win.transpose(-1, -2)  # B, T, M, C
    dist = (win[..., :, None, :] - win[..., None, :, :]).square().sum(-1)  # B, T, M, M
    eye = torch.eye(memory, dtype=torch.bool, device=ceps.device)
    return dist.masked_fill(eye, float("inf")).amin(-1).mean(-1)
