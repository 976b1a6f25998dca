"""Named GTCRN presets (factory functions)."""

from __future__ import annotations

from denoisezoo.gtcrn.config import GTCRNConfig
from denoisezoo.gtcrn.model import GTCRN

__all__ = ["gtcrn", "gtcrn_tiny", "gtcrn_large", "gtcrn_48k", "GTCRN_PRESETS"]


def gtcrn() -> GTCRN:
    """The paper model: 23.7 K learnable parameters, 33 M MACs per second at 16 kHz."""
    return GTCRN(GTCRNConfig())


def gtcrn_tiny() -> GTCRN:
    """A narrow, shallow GTCRN for tests (same 16 kHz geometry)."""
    return GTCRN(GTCRNConfig(channels=8, dilations=(1, 2), num_dual_path=1))


def gtcrn_large() -> GTCRN:
    """A wider teacher for distillation (32 channels; about 4x the paper model's parameters)."""
    return GTCRN(GTCRNConfig(channels=32))


def gtcrn_48k() -> GTCRN:
    """The paper model at 48 kHz (:meth:`GTCRNConfig.for_sample_rate`): 1536-point STFT, 768 hop,
    64 ERB bands up to 24 kHz; the same network and parameter count as ``gtcrn``."""
    return GTCRN(GTCRNConfig.for_sample_rate(48000))


GTCRN_PRESETS = {"gtcrn": gtcrn, "gtcrn_tiny": gtcrn_tiny, "gtcrn_large": gtcrn_large,
                 "gtcrn_48k": gtcrn_48k}
