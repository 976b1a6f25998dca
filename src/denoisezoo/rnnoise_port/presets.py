"""Named RNNoise presets (factory functions)."""

from __future__ import annotations

from denoisezoo.rnnoise_port.config import RELEASE_DSP, RNNoiseConfig
from denoisezoo.rnnoise_port.model import RNNoise

__all__ = ["rnnoise_16k", "rnnoise_48k", "rnnoise_tiny", "RNNOISE_PRESETS"]


def rnnoise_16k() -> RNNoise:
    """The zoo's RNNoise: 16 kHz, 10 ms hop / 20 ms Vorbis window, 18 bands up to 8 kHz,
    38 features, GRUs 24/48/96 (85,291 parameters)."""
    return RNNoise(RNNoiseConfig())


def rnnoise_48k() -> RNNoise:
    """The 2018 RNNoise: 48 kHz, 22 bands up to 20 kHz, 42 features, GRUs 24/48/96 with ReLU
    candidates (87,503 parameters, as the original Keras model) and the release's DSP (input
    high-pass, Opus pitch analysis, band layout): the model the shipped ``rnnoise_48k`` weights,
    converted from the release's ``rnn_data.c``, run in."""
    return RNNoise(RNNoiseConfig(sample_rate=48000, pitch_search_rate=12000, **RELEASE_DSP))


def rnnoise_tiny() -> RNNoise:
    """A narrow RNNoise for tests (16 kHz geometry, GRUs 8/8/16)."""
    return RNNoise(RNNoiseConfig(dense_size=8, vad_size=8, noise_size=8, denoise_size=16))


RNNOISE_PRESETS = {"rnnoise_16k": rnnoise_16k, "rnnoise_48k": rnnoise_48k,
                   "rnnoise_tiny": rnnoise_tiny}
