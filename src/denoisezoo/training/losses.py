"""The training losses, in one namespace for configs (``denoisezoo.training.losses.HybridLoss``).

Each loss lives with what it belongs to: the generic ones (SI-SDR, GTCRN's hybrid loss,
multi-resolution STFT) in :mod:`denoisezoo.nn.losses`, the RNNoise band-gain loss in its family
(:mod:`denoisezoo.rnnoise_port.loss`). All take ``(est_spec, ref_spec, est_wav, ref_wav)``.
"""

from denoisezoo.nn.losses import (
    EPS,
    CombinedLoss,
    HybridLoss,
    MultiResolutionSTFTLoss,
    SISDRLoss,
    si_sdr,
    signed_si_sdr,
    snr,
)
from denoisezoo.rnnoise_port.loss import RNNoiseLoss

__all__ = [
    "EPS", "si_sdr", "signed_si_sdr", "snr", "SISDRLoss", "HybridLoss", "MultiResolutionSTFTLoss",
    "CombinedLoss", "RNNoiseLoss",
]
