"""Training targets of RNNoise: ideal band gains and VAD labels (torch only, no gradients needed).

As in the RNNoise training program (``denoise.c``, ``TRAINING`` mode), per frame:

- band gain ``g = min(1, sqrt((E_clean + 1e-3) / (E_noisy + 1e-3)))`` on the model's triangular
  bands (int16 scale, normalised FFT); a band where both energies are below ``5e-2`` is masked
  out of the loss (``-1`` in the C code);
- VAD label from the clean frame energy (the newest hop) with the C code's hang-over counter:
  energy above ``1e9`` (int16 units, 480-sample frame) resets the counter (speech: 1), between
  ``1e8`` and ``1e9`` lowers it by 5, between ``1e7`` and ``1e8`` raises it by 1, below by 2; the
  counter is clipped to ``[0, 15]``; ``>= 10`` is noise (0), ``1 .. 9`` uncertain (0.5). The
  thresholds scale with the hop so that they are the same RMS levels at every rate.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from denoisezoo.rnnoise_port.config import RNNoiseConfig
from denoisezoo.rnnoise_port.features import band_matrices

__all__ = ["band_energies", "band_gain_targets", "vad_labels", "effective_band_gains"]

SILENT_BAND = 5e-2


def band_energies(spec: torch.Tensor, config: RNNoiseConfig) -> torch.Tensor:
    """``(B, F, T, 2)`` spectrum -> ``(B, T, bands)`` band energies at the features' scale."""
    if spec.shape[1] != config.n_freqs:
        raise ValueError(f"expected {config.n_freqs} bins for {config.sample_rate} Hz, "
                         f"got {spec.shape[1]}")
    ana, _ = band_matrices(config.band_edges, config.n_freqs, spec.dtype)
    power = spec.square().sum(-1).transpose(1, 2)  # B, T, F
    return power @ ana.to(spec.device).t() * (config.input_scale / config.n_fft) ** 2


def band_gain_targets(clean_spec: torch.Tensor, noisy_spec: torch.Tensor, config: RNNoiseConfig
                      ) -> tuple[torch.Tensor, torch.Tensor]:
    """Ideal band gains and their loss mask.

    Args:
        clean_spec: ``(B, F, T, 2)`` target spectrum (clean speech, or a teacher's output).
        noisy_spec: ``(B, F, T, 2)`` model input.

    Returns:
        ``(gains (B, T, bands) in [0, 1], valid (B, T, bands) bool)``.
    """
    ey = band_energies(clean_spec, config)
    ex = band_energies(noisy_spec, config)
    g = torch.sqrt((ey + 1e-3) / (ex + 1e-3)).clamp(max=1.0)
    valid = (ey >= SILENT_BAND) | (ex >= SILENT_BAND)
    return g, valid


def effective_band_gains(est_spec: torch.Tensor, noisy_spec: torch.Tensor, config: RNNoiseConfig
                         ) -> torch.Tensor:
    """Band gains an enhanced spectrum realises, ``sqrt((E_est + 1e-3) / (E_noisy + 1e-3))``
    (``(B, T, bands)``, differentiable, not clipped)."""
    return torch.sqrt((band_energies(est_spec, config) + 1e-3)
                      / (band_energies(noisy_spec, config) + 1e-3))


def vad_labels(clean_wav: torch.Tensor, config: RNNoiseConfig, frames: int | None = None
               ) -> torch.Tensor:
    """VAD labels ``(B, T)`` in ``{0, 0.5, 1}`` from ``(B, N)`` clean waveforms.

    Frame ``t`` is judged on input samples ``[t hop, (t + 1) hop)``, the hop it adds to the STFT
    (zero beyond the end); ``frames`` defaults to the STFT frame count of ``N`` samples.
    """
    hop = config.hop_length
    n = clean_wav.shape[-1]
    t = frames if frames is not None else (n - 1 + hop) // hop + 1
    x = F.pad(clean_wav, (0, max(0, t * hop - n)))[..., : t * hop]
    energy = x.reshape(*x.shape[:-1], t, hop).double().square().sum(-1)  # B, T
    energy = energy * config.input_scale**2 * (480.0 / hop)
    count = torch.zeros_like(energy[..., 0])
    out = []
    for i in range(t):
        e = energy[..., i]
        step = torch.where(e > 1e8, -5.0, torch.where(e > 1e7, 1.0, 2.0))
        count = torch.where(e > 1e9, torch.zeros_like(count), count + step).clamp(0.0, 15.0)
        out.append(torch.where(count >= 10, 0.0, torch.where(count > 0, 0.5, 1.0)))
    return torch.stack(out, dim=-1).to(clean_wav.dtype)
