"""Fixed noisy/clean pairs and the readers of public corpus layouts.

Readers return sorted lists of ``(noisy, clean)`` paths (pairs) or folder lists (training corpora):

- :func:`voicebank_pairs` -- VoiceBank-DEMAND (Valentini): ``noisy_<split>set*_wav*/`` and
  ``clean_<split>set*_wav*/`` with the same file names (``split`` is ``train`` or ``test``; the
  ``28spk``/``56spk`` and ``_16k`` variants are found too).
- :func:`dns_test_pairs` -- DNS Challenge synthetic test sets: ``noisy/`` and ``clean/`` whose files
  share a ``fileid_<n>`` (``book_..._fileid_12.wav`` / ``clean_fileid_12.wav``).
- :func:`folder_pairs` -- any ``noisy/`` + ``clean/`` folders with identical relative names (also the
  development set written by :mod:`denoisezoo.datasets.devset`).
- :func:`csv_pairs` -- CSV manifests with ``noisy`` and ``clean`` columns (relative paths are taken
  relative to the manifest).
- :func:`find_pairs` -- auto-detects any of the above from one path.
- :func:`dns_training_dirs` -- DNS training layout: ``clean/``, ``noise/`` and (optional)
  ``impulse_responses/`` folders (also under ``datasets/`` or ``datasets_fullband/`` with
  ``clean_fullband``/``noise_fullband`` names), for :class:`~denoisezoo.datasets.DynamicMixDataset`.

:class:`PairedDataset` serves such pairs as ``(noisy (N,), clean (N,))`` float32 tensors, resampled.
"""

from __future__ import annotations

import csv
import logging
import re
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset

from denoisezoo.audio import AudioError, audio_info, read_audio
from denoisezoo.datasets.corpus import CorpusError, list_audio_files
from denoisezoo.dsp.resample import resample

__all__ = [
    "PairedDataset",
    "csv_pairs",
    "dns_test_pairs",
    "dns_training_dirs",
    "find_pairs",
    "folder_pairs",
    "voicebank_pairs",
]

_log = logging.getLogger(__name__)
Pair = tuple[Path, Path]
_FILEID = re.compile(r"fileid_(\d+)", re.IGNORECASE)


def _by_relative_name(root: Path) -> dict[str, Path]:
    return {str(p.relative_to(root).with_suffix("")): p for p in list_audio_files([root])}


def folder_pairs(noisy_dir: str | Path, clean_dir: str | Path) -> list[Pair]:
    """Pairs of files with the same relative name (extension ignored) in two folders.

    Unmatched files are logged (WARNING) and left out.
    """
    noisy_dir, clean_dir = Path(noisy_dir), Path(clean_dir)
    noisy, clean = _by_relative_name(noisy_dir), _by_relative_name(clean_dir)
    common = sorted(set(noisy) & set(clean))
    missing = len(noisy) + len(clean) - 2 * len(common)
    if missing:
        _log.warning("%s | %s: %d files without a partner left out", noisy_dir, clean_dir, missing)
    return [(noisy[k], clean[k]) for k in common]


def voicebank_pairs(root: str | Path, split: str = "test") -> list[Pair]:
    """VoiceBank-DEMAND pairs of ``split`` (``"train"`` or ``"test"``) under ``root``.

    Raises:
        CorpusError: no ``noisy_<split>set*wav*`` / ``clean_<split>set*wav*`` folders found.
    """
    if split not in ("train", "test"):
        raise ValueError(f"split must be 'train' or 'test', found {split!r}")
    root = Path(root)
    pairs: list[Pair] = []
    for noisy_dir in sorted(root.glob(f"noisy_{split}set*wav*")):
        if not noisy_dir.is_dir():
            continue
        clean_dir = root / ("clean" + noisy_dir.name[len("noisy"):])
        if clean_dir.is_dir():
            pairs += folder_pairs(noisy_dir, clean_dir)
    if not pairs:
        raise CorpusError(f"{root}: no VoiceBank-DEMAND noisy_{split}set*_wav / "
                          f"clean_{split}set*_wav folders with matching files")
    return pairs


