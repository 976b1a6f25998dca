"""Denoising strength controls on spectra: attenuation limit and dry/wet mix (any model).

``apply_strength(noisy, enhanced, floor, wet)`` first mixes ``wet * enhanced + (1 - wet) * noisy``, then
raises every time-frequency bin whose magnitude fell more than the limit below the input back to
``floor * |noisy|`` (keeping its phase), so no bin is attenuated by more than ``-20 log10(floor)`` dB.
``floor >= 1`` (a 0 dB limit) returns the input unchanged. ``floor`` and ``wet`` broadcast per frame, so a
stream can ramp them without clicks.
"""

from __future__ import annotations

import math

import torch

__all__ = ["apply_strength", "db_to_floor"]


def db_to_floor(atten_lim_db: float | None) -> float:
    """Attenuation limit in dB (positive: how much suppression is allowed) -> linear gain floor.

    ``None`` or ``inf`` means no limit (floor 0); ``0`` means no suppression at all (floor 1).
    """
    if atten_lim_db is None or math.isinf(atten_lim_db):
        return 0.0
    if atten_lim_db < 0:
        raise ValueError(f"attenuation limit must be >= 0 dB, got {atten_lim_db}")
    return 10 ** (-atten_lim_db / 20)


def apply_strength(noisy: torch.Tensor, enhanced: torch.Tensor, floor: torch.Tensor | float = 0.0,
                   wet: torch.Tensor | float = 1.0) -> torch.Tensor:
    """Limit the attenuation of ``enhanced`` relative to ``noisy`` (complex spectra, same shape).

    Args:
        noisy: complex ``(..., T, F)`` input spectrum.
        enhanced: complex ``(..., T, F)`` model output.
        floor: linear gain floor in [0, 1], scalar or ``(..., T, 1)`` per frame.
        wet: fraction of the enhanced signal in [0, 1], scalar or ``(..., T, 1)`` per frame.

    Returns:
        complex ``(..., T, F)``.
    """
    floor_t = torch.as_tensor(floor, dtype=noisy.real.dtype, device=noisy.device)
    wet_t = torch.as_tensor(wet, dtype=noisy.real.dtype, device=noisy.device)
    if bool((floor_t == 0).all()) and bool((wet_t == 1).all()):
        return enhanced
    out = wet_t * enhanced + (1 - wet_t) * noisy
    mag_in, mag_out = noisy.abs(), out.abs()
    need = floor_t.clamp(0, 1) * mag_in
    raised = torch.where(mag_out > 0, out * (need / mag_out.clamp_min(1e-30)), floor_t.clamp(0, 1) * noisy)
    out = torch.where(mag_out < need, raised, out)
    return torch.where(floor_t >= 1, noisy, out)
