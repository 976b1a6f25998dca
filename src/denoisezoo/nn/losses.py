"""Losses for spectral enhancement models (torch only): SI-SDR, GTCRN's hybrid loss, multi-resolution STFT.

All losses take ``(est_spec, ref_spec, est_wav, ref_wav)`` with spectra ``(B, F, T, 2)`` and
waveforms ``(B, N)`` so a system can mix them freely; each returns a scalar.
"""

from __future__ import annotations

import torch
from torch import nn

from denoisezoo.dsp.stft import StftGeometry, stft

__all__ = [
    "si_sdr", "signed_si_sdr", "snr", "SISDRLoss", "HybridLoss", "MultiResolutionSTFTLoss",
    "CombinedLoss",
]

EPS = 1e-8


def si_sdr(est: torch.Tensor, ref: torch.Tensor, eps: float = EPS) -> torch.Tensor:
    """Scale-invariant SDR in dB per item: ``(B, N), (B, N) -> (B,)``."""
    est = est - est.mean(-1, keepdim=True)
    ref = ref - ref.mean(-1, keepdim=True)
    scale = (est * ref).sum(-1, keepdim=True) / (ref.pow(2).sum(-1, keepdim=True) + eps)
    target = scale * ref
    noise = est - target
    return 10 * torch.log10((target.pow(2).sum(-1) + eps) / (noise.pow(2).sum(-1) + eps))


def signed_si_sdr(est: torch.Tensor, ref: torch.Tensor, eps: float = EPS) -> torch.Tensor:
    """A sign-aware SI-SDR in dB per item: ``(B, N), (B, N) -> (B,)``.

    With ``rho`` the correlation of the zero-mean signals, SI-SDR is ``10 log10(rho^2 / (1 - rho^2))``:
    even in ``rho``, so an estimate of ``-ref`` scores as well as ``ref`` and an SI-SDR loss has a
    second, inverted optimum (our GTCRN runs fell into it). This is
    ``10 log10((1 + rho) / (4 (1 - rho)))``, monotonic in ``rho`` (0 dB-ish at ``rho = 0``, very
    negative at ``rho = -1``) and equal to SI-SDR as ``rho -> 1`` (the difference is
    ``20 log10((1 + rho) / (2 rho))``: 0.2 dB at 10 dB SI-SDR, 0.02 dB at 20 dB).
    """
    est = est - est.mean(-1, keepdim=True)
    ref = ref - ref.mean(-1, keepdim=True)
    rho = (est * ref).sum(-1) / torch.sqrt(est.pow(2).sum(-1) * ref.pow(2).sum(-1) + eps)
    rho = rho.clamp(-1 + 1e-7, 1 - 1e-7)
    return 10 * torch.log10((1 + rho) / (4 * (1 - rho)))


def snr(est: torch.Tensor, ref: torch.Tensor, eps: float = EPS) -> torch.Tensor:
    """Plain SNR of ``est`` against ``ref`` in dB per item: ``(B, N), (B, N) -> (B,)``. Unlike
    SI-SDR it sees the level and the sign: a sign-inverted estimate scores below 0 dB."""
    return 10 * torch.log10((ref.pow(2).sum(-1) + eps) / ((est - ref).pow(2).sum(-1) + eps))


class SISDRLoss(nn.Module):
    """Negative SI-SDR (dB), averaged over the batch."""

    def forward(self, est_spec, ref_spec, est_wav, ref_wav) -> torch.Tensor:
        return -si_sdr(est_wav, ref_wav).mean()


class HybridLoss(nn.Module):
    """The GTCRN training loss: power-law compressed complex and magnitude MSE plus SI-SNR.

    ``L = w_c (MSE(Re_c) + MSE(Im_c)) + w_m MSE(|S|^c) + w_s * (-SI-SNR / 10)`` where
    ``S_c = |S|^c e^{j angle S}`` with compression exponent ``c`` (0.3 in the GTCRN recipe; the
    official code uses 1/3). The SI-SNR term is in units of 10 dB (``log10``), as in the reference.

    ``sign_aware=True`` uses :func:`signed_si_sdr` for that term: SI-SNR cannot tell ``-s`` from
    ``s``, and with a large ``sisnr_weight`` a run can settle on the inverted output (PESQ, STOI
    and SI-SDR look fine, SNR is below 0 dB); the signed form has a single optimum and the same
    value near it.
    """

    def __init__(self, compress: float = 0.3, complex_weight: float = 30.0, mag_weight: float = 70.0,
                 sisnr_weight: float = 1.0, sign_aware: bool = False, eps: float = 1e-12):
        super().__init__()
        self.c = compress
        self.eps = eps
        self.wc, self.wm, self.ws = complex_weight, mag_weight, sisnr_weight
        self.sisnr = signed_si_sdr if sign_aware else si_sdr

    def forward(self, est_spec, ref_spec, est_wav, ref_wav) -> torch.Tensor:
        def comp(s):
            mag = torch.sqrt(s[..., 0] ** 2 + s[..., 1] ** 2 + self.eps)  # B, F, T
            scale = mag.pow(self.c - 1)
            return s[..., 0] * scale, s[..., 1] * scale, mag.pow(self.c)

        er, ei, em = comp(est_spec)
        rr, ri, rm = comp(ref_spec)
        mse = nn.functional.mse_loss
        loss = self.wc * (mse(er, rr) + mse(ei, ri)) + self.wm * mse(em, rm)
        if self.ws:
            loss = loss - self.ws * self.sisnr(est_wav, ref_wav).mean() / 10
        return loss


class MultiResolutionSTFTLoss(nn.Module):
    """Spectral convergence + log-magnitude L1 over several STFT resolutions (Parallel WaveGAN)."""

    def __init__(self, sample_rate: int = 16000, ffts: tuple[int, ...] = (256, 512, 1024),
                 hops: tuple[int, ...] = (64, 128, 256)):
        super().__init__()
        self.geoms = [StftGeometry(sample_rate, n, h) for n, h in zip(ffts, hops, strict=True)]

    def forward(self, est_spec, ref_spec, est_wav, ref_wav) -> torch.Tensor:
        total = est_wav.new_zeros(())
        for g in self.geoms:
            e = stft(est_wav, g).pow(2).sum(-1).clamp_min(1e-10).sqrt()
            r = stft(ref_wav, g).pow(2).sum(-1).clamp_min(1e-10).sqrt()
            sc = torch.linalg.norm((r - e).flatten(1), dim=1) / (torch.linalg.norm(r.flatten(1), dim=1) + EPS)
            mag = (r.log() - e.log()).abs().mean()
            total = total + sc.mean() + mag
        return total / len(self.geoms)


class CombinedLoss(nn.Module):
    """Weighted sum of losses: ``CombinedLoss({"hybrid": HybridLoss(), "mrstft": ...}, {"mrstft": 0.5})``."""

    def __init__(self, losses: dict[str, nn.Module], weights: dict[str, float] | None = None):
        super().__init__()
        self.losses = nn.ModuleDict(losses)
        self.weights = dict(weights or {})

    def forward(self, est_spec, ref_spec, est_wav, ref_wav) -> torch.Tensor:
        return sum(self.weights.get(k, 1.0) * f(est_spec, ref_spec, est_wav, ref_wav)
                   for k, f in self.losses.items())
