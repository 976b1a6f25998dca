"""The fixed development set built from ../shared (skipped when the data folder is absent)."""

from __future__ import annotations

import csv
import hashlib
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from denoisezoo.datasets import CorpusError, PairedDataset
from denoisezoo.datasets.devset import build_devset

SHARED = Path(__file__).resolve().parents[2].parent / "shared"
pytestmark = pytest.mark.skipif(not (SHARED / "data" / "speech" / "dev").is_dir(),
                                reason=f"shared data folder not found at {SHARED}")

# Pins the recipe: any change in what the mixer draws changes this manifest (then bump
# DEVSET_VERSION and update the hash on purpose).
MANIFEST_SHA256_N4 = "73a10dbcb771c6d6e85b3124492f07f4d721a460d785751d73e69d0127a5b8c6"


def _tree(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def built(tmp_path_factory) -> tuple[Path, Path]:
    a = build_devset(SHARED, tmp_path_factory.mktemp("dev_a"), n=4)
    b = build_devset(SHARED, tmp_path_factory.mktemp("dev_b"), n=4)
    return a, b


def test_two_builds_are_byte_identical(built):
    a, b = built
    ta, tb = _tree(a), _tree(b)
    assert sorted(ta) == ["clean/0000.wav", "clean/0001.wav", "clean/0002.wav", "clean/0003.wav",
                          "devset.json", "manifest.csv", "noisy/0000.wav", "noisy/0001.wav",
                          "noisy/0002.wav", "noisy/0003.wav"]
    assert ta == tb
    assert hashlib.sha256(ta["manifest.csv"]).hexdigest() == MANIFEST_SHA256_N4


def test_manifest_matches_audio(built):
    root = built[0]
    with (root / "manifest.csv").open(newline="") as f:
        rows = list(csv.DictReader(f))
    assert list(rows[0]) == ["noisy", "clean", "snr_db", "noise", "speech", "level_db", "seconds"]
    for r in rows:
        noisy, sr = sf.read(root / r["noisy"], dtype="float64")
        clean, _ = sf.read(root / r["clean"], dtype="float64")
        assert sr == 16000 and noisy.shape == clean.shape
        assert 2.0 <= len(noisy) / sr <= 5.0 and abs(len(noisy) / sr - float(r["seconds"])) < 1e-3
        f = 320
        m = len(clean) // f * f
        p = (clean[:m].reshape(-1, f) ** 2).mean(axis=1)
        snr = 10 * np.log10(p[p >= p.max() * 1e-4].mean() / ((noisy - clean) ** 2).mean())
        assert abs(snr - float(r["snr_db"])) < 0.5
        assert -5.0 <= float(r["snr_db"]) <= 20.0
    ds = PairedDataset.from_path(root)
    assert len(ds) == 4 and ds.variable_length


def test_reused_when_complete_rebuilt_when_not(built, tmp_path):
    a = built[0]
    stamps = {p: p.stat().st_mtime_ns for p in a.rglob("*") if p.is_file()}
    build_devset(SHARED, a, n=4)
    assert {p: p.stat().st_mtime_ns for p in a.rglob("*") if p.is_file()} == stamps
    # incomplete set (a file lost): rebuilt, same bytes as before
    before = _tree(a)
    (a / "noisy" / "0002.wav").unlink()
    build_devset(SHARED, a, n=4)
    assert _tree(a) == before
    # other parameters: rebuilt with other content, old items removed
    build_devset(SHARED, a, n=3, seed=99)
    after = _tree(a)
    assert "noisy/0003.wav" not in after and after["noisy/0000.wav"] != before["noisy/0000.wav"]


def test_bad_arguments(tmp_path):
    with pytest.raises(ValueError, match="n > 0"):
        build_devset(SHARED, tmp_path, n=0)
    with pytest.raises(CorpusError, match="missing"):
        build_devset(tmp_path, tmp_path / "out", n=2)
