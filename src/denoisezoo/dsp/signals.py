"""A deterministic speech-like test signal, the one that checks, tests and benchmarks share."""

from __future__ import annotations

import numpy as np

__all__ = ["speechlike"]


def speechlike(n: int, sample_rate: int = 16000, seed: int = 0) -> np.ndarray:
    """``(n,)`` float32, peak 0.5: harmonic bursts (f0 120 +- 40 Hz, 11 harmonics, gated at 2.5 Hz)
    over white noise 22 dB down; the same samples for the same ``(n, sample_rate, seed)``."""
    rng = np.random.default_rng(seed)
    t = np.arange(n) / sample_rate
    phase = 2 * np.pi * np.cumsum(120 + 40 * np.sin(2 * np.pi * 0.7 * t)) / sample_rate
    voiced = sum(np.sin(k * phase) / k for k in range(1, 12)) * (np.sin(2 * np.pi * 2.5 * t) > 0)
    x = 0.2 * voiced + 0.05 * rng.standard_normal(n)
    return (0.5 * x / max(np.abs(x).max(), 1e-9)).astype(np.float32)
