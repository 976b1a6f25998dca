"""scripts/make_tts_speech.py: extra training voices from the flite TTS engine (skipped without flite)."""

from __future__ import annotations

import csv
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import soundfile as sf

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "make_tts_speech.py"
pytestmark = pytest.mark.skipif(shutil.which("flite") is None,
                                reason="flite not installed (apt-get install flite)")


def _run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(SCRIPT), *args], capture_output=True, text=True)


def test_makes_16k_voices_with_a_manifest_and_never_overwrites(tmp_path):
    out = tmp_path / "tts"
    p = _run("--out", str(out), "--minutes", "0.1", "--seed", "3")
    assert p.returncode == 0, p.stderr
    rows = list(csv.DictReader(open(out / "manifest.csv")))
    files = sorted(f.name for f in out.glob("*.flac"))
    assert files == sorted(r["file"] for r in rows) and len(rows) >= 2
    total = 0.0
    for r in rows:
        x, sr = sf.read(out / r["file"])
        assert sr == 16000 and x.ndim == 1 and abs(abs(x).max() - 0.5) < 1e-3
        assert abs(x.size / sr - float(r["seconds"])) < 1e-3 and r["voice"] in {"awb", "kal16", "rms", "slt"}
        total += x.size / sr
    assert 6.0 <= total < 6.0 + 15.0  # stops after 0.1 min; one sentence is under 15 s
    before = {f: (out / f).read_bytes() for f in files}
    again = _run("--out", str(out), "--minutes", "0.1")
    assert again.returncode != 0 and "not empty" in again.stderr
    assert {f: (out / f).read_bytes() for f in files} == before
