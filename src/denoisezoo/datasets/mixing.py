"""On-the-fly mixing of clean speech, noise and room responses (dynamic mixing).

One mixture of ``n`` samples is made by :meth:`Mixer.mix` from a ``numpy.random.Generator``:

1. **Speech**: with probability ``speed_prob`` (default 0) the speech is speed-perturbed by a
   factor drawn in ``speed_range`` (:func:`synth.change_speed`: new pitch and formants, i.e. new
   voices from few speakers), by cropping ``ceil(n * factor)`` samples and resampling them to ``n``.
   A file is drawn with probability proportional to ``min(length, n)``. From a file
   longer than ``n``, a crop of ``n`` samples is taken around a randomly drawn *active* 20 ms frame
   (within 30 dB of the file's loudest), and re-drawn (up to 8 times) if still near-silent (power
   more than 20 dB below the file's, or below -70 dBFS). A file shorter than ``n`` is zero-padded at
   a random offset or, with probability 1/2, followed after a 50-500 ms gap by a crop of a second
   file (the pair placed at a random offset).
2. **Noise**: with probability ``synthetic_noise_prob`` (always, when no noise files are given)
   synthetic noise: coloured Gaussian noise (1/f^beta, beta in [0, 2]: white to brown), mains hum at
   50/60 Hz with harmonics, babble (3-6 other speech files of the corpus, each at unit power,
   summed), or coloured noise plus hum / babble. Otherwise a random crop of a real noise file (looped
   from a random start if shorter), to which a weak synthetic component (-20..-5 dB) is added with
   probability 0.15. Noise corpora are DC-removed and high-passed at 20 Hz when cached, so the SNR
   is not dominated by rumble (FIELD_NOTES). With probability ``transient_prob`` (default 0) bursty
   broadband noise (:func:`synth.transient_noise`: knocks, clicks, clatter) is added at -10..+10 dB
   relative to that noise, the one family the stationary synthetic noises do not cover.
3. **Room** (probability ``rir_prob``): a measured RIR (aligned on its direct-path peak) or a cheap
   statistical one (:func:`synth.simulate_rir`). The mixture carries the fully reverberant speech;
   the *target* is the early-reverberant speech (direct path + first 50 ms), time-aligned.
4. **Channel** (probabilities ``bandlimit_prob`` and ``eq_prob``): an 8th-order Butterworth
   low-pass at 4-7.5 kHz and/or 1-2 gentle biquads (peaking or shelf, +-6 dB). The channel is applied
   identically to speech, target and noise, i.e. to the whole microphone signal: the clean target
   carries the same channel colouring and bandwidth as the speech in the input, so the model learns
   to remove noise, not to re-equalise or invent missing bandwidth.
5. **SNR** drawn uniformly in ``snr_db``: ``10 log10(P_speech / P_noise)`` where ``P_speech`` is
   the mean power of the *active* 20 ms frames (within 40 dB of the loudest frame) of the speech
   component of the mixture (after room and channel) and ``P_noise`` the mean power of the noise
   over the whole segment (after channel).
6. **Level**: noisy and clean are scaled by one gain so that the noisy RMS is drawn uniformly in
   ``level_db`` dBFS; then, if the peak of either exceeds 0.99, both are scaled down equally.

All steps are vectorised numpy/scipy (no per-sample Python loops).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from scipy.signal import sosfilt
from torch.utils.data import Dataset, Sampler

from denoisezoo.datasets import synth
from denoisezoo.datasets.corpus import AudioCorpus, CorpusError

__all__ = ["Mixer", "DynamicMixDataset", "EpochSampler", "item_rng"]

_SYNTH_KINDS = ("colored", "hum", "colored+hum", "babble", "babble+colored")
_SYNTH_P = np.array([0.35, 0.10, 0.15, 0.25, 0.15])
_REAL_PLUS_SYNTH_PROB = 0.15
_CONCAT_PROB = 0.5
_SIM_RIR_FRACTION = 0.5  # when measured RIRs are given: share of simulated ones
_TAG_ITEM = 0x6D6978  # "mix": separates item streams from other uses of the same seed
_TAG_ORDER = 0x6F7264  # "ord"


def item_rng(seed: int, epoch: int, index: int) -> np.random.Generator:
    """The generator of item ``index`` in ``epoch`` (a pure function of its arguments)."""
    return np.random.default_rng([_TAG_ITEM, int(seed), int(epoch), int(index)])


def _check_range(name: str, r: Sequence[float]) -> tuple[float, float]:
    if len(r) != 2 or float(r[0]) > float(r[1]):
        raise ValueError(f"{name} must be a (low, high) pair with low <= high, found {r!r}")
    return float(r[0]), float(r[1])


def _add_relative(base: np.ndarray, extra: np.ndarray, rel_db: float) -> np.ndarray:
    """``base + extra`` with ``extra`` (unit power) scaled to ``rel_db`` dB relative to ``base``'s power."""
    p = float(np.mean(np.square(base, dtype=np.float64)))
    return base + extra * np.float32(10.0 ** (rel_db / 20.0) * np.sqrt(max(p, 1e-12)))


