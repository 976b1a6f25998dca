"""GTCRN: grouped temporal convolutional recurrent network (causal, 16 kHz by default)."""

from denoisezoo.gtcrn.config import GTCRNConfig
from denoisezoo.gtcrn.model import GTCRN, GTCRNState
from denoisezoo.gtcrn.official import load_official_checkpoint
from denoisezoo.gtcrn.presets import (
    GTCRN_PRESETS,
    gtcrn,
    gtcrn_48k,
    gtcrn_half,
    gtcrn_large,
    gtcrn_tiny,
)

__all__ = [
    "GTCRN",
    "GTCRNConfig",
    "GTCRNState",
    "GTCRN_PRESETS",
    "gtcrn",
    "gtcrn_half",
    "gtcrn_large",
    "gtcrn_48k",
    "gtcrn_tiny",
    "load_official_checkpoint",
]
