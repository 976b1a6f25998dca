"""Functional DSP core shared by every model: filterbanks, STFT framing, windows.

Pure functions on tensors; modules wrap them and register their matrices as buffers.
Imports only torch (and math).
"""

from denoisezoo.dsp.erb import erb_filterbank, erb_to_hz, hz_to_erb
from denoisezoo.dsp.stft import (
    StftGeometry,
    istft,
    num_frames,
    sqrt_hann,
    stft,
)

__all__ = [
    "erb_filterbank",
    "hz_to_erb",
    "erb_to_hz",
    "StftGeometry",
    "sqrt_hann",
    "stft",
    "istft",
    "num_frames",
]
