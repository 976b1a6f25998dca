"""The DSP of the RNNoise release (v0.1.1, Valin 2018) where it differs from the port's own.

Two pieces, chosen by :class:`~denoisezoo.rnnoise_port.RNNoiseConfig` switches, so that the
original weights (``rnnoise_48k``) see the features they were trained on:

- ``highpass``: the release filters its input with a DC-blocking biquad before everything else
  (``b = [1, -2, 1]``, ``a = [1, -1.99599, 0.996]``, transposed direct form II). Here one hop of it
  is one product with a constant ``(hop + 2, hop + 2)`` matrix (:func:`biquad_hop_matrix`): the
  input hop and the two filter memories in, the filtered hop and the next memories out.
- ``pitch_method="opus"``: the release's pitch analysis (from Opus/CELT ``pitch.c``):
  ``pitch_downsample`` (2x decimation, 4th-order LPC whitening with lag windowing and bandwidth
  expansion, an added zero at 0.8), ``pitch_search`` (top-2 normalised correlations at 4x
  decimation, the best of their +-2 neighbourhoods at 2x, pseudo-interpolation) and
  ``remove_doubling`` (sub-multiples ``T / k``, k = 2..15, checked against thresholds that depend
  on the previous frame's period and pitch gain, then a one-sample refinement).
  :class:`OpusPitch` computes every correlation of every frame at once; only the choice among the
  sub-multiples, which depends on the previous frame's result, runs frame by frame, on a few
  numbers per frame (:meth:`OpusPitch.select`).

The arithmetic follows the float build of the C code (same formulas, constants and tie rules);
sums are ordered differently (matrix products), so values agree to float32 rounding and a
decision taken on an exact tie can differ. Sizes and indices are fixed when the module is built,
so the one-frame step traces to a static ONNX graph (no loops, no DFT node).
"""

from __future__ import annotations

import torch
from torch import nn

__all__ = ["HIGHPASS_B", "HIGHPASS_A", "biquad_hop_matrix", "OpusPitch", "SECOND_CHECK",
           "tansig_approx", "sigmoid_approx"]

# numerator and denominator of the release's input high-pass (rnnoise_process_frame), a0 = b0 = 1
HIGHPASS_B = (-2.0, 1.0)
HIGHPASS_A = (-1.99599, 0.99600)
# remove_doubling: the second sub-multiple checked with T / k is (second_check[k] / k) T
SECOND_CHECK = (0, 0, 3, 2, 3, 2, 5, 2, 3, 2, 3, 2, 5, 2, 3, 2)


def tansig_approx(x: torch.Tensor) -> torch.Tensor:
    """The release's table-based ``tanh`` (``rnn.c`` ``tansig_approx``): ``tanh`` at the nearest
    multiple of 0.04 (its 201-entry table, computed here), corrected by a second-order step;
    +-1 from |x| >= 8. Differs from ``tanh`` by up to about 1e-5."""
    ax = x.abs().clamp(max=8.0)
    i = torch.floor(0.5 + 25.0 * ax)
    r = ax - 0.04 * i
    y = torch.tanh(0.04 * i)
    y = y + r * (1 - y * y) * (1 - y * r)
    return torch.where(x.abs() >= 8.0, torch.ones_like(y), y) * torch.sign(x)


def sigmoid_approx(x: torch.Tensor) -> torch.Tensor:
    """The release's ``sigmoid_approx``: ``0.5 + 0.5 tansig_approx(x / 2)``."""
    return 0.5 + 0.5 * tansig_approx(0.5 * x)