def _check_prob(name: str, p: float) -> float:
    if not 0.0 <= float(p) <= 1.0:
        raise ValueError(f"{name} must be in [0, 1], found {p}")
    return float(p)


class Mixer:
    """Makes mixtures from speech / noise / RIR corpora (see the module docstring for the recipe).

    Args:
        speech, noise, rir: :class:`AudioCorpus` objects (``noise`` and ``rir`` may be empty).
        sample_rate: must equal the corpora's rate.
        snr_db, level_db: uniform ranges (dB, dBFS RMS of the noisy signal).
        synthetic_noise_prob, rir_prob, bandlimit_prob, eq_prob: probabilities per mixture.
        transient_prob: probability of adding bursty noise (:func:`synth.transient_noise`, -10..+10 dB
            relative to the noise) to a mixture's noise; at 0 no random number is drawn for it, so
            the mixtures of existing recipes are unchanged.
        speed_prob, speed_range: probability and factor range of speed perturbation of the speech
            (:func:`synth.change_speed`); at ``speed_prob=0`` no random number is drawn for it.
    """

    def __init__(self, speech: AudioCorpus, noise: AudioCorpus, rir: AudioCorpus,
                 sample_rate: int = 16000, snr_db: Sequence[float] = (-5.0, 20.0),
                 level_db: Sequence[float] = (-35.0, -15.0), synthetic_noise_prob: float = 0.3,
                 rir_prob: float = 0.0, bandlimit_prob: float = 0.2, eq_prob: float = 0.2,
                 transient_prob: float = 0.0, speed_prob: float = 0.0,
                 speed_range: Sequence[float] = (0.9, 1.1)):
        self.speech, self.noise, self.rir = speech, noise, rir
        self.sample_rate = int(sample_rate)
        self.snr_db = _check_range("snr_db", snr_db)
        self.level_db = _check_range("level_db", level_db)
        self.synthetic_noise_prob = _check_prob("synthetic_noise_prob", synthetic_noise_prob)
        self.rir_prob = _check_prob("rir_prob", rir_prob)
        self.bandlimit_prob = _check_prob("bandlimit_prob", bandlimit_prob)
        self.eq_prob = _check_prob("eq_prob", eq_prob)
        self.transient_prob = _check_prob("transient_prob", transient_prob)
        self.speed_prob = _check_prob("speed_prob", speed_prob)
        self.speed_range = _check_range("speed_range", speed_range)
        if self.speed_range[0] <= 0:
            raise ValueError(f"speed_range must be positive, found {speed_range!r}")
        self._ready = False
        self._lowpass_bank: list[np.ndarray] = []
        self._rirs: list[np.ndarray] = []
        self._cdf: dict[tuple[str, int], np.ndarray] = {}
        self._active: list[np.ndarray] = []
        self._frame = int(round(synth.FRAME_SECONDS * self.sample_rate))

    # ---------------------------------------------------------------- setup
    def load(self) -> Mixer:
        """Decode the corpora and precompute tables (idempotent). Call before forking workers."""
        if self._ready:
            return self
        for c in (self.speech, self.noise, self.rir):
            c.load()
        if len(self.speech) == 0:
            raise CorpusError(f"no decodable speech files in {self.speech.entries!r}")
        self._active = [self._active_frames(self.speech.get(j)) for j in range(len(self.speech))]
        self._rirs = [synth.prepare_rir(self.rir.get(k), self.sample_rate)
                      for k in range(len(self.rir))]
        cut = np.arange(4000.0, 7501.0, 250.0)
        cut = cut[cut < 0.47 * self.sample_rate]
        self._lowpass_bank = [synth.lowpass_sos(float(c), self.sample_rate) for c in cut]
        self._ready = True
        return self

    def _active_frames(self, x: np.ndarray) -> np.ndarray:
        """Start samples of the 20 ms frames of ``x`` within 30 dB of its loudest frame."""
        f = self._frame
        m = x.shape[0] // f
        if m == 0:
            return np.zeros(1, np.int32)
        p = np.mean(np.square(x[:m * f].reshape(m, f), dtype=np.float64), axis=1)
        return (np.flatnonzero(p >= max(float(p.max()) * 1e-3, 1e-10)) * f).astype(np.int32)

    def _pick(self, which: str, rng: np.random.Generator, n: int) -> int:
        """Draw a file with probability ~ min(length, n): long files do not dominate."""
        key = (which, n)
        cdf = self._cdf.get(key)
        if cdf is None:
            lengths = (self.speech if which == "speech" else self.noise).lengths
            cdf = self._cdf[key] = np.cumsum(np.minimum(lengths, n).astype(np.float64))
        return int(min(np.searchsorted(cdf, rng.random() * cdf[-1], side="right"), len(cdf) - 1))

    # ---------------------------------------------------------------- speech
    def _speech(self, rng: np.random.Generator, n: int, index: int | None = None,
                ) -> tuple[np.ndarray, list[str], int]:
        c = self.speech
        x = np.zeros(n, np.float32)
        names: list[str] = []
        j = 0
        for _ in range(8):
            j = self._pick("speech", rng, n) if index is None else index
            length = int(c.lengths[j])
            if length >= n:
                # centre the draw on an active frame, so most crops hold speech
                act = self._active[j]
                a = int(act[int(rng.integers(0, act.shape[0]))])
                lo, hi = max(0, a + self._frame - n), min(a, length - n)
                start = int(rng.integers(lo, max(lo, hi) + 1))
                x = c.segment(j, start, n)
                p = float(np.mean(np.square(x, dtype=np.float64)))
                names = [c.paths[j].name]
                if p >= max(1e-7, 0.01 * float(c.rms[j]) ** 2):
                    break
                continue
            first = c.get(j)
            names = [c.paths[j].name]
            pieces = [(0, first)]
            used = length
            if index is None and len(c) > 1 and rng.random() < _CONCAT_PROB:
                gap = int(rng.uniform(0.05, 0.5) * self.sample_rate)
                room = n - length - gap
                if room >= int(0.25 * self.sample_rate):
                    j2 = self._pick("speech", rng, n)
                    l2 = int(c.lengths[j2])
                    take = min(l2, room)
                    s2 = int(rng.integers(0, l2 - take + 1))
                    pieces.append((length + gap, c.segment(j2, s2, take)))
                    names.append(c.paths[j2].name)
                    used = length + gap + take
            off = int(rng.integers(0, n - used + 1))
            x = np.zeros(n, np.float32)
            for pos, seg in pieces:
                x[off + pos:off + pos + seg.shape[0]] = seg
            if float(np.max(np.abs(x))) > 3e-4:
                break
        return x, names, j

    # ---------------------------------------------------------------- noise
    def _babble(self, rng: np.random.Generator, n: int, exclude: int = -1) -> np.ndarray:
        c = self.speech
        talkers = int(rng.integers(3, 7))
        out = np.zeros(n, np.float32)
        for _ in range(talkers):
            j = int(rng.integers(0, len(c)))
            if j == exclude and len(c) > 1:
                j = (j + 1) % len(c)
            seg = c.looped(j, int(rng.integers(0, int(c.lengths[j]))), n)
            out += seg / max(float(c.rms[j]), 1e-6)
        return out

    def _synthetic(self, rng: np.random.Generator, n: int, kind: str, exclude: int = -1,
                   ) -> np.ndarray:
        sr = self.sample_rate
        if kind in ("colored", "hum", "colored+hum"):
            return synth.synthetic_spectrum_noise(rng, n, sr, kind)
        b = self._babble(rng, n, exclude)
        if kind == "babble":
            return b
        col = synth.synthetic_spectrum_noise(rng, n, sr, "colored")
        return _add_relative(b, col, float(rng.uniform(-15.0, 5.0)))

    def _noise(self, rng: np.random.Generator, n: int, exclude: int = -1,
               ) -> tuple[np.ndarray, str]:
        has_real = len(self.noise) > 0
        if not has_real or rng.random() < self.synthetic_noise_prob:
            kind = _SYNTH_KINDS[int(np.searchsorted(np.cumsum(_SYNTH_P), rng.random() * _SYNTH_P.sum()))]
            return self._synthetic(rng, n, kind, exclude), f"synthetic:{kind}"
        c = self.noise
        j = self._pick("noise", rng, n)
        length = int(c.lengths[j])
        start = int(rng.integers(0, length - n + 1)) if length >= n else int(rng.integers(0, length))
        v = c.segment(j, start, n) if length >= n else c.looped(j, start, n)
        name = c.paths[j].name
        if rng.random() < _REAL_PLUS_SYNTH_PROB:
            kind = ("colored", "hum")[int(rng.random() < 0.3)]
            extra = synth.synthetic_spectrum_noise(rng, n, self.sample_rate, kind)
            pv = float(np.mean(np.square(v, dtype=np.float64)))
            v = v + extra * np.float32(10.0 ** (rng.uniform(-20.0, -5.0) / 20.0) * np.sqrt(pv))
            name += f"+synthetic:{kind}"
        return v, name

    # ---------------------------------------------------------------- mixture
    def mix(self, rng: np.random.Generator, n: int, speech_index: int | None = None,
            snr_db: float | None = None) -> tuple[np.ndarray, np.ndarray, dict[str, Any]]:
        """One mixture: ``(noisy (n,), clean (n,), info)`` float32; ``info`` describes the draw.

        ``speech_index`` forces the speech file (no second prompt is appended); ``snr_db`` forces
        the SNR instead of drawing it from the range.
        """
        self.load()
        sr = self.sample_rate
        if speech_index is not None and not 0 <= speech_index < len(self.speech):
            raise IndexError(f"speech_index {speech_index} out of range ({len(self.speech)} files)")
        speed = 1.0
        if self.speed_prob > 0 and rng.random() < self.speed_prob:
            speed = round(float(rng.uniform(*self.speed_range)), 2)
        speech, names, j = self._speech(rng, int(np.ceil(n * speed)), speech_index)
        if speed != 1.0:
            speech = synth.change_speed(speech, speed, n)
        noise, noise_name = self._noise(rng, n, exclude=j)
        if self.transient_prob > 0 and rng.random() < self.transient_prob:
            rel_db = float(rng.uniform(-10.0, 10.0))
            noise = _add_relative(noise, synth.transient_noise(rng, n, sr), rel_db)
            noise_name += "+transient"
        info: dict[str, Any] = {"speech": "+".join(names), "noise": noise_name}
        if speed != 1.0:
            info["speed"] = speed

        rev, target = speech, speech
        if self.rir_prob > 0 and rng.random() < self.rir_prob:
            if self._rirs and (rng.random() >= _SIM_RIR_FRACTION):
                k = int(rng.integers(0, len(self._rirs)))
                h, info["rir"] = self._rirs[k], self.rir.paths[k].name
            else:
                h, info["rir"] = synth.simulate_rir(rng, sr), "simulated"
            rev, target = synth.convolve_rir(speech, h, sr)

        sos: list[np.ndarray] = []
        if self._lowpass_bank and rng.random() < self.bandlimit_prob:
            k = int(rng.integers(0, len(self._lowpass_bank)))
            sos.append(self._lowpass_bank[k])
            info["lowpass_hz"] = 4000.0 + 250.0 * k
        if rng.random() < self.eq_prob:
            eqs = []
            for _ in range(int(rng.integers(1, 3))):
                g = float(rng.uniform(-6.0, 6.0))
                kind = int(rng.integers(0, 3))
                if kind == 0:
                    f0 = float(np.exp(rng.uniform(np.log(100.0), np.log(0.4 * sr))))
                    sos.append(synth.peaking_sos(f0, g, float(rng.uniform(0.5, 2.0)), sr))
                else:
                    f0 = float(rng.uniform(100.0, 400.0) if kind == 1 else rng.uniform(2000.0, 5000.0))
                    sos.append(synth.shelf_sos(f0, g, sr, high=kind == 2))
                eqs.append(("peak", "lowshelf", "highshelf")[kind] + f"@{f0:.0f}Hz{g:+.1f}dB")
            info["eq"] = ",".join(eqs)
        if sos:
            stack = np.stack([rev, noise] if target is rev else [rev, target, noise])
            out = sosfilt(np.concatenate(sos), stack, axis=-1).astype(np.float32)
            if target is rev:
                rev = target = out[0]
                noise = out[1]
            else:
                rev, target, noise = out[0], out[1], out[2]

        snr = float(rng.uniform(*self.snr_db)) if snr_db is None else float(snr_db)
        p_s = synth.active_power(rev, sr)
        p_n = float(np.mean(np.square(noise, dtype=np.float64)))
        if p_n < 1e-14:  # silent noise crop: fall back to white noise
            noise = synth.colored_noise(rng, n, sr, 0.0)
            p_n = float(np.mean(np.square(noise, dtype=np.float64)))
            info["noise"] += "(silent->white)"
        if p_s > 0:
            noise = noise * np.float32(np.sqrt(p_s / (p_n * 10.0 ** (snr / 10.0))))
        noisy = rev + noise
        level = float(rng.uniform(*self.level_db))
        rms = float(np.sqrt(np.mean(np.square(noisy, dtype=np.float64))))
        gain = 10.0 ** (level / 20.0) / max(rms, 1e-9)
        peak = gain * max(float(np.max(np.abs(noisy))), float(np.max(np.abs(target))))
        if peak > 0.99:
            gain *= 0.99 / peak
        info.update(snr_db=snr, level_db=level, gain=gain)
        g = np.float32(gain)
        return noisy * g, target * g, info


