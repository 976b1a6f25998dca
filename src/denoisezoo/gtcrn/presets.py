"""Named GTCRN presets (factory functions)."""

from __future__ import annotations

from denoisezoo.gtcrn.config import GTCRNConfig
from denoisezoo.gtcrn.model import GTCRN

__all__ = ["gtcrn", "gtcrn_half", "gtcrn_tiny", "gtcrn_large", "gtcrn_48k", "GTCRN_PRESETS"]


def gtcrn() -> GTCRN:
    """The paper model: 23.7 K learnable parameters, 33 M MACs per second at 16 kHz."""
    return GTCRN(GTCRNConfig())


def gtcrn_half() -> GTCRN:
    """The paper model with half the hidden units of every temporal conv block and GRU (the
    encoder/decoder width stays 16): 13.8 K learnable parameters, 22 M MACs per second. It is the
    shape ``compress.prune_structured(gtcrn(), 0.5)`` gives, so a pruned teacher warm-starts it."""
    return GTCRN(GTCRNConfig(hidden_channels=(8,) * 6, tra_hidden=(8,) * 6, intra_hidden=(4, 4),
                             inter_hidden=(8, 8)))


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


GTCRN_PRESETS = {"gtcrn": gtcrn, "gtcrn_half": gtcrn_half, "gtcrn_tiny": gtcrn_tiny,
                 "gtcrn_large": gtcrn_large, "gtcrn_48k": gtcrn_48k}
