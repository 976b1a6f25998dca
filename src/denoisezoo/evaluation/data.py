"""Noisy/clean evaluation pairs: discovery from a data SPEC and validated loading.

A SPEC is one of:

* a VoiceBank-DEMAND folder: ``noisy_testset_wav/`` + ``clean_testset_wav/``, same file names;
* a DNS-Challenge test folder: ``noisy/`` + ``clean/`` with files matched by ``fileid_N``
  (``..._fileid_12.wav`` <-> ``clean_fileid_12.wav``);
* a simple folder: ``noisy/`` + ``clean/`` with the same file names;
* a CSV manifest with ``noisy,clean`` columns (and an optional ``id`` column); relative paths are
  resolved against the CSV's folder.

Discovery never fails on a single bad entry: a noisy file without its clean partner becomes a
:class:`Pair` with ``problem`` set, which evaluation reports as skipped.
"""

from __future__ import annotations

import csv
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from denoisezoo.audio import AUDIO_EXTENSIONS, AudioError, read_audio
from denoisezoo.evaluation.metrics import default_tolerance

__all__ = ["Pair", "LoadedPair", "find_pairs", "load_pair", "describe_layout"]

_LAYOUTS = (
    ("voicebank", "noisy_testset_wav", "clean_testset_wav"),
    ("folders", "noisy", "clean"),
)
_FILEID = re.compile(r"fileid_(\d+)", re.IGNORECASE)


@dataclass(frozen=True)
class Pair:
    """One noisy/clean pair. ``problem`` is set when discovery already knows it cannot be scored."""

    id: str
    noisy: Path
    clean: Path | None
    problem: str | None = None


@dataclass(frozen=True)
class LoadedPair:
    """A validated pair: mono float32 ``(N,)`` signals of equal length at ``sample_rate``."""

    id: str
    noisy: np.ndarray
    clean: np.ndarray
    sample_rate: int

    @property
    def seconds(self) -> float:
        return self.clean.shape[0] / self.sample_rate


def _audio_files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in AUDIO_EXTENSIONS)


def describe_layout(spec: str | Path) -> str:
    """Name of the layout :func:`find_pairs` would use: voicebank, dns, folders or manifest."""
    p = Path(spec)
    if p.is_file():
        return "manifest"
    for name, noisy, clean in _LAYOUTS:
        if (p / noisy).is_dir() and (p / clean).is_dir():
            if name == "folders" and _looks_like_dns(p / noisy, p / clean):
                return "dns"
            return name
    raise ValueError(f"{p}: not a data SPEC (expected a CSV manifest with noisy,clean columns, or a "
                     "folder holding noisy_testset_wav/ + clean_testset_wav/ or noisy/ + clean/)")


def _looks_like_dns(noisy: Path, clean: Path) -> bool:
    names = {p.name for p in _audio_files(clean)}
    files = _audio_files(noisy)
    return bool(files) and not any(f.name in names for f in files) and any(
        _FILEID.search(f.stem) for f in files)


def find_pairs(spec: str | Path, limit: int | None = None) -> list[Pair]:
    """All pairs of a SPEC (sorted by id), optionally only the first ``limit``.

    Raises:
        ValueError: the SPEC is not a manifest or a known folder layout, or holds no noisy files.
    """
    p = Path(spec)
    if not p.exists():
        raise ValueError(f"{p}: no such file or folder")
    layout = describe_layout(p)
    if layout == "manifest":
        pairs = _from_manifest(p)
    elif layout == "voicebank":
        pairs = _by_name(p / "noisy_testset_wav", p / "clean_testset_wav")
    elif layout == "dns":
        pairs = _by_fileid(p / "noisy", p / "clean")
    else:
        pairs = _by_name(p / "noisy", p / "clean")
    if not pairs:
        raise ValueError(f"{p}: no noisy audio files found ({layout} layout)")
    return pairs[:limit] if limit is not None else pairs


def _by_name(noisy: Path, clean: Path) -> list[Pair]:
    clean_names = {f.name: f for f in _audio_files(clean)}
    out = []
    for f in _audio_files(noisy):
        c = clean_names.get(f.name)
        out.append(Pair(f.stem, f, c, None if c else f"no clean file {clean / f.name}"))
    return out


def _by_fileid(noisy: Path, clean: Path) -> list[Pair]:
    clean_ids: dict[str, Path] = {}
    for f in _audio_files(clean):
        m = _FILEID.search(f.stem)
        if m:
            clean_ids[str(int(m.group(1)))] = f
    out = []
    for f in _audio_files(noisy):
        m = _FILEID.search(f.stem)
        if not m:
            out.append(Pair(f.stem, f, None, "no fileid_N in the noisy file name"))
            continue
        key = str(int(m.group(1)))
        c = clean_ids.get(key)
        out.append(Pair(f"fileid_{key}", f, c, None if c else f"no clean file with fileid_{key}"))
    return sorted(out, key=lambda q: (len(q.id), q.id))


def _from_manifest(path: Path) -> list[Pair]:
    try:
        with path.open(newline="", encoding="utf-8") as fh:
            rows = list(csv.DictReader(fh))
            fields = [f.strip().lower() for f in (rows[0].keys() if rows else [])]
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise ValueError(f"{path}: not a readable CSV manifest ({exc})") from exc
    if not rows or "noisy" not in fields or "clean" not in fields:
        raise ValueError(f"{path}: a manifest needs a header with 'noisy' and 'clean' columns and at "
                         f"least one row (found columns {fields or 'none'})")
    base = path.parent
    out = []
    seen: dict[str, int] = {}
    for i, raw in enumerate(rows, start=2):
        row = {(k or "").strip().lower(): (v or "").strip() for k, v in raw.items()}
        noisy = base / row["noisy"] if row["noisy"] else None
        clean = base / row["clean"] if row["clean"] else None
        pid = row.get("id") or (noisy.stem if noisy else f"line{i}")
        if pid in seen:  # ids must be unique: they key the per-file tables
            seen[pid] += 1
            pid = f"{pid}#{seen[pid]}"
        else:
            seen[pid] = 1
        problem = None
        if noisy is None or clean is None:
            problem = f"manifest line {i}: empty noisy or clean path"
        out.append(Pair(pid, noisy or base, clean, problem))
    return out


def load_pair(pair: Pair) -> LoadedPair:
    """Read and validate a pair (mono, same rate, lengths within one 16 ms hop, then trimmed).

    Raises:
        AudioError: missing/unreadable file, multichannel audio, or mismatched rate/length.
    """
    if pair.problem:
        raise AudioError(pair.problem)
    assert pair.clean is not None
    noisy, sr_n = read_audio(pair.noisy)
    clean, sr_c = read_audio(pair.clean)
    for name, a, path in (("noisy", noisy, pair.noisy), ("clean", clean, pair.clean)):
        if a.shape[1] != 1:
            raise AudioError(f"{path}: expected mono {name} audio, found {a.shape[1]} channels")
    if sr_n != sr_c:
        raise AudioError(f"sample rate mismatch: clean {sr_c} Hz, noisy {sr_n} Hz")
    tol = default_tolerance(sr_c)
    if abs(noisy.shape[0] - clean.shape[0]) > tol:
        raise AudioError(f"length mismatch: clean {clean.shape[0]} samples, noisy {noisy.shape[0]} "
                         f"(more than the {tol}-sample tolerance)")
    n = min(noisy.shape[0], clean.shape[0])
    return LoadedPair(pair.id, noisy[:n, 0].copy(), clean[:n, 0].copy(), sr_c)
