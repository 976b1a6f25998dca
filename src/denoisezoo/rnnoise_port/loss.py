"""The RNNoise training loss: band gains plus the VAD cross-entropy (torch only)."""

from __future__ import annotations

import torch
from torch import nn

from denoisezoo.rnnoise_port.config import RNNoiseConfig
from denoisezoo.rnnoise_port.targets import band_gain_targets, effective_band_gains, vad_labels

__all__ = ["RNNoiseLoss"]


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