class DynamicMixDataset(Dataset):
    """Map-style dataset of on-the-fly mixtures; item i of epoch e is deterministic given (seed, epoch, i).

    Args:
        speech, noise, rir: audio files, folders (recursive) or manifests; resampled to
            ``sample_rate``. ``noise`` may be empty (synthetic noise only).
        segment_seconds: length of every item.
        length: number of items per epoch.
        snr_db, level_db, synthetic_noise_prob, rir_prob, bandlimit_prob, eq_prob, transient_prob,
        speed_prob, speed_range: see :class:`Mixer`.
        seed: base seed.
        deterministic: if True the epoch is ignored: a fixed set (validation).

    Items are ``(noisy (N,), clean (N,))`` float32 tensors, ``N = round(segment_seconds * sr)``.
    ``dataset[i]`` uses the epoch set by :meth:`set_epoch`; ``dataset[(epoch, i)]`` names it
    explicitly (what :class:`EpochSampler` yields, so persistent workers follow the epoch).
    Corpora are decoded on first access; call :meth:`preload` in the main process before workers
    are forked so they share the cache.

    >>> import tempfile, numpy as np, soundfile as sf
    >>> folder = tempfile.mkdtemp()
    >>> sf.write(f"{folder}/a.wav", 0.1 * np.sin(np.arange(16000) / 5.0), 16000)
    >>> ds = DynamicMixDataset([folder], [], segment_seconds=0.5, length=8)  # synthetic noise only
    >>> noisy, clean = ds[3]
    >>> noisy.shape, clean.dtype
    (torch.Size([8000]), torch.float32)
    """

    def __init__(self, speech: Sequence[str | Path], noise: Sequence[str | Path],
                 rir: Sequence[str | Path] = (), sample_rate: int = 16000,
                 segment_seconds: float = 4.0, length: int = 10000,
                 snr_db: tuple[float, float] = (-5.0, 20.0),
                 level_db: tuple[float, float] = (-35.0, -15.0),
                 synthetic_noise_prob: float = 0.3, rir_prob: float = 0.0,
                 bandlimit_prob: float = 0.2, eq_prob: float = 0.2, seed: int = 0,
                 deterministic: bool = False, transient_prob: float = 0.0,
                 speed_prob: float = 0.0, speed_range: tuple[float, float] = (0.9, 1.1)):
        if isinstance(speech, (str, Path)) or isinstance(noise, (str, Path)) or isinstance(
                rir, (str, Path)):
            raise TypeError("speech, noise and rir must be sequences of paths, not one path")
        if segment_seconds <= 0:
            raise ValueError(f"segment_seconds must be > 0, found {segment_seconds}")
        if length <= 0:
            raise ValueError(f"length must be > 0, found {length}")
        if seed < 0:
            raise ValueError(f"seed must be >= 0, found {seed}")
        self.sample_rate = int(sample_rate)
        self.segment_samples = int(round(segment_seconds * sample_rate))
        self.length = int(length)
        self.seed = int(seed)
        self.deterministic = bool(deterministic)
        self.epoch = 0
        self.mixer = Mixer(
            AudioCorpus(speech, sample_rate, min_seconds=0.1, name="speech"),
            AudioCorpus(noise, sample_rate, min_seconds=0.05, highpass_hz=20.0, name="noise"),
            AudioCorpus(rir, sample_rate, min_seconds=0.001, name="rir"),
            sample_rate=sample_rate, snr_db=snr_db, level_db=level_db,
            synthetic_noise_prob=synthetic_noise_prob, rir_prob=rir_prob,
            bandlimit_prob=bandlimit_prob, eq_prob=eq_prob, transient_prob=transient_prob,
            speed_prob=speed_prob, speed_range=speed_range)

    def preload(self) -> DynamicMixDataset:
        """Decode all corpora now (else on first item)."""
        self.mixer.load()
        return self

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def __len__(self) -> int:
        return self.length

    def _resolve(self, index: int | tuple[int, int]) -> tuple[int, int]:
        if isinstance(index, (tuple, list)):
            epoch, i = int(index[0]), int(index[1])
        else:
            epoch, i = self.epoch, int(index)
        if not -self.length <= i < self.length:
            raise IndexError(f"index {i} out of range for {self.length} items")
        return (0 if self.deterministic else epoch), i % self.length

    def example(self, index: int | tuple[int, int],
                ) -> tuple[np.ndarray, np.ndarray, dict[str, Any]]:
        """``(noisy, clean, info)`` as numpy arrays plus a description of the draw."""
        epoch, i = self._resolve(index)
        return self.mixer.mix(item_rng(self.seed, epoch, i), self.segment_samples)

    def __getitem__(self, index: int | tuple[int, int]) -> tuple[torch.Tensor, torch.Tensor]:
        noisy, clean, _ = self.example(index)
        return torch.from_numpy(noisy), torch.from_numpy(clean)


