"""The fixed development set: deterministic noisy/clean pairs built from the DEV data of ``../shared``.

This set is what the leaderboard and the model cards report on. How it is built
(:func:`build_devset`, version :data:`DEVSET_VERSION`):

- **Speech**: every file of ``data/speech/dev/it`` (45 Italian IVR prompts, male voice, never used
  for training) and ``data/speech/ext`` (7 CMU ARCTIC + 3 LibriSpeech English utterances), sorted by
  path. Item ``k`` uses file ``order[k]``, where ``order`` concatenates seeded permutations of all
  files, so each file is used ``n / files`` times (about twice for ``n = 100``).
- **Length**: drawn uniformly in ``segment_seconds`` (2-5 s). A longer utterance is cropped around a
  randomly drawn active frame; a shorter one sets the length to ``max(low, utterance + 0.4 s)``
  (capped by the draw) and is zero-padded at a random offset.
- **Noise**: with probability 0.25 synthetic noise (coloured 1/f^beta noise, mains hum with
  harmonics, babble of 3-6 other dev utterances, or mixtures of these), otherwise a random crop of a
  DEV noise recording of ``data/noise/dev`` (running tap, humpback whale + sea, freesound 573577),
  drawn with probability ~ ``min(length, n)`` (so the three recordings get about equal shares), to
  which a weak synthetic component is added with probability 0.15. Noise is DC-removed and
  high-passed at 20 Hz (zero-phase, 2nd-order) before anything is measured (FIELD_NOTES: DC and
  rumble make an SNR meaningless).
- **SNR**: stratified over ``snr_db`` (item ``k`` gets the SNR of stratum ``p[k]`` of ``n`` equal
  strata, jittered inside it; ``p`` a seeded permutation), measured as active-speech power (20 ms
  frames within 40 dB of the loudest) over noise power on the whole item.
- **Level**: noisy RMS uniform in -35..-15 dBFS, the clean scaled by the same gain; both scaled down
  together if a peak exceeds 0.99. No reverberation, band-limiting or EQ.
- **Output**: ``out_dir/noisy/NNNN.wav`` and ``out_dir/clean/NNNN.wav`` (16 kHz, PCM_16),
  ``out_dir/manifest.csv`` (``noisy,clean,snr_db,noise,speech,level_db,seconds``; paths relative to
  ``out_dir``) and ``out_dir/devset.json`` (the parameters, the source files with their sizes and
  the SHA-256 of the manifest), written last: its presence marks a complete set.

Every random draw comes from ``numpy.random.default_rng([seed, k])`` for item ``k``, so the set is
the same bytes on every build with the same numpy/scipy (tested by building twice). A call with the
same parameters on a complete set returns it without rebuilding. Changing the recipe in
:mod:`denoisezoo.datasets.mixing` changes this set: bump :data:`DEVSET_VERSION` when that happens.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import logging
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from denoisezoo.audio import write_audio
from denoisezoo.datasets.corpus import AudioCorpus, CorpusError, list_audio_files
from denoisezoo.datasets.mixing import Mixer

__all__ = ["build_devset", "DEVSET_VERSION", "devset_sources", "add_data_arguments", "data_spec"]

_log = logging.getLogger(__name__)

DEVSET_VERSION = 1
_SYNTHETIC_PROB = 0.25
_LEVEL_DB = (-35.0, -15.0)
_COLUMNS = ("noisy", "clean", "snr_db", "noise", "speech", "level_db", "seconds")
_ITEM = re.compile(r"^\d{4,}\.wav$")


def devset_sources(shared_root: str | Path) -> tuple[list[Path], list[Path]]:
    """Speech and noise files the development set is built from (sorted)."""
    root = Path(shared_root) / "data"
    speech_dirs = [root / "speech" / "dev" / "it", root / "speech" / "ext"]
    noise_dirs = [root / "noise" / "dev"]
    for d in speech_dirs + noise_dirs:
        if not d.is_dir():
            raise CorpusError(f"{d}: missing (is shared_root the ../shared data folder?)")
    return list_audio_files(speech_dirs), list_audio_files(noise_dirs)


def _params(shared_root: Path, n: int, seed: int, segment_seconds: Sequence[float],
            snr_db: Sequence[float], sample_rate: int) -> dict[str, Any]:
    speech, noise = devset_sources(shared_root)
    return {
        "format": "denoisezoo-devset",
        "version": DEVSET_VERSION,
        "n": int(n),
        "seed": int(seed),
        "segment_seconds": [float(x) for x in segment_seconds],
        "snr_db": [float(x) for x in snr_db],
        "sample_rate": int(sample_rate),
        "synthetic_noise_prob": _SYNTHETIC_PROB,
        "level_db": list(_LEVEL_DB),
        "sources": {str(p.relative_to(shared_root)): p.stat().st_size for p in speech + noise},
    }


def _complete(out_dir: Path, params: dict[str, Any]) -> bool:
    meta = out_dir / "devset.json"
    manifest = out_dir / "manifest.csv"
    if not (meta.is_file() and manifest.is_file()):
        return False
    try:
        stored = json.loads(meta.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    if stored.get("params") != params:
        return False
    if hashlib.sha256(manifest.read_bytes()).hexdigest() != stored.get("manifest_sha256"):
        return False
    with manifest.open(newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    return len(rows) == params["n"] and all(
        (out_dir / r["noisy"]).is_file() and (out_dir / r["clean"]).is_file() for r in rows)


def _clear(out_dir: Path) -> None:
    """Remove what an earlier build wrote (only our own file names)."""
    for name in ("devset.json", "manifest.csv"):
        (out_dir / name).unlink(missing_ok=True)
    for sub in ("noisy", "clean"):
        d = out_dir / sub
        if d.is_dir():
            for p in d.iterdir():
                if p.is_file() and _ITEM.match(p.name):
                    p.unlink()


def build_devset(shared_root: Path, out_dir: Path, n: int = 100, seed: int = 1234,
                 segment_seconds: tuple[float, float] = (2.0, 5.0),
                 snr_db: tuple[float, float] = (-5.0, 20.0), sample_rate: int = 16000) -> Path:
    """Write (or reuse) the fixed development set; returns ``out_dir``. See the module docstring.

    Raises:
        CorpusError: the DEV folders of ``shared_root`` are missing.
        ValueError: bad ``n`` or ranges.
    """
    shared_root, out_dir = Path(shared_root), Path(out_dir)
    lo, hi = float(segment_seconds[0]), float(segment_seconds[1])
    if n <= 0 or not 0 < lo <= hi or snr_db[0] > snr_db[1]:
        raise ValueError(f"need n > 0, 0 < segment low <= high, snr low <= high; found n={n}, "
                         f"segment_seconds={segment_seconds}, snr_db={snr_db}")
    params = _params(shared_root, n, seed, segment_seconds, snr_db, sample_rate)
    if _complete(out_dir, params):
        _log.info("%s: development set complete, reused", out_dir)
        return out_dir
    _clear(out_dir)
    speech_files, noise_files = devset_sources(shared_root)
    mixer = Mixer(AudioCorpus(speech_files, sample_rate, name="dev speech", threads=1),
                  AudioCorpus(noise_files, sample_rate, highpass_hz=20.0, name="dev noise",
                              threads=1),
                  AudioCorpus([], sample_rate, name="rir"), sample_rate=sample_rate,
                  snr_db=snr_db, level_db=_LEVEL_DB, synthetic_noise_prob=_SYNTHETIC_PROB,
                  rir_prob=0.0, bandlimit_prob=0.0, eq_prob=0.0).load()
    if len(mixer.speech) != len(speech_files) or len(mixer.noise) != len(noise_files):
        raise CorpusError(f"{shared_root}: some DEV files could not be decoded (see the log)")
    files = len(mixer.speech)
    top = np.random.default_rng([seed, 0x646576])  # "dev"
    order = np.concatenate([top.permutation(files) for _ in range(-(-n // files))])[:n]
    strata = top.permutation(n)
    (out_dir / "noisy").mkdir(parents=True, exist_ok=True)
    (out_dir / "clean").mkdir(parents=True, exist_ok=True)
    rows: list[dict[str, str]] = []
    for k in range(n):
        rng = np.random.default_rng([seed, k])
        j = int(order[k])
        utt = int(mixer.speech.lengths[j])
        seconds = float(rng.uniform(lo, hi))
        m = int(round(seconds * sample_rate))
        m = min(m, max(int(lo * sample_rate), utt + int(0.4 * sample_rate)))
        snr = snr_db[0] + (snr_db[1] - snr_db[0]) * (strata[k] + rng.random()) / n
        noisy, clean, info = mixer.mix(rng, m, speech_index=j, snr_db=float(snr))
        name = f"{k:04d}.wav"
        write_audio(out_dir / "noisy" / name, noisy, sample_rate, subtype="PCM_16", overwrite=True)
        write_audio(out_dir / "clean" / name, clean, sample_rate, subtype="PCM_16", overwrite=True)
        rows.append({"noisy": f"noisy/{name}", "clean": f"clean/{name}",
                     "snr_db": f"{info['snr_db']:.3f}", "noise": info["noise"],
                     "speech": info["speech"], "level_db": f"{info['level_db']:.3f}",
                     "seconds": f"{m / sample_rate:.4f}"})
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=_COLUMNS, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    manifest = buf.getvalue().encode("utf-8")
    (out_dir / "manifest.csv").write_bytes(manifest)
    meta = {"params": params, "manifest_sha256": hashlib.sha256(manifest).hexdigest()}
    (out_dir / "devset.json").write_text(json.dumps(meta, indent=1, sort_keys=True) + "\n",
                                         encoding="utf-8")
    _log.info("%s: development set of %d pairs written", out_dir, n)
    return out_dir


def add_data_arguments(parser: Any, shared: Path) -> None:
    """Add the scoring-data options shared by the benchmark scripts to an ``argparse`` parser:
    ``--data SPEC``, ``--shared DIR`` (default ``shared``), ``--devset-dir``, ``--limit``, ``--workers``."""
    parser.add_argument("--data", default=None, help="data SPEC (default: the dev set from --shared)")
    parser.add_argument("--shared", type=Path, default=shared, help="the shared data folder")
    parser.add_argument("--devset-dir", type=Path, default=Path.home() / ".cache/denoisezoo/devset",
                        help="where the dev set is built (never inside the repo)")
    parser.add_argument("--limit", type=int, default=None, help="only the first N pairs")
    parser.add_argument("--workers", type=int, default=1, help="scoring processes")


def data_spec(args: Any) -> tuple[str, str]:
    """``(data SPEC, description)`` from :func:`add_data_arguments` options: ``--data`` as given,
    or the default development set, built on first use."""
    if args.data:
        return str(args.data), str(args.data)
    return str(build_devset(args.shared, args.devset_dir)), "devset (100 pairs)"