def dns_test_pairs(root: str | Path) -> list[Pair]:
    """DNS Challenge test pairs matched by ``fileid_<n>`` from ``root/noisy`` and ``root/clean``."""
    root = Path(root)
    noisy_dir, clean_dir = root / "noisy", root / "clean"
    if not (noisy_dir.is_dir() and clean_dir.is_dir()):
        raise CorpusError(f"{root}: needs noisy/ and clean/ folders")

    def ids(folder: Path) -> dict[int, Path]:
        out: dict[int, Path] = {}
        for p in list_audio_files([folder]):
            m = _FILEID.search(p.name)
            if m:
                out[int(m.group(1))] = p
        return out

    noisy, clean = ids(noisy_dir), ids(clean_dir)
    common = sorted(set(noisy) & set(clean))
    if not common:
        raise CorpusError(f"{root}: no fileid_<n> names shared by noisy/ and clean/")
    return [(noisy[k], clean[k]) for k in common]


def csv_pairs(path: str | Path) -> list[Pair]:
    """Pairs from a CSV manifest with ``noisy`` and ``clean`` columns."""
    path = Path(path)
    out: list[Pair] = []
    with path.open(newline="", encoding="utf-8") as f:
        reader = csv.DictReader(f)
        fields = {(c or "").strip().lower(): c for c in (reader.fieldnames or [])}
        if "noisy" not in fields or "clean" not in fields:
            raise CorpusError(f"{path}: CSV manifest needs 'noisy' and 'clean' columns, found "
                              f"{list(fields)}")
        for row in reader:
            n, c = (row[fields["noisy"]] or "").strip(), (row[fields["clean"]] or "").strip()
            if n and c:
                out.append((_rel(path.parent, n), _rel(path.parent, c)))
    return out


def _rel(base: Path, value: str) -> Path:
    p = Path(value).expanduser()
    return p if p.is_absolute() else base / p


def find_pairs(path: str | Path, split: str = "test") -> list[Pair]:
    """Auto-detect: CSV manifest, VoiceBank-DEMAND root, DNS test folder or ``noisy/``+``clean/``.

    A folder holding ``manifest.csv`` with ``noisy,clean`` columns (our development set) uses it.
    """
    path = Path(path)
    if path.is_file():
        return csv_pairs(path)
    if not path.is_dir():
        raise CorpusError(f"{path}: no such file or folder")
    if (path / "manifest.csv").is_file():
        try:
            return csv_pairs(path / "manifest.csv")
        except CorpusError:
            pass
    if any(path.glob(f"noisy_{split}set*wav*")):
        return voicebank_pairs(path, split)
    if (path / "noisy").is_dir() and (path / "clean").is_dir():
        same = folder_pairs(path / "noisy", path / "clean")
        if same:
            return same
        return dns_test_pairs(path)
    raise CorpusError(f"{path}: not a pairs layout (CSV manifest, VoiceBank-DEMAND, DNS test set or "
                      "noisy/ + clean/ folders)")


def dns_training_dirs(root: str | Path) -> dict[str, list[Path]]:
    """``{"speech": [...], "noise": [...], "rir": [...]}`` folders of a DNS Challenge training tree."""
    root = Path(root)
    bases = [root, root / "datasets", root / "datasets_fullband"]
    out: dict[str, list[Path]] = {"speech": [], "noise": [], "rir": []}
    names = {"speech": ("clean", "clean_fullband"), "noise": ("noise", "noise_fullband"),
             "rir": ("impulse_responses",)}
    for key, candidates in names.items():
        for b in bases:
            for c in candidates:
                if (b / c).is_dir():
                    out[key].append(b / c)
    if not out["speech"] or not out["noise"]:
        raise CorpusError(f"{root}: no DNS clean/ and noise/ folders found")
    return out


