"""Vectorised signal synthesis for dynamic mixing: coloured noise, mains hum, RIRs, channel filters.

Every function takes an explicit ``numpy.random.Generator`` and returns float32; none loops over
samples in Python. Coloured noise and hum are made in the frequency domain with one inverse FFT.
"""

from __future__ import annotations

import numpy as np
import scipy.fft as sfft
from scipy.signal import butter, resample_poly

__all__ = [
    "active_power",
    "synthetic_spectrum_noise",
    "colored_noise",
    "hum_noise",
    "transient_noise",
    "change_speed",
    "simulate_rir",
    "prepare_rir",
    "convolve_rir",
    "lowpass_sos",
    "peaking_sos",
    "shelf_sos",
    "FRAME_SECONDS",
    "ACTIVE_THRESHOLD_DB",
]

FRAME_SECONDS = 0.02
"""Frame length of the active-speech power measure."""
ACTIVE_THRESHOLD_DB = 40.0
"""A frame is active when its power lies within this many dB of the loudest frame."""


def active_power(x: np.ndarray, sample_rate: int, threshold_db: float = ACTIVE_THRESHOLD_DB,
                 ) -> float:
    """Mean power of the active frames of ``x`` (N,).

    Frames of 20 ms; a frame is active if its power is within ``threshold_db`` of the loudest frame
    and above -100 dBFS. Returns 0.0 for a silent signal.
    """
    f = max(1, int(round(FRAME_SECONDS * sample_rate)))
    n = (x.shape[0] // f) * f
    if n == 0:
        return float(np.mean(np.square(x, dtype=np.float64))) if x.size else 0.0
    p = np.mean(np.square(x[:n].reshape(-1, f), dtype=np.float64), axis=1)  # frames
    pmax = float(p.max())
    if pmax <= 1e-10:
        return 0.0
    active = p >= max(pmax * 10.0 ** (-threshold_db / 10.0), 1e-10)
    return float(p[active].mean())


def _freqs(n: int, sample_rate: int) -> np.ndarray:
    return np.arange(n // 2 + 1, dtype=np.float32) * (sample_rate / n)


def colored_spectrum(rng: np.random.Generator, n: int, sample_rate: int, beta: float,
                     f_low: float = 20.0) -> np.ndarray:
    """Complex rFFT spectrum (n//2+1,) of Gaussian noise with power ~ 1/f**beta, unit mean power.

    beta 0 = white, 1 = pink, 2 = brown. Bins below ``f_low`` are zeroed (no DC / rumble).
    """
    m = n // 2 + 1
    f = _freqs(n, sample_rate)
    spec = rng.standard_normal(m, dtype=np.float32) + 1j * rng.standard_normal(m, dtype=np.float32)
    shape = np.maximum(f, f_low) ** (-beta / 2.0)
    shape[f < f_low] = 0.0
    # power normalisation: E|X_k|^2 = 2 shape_k^2; mean power of irfft ~ sum over bins / n^2 * 2
    norm = np.sqrt(np.sum(shape.astype(np.float64) ** 2) * 4.0) / n
    return (spec * (shape / max(norm, 1e-12))).astype(np.complex64)


def hum_spectrum(rng: np.random.Generator, n: int, sample_rate: int,
                 mains_hz: float | None = None) -> np.ndarray:
    """Complex rFFT spectrum of mains hum/buzz: 50 or 60 Hz (±0.5 %) with decaying harmonics.

    Harmonic amplitudes fall as k**-a (a in [0.7, 2.5]); odd harmonics are favoured with a random
    weight (transformer buzz). Each line has a random phase and is spread over two bins so the result
    is not a perfectly periodic tone. Unit mean power.
    """
    m = n // 2 + 1
    f0 = (mains_hz or float(rng.choice([50.0, 60.0]))) * (1.0 + rng.uniform(-0.005, 0.005))
    kmax = int((sample_rate / 2 - 100.0) // f0)
    k = np.arange(1, kmax + 1, dtype=np.float64)
    amp = k ** (-rng.uniform(0.7, 2.5))
    amp *= np.where(k % 2 == 1, 1.0, rng.uniform(0.1, 1.0))
    pos = k * f0 * n / sample_rate
    b0 = np.floor(pos).astype(np.int64)
    frac = pos - b0
    phase = np.exp(2j * np.pi * rng.random(kmax))
    spec = np.zeros(m, np.complex128)
    np.add.at(spec, np.clip(b0, 0, m - 1), amp * (1 - frac) * phase)
    np.add.at(spec, np.clip(b0 + 1, 0, m - 1), amp * frac * phase)
    power = 2.0 * np.sum(np.abs(spec) ** 2) / n**2
    return (spec / np.sqrt(max(power, 1e-20))).astype(np.complex64)


def synthetic_spectrum_noise(rng: np.random.Generator, n: int, sample_rate: int,
                             kind: str) -> np.ndarray:
    """Coloured noise, hum, or their mixture, from one inverse FFT. Returns float32 (n,).

    ``kind`` is ``"colored"`` (1/f**beta, beta uniform in [0, 2]: white..pink..brown), ``"hum"`` or
    ``"colored+hum"`` (hum at -10..+10 dB relative to the coloured part).
    """
    if kind == "colored":
        spec = colored_spectrum(rng, n, sample_rate, float(rng.uniform(0.0, 2.0)))
    elif kind == "hum":
        spec = hum_spectrum(rng, n, sample_rate)
    elif kind == "colored+hum":
        spec = colored_spectrum(rng, n, sample_rate, float(rng.uniform(0.0, 2.0)))
        spec += hum_spectrum(rng, n, sample_rate) * np.float32(10.0 ** (rng.uniform(-10, 10) / 20))
    else:
        raise ValueError(f"unknown synthetic noise kind {kind!r}")
    return sfft.irfft(spec, n).astype(np.float32)


def colored_noise(rng: np.random.Generator, n: int, sample_rate: int, beta: float) -> np.ndarray:
    """Gaussian noise with power spectrum ~ 1/f**beta (0 white, 1 pink, 2 brown), float32 (n,)."""
    return sfft.irfft(colored_spectrum(rng, n, sample_rate, beta), n).astype(np.float32)


def hum_noise(rng: np.random.Generator, n: int, sample_rate: int,
              mains_hz: float | None = None) -> np.ndarray:
    """Mains hum with harmonics (see :func:`hum_spectrum`), float32 (n,)."""
    return sfft.irfft(hum_spectrum(rng, n, sample_rate, mains_hz), n).astype(np.float32)


def transient_noise(rng: np.random.Generator, n: int, sample_rate: int,
                    rate_hz: tuple[float, float] = (0.5, 5.0)) -> np.ndarray:
    """Bursty broadband noise (knocks, clicks, clatter, keyboard): float32 ``(n,)``, mean power 1.

    Bursts arrive as a Poisson process (rate uniform in ``rate_hz`` per second, at least one). Each is
    coloured noise (1/f**beta, beta uniform in [0, 2]) under an envelope with a 0.5-5 ms attack and
    an exponential decay of 5-40 ms, at 0..-20 dB; a coloured background at -20..-40 dB (same scale)
    fills the gaps. One Python iteration per burst, never per sample.
    """
    if n <= 0:
        raise ValueError(f"n must be > 0, found {n}")
    lo, hi = float(rate_hz[0]), float(rate_hz[1])
    if not 0.0 < lo <= hi:
        raise ValueError(f"rate_hz must be a (low, high) pair with 0 < low <= high, found {rate_hz!r}")
    bursts = max(1, int(rng.poisson(rng.uniform(lo, hi) * n / sample_rate)))
    out = colored_noise(rng, n, sample_rate, float(rng.uniform(0.0, 2.0)))
    out *= np.float32(10.0 ** (rng.uniform(-40.0, -20.0) / 20.0))
    for _ in range(bursts):
        start = int(rng.integers(0, n))
        decay = rng.uniform(0.005, 0.04) * sample_rate
        attack = rng.uniform(0.0005, 0.005) * sample_rate
        length = min(n - start, int(6.0 * decay) + 1)
        t = np.arange(length, dtype=np.float64)
        env = np.exp(-t / decay) * (1.0 - np.exp(-t / attack)) * 10.0 ** (rng.uniform(-20.0, 0.0) / 20.0)
        burst = colored_noise(rng, max(length, 2), sample_rate, float(rng.uniform(0.0, 2.0)))[:length]
        out[start:start + length] += (burst * env).astype(np.float32)
    power = float(np.mean(np.square(out, dtype=np.float64)))
    return (out / np.sqrt(max(power, 1e-20))).astype(np.float32)


def change_speed(x: np.ndarray, factor: float, n: int, steps: int = 100) -> np.ndarray:
    """``x`` played ``factor`` times faster, float32 ``(n,)``: pitch, formants and tempo all scale.

    Speed perturbation (as in Kaldi's 0.9/1.0/1.1 recipe) makes new voices from few speakers: a
    factor of 1.1 raises f0 and every formant by 10 %, like a shorter vocal tract. ``factor`` is
    rounded to ``1/steps`` so the polyphase resampler (anti-aliased) has small up/down ratios. ``x``
    should hold at least ``ceil(n * factor)`` samples; the output is cut or zero-padded to ``n``.
    """
    if n <= 0 or not factor > 0:
        raise ValueError(f"need n > 0 and factor > 0, found n={n}, factor={factor}")
    up, down = steps, max(1, int(round(factor * steps)))
    g = int(np.gcd(up, down))
    y = resample_poly(np.asarray(x, np.float32), up // g, down // g) if up != down else x
    out = np.zeros(n, np.float32)
    m = min(n, y.shape[0])
    out[:m] = y[:m]
    return out


# ---------------------------------------------------------------------------------------- RIRs
def simulate_rir(rng: np.random.Generator, sample_rate: int,
                 rt60: tuple[float, float] = (0.2, 1.0),
                 drr_db: tuple[float, float] = (-3.0, 12.0)) -> np.ndarray:
    """Cheap statistical room impulse response, float32 (L,), direct path at index 0 with value 1.

    Exponentially decaying Gaussian tail (decay 60 dB over RT60, drawn uniformly) starting after a
    2-8 ms initial time gap, a few discrete early reflections, a gentle low-pass on the tail (air /
    wall absorption), scaled to a direct-to-reverberant ratio drawn in ``drr_db``.
    """
    t60 = float(rng.uniform(*rt60))
    length = int(min(t60, 1.2) * sample_rate)
    gap = int(rng.uniform(0.002, 0.008) * sample_rate)
    t = np.arange(length - gap, dtype=np.float32) / sample_rate
    tail = rng.standard_normal(length - gap, dtype=np.float32) * np.exp(-6.9078 * t / t60)
    # one-pole low-pass on the tail by FFT-free first difference mix (cheap, vectorised)
    a = float(rng.uniform(0.0, 0.6))
    tail[1:] = (1 - a) * tail[1:] + a * tail[:-1]
    n_refl = int(rng.integers(3, 8))
    pos = rng.integers(0, max(1, int(0.03 * sample_rate)), n_refl)
    tail[pos] += rng.uniform(-1.0, 1.0, n_refl).astype(np.float32) * 3.0
    h = np.zeros(length, np.float32)
    h[0] = 1.0
    h[gap:] = tail
    e_rev = float(np.sum(np.square(h[1:], dtype=np.float64)))
    drr = 10.0 ** (float(rng.uniform(*drr_db)) / 10.0)
    h[1:] *= np.float32(np.sqrt(1.0 / (drr * max(e_rev, 1e-12))))
    return h


def prepare_rir(h: np.ndarray, sample_rate: int, max_seconds: float = 1.2) -> np.ndarray:
    """Align a measured RIR on its direct path (peak), normalise the peak to 1 and truncate."""
    h = np.asarray(h, np.float32)
    d = int(np.argmax(np.abs(h)))
    start = max(0, d - int(0.001 * sample_rate))  # keep 1 ms before the direct path
    h = h[start:start + int(max_seconds * sample_rate)]
    peak = float(np.max(np.abs(h)))
    return h / peak if peak > 0 else h


def convolve_rir(x: np.ndarray, h: np.ndarray, sample_rate: int, early_ms: float = 50.0,
                 ) -> tuple[np.ndarray, np.ndarray]:
    """Reverberant and early-reverberant versions of ``x`` (N,), both (N,) float32, time-aligned.

    The early RIR is ``h`` up to ``early_ms`` after its direct path (its peak), with a 5 ms half-cosine
    fade-out. Both outputs are advanced by the direct-path delay, so they line up with ``x``.
    """
    n = x.shape[0]
    d = int(np.argmax(np.abs(h)))
    e_len = min(h.shape[0], d + int(early_ms * 1e-3 * sample_rate))
    fade = min(e_len - d, int(0.005 * sample_rate))
    early = h[:e_len].copy()
    if fade > 1:
        early[e_len - fade:] *= (0.5 + 0.5 * np.cos(np.linspace(0, np.pi, fade))).astype(np.float32)
    m = sfft.next_fast_len(n + h.shape[0] - 1, real=True)
    fx = sfft.rfft(x, m)
    rev = sfft.irfft(fx * sfft.rfft(h, m), m)[d:d + n]
    erl = sfft.irfft(fx * sfft.rfft(early, m), m)[d:d + n]
    return rev.astype(np.float32), erl.astype(np.float32)


# ------------------------------------------------------------------------------ channel filters
def lowpass_sos(cutoff_hz: float, sample_rate: int, order: int = 8) -> np.ndarray:
    """Butterworth low-pass second-order sections."""
    return butter(order, cutoff_hz, btype="lowpass", fs=sample_rate, output="sos")


def peaking_sos(f0: float, gain_db: float, q: float, sample_rate: int) -> np.ndarray:
    """RBJ-cookbook peaking EQ biquad as one second-order section (1, 6)."""
    a = 10.0 ** (gain_db / 40.0)
    w0 = 2 * np.pi * f0 / sample_rate
    alpha = np.sin(w0) / (2 * q)
    b = [1 + alpha * a, -2 * np.cos(w0), 1 - alpha * a]
    den = [1 + alpha / a, -2 * np.cos(w0), 1 - alpha / a]
    return np.array([[*(np.array(b) / den[0]), 1.0, den[1] / den[0], den[2] / den[0]]])


def shelf_sos(f0: float, gain_db: float, sample_rate: int, high: bool) -> np.ndarray:
    """RBJ-cookbook low/high shelf biquad (slope 1) as one second-order section (1, 6)."""
    a = 10.0 ** (gain_db / 40.0)
    w0 = 2 * np.pi * f0 / sample_rate
    cw, alpha = np.cos(w0), np.sin(w0) / 2 * np.sqrt(2.0)
    s = 2 * np.sqrt(a) * alpha
    if high:
        b = [a * ((a + 1) + (a - 1) * cw + s), -2 * a * ((a - 1) + (a + 1) * cw),
             a * ((a + 1) + (a - 1) * cw - s)]
        den = [(a + 1) - (a - 1) * cw + s, 2 * ((a - 1) - (a + 1) * cw), (a + 1) - (a - 1) * cw - s]
    else:
        b = [a * ((a + 1) - (a - 1) * cw + s), 2 * a * ((a - 1) - (a + 1) * cw),
             a * ((a + 1) - (a - 1) * cw - s)]
        den = [(a + 1) + (a - 1) * cw + s, -2 * ((a - 1) + (a + 1) * cw), (a + 1) + (a - 1) * cw - s]
    return np.array([[*(np.array(b) / den[0]), 1.0, den[1] / den[0], den[2] / den[0]]])