class EpochSampler(Sampler):
    """Seeded per-epoch permutation yielding ``(epoch, index)`` pairs for :class:`DynamicMixDataset`.

    Lightning calls :meth:`set_epoch` each epoch (also through its distributed sampler wrapper), so
    the order and the content of every item are functions of ``(seed, epoch)`` only, also with
    persistent workers. :meth:`skip_to` resumes inside an epoch: the first ``start`` items of that
    epoch (only) are skipped.
    """

    def __init__(self, length: int, seed: int = 0, shuffle: bool = True):
        self.length, self.seed, self.shuffle = int(length), int(seed), bool(shuffle)
        self.epoch = 0
        self._skip: dict[int, int] = {}

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def skip_to(self, epoch: int, start: int) -> None:
        """In ``epoch``, start at position ``start`` of its order (mid-epoch resume)."""
        if not 0 <= start <= self.length:
            raise ValueError(f"start must be in [0, {self.length}], found {start}")
        self._skip = {int(epoch): int(start)}

    def order(self, epoch: int) -> np.ndarray:
        """The item indices of ``epoch`` in the order they are yielded (before any skip)."""
        if not self.shuffle:
            return np.arange(self.length)
        return np.random.default_rng([_TAG_ORDER, self.seed, int(epoch)]).permutation(self.length)

    def __iter__(self):
        e = self.epoch
        for i in self.order(e)[self._skip.get(e, 0):]:
            yield (e, int(i))

    def __len__(self) -> int:
        return self.length - self._skip.get(self.epoch, 0)
