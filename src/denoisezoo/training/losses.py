"""Training losses for spectral enhancement models (torch only).

All losses take ``(est_spec, ref_spec, est_wav, ref_wav)`` with spectra ``(B, F, T, 2)`` and
waveforms ``(B, N)`` so a system can mix them freely; each returns a scalar.
"""

from __future__ import annotations

import torch
from torch import nn

from denoisezoo.dsp.stft import StftGeometry, stft

__all__ = [
    "si_sdr", "signed_si_sdr", "snr", "SISDRLoss", "HybridLoss", "MultiResolutionSTFTLoss",
    "CombinedLoss", "RNNoiseLoss",
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


class RNNoiseLoss(nn.Module):
    """The RNNoise training loss on band gains plus the VAD cross-entropy (Valin 2018).

    With ``d = g_est^p - g^p`` (perceptual exponent ``p = 0.5``) on the bands that are not silent:
    ``L = gain_weight * mean(10 d^4 + d^2 + 0.01 BCE(g_est, g)) + vad_weight *
    mean(2 |v - 0.5| BCE(v_est, v))``, the cost of the original Keras recipe (weights 10 and 0.5).
    Targets ``g`` and ``v`` come from :mod:`denoisezoo.rnnoise_port.targets`: ``g`` from the
    reference spectrum (clean speech, or a teacher's output: distillation in the band-gain domain)
    and the noisy input spectrum, ``v`` from the reference waveform.

    Estimated gains: with ``outputs`` (an :class:`~denoisezoo.rnnoise_port.RNNoiseOutput` of the
    same forward) the network's band gains and VAD; without, the band gains the enhanced spectrum
    realises (``sqrt(E_est / E_noisy)``, after the pitch filter and decay limit), and no VAD term.

    Needs the noisy spectrum: systems pass ``noisy_spec`` to losses with ``needs_noisy_spec``.

    Args:
        sample_rate, frame_ms, band_edges_hz: the model's band layout (see ``RNNoiseConfig``).
        gain_weight: weight of the gain term (10).
        vad_weight: weight of the VAD term (0.5).
        exponent: perceptual exponent on the gains (0.5).
        quartic_weight: weight of ``d^4`` (10).
        bce_weight: weight of the gain cross-entropy (0.01).
    """

    needs_noisy_spec = True
    needs_model_outputs = True

    def __init__(self, sample_rate: int = 16000, frame_ms: float = 10.0,
                 band_edges_hz: tuple[float, ...] = (), gain_weight: float = 10.0,
                 vad_weight: float = 0.5, exponent: float = 0.5, quartic_weight: float = 10.0,
                 bce_weight: float = 0.01):
        super().__init__()
        from denoisezoo.rnnoise_port import RNNoiseConfig

        self.config = RNNoiseConfig(sample_rate=sample_rate, frame_ms=frame_ms,
                                    band_edges_hz=tuple(band_edges_hz))
        self.gain_weight, self.vad_weight = gain_weight, vad_weight
        self.exponent, self.quartic_weight, self.bce_weight = exponent, quartic_weight, bce_weight

    def gain_loss(self, est: torch.Tensor, target: torch.Tensor,
                  valid: torch.Tensor) -> torch.Tensor:
        """``(B, T, bands)`` gains in [0, 1] and mask -> scalar (mean over all bands, as Keras)."""
        est = est.clamp(1e-6, 1 - 1e-6)
        d = est.pow(self.exponent) - target.pow(self.exponent)
        bce = nn.functional.binary_cross_entropy(est, target, reduction="none")
        per = self.quartic_weight * d.pow(4) + d.square() + self.bce_weight * bce
        return (per * valid).mean()

    def vad_loss(self, est: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """``(B, T)`` VAD probability and labels in {0, 0.5, 1} -> scalar."""
        est = est.clamp(1e-6, 1 - 1e-6)
        bce = nn.functional.binary_cross_entropy(est, target, reduction="none")
        return (2 * (target - 0.5).abs() * bce).mean()

    def forward(self, est_spec, ref_spec, est_wav, ref_wav, noisy_spec=None,
                outputs=None) -> torch.Tensor:
        from denoisezoo.rnnoise_port import band_gain_targets, effective_band_gains, vad_labels

        if noisy_spec is None:
            raise ValueError("RNNoiseLoss needs the noisy input spectrum: call it with noisy_spec= "
                             "(EnhancementSystem does so for losses with needs_noisy_spec)")
        target, valid = band_gain_targets(ref_spec, noisy_spec, self.config)
        if outputs is not None:
            est = outputs.gains
        else:
            est = effective_band_gains(est_spec, noisy_spec, self.config).clamp(max=1.0)
        loss = self.gain_weight * self.gain_loss(est, target, valid)
        if outputs is not None and self.vad_weight:
            labels = vad_labels(ref_wav, self.config, frames=target.shape[1])
            loss = loss + self.vad_weight * self.vad_loss(outputs.vad, labels)
        return loss
