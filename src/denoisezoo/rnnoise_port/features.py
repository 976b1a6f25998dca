"""Functional DSP of the RNNoise port: band matrices, DCT, real DFT, pitch search, log floor.

Pure functions on real tensors (torch only), vectorised over frames: every function takes a leading
``(..., )`` batch of frames and never loops over time. :class:`~denoisezoo.rnnoise_port.RNNoise`
registers the matrices as buffers and chains the functions.

Conventions follow the RNNoise C code (Valin 2018): band energies use triangular weights between
band edges (the first and last band doubled, ``compute_band_energy``), gains are interpolated
linearly between band edges (``interp_band_gain``), and the DCT is the orthonormal DCT-II.

Everything here exports to ONNX with standard operators, so the model's ``step`` does too: no
complex tensors and no FFT (a frame's real DFT is a product with precomputed bases,
:class:`RealDFT`; the pitch correlations are direct dot products over gathered lags), no
cumulative maxima (max-plus products with constant matrices, :func:`log_floor_kernels`), and every
size and index of the pitch search is computed once, when :class:`PitchSearch` is built, never from
traced tensor shapes.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

__all__ = [
    "band_matrices",
    "dct_matrix",
    "rdft_matrices",
    "RealDFT",
    "triangle_kernel",
    "lag_index",
    "normalized_xcorr",
    "PitchSearch",
    "pitch_search",
    "gather_delayed",
    "log_floor_kernels",
    "log_spectrum_floor",
    "spectral_variability",
]


def band_matrices(edges: Sequence[int], n_freqs: int, dtype: torch.dtype = torch.float32,
                  top_bin: bool = True) -> tuple[torch.Tensor, torch.Tensor]:
    """Triangular band analysis and linear gain interpolation matrices.

    Args:
        edges: band edges (= band centres of the triangles) in bins, strictly increasing.
        n_freqs: number of STFT bins.
        top_bin: count the last edge's bin in the last band and give it that band's gain
            (``False``: as the RNNoise release, which leaves it out of both, gain 0).

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
    if top_bin:
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


def _cis(num: torch.Tensor, n: int, sign: float) -> tuple[torch.Tensor, torch.Tensor]:
    """``cos`` and ``sin`` of ``sign 2 pi num / n`` (float64) for an integer tensor ``num``,
    reduced modulo ``n`` first (no precision loss), with exact zeros at multiples of pi."""
    num = num % n
    ang = num.to(torch.float64) * (sign * 2 * torch.pi / n)
    return ang.cos(), ang.sin().masked_fill((2 * num) % n == 0, 0.0)


def rdft_matrices(n: int, dtype: torch.dtype = torch.float32) -> tuple[torch.Tensor, torch.Tensor]:
    """Real DFT of ``n`` samples as two matrices (``F = n // 2 + 1`` bins).

    Returns:
        ``forward (n, 2F)``: ``x @ forward = [Re X | Im X]`` (``torch.fft.rfft(x)``);
        ``inverse (2F, n)``: ``[Re X | Im X] @ inverse = torch.fft.irfft(X, n)`` (the imaginary
        parts of the DC and Nyquist bins are ignored, as by ``irfft``).
    """
    f = n // 2 + 1
    cos, sin = _cis(torch.arange(f)[:, None] * torch.arange(n), n, 1.0)  # F, n
    weight = torch.full((f, 1), 2.0 / n, dtype=torch.float64)  # Hermitian symmetry: bins twice
    weight[0] = 1.0 / n
    if n % 2 == 0:
        weight[-1] = 1.0 / n
    forward = torch.cat([cos, -sin], dim=0).t()  # n, 2F
    inverse = torch.cat([cos * weight, -sin * weight], dim=0)  # 2F, n
    return forward.contiguous().to(dtype), inverse.to(dtype)


def _complex_block(re: torch.Tensor, im: torch.Tensor) -> torch.Tensor:
    """The real ``(2 I, 2 O)`` matrix of a complex ``(I, O)`` one acting on row vectors
    ``[re | im]``: ``[a_re | a_im] @ M = [Re(a W) | Im(a W)]``."""
    return torch.cat([torch.cat([re, im], -1), torch.cat([-im, re], -1)], -2)


def _two_factors(n: int) -> tuple[int, int]:
    """``n = n1 n2`` with ``n1 <= n2`` and ``n1`` the largest divisor up to ``sqrt(n)``."""
    n1 = int(n**0.5)
    while n % n1:
        n1 -= 1
    return n1, n // n1


