"""Functional DSP core shared by every model: filterbanks, STFT framing, windows.

Pure functions on tensors; modules wrap them and register their matrices as buffers.
Imports only torch (and math).
"""

from denoisezoo.dsp.erb import erb_filterbank, hz_to_erb, erb_to_hz
from denoisezoo.dsp.stft import (
    StftGeometry,
    sqrt_hann,
    stft,
    istft,
    num_frames,
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