def biquad_hop_matrix(hop: int, b: tuple[float, float] = HIGHPASS_B,
                      a: tuple[float, float] = HIGHPASS_A,
                      dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """One hop of the biquad ``y = (1 + b0 z^-1 + b1 z^-2) / (1 + a0 z^-1 + a1 z^-2) x`` as a
    matrix: ``[x (hop) | mem (2)] @ M = [y (hop) | next mem (2)]`` (RNNoise ``biquad``: ``y_i =
    x_i + m0``, ``m0 <- m1 + b0 x_i - a0 y_i``, ``m1 <- b1 x_i - a1 y_i``).

    Built by running the recursion on the ``hop + 2`` unit inputs at once (float64), with the
    coefficients rounded to float32 first, as the C code declares them (``static const float``):
    at poles this close to 1 the rounding moves the low-frequency response measurably.
    """
    b = tuple(torch.tensor(b, dtype=torch.float32).double().tolist())
    a = tuple(torch.tensor(a, dtype=torch.float32).double().tolist())
    n = hop + 2
    basis = torch.eye(n, dtype=torch.float64)  # rows: unit inputs (x samples, then memories)
    m0, m1 = basis[:, hop].clone(), basis[:, hop + 1].clone()
    out = torch.zeros(n, n, dtype=torch.float64)
    for i in range(hop):
        xi = basis[:, i]
        yi = xi + m0
        m0, m1 = m1 + b[0] * xi - a[0] * yi, b[1] * xi - a[1] * yi
        out[:, i] = yi
    out[:, hop], out[:, hop + 1] = m0, m1
    return out.to(dtype)


def _gather_dots(x: torch.Tensor, start: int, win: int, lags: torch.Tensor
                 ) -> tuple[torch.Tensor, torch.Tensor]:
    """``x (N, L)``, ``lags (N, K)`` int64 -> ``(dots, energies)`` ``(N, K)``: for each lag the
    product of ``x[start : start + win]`` with ``x[start - lag : start - lag + win]`` and the
    energy of the latter."""
    n_rows, k = lags.shape
    idx = (start - lags)[..., None] + torch.arange(win, device=x.device)  # N, K, W
    segs = torch.gather(x, 1, idx.reshape(n_rows, k * win)).reshape(n_rows, k, win)
    ref = x[:, start : start + win]
    return (segs @ ref[:, :, None])[..., 0], (segs * segs).sum(-1)


def _top2(score: torch.Tensor, positive: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``find_best_pitch``'s two best indices of ``score (N, K)`` among ``positive`` entries,
    earliest first on ties; with one positive entry the second is 0, with none ``(0, 1)``."""
    masked = score.masked_fill(~positive, float("-inf"))
    first = masked.argmax(-1, keepdim=True)  # N, 1
    rest = masked.scatter(-1, first, float("-inf"))
    second = rest.argmax(-1, keepdim=True)
    count = positive.sum(-1, keepdim=True)
    zero = torch.zeros_like(first)
    b0 = torch.where(count > 0, first, zero)
    b1 = torch.where(count > 1, second, torch.where(count > 0, zero, zero + 1))
    return b0[:, 0], b1[:, 0]


class OpusPitch(nn.Module):
    """The RNNoise release's pitch analysis of per-frame buffers (see the module docstring).

    Args:
        length: samples per buffer (``max_period + win``; 1728 at 48 kHz).
        win: analysis window (``n_fft``; 960).
        min_period, max_period: period range in samples (60, 768).

    :meth:`candidates` does all the correlations of ``N`` frames; :meth:`select` takes one frame's
    candidates and the previous frame's ``(period, gain)`` and returns this frame's.

    Example:
        >>> import math
        >>> pitch = OpusPitch(1728, 960, 60, 768)
        >>> t = torch.arange(1728.0)
        >>> x = sum(torch.cos(2 * math.pi * k * t / 200 + k) / k for k in range(1, 5))
        >>> cand = pitch.candidates(3000 * x[None])
        >>> period, gain = pitch.select(cand, torch.zeros(1, dtype=torch.long), torch.zeros(1))
        >>> period.tolist()
        [200]
    """

    def __init__(self, length: int, win: int, min_period: int, max_period: int):
        super().__init__()
        if length != max_period + win or win % 4 or max_period % 2 or min_period % 2:
            raise ValueError(f"OpusPitch needs length = max_period + win, win % 4 == 0 and even "
                             f"periods, got {length}, {win}, {min_period}, {max_period}")
        self.length, self.win = length, win
        self.min_period, self.max_period = min_period, max_period
        self.max_pitch = mp = max_period - 3 * min_period  # lags searched by pitch_search
        if mp < 8:
            raise ValueError("max_period must exceed 3 min_period by at least 8 samples")
        self.half = max_period // 2  # start of the analysed frame in the decimated buffer
        self.n_lags4, self.n_lags2 = mp >> 2, mp >> 1
        self.win2, self.win4 = win >> 1, win >> 2
        lags4 = torch.arange(self.n_lags4)
        self.register_buffer("coarse_index", (lags4[:, None] + torch.arange(self.win4)).flatten(),
                             persistent=False)  # lags4 W4: y4[i + j]
        # (0.008f * i) in float, as the C code's lag window ac[i] -= ac[i] * t * t
        self.register_buffer("lag_step", torch.tensor([0.008], dtype=torch.float32) * torch.arange(5),
                             persistent=False)
        self.register_buffer("expansion", torch.tensor([0.9**i for i in range(1, 5)]),
                             persistent=False)
        self.register_buffer("near3", torch.arange(-3, 4), persistent=False)  # 7
        self.register_buffer("near1", torch.arange(-1, 2), persistent=False)  # 3
        ks = torch.arange(2, 16)
        self.register_buffer("ks", ks, persistent=False)  # 14: k = 2 .. 15
        self.register_buffer("second", torch.tensor(SECOND_CHECK)[2:], persistent=False)  # 14
        self.register_buffer("segment", torch.arange(win) + (length - win), persistent=False)

    # ------------------------------------------------------------------ stages
    def downsample(self, x: torch.Tensor) -> torch.Tensor:
        """``pitch_downsample``: ``x (N, L)`` -> whitened ``(N, L / 2)``."""
        x0, x1 = x[:, 0::2], x[:, 1::2]  # N, L/2: x[2i], x[2i + 1]
        prev = torch.cat([torch.zeros_like(x1[:, :1]), x1[:, :-1]], dim=1)  # x[2i - 1], 0 at i = 0
        lp = 0.5 * (0.5 * (prev + x1) + x0)
        lp = torch.cat([0.5 * (0.5 * x1[:, :1] + x0[:, :1]), lp[:, 1:]], dim=1)
        n = lp.shape[1]
        ac = torch.stack([(lp[:, k:] * lp[:, : n - k]).sum(-1) for k in range(5)], -1)  # N, 5
        ac = torch.cat([ac[:, :1] * 1.0001, ac[:, 1:] - ac[:, 1:] * self.lag_step[1:]
                        * self.lag_step[1:]], dim=1)
        lpc = self._levinson(ac) * self.expansion  # N, 4
        c1 = 0.8
        num = torch.stack([lpc[:, 0] + c1, lpc[:, 1] + c1 * lpc[:, 0], lpc[:, 2] + c1 * lpc[:, 1],
                           lpc[:, 3] + c1 * lpc[:, 2], c1 * lpc[:, 3]], -1)  # N, 5
        out = lp
        for k in range(5):  # y[i] = x[i] + sum_k num[k] x[i - 1 - k] (celt_fir5, zero memory)
            delayed = torch.cat([torch.zeros_like(lp[:, : k + 1]), lp[:, : n - k - 1]], dim=1)
            out = out + num[:, k : k + 1] * delayed
        return out

    @staticmethod
    def _levinson(ac: torch.Tensor) -> torch.Tensor:
        """``_celt_lpc`` (order 4, float): ``ac (N, 5)`` -> ``lpc (N, 4)``, stopping (keeping the
        coefficients so far) once the error is below ``0.001 ac[0]``; zeros if ``ac[0] == 0``."""
        lpc = [torch.zeros_like(ac[:, 0]) for _ in range(4)]
        err = ac[:, 0]
        live = ac[:, 0] != 0
        for i in range(4):
            rr = torch.zeros_like(err)
            for j in range(i):
                rr = rr + lpc[j] * ac[:, i - j]
            rr = rr + ac[:, i + 1]
            r = -rr / torch.where(live, err, torch.ones_like(err))
            new = list(lpc)
            new[i] = r
            for j in range((i + 1) >> 1):
                t1, t2 = lpc[j], lpc[i - 1 - j]
                new[j] = t1 + r * t2
                new[i - 1 - j] = t2 + r * t1
            lpc = [torch.where(live, a, b) for a, b in zip(new, lpc, strict=True)]
            err = torch.where(live, err - r * r * err, err)
            live = live & (err >= 0.001 * ac[:, 0])
        return torch.stack(lpc, -1)

    def _coarse(self, xd: torch.Tensor) -> torch.Tensor:
        """``pitch_search`` on the whitened ``xd (N, L / 2)`` -> lag (full rate, ``N``) of the best
        correlation: ``max_period`` minus it is the period candidate ``T0``."""
        n_rows = xd.shape[0]
        x4 = xd[:, self.half : self.half + self.win2 : 2]  # N, W4
        y4 = xd[:, 0 : 2 * (self.n_lags4 + self.win4) : 2]  # N, lags4 + W4
        segs = y4.index_select(1, self.coarse_index).reshape(n_rows, self.n_lags4, self.win4)
        xc4 = (segs @ x4[:, :, None])[..., 0]  # N, lags4
        syy4 = 1.0 + (segs * segs).sum(-1)
        b0, b1 = _top2(xc4 * xc4 / syy4, xc4 > 0)
        # 2x decimation: the +-2 neighbourhoods of 2 b0 and 2 b1 (delays max_period/2 - i)
        centres = torch.stack([2 * b0, 2 * b1], -1)  # N, 2
        lags2 = (centres[..., None] + self.near3).reshape(n_rows, 14)  # N, 14 (i, 2x rate)
        xc2, valid = self._fine_xcorr(xd, lags2, centres)
        syy2 = 1.0 + self._energy(xd, lags2)
        positive = (xc2 > 0) & valid
        b, _ = _top2(xc2 * xc2 / syy2, positive)
        best = torch.gather(lags2, 1, b[:, None])[:, 0]  # N
        best = torch.where(positive.any(-1), best, torch.zeros_like(best))  # none: index 0
        abc, _ = self._fine_xcorr(xd, best[:, None] + self.near1, centres)  # N, 3
        a, bb, c = abc.unbind(-1)
        inner = (best > 0) & (best < self.n_lags2 - 1)
        off = torch.where((c - a) > 0.7 * (bb - a), 1, torch.where((a - c) > 0.7 * (bb - c), -1, 0))
        return 2 * best - torch.where(inner, off, torch.zeros_like(off))

    def _fine_xcorr(self, xd: torch.Tensor, lags2: torch.Tensor, centres: torch.Tensor
                    ) -> tuple[torch.Tensor, torch.Tensor]:
        """The 2x-decimated correlation array of ``pitch_search`` at indices ``lags2 (N, K)``:
        ``max(-1, <x, y_i>)`` within +-2 of a centre, else 0; and that validity mask."""
        inside = (lags2 >= 0) & (lags2 < self.n_lags2)
        near = ((lags2[..., None] - centres[:, None, :]).abs() <= 2).any(-1)
        valid = inside & near
        delay = (self.half - lags2.clamp(0, self.n_lags2 - 1))
        dots, _ = _gather_dots(xd, self.half, self.win2, delay)
        return torch.where(valid, dots.clamp_min(-1.0), torch.zeros_like(dots)), valid

    def _energy(self, xd: torch.Tensor, lags2: torch.Tensor) -> torch.Tensor:
        delay = self.half - lags2.clamp(0, self.n_lags2 - 1)
        return _gather_dots(xd, self.half, self.win2, delay)[1]

    def candidates(self, buf: torch.Tensor) -> dict[str, torch.Tensor]:
        """Everything of ``remove_doubling`` that does not depend on the previous frame.

        Args:
            buf: ``(N, L)`` buffers (newest sample last, int16 scale).

        Returns:
            ``t0 (N,)`` the coarse period at 2x decimation; per sub-multiple ``k = 2..15``:
            ``t1 (N, 14)``, ``g1``, ``xy``, ``yy``; ``g0``, ``xy0``, ``yy0 (N,)``; ``offset (N,
            15)`` the one-sample refinement of each possible result (``t0``, then ``t1``).
        """
        x = buf.detach().reshape(-1, self.length)
        xd = self.downsample(x)
        maxp, minp = self.half, self.min_period // 2
        t0 = (self.max_period - self._coarse(xd)) // 2  # 2x-decimated period
        t0 = t0.clamp(max=maxp - 1)
        ks = self.ks
        t1 = torch.div(2 * t0[:, None] + ks, 2 * ks, rounding_mode="floor")  # N, 14
        t1b = torch.div(2 * self.second * t0[:, None] + ks, 2 * ks, rounding_mode="floor")
        k2 = torch.where(t1[:, :1] + t0[:, None] > maxp, t0[:, None], t0[:, None] + t1[:, :1])
        t1b = torch.cat([k2, t1b[:, 1:]], dim=1).clamp(0, maxp)
        t1c = t1.clamp(1, maxp)
        cands = torch.cat([t0[:, None], t1c], dim=1)  # N, 15: possible results
        around = (cands[..., None] + self.near1).reshape(-1, 45)  # T - 1, T, T + 1
        lags = torch.cat([t1b, around], dim=1)  # N, 14 + 45
        dots, energy = _gather_dots(xd, maxp, self.win2, lags.clamp(0, maxp))
        xx = (xd[:, maxp : maxp + self.win2] ** 2).sum(-1)
        near = dots[:, 14:].reshape(-1, 15, 3)
        e_near = energy[:, 14:].reshape(-1, 15, 3)[..., 1]  # N, 15: energies at the candidates
        xy0, yy0 = near[:, 0, 1], e_near[:, 0]
        xy = 0.5 * (near[:, 1:, 1] + dots[:, :14])
        yy = 0.5 * (e_near[:, 1:] + energy[:, :14])
        a, b, c = near.unbind(-1)
        offset = torch.where((c - a) > 0.7 * (b - a), 1, torch.where((a - c) > 0.7 * (b - c), -1, 0))
        return {
            "t0": t0, "t1": t1, "valid": t1 >= minp,
            "g0": xy0 / torch.sqrt(1 + xx * yy0), "xy0": xy0, "yy0": yy0,
            "g1": xy / torch.sqrt(1 + xx[:, None] * yy), "xy": xy, "yy": yy, "offset": offset,
        }

    def select(self, cand: dict[str, torch.Tensor], prev_period: torch.Tensor,
               prev_gain: torch.Tensor, index: int | None = None
               ) -> tuple[torch.Tensor, torch.Tensor]:
        """``remove_doubling``'s choice for one frame per row.

        Args:
            cand: :meth:`candidates` of ``N`` rows (or of ``N x T`` rows and ``index`` = the
                frame: rows ``index::T`` ... see :meth:`run`).
            prev_period: ``(N,)`` int64 full-rate period of the previous frame (0 at the start).
            prev_gain: ``(N,)`` its pitch gain.

        Returns:
            ``(period (N,) int64 full rate, pitch gain (N,))``.
        """
        c = cand if index is None else {k: v[:, index] for k, v in cand.items()}
        t0, t1, g0 = c["t0"], c["t1"], c["g0"]
        minp = self.min_period // 2
        pp = torch.div(prev_period, 2, rounding_mode="floor")[:, None]
        pg = prev_gain[:, None]
        dist = (t1 - pp).abs()
        ks = self.ks
        cont = torch.where(dist <= 1, pg, torch.where((dist <= 2) & (5 * ks * ks < t0[:, None]),
                                                      0.5 * pg, torch.zeros_like(pg)))
        g0c = g0[:, None]
        thresh = torch.where(t1 < 3 * minp, (0.85 * g0c - cont).clamp_min(0.4),
                             (0.7 * g0c - cont).clamp_min(0.3))
        accept = c["valid"] & (c["g1"] > thresh)  # N, 14
        # the last accepted k wins (float scores: no integer arg_max in some runtimes)
        rank = torch.where(accept, ks - 1, torch.zeros_like(ks)).to(g0.dtype)  # 1 .. 14, 0: none
        j = rank.argmax(-1, keepdim=True)
        use = torch.gather(rank, 1, j)[:, 0] > 0
        pick = j[:, 0]

        def choose(v0: torch.Tensor, vk: torch.Tensor) -> torch.Tensor:
            return torch.where(use, torch.gather(vk, 1, pick[:, None])[:, 0], v0)

        t = choose(t0, t1)
        g = choose(g0, c["g1"])
        best_xy = choose(c["xy0"], c["xy"]).clamp_min(0.0)
        best_yy = choose(c["yy0"], c["yy"])
        gain = torch.where(best_yy <= best_xy, torch.ones_like(g), best_xy / (best_yy + 1))
        gain = torch.minimum(gain, g)
        off = torch.gather(c["offset"], 1, torch.where(use, pick + 1, torch.zeros_like(pick))[:, None])
        period = (2 * t + off[:, 0]).clamp_min(self.min_period)
        return period, gain

    def run(self, buf: torch.Tensor, prev_period: torch.Tensor, prev_gain: torch.Tensor
            ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """``buf (B, T, L)``, previous ``(B,)`` period and gain -> ``(periods (B, T), last period
        (B,), last gain (B,))``: correlations of all frames at once, then the choice frame by
        frame."""
        b, t = buf.shape[:2]
        cand = {k: v.reshape(b, t, *v.shape[1:]) for k, v in self.candidates(buf).items()}
        periods = []
        for i in range(t):
            prev_period, prev_gain = self.select(cand, prev_period, prev_gain, index=i)
            periods.append(prev_period)
        return torch.stack(periods, 1), prev_period, prev_gain

    def delayed(self, buf: torch.Tensor, period: torch.Tensor) -> torch.Tensor:
        """The last ``win`` samples of each buffer delayed by its period (``(..., L)``, ``(...)`` ->
        ``(..., win)``)."""
        return torch.gather(buf, -1, self.segment - period[..., None])