class RealDFT(nn.Module):
    """Real DFT of ``n``-sample frames and its inverse as matrix products, for ONNX export.

    Small ``n``: one product with the ``rdft_matrices`` bases (``O(n^2)``). From ``factor_from``
    samples, when ``n = n1 n2`` with ``n1 >= 8``: a two-factor Cooley-Tukey split ("four-step"
    DFT): a DFT over ``n1`` as one product, then, per output index ``k1``, the twiddles and the
    DFT over ``n2`` folded into one batched product (``O(n (n1 + n2))``, e.g. 960 = 30 x 32).
    Only standard operators (MatMul, Reshape, Transpose, Pad, Slice), no ``DFT`` node.

    Spectra are ``[Re X | Im X]`` over the ``F = n // 2 + 1`` bins, as from
    :func:`rdft_matrices`; :meth:`inverse` ignores the imaginary parts of the DC and Nyquist
    bins, as ``torch.fft.irfft`` does.

    Args:
        n: frame length.
        factor_from: smallest ``n`` that uses the factored form (below it the single product is
            faster in eager PyTorch).

    Example:
        >>> dft = RealDFT(960)
        >>> dft.factors, dft(torch.randn(3, 960)).shape
        ((30, 32), torch.Size([3, 962]))
        >>> x = torch.randn(2, 960)
        >>> ref = torch.fft.rfft(x)
        >>> bool(torch.allclose(dft(x), torch.cat([ref.real, ref.imag], -1), atol=1e-4))
        True
        >>> bool(torch.allclose(dft.inverse(dft(x)), x, atol=1e-5))
        True
    """

    def __init__(self, n: int, factor_from: int = 512):
        super().__init__()
        self.n, self.n_freqs = n, n // 2 + 1
        n1, n2 = _two_factors(n)
        self.factors: tuple[int, int] | None = (n1, n2) if n >= factor_from and n1 >= 8 else None
        if self.factors is None:
            fwd, inv = rdft_matrices(n)
            self.register_buffer("fwd", fwd, persistent=False)  # n, 2F
            self.register_buffer("inv", inv, persistent=False)  # 2F, n
            self.macs = 2 * self.n_freqs * n  # per frame and direction
            return
        f = self.n_freqs
        self.k2 = k2 = -(-f // n1)  # k2 = 0 .. K2 - 1 covers the bins k = k1 + n1 k2 < F
        j1 = torch.arange(n1)
        c1, s1 = _cis(j1[:, None] * j1, n1, -1.0)  # n1 (k1), n1 (j1)
        # stage 1, over j1 of j = n2 j1 + j2: [Re; Im] of sum_j1 x e^{-2 pi i k1 j1 / n1}
        self.register_buffer("fwd1", torch.cat([c1, s1]).float(), persistent=False)  # 2 n1, n1
        # stage 2, per k1: sum_j2 a[k1, j2] e^{-2 pi i j2 (k1 + n1 k2) / n} (twiddle and DFT)
        k = torch.arange(n1)[:, None, None] + n1 * torch.arange(k2)  # n1, 1, K2
        cf, sf = _cis(torch.arange(n2)[:, None] * k, n, -1.0)  # n1, n2, K2
        self.register_buffer("fwd2", _complex_block(cf, sf).float(), persistent=False)
        # inverse stage 1, per k1: sum_k2 w_k X_k e^{2 pi i j2 k / n}, w_k = c_k / n (0 above F)
        w = torch.full((n1, k2), 2.0 / n, dtype=torch.float64)  # k1, k2
        kk = k[:, 0]  # n1, K2
        w = w.masked_fill(kk >= f, 0.0).masked_fill((kk == 0) | (2 * kk == n), 1.0 / n)
        ci, si = _cis(kk[..., None] * torch.arange(n2), n, 1.0)  # n1, K2, n2
        block = _complex_block(ci * w[..., None], si * w[..., None])  # n1, 2 K2, 2 n2
        edge = ((kk == 0) | (2 * kk == n))  # DC and Nyquist: imaginary input ignored
        block[:, k2:][edge] = 0.0
        self.register_buffer("inv1", block.float(), persistent=False)  # n1, 2 K2, 2 n2
        # inverse stage 2, over k1: Re sum_k1 b[k1, j2] e^{2 pi i k1 j1 / n1}
        c2, s2 = _cis(j1[:, None] * j1, n1, 1.0)  # j1, k1
        self.register_buffer("inv2", torch.cat([c2, -s2], -1).float(), persistent=False)
        self.macs = 2 * n1 * n + 4 * n1 * n2 * k2  # per frame and direction (forward)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``x (..., n)`` real frames -> ``(..., 2F)`` ``[Re X | Im X]``."""
        if self.factors is None:
            return x @ self.fwd
        (n1, n2), k2, f = self.factors, self.k2, self.n_freqs
        a = self.fwd1 @ x.reshape(-1, n1, n2)  # R, 2 n1 (Re, Im of k1), n2 (j2)
        a = a.reshape(-1, 2, n1, n2).permute(2, 0, 1, 3).reshape(n1, -1, 2 * n2)  # n1, R, 2 n2
        y = torch.bmm(a, self.fwd2)  # n1 (k1), R, 2 K2
        y = y.reshape(n1, -1, 2, k2).permute(1, 2, 3, 0).reshape(-1, 2, k2 * n1)  # R, 2, k
        return y[..., :f].reshape(*x.shape[:-1], 2 * f)

    def inverse(self, spec: torch.Tensor) -> torch.Tensor:
        """``spec (..., 2F)`` ``[Re X | Im X]`` -> ``(..., n)`` real frames."""
        if self.factors is None:
            return spec @ self.inv
        (n1, n2), k2, f = self.factors, self.k2, self.n_freqs
        b = torch.nn.functional.pad(spec.reshape(-1, 2, f), (0, k2 * n1 - f))  # R, 2, k
        b = b.reshape(-1, 2, k2, n1).permute(3, 0, 1, 2).reshape(n1, -1, 2 * k2)  # n1, R, 2 K2
        b = torch.bmm(b, self.inv1)  # n1 (k1), R, 2 n2
        b = b.reshape(n1, -1, 2, n2).permute(1, 2, 0, 3).reshape(-1, 2 * n1, n2)  # R, 2 n1, n2
        return (self.inv2 @ b).reshape(*spec.shape[:-1], self.n)  # j = n2 j1 + j2


def triangle_kernel(decimation: int, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """Low-pass before decimating by ``d``: a triangle of ``2d - 1`` taps summing to one
    (``[.25, .5, .25]`` for ``d = 2``, RNNoise's ``pitch_downsample`` filter)."""
    d = decimation
    k = torch.cat([torch.arange(1, d + 1), torch.arange(d - 1, 0, -1)]).to(torch.float64)
    return (k / k.sum()).to(dtype)


def lag_index(length: int, win: int) -> torch.Tensor:
    """``(length - win + 1, win)`` int64: row ``lag`` indexes the ``win`` samples that end ``lag``
    samples before the end of a ``length``-sample buffer (row 0: the last ``win`` samples)."""
    lags = torch.arange(length - win + 1)[:, None]
    return length - win - lags + torch.arange(win)


def _normalise(corr: torch.Tensor, e0: torch.Tensor, energy: torch.Tensor,
               e_min: float) -> torch.Tensor:
    """``corr / sqrt(e0 energy)``, exactly 0 where either segment's energy is below ``e_min``."""
    silent = (energy < e_min) | (e0 < e_min)
    norm = (e0 * energy).clamp_min(e_min * e_min).sqrt()
    return (corr / norm).masked_fill(silent, 0.0)


def _xcorr_rows(x: torch.Tensor, index: torch.Tensor, n_lags: int, win: int,
                e_min: float) -> torch.Tensor:
    """``x (N, L)``, ``index (n_lags win,)`` the flattened :func:`lag_index` -> ``(N, n_lags)``
    normalised correlations of the last ``win`` samples with each lagged segment (direct dot
    products)."""
    # one flat Gather (several times faster than 2-D advanced indexing in eager PyTorch)
    frames = x.index_select(1, index).reshape(-1, n_lags, win)  # N, lags, win
    corr = (frames @ x[:, -win:, None])[..., 0]  # N, lags
    energy = frames.square().sum(-1)  # N, lags
    return _normalise(corr, energy[:, :1], energy, e_min)


def normalized_xcorr(buf: torch.Tensor, win: int, floor: float = 1.0) -> torch.Tensor:
    """Normalised cross-correlation of the last ``win`` samples with all earlier delays.

    Args:
        buf: ``(..., L)`` signal buffers (newest sample last).
        win: analysis window length (``win < L``).
        floor: mean power per sample below which a segment counts as silent: its correlation is
            exactly 0 (so silent buffers give deterministic decisions).

    Returns:
        ``(..., L - win + 1)``: entry ``lag`` is ``<x, y_lag> / sqrt(|x|^2 |y_lag|^2)`` with
        ``x = buf[L - win:]`` and ``y_lag = buf[L - win - lag : L - lag]``.
    """
    n = buf.shape[-1]
    index = lag_index(n, win).flatten().to(buf.device)
    out = _xcorr_rows(buf.reshape(-1, n), index, n - win + 1, win, floor * win)
    return out.reshape(*buf.shape[:-1], n - win + 1)


def _take(x: torch.Tensor, idx: torch.Tensor) -> torch.Tensor:
    return torch.gather(x, -1, idx)


class PitchSearch(nn.Module):
    """Causal two-stage pitch period search on per-frame buffers (vectorised over frames).

    1. low-pass (triangle, :func:`triangle_kernel`) and decimate by ``decimation``; normalised
       cross-correlation of the last ``win / decimation`` samples over the period range; best
       lag ``T``;
    2. period-doubling removal: the largest ``k`` whose sub-multiple ``T / k`` (best of +-1)
       still reaches ``threshold`` times the correlation of ``T`` replaces ``T``;
    3. parabolic interpolation of the peak, then the best full-rate lag within
       ``+-decimation`` (normalised correlations of those ``2 decimation + 1`` lags only).

    Every size, offset and index is fixed here from ``length`` (buffers are not resized), so
    the search traces to a static ONNX graph. Correlations are direct dot products over
    gathered lag segments, computed in chunks of frames to bound memory.

    Args:
        length: samples per buffer ``L >= win + max_period + 3 decimation + 2 decimation - 2``.
        win: analysis window (the frame, ``n_fft`` samples).
        min_period, max_period: period range in samples.
        decimation: coarse-search decimation factor ``d``.
        threshold: sub-multiple acceptance ratio.
        floor: mean power per sample below which a segment's correlation is 0.

    Example:
        >>> import math
        >>> search = PitchSearch(584, 320, 20, 256, 2, 0.85)
        >>> t = torch.arange(584.0)
        >>> x = sum(torch.cos(2 * math.pi * k * t / 100 + k) / k for k in range(1, 5))
        >>> search(3000 * x[None]).tolist()
        [100]
    """

    def __init__(self, length: int, win: int, min_period: int, max_period: int,
                 decimation: int, threshold: float, floor: float = 1.0):
        super().__init__()
        d = decimation
        kernel = triangle_kernel(d)
        k = kernel.numel()
        self.length, self.win, self.decimation, self.threshold = length, win, d, threshold
        self.min_period, self.max_period = min_period, max_period
        self.taps = k
        self.offset = (length - k) % d  # align the decimation grid with the newest sample
        self.length_d = (length - self.offset - k) // d + 1
        self.win_d = win // d
        self.n_lags_d = n_lags = self.length_d - self.win_d + 1
        self.lo = max(1, min_period // d)
        self.hi = -(-max_period // d)
        if self.hi + 1 >= n_lags:
            raise ValueError(f"pitch buffer too short: {length} samples for max period "
                             f"{max_period}")
        self.kmax = max(1, self.hi // self.lo)
        self.e_min, self.e_min_d = floor * win, floor * self.win_d
        self.n_fine = 2 * d + 1 if d > 1 else 0
        # rows per chunk: bounds the gathered lag segments to about 4 M elements
        per_row = max(n_lags * self.win_d, self.n_fine * win)
        self.chunk = max(1, (1 << 22) // per_row)
        lags = torch.arange(n_lags)
        self.register_buffer("kernel", kernel, persistent=False)
        self.register_buffer("coarse_index", lag_index(self.length_d, self.win_d).flatten(),
                             persistent=False)  # lags_d W_d
        self.register_buffer("coarse_out", (lags < self.lo) | (lags > self.hi),
                             persistent=False)  # lags_d: outside the period range
        self.register_buffer("ks", torch.arange(2, self.kmax + 1), persistent=False)  # K
        self.register_buffer("near", torch.arange(-1, 2), persistent=False)  # 3
        self.register_buffer("fine", torch.arange(-d, d + 1), persistent=False)  # 2d + 1
        self.register_buffer("segment", torch.arange(win) + (length - win),
                             persistent=False)  # W: indices of the last `win` samples

    def forward(self, buf: torch.Tensor) -> torch.Tensor:
        """``buf (..., L)`` full-rate buffers, newest sample last -> ``(...)`` int64 periods in
        ``[min_period, max_period]``."""
        x = buf.detach().reshape(-1, self.length)  # N, L (decisions only: no gradient)
        if torch.jit.is_tracing() or x.shape[0] <= self.chunk:
            period = self._search(x)
        else:
            period = torch.cat([self._search(c) for c in x.split(self.chunk)])
        return period.reshape(buf.shape[:-1])

    def delayed(self, buf: torch.Tensor, period: torch.Tensor) -> torch.Tensor:
        """The last ``win`` samples of each buffer delayed by its period: ``buf (..., L)``,
        ``period (...)`` -> ``(..., win)`` = ``buf[L - win - p : L - p]``."""
        return torch.gather(buf, -1, self.segment - period[..., None])

    def _search(self, x: torch.Tensor) -> torch.Tensor:
        d, off, ld = self.decimation, self.offset, self.length_d
        # sum of strided slices, not conv1d: its result depends on the batch size (oneDNN
        # blocking), which would make offline and frame-by-frame pitch decisions differ
        xd = self.kernel[0] * x[:, off : off + d * (ld - 1) + 1 : d]
        for j in range(1, self.taps):
            xd = xd + self.kernel[j] * x[:, off + j : off + j + d * (ld - 1) + 1 : d]  # N, Ld
        rd = _xcorr_rows(xd, self.coarse_index, self.n_lags_d, self.win_d,
                         self.e_min_d)  # N, lags_d
        r0, t0 = rd.masked_fill(self.coarse_out, float("-inf")).max(-1)  # N
        lo, hi = self.lo, self.hi

        # period doubling: test T / k for k = 2 .. hi // lo
        if self.kmax >= 2:
            ks = self.ks  # K
            cand = torch.div(2 * t0[:, None] + ks, 2 * ks, rounding_mode="trunc")  # N, K: round(T / k)
            near = (cand[..., None] + self.near).clamp(lo, hi)  # N, K, 3
            rn = _take(rd, near.flatten(1)).reshape(-1, self.kmax - 1, 3)  # N, K, 3
            rbest, j = rn.max(-1)
            cand = _take(near, j[..., None])[..., 0]  # N, K
            ok = (cand >= lo) & (rbest >= self.threshold * r0[:, None])
            # float scores: LiteRT has no integer arg_max
            score = torch.where(ok, ks, torch.zeros_like(ks)).to(rd.dtype)  # N, K
            best_k = score.argmax(-1, keepdim=True)
            use = _take(score, best_k)[:, 0] > 0
            t0 = torch.where(use, _take(cand, best_k)[:, 0], t0)

        # parabolic interpolation around the coarse peak, then full-rate refinement
        rm, rc, rp = _take(rd, t0[:, None] + self.near).unbind(-1)  # N each
        den = rm - 2 * rc + rp
        delta = torch.where(den < 0, 0.5 * (rm - rp) / den.clamp(max=-1e-12),
                            torch.zeros_like(den))
        centre = torch.round(d * (t0.to(rd.dtype) + delta.clamp(-0.5, 0.5))).long()  # N
        if d == 1:
            return centre.clamp(self.min_period, self.max_period)
        fine = (centre[:, None] + self.fine).clamp(self.min_period, self.max_period)  # N, C
        idx = self.segment - fine[..., None]  # N, C, W: segments delayed by each candidate
        segs = _take(x, idx.flatten(1)).reshape(-1, self.n_fine, self.win)  # N, C, W
        seg = x[:, self.length - self.win :]  # N, W
        corr = (segs @ seg[:, :, None])[..., 0]  # N, C
        rf = _normalise(corr, seg.square().sum(-1, keepdim=True), segs.square().sum(-1),
                        self.e_min)
        return _take(fine, rf.argmax(-1, keepdim=True))[:, 0]


def pitch_search(buf: torch.Tensor, win: int, min_period: int, max_period: int, decimation: int,
                 kernel: torch.Tensor | None = None, threshold: float = 0.85) -> torch.Tensor:
    """One-off :class:`PitchSearch` of ``buf (..., L)`` -> ``(...)`` int64 periods.

    ``kernel`` is accepted for compatibility and must be ``triangle_kernel(decimation)`` if given.
    """
    if kernel is not None and not torch.equal(kernel.cpu().float(), triangle_kernel(decimation)):
        raise ValueError("pitch_search uses triangle_kernel(decimation) as its low-pass")
    search = PitchSearch(buf.shape[-1], win, min_period, max_period, decimation, threshold)
    return search.to(buf.device)(buf)


def gather_delayed(buf: torch.Tensor, period: torch.Tensor, length: int) -> torch.Tensor:
    """The last ``length`` samples of each buffer delayed by its period.

    ``buf (..., L)``, ``period (...)`` -> ``(..., length)`` = ``buf[L - length - p : L - p]``.
    """
    n = buf.shape[-1]
    idx = (n - length - period)[..., None] + torch.arange(length, device=buf.device)
    return torch.gather(buf, -1, idx)


def log_floor_kernels(n_bands: int, dtype: torch.dtype = torch.float32
                      ) -> tuple[torch.Tensor, torch.Tensor]:
    """The two ``(bands, bands + 1)`` max-plus matrices of :func:`log_spectrum_floor`: column
    ``j + 1`` is band ``j``, column 0 the initial value -2; ``-inf`` where ``j`` is excluded.

    Returns:
        ``before``: 0 for ``j < i`` (running maximum of the previous bands);
        ``decay``: ``-1.5 (i - j)`` for ``j <= i`` (the floor decaying by 1.5 per band).
    """
    i = torch.arange(n_bands, dtype=torch.float64)[:, None]
    j = torch.arange(-1, n_bands, dtype=torch.float64)[None, :]
    before = torch.zeros(n_bands, n_bands + 1, dtype=torch.float64).masked_fill(j >= i, -torch.inf)
    decay = (-1.5 * (i - j)).masked_fill(j > i, -torch.inf)
    return before.to(dtype), decay.to(dtype)


def log_spectrum_floor(ly: torch.Tensor,
                       kernels: tuple[torch.Tensor, torch.Tensor] | None = None) -> torch.Tensor:
    """RNNoise's floor on log band energies (``(..., bands) -> (..., bands)``).

    The C loop over bands ``v_i = max(M_{i-1} - 7, f_{i-1} - 1.5, l_i)``,
    ``M_i = max(M_{i-1}, v_i)``, ``f_i = max(f_{i-1} - 1.5, v_i)`` (``M_{-1} = f_{-1} = -2``), in
    closed form: ``M_{i-1} = max(-2, max_{j<i} l_j)``, ``a_i = max(l_i, M_{i-1} - 7)`` and
    ``v_i = max_{-1<=j<=i} (a_j - 1.5 (i - j))`` with ``a_{-1} = -2``: two max-plus products
    with the constant matrices of :func:`log_floor_kernels` (passed in, or built here).
    """
    if kernels is None:
        kernels = log_floor_kernels(ly.shape[-1], ly.dtype)
    before, decay = (k.to(ly.device) for k in kernels)
    init = torch.full_like(ly[..., :1], -2.0)
    m_prev = (torch.cat([init, ly], dim=-1)[..., None, :] + before).amax(-1)  # M_{i-1}
    a = torch.maximum(ly, m_prev - 7.0)
    return (torch.cat([init, a], dim=-1)[..., None, :] + decay).amax(-1)


def spectral_variability(ceps: torch.Tensor, memory: int,
                         self_pairs: torch.Tensor | None = None) -> torch.Tensor:
    """Non-stationarity: over the last ``memory`` cepstra, the mean of each one's squared distance
    to its nearest other one (RNNoise ``spec_variability``, before its ``- 2.1`` offset).

    Args:
        ceps: ``(B, memory - 1 + T, C)`` cepstra (history first).
        self_pairs: ``(memory, memory)`` boolean identity (built here if not given).

    Returns:
        ``(B, T)``.
    """
    win = ceps.unfold(1, memory, 1)  # B, T, C, M
    win = win.transpose(-1, -2)  # B, T, M, C
    diff = win[..., :, None, :] - win[..., None, :, :]  # B, T, M, M, C
    dist = (diff * diff).sum(-1)  # B, T, M, M (a product: LiteRT rejects the pow of .square())
    if self_pairs is None:  # a constant: models pass it as a buffer (LiteRT has no runtime iota)
        self_pairs = torch.eye(memory, dtype=torch.bool, device=ceps.device)
    return dist.masked_fill(self_pairs, float("inf")).amin(-1).mean(-1)
