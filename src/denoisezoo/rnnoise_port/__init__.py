"""RNNoise port: the hybrid DSP + GRU noise suppressor (Valin 2018), any sample rate, streaming.

Models import only torch; training targets and labels (:mod:`.targets`) are pure functions too.
"""

from denoisezoo.rnnoise_port.config import RNNOISE_EDGES_HZ, RNNoiseConfig, default_band_edges_hz
from denoisezoo.rnnoise_port.model import (
    KerasGRU,
    RNNoise,
    RNNoiseFeatures,
    RNNoiseOutput,
    RNNoiseState,
    mac_counters,
)
from denoisezoo.rnnoise_port.presets import RNNOISE_PRESETS, rnnoise_16k, rnnoise_48k, rnnoise_tiny
from denoisezoo.rnnoise_port.targets import (
    band_energies,
    band_gain_targets,
    effective_band_gains,
    vad_labels,
)

__all__ = [
    "KerasGRU",
    "RNNOISE_EDGES_HZ",
    "RNNOISE_PRESETS",
    "RNNoise",
    "RNNoiseConfig",
    "RNNoiseFeatures",
    "RNNoiseOutput",
    "RNNoiseState",
    "band_energies",
    "band_gain_targets",
    "default_band_edges_hz",
    "effective_band_gains",
    "mac_counters",
    "rnnoise_16k",
    "rnnoise_48k",
    "rnnoise_tiny",
    "vad_labels",
]