class PairedDataset(Dataset):
    """Fixed ``(noisy, clean)`` pairs as float32 tensors at ``sample_rate``.

    Args:
        pairs: ``(noisy, clean)`` paths.
        sample_rate: output rate (files are resampled).
        segment_seconds: if given, every item is cut (from its start) or zero-padded to this length,
            so items batch together; if None items keep their own length (``variable_length``).
        cache: keep decoded audio in memory after first access (validation sets).

    Pairs whose files are missing or unreadable are logged and left out when the dataset is built
    (headers are checked); a pair that fails later at decode time is logged and replaced by silence
    of the expected length rather than crashing an epoch. Noisy and clean are cut to the shorter.
    """

    def __init__(self, pairs: Sequence[tuple[str | Path, str | Path]], sample_rate: int = 16000,
                 segment_seconds: float | None = None, cache: bool = True):
        self.sample_rate = int(sample_rate)
        self.segment_samples = (None if segment_seconds is None
                                else int(round(segment_seconds * sample_rate)))
        self.cache = bool(cache)
        self.pairs: list[Pair] = []
        self._frames: list[int] = []
        for noisy, clean in pairs:
            try:
                ni, ci = audio_info(noisy), audio_info(clean)
            except AudioError as exc:
                _log.warning("skipping pair: %s", exc)
                continue
            frames = min(ni.frames * sample_rate // ni.sample_rate,
                         ci.frames * sample_rate // ci.sample_rate)
            self.pairs.append((Path(noisy), Path(clean)))
            self._frames.append(int(frames))
        if not self.pairs:
            raise CorpusError("no readable noisy/clean pairs")
        self._cache: dict[int, tuple[np.ndarray, np.ndarray]] = {}

    @classmethod
    def from_path(cls, path: str | Path, sample_rate: int = 16000, split: str = "test",
                  **kwargs) -> PairedDataset:
        """Build from any layout :func:`find_pairs` understands."""
        return cls(find_pairs(path, split), sample_rate=sample_rate, **kwargs)

    @property
    def variable_length(self) -> bool:
        return self.segment_samples is None

    def preload(self) -> PairedDataset:
        """Decode everything now (when ``cache``)."""
        if self.cache:
            for i in range(len(self)):
                self._load(i)
        return self

    def __len__(self) -> int:
        return len(self.pairs)

    def _read(self, path: Path) -> np.ndarray:
        data, sr = read_audio(path)
        x = data.mean(axis=1) if data.shape[1] > 1 else data[:, 0]
        return resample(np.ascontiguousarray(x, np.float32), sr, self.sample_rate)

    def _load(self, i: int) -> tuple[np.ndarray, np.ndarray]:
        if i in self._cache:
            return self._cache[i]
        noisy_path, clean_path = self.pairs[i]
        try:
            noisy, clean = self._read(noisy_path), self._read(clean_path)
        except (AudioError, OSError) as exc:
            _log.warning("pair %d (%s): %s; using silence", i, noisy_path.name, exc)
            n = self._frames[i]
            noisy, clean = np.zeros(n, np.float32), np.zeros(n, np.float32)
        n = min(noisy.shape[0], clean.shape[0])
        if abs(noisy.shape[0] - clean.shape[0]) > 0.01 * n + 16:
            _log.warning("pair %s: noisy/clean lengths differ (%d vs %d), cut to the shorter",
                         noisy_path.name, noisy.shape[0], clean.shape[0])
        out = (noisy[:n], clean[:n])
        if self.cache:
            self._cache[i] = out
        return out

    def example(self, i: int) -> tuple[np.ndarray, np.ndarray]:
        noisy, clean = self._load(i)
        if self.segment_samples is not None:
            m = self.segment_samples
            if noisy.shape[0] >= m:
                noisy, clean = noisy[:m], clean[:m]
            else:
                pad = m - noisy.shape[0]
                noisy, clean = np.pad(noisy, (0, pad)), np.pad(clean, (0, pad))
        return noisy, clean

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        if not -len(self) <= i < len(self):
            raise IndexError(f"index {i} out of range for {len(self)} pairs")
        noisy, clean = self.example(i % len(self))
        return torch.from_numpy(np.ascontiguousarray(noisy)), torch.from_numpy(
            np.ascontiguousarray(clean))
