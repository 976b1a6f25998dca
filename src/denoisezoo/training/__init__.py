"""Lightning training systems, losses and the LightningCLI entry point."""

from denoisezoo.training.layout import RunLayout
from denoisezoo.training.losses import (
    CombinedLoss,
    HybridLoss,
    MultiResolutionSTFTLoss,
    SISDRLoss,
    si_sdr,
    signed_si_sdr,
)
from denoisezoo.training.system import (
    DistillationSystem,
    EnhancementSystem,
    NonFiniteError,
    Pretrained,
    TeacherEnsemble,
)

__all__ = [
    "CombinedLoss",
    "DistillationSystem",
    "EnhancementSystem",
    "HybridLoss",
    "MultiResolutionSTFTLoss",
    "NonFiniteError",
    "Pretrained",
    "RunLayout",
    "SISDRLoss",
    "TeacherEnsemble",
    "si_sdr",
    "signed_si_sdr",
]
