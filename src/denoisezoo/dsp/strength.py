"""Denoising strength controls on spectra: attenuation limit and dry/wet mix (any model).

``apply_strength(noisy, enhanced, floor, wet)`` first mixes ``wet * enhanced + (1 - wet) * noisy``, then
raises every time-frequency bin whose magnitude fell more than the limit below the input back to
``floor * |noisy|`` (keeping its phase), so no bin is attenuated by more than ``-20 log10(floor)`` dB.
``floor >= 1`` (a 0 dB limit) returns the input unchanged. ``floor`` and ``wet`` broadcast per frame, so a
stream can ramp them without clicks: :class:`StrengthRamps` holds the settings of one or many streams and
ramps each stream from its current to its newest setting (the ``Streamer`` and the ``StreamPool`` use it).
"""

from __future__ import annotations

import math

import numpy as np
import torch

__all__ = ["apply_strength", "db_to_floor", "StrengthRamps", "NO_STRENGTH"]

NO_STRENGTH = (0.0, 1.0)  # (gain floor, wet): full denoising


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


class StrengthRamps:
    """Strength settings of ``n`` streams, each ramping without a click to its newest setting.

    Row ``i`` holds a stream's ramp: the (gain floor, wet) it started from, the one it goes to and
    the frames done since the change; frame ``j`` after a change gets ``start + (target - start)
    * min(1, j / ramp_frames)``, ``j = 1, 2, ...``. A stream that has not started yet jumps to
    the new setting at once.

    Example:
        >>> r = StrengthRamps(1)
        >>> r.set(0, 0.0, started=True)  # bypass, from full denoising: ramps over 4 frames
        >>> r.values(slice(None), 5)[0][0].tolist()
        [0.25, 0.5, 0.75, 1.0, 1.0]
    """

    def __init__(self, n: int = 1, ramp_frames: int = 4):
        self.ramp_frames = ramp_frames
        self.start = np.tile(np.asarray(NO_STRENGTH, np.float64), (n, 1))  # n, 2 (floor, wet)
        self.target = self.start.copy()
        self.pos = np.zeros(n, np.int64)  # frames since the last change

    def __len__(self) -> int:
        return self.pos.shape[0]

    def set(self, i: int, atten_lim_db: float | None = None, wet: float = 1.0,
            started: bool = False) -> None:
        """New setting of stream ``i``: attenuation limit (dB; ``None`` = unlimited, 0 = no
        suppression) and dry/wet mix; ramps from the current value if the stream ``started``."""
        if not 0.0 <= wet <= 1.0:
            raise ValueError(f"wet must be in [0, 1], got {wet}")
        new = (db_to_floor(atten_lim_db), float(wet))
        a = min(1.0, self.pos[i] / self.ramp_frames)
        current = tuple(s0 + (t0 - s0) * a for s0, t0 in zip(self.start[i], self.target[i], strict=True))
        self.start[i] = current if started else new
        self.target[i] = new
        self.pos[i] = 0

    def restart(self, rows=slice(None)) -> None:
        """Streams ``rows`` start anew at their requested setting (no ramp)."""
        self.start[rows] = self.target[rows]
        self.pos[rows] = 0

    def append(self, k: int) -> None:
        """``k`` more streams at full denoising."""
        self.start = np.concatenate([self.start, np.tile(np.asarray(NO_STRENGTH), (k, 1))])
        self.target = np.concatenate([self.target, np.tile(np.asarray(NO_STRENGTH), (k, 1))])
        self.pos = np.concatenate([self.pos, np.zeros(k, np.int64)])

    def delete(self, rows) -> None:
        """Forget streams ``rows`` (the others keep their order)."""
        self.start, self.target = np.delete(self.start, rows, 0), np.delete(self.target, rows, 0)
        self.pos = np.delete(self.pos, rows)

    def values(self, rows, k: int) -> tuple[np.ndarray, np.ndarray] | None:
        """Gain floor and wet ``(R, k)`` (float64) of streams ``rows`` for their next ``k``
        frames, advancing their ramps; ``None`` when all of them denoise fully."""
        start, target, pos = self.start[rows], self.target[rows], self.pos[rows].copy()
        self.pos[rows] = pos + k
        if (start == NO_STRENGTH).all() and (target == NO_STRENGTH).all():
            return None
        a = np.minimum((pos[:, None] + np.arange(1, k + 1)) / self.ramp_frames, 1.0)  # R, k
        v = start[:, None, :] + (target - start)[:, None, :] * a[..., None]  # R, k, 2
        return v[..., 0], v[..., 1]

    def apply(self, rows, noisy: torch.Tensor, enhanced: torch.Tensor) -> torch.Tensor:
        """:func:`apply_strength` to ``(R, k, F)`` spectra of streams ``rows`` (or ``(B, k, F)``
        channels sharing one stream's ramp), advancing the ramps by ``k`` frames."""
        vals = self.values(rows, noisy.shape[1])
        if vals is None:
            return enhanced
        dtype = noisy.real.dtype
        floor, wet = (torch.from_numpy(v).to(dtype)[..., None] for v in vals)  # R, k, 1
        return apply_strength(noisy, enhanced, floor, wet)
