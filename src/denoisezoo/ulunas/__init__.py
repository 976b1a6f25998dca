"""UL-UNAS: ultra-lightweight U-Nets found by architecture search (causal, 16 kHz by default)."""

from denoisezoo.ulunas.config import ULUNASConfig
from denoisezoo.ulunas.model import ULUNAS, ULUNASState
from denoisezoo.ulunas.official import load_official_checkpoint
from denoisezoo.ulunas.presets import ULUNAS_PRESETS, ulunas, ulunas_tiny

__all__ = [
    "ULUNAS",
    "ULUNASConfig",
    "ULUNASState",
    "ULUNAS_PRESETS",
    "ulunas",
    "ulunas_tiny",
    "load_official_checkpoint",
]
