"""Named UL-UNAS presets (factory functions)."""

from __future__ import annotations

from denoisezoo.ulunas.config import ULUNASConfig
from denoisezoo.ulunas.model import ULUNAS

__all__ = ["ulunas", "ulunas_tiny", "ULUNAS_PRESETS"]


def ulunas() -> ULUNAS:
    """The paper model: 146,752 learnable parameters (171,328 with the two frozen ERB matrices,
    the authors' count), causal, 512-point STFT with a 256 hop at 16 kHz."""
    return ULUNAS(ULUNASConfig())


def ulunas_tiny() -> ULUNAS:
    """A narrow UL-UNAS for tests (same 16 kHz geometry; every block kind, conv caches of one
    and two frames, a residual bottleneck block, one dual-path RNN)."""
    return ULUNAS(ULUNASConfig(block_types=("conv", "mb", "dws", "mb"), channels=(4, 8, 8, 8),
                               kernels=((3, 3), (2, 3), (2, 3), (1, 3)), strides=(2, 2, 1, 1),
                               groups=(1, 2, 2, 2), num_dual_path=1))


ULUNAS_PRESETS = {"ulunas": ulunas, "ulunas_tiny": ulunas_tiny}
