#!/usr/bin/env python3
"""Synthesise extra training speech with the flite TTS engine (Debian package ``flite``).

Our clean training speech is 4 voices of IVR prompts (../shared). This adds other voices: each
utterance is one English sentence spoken by a random flite voice (awb, kal16, rms, slt: US/Scottish,
male/female) with a random pitch target (f0_hz in the manifest; the rms voice ignores it) and
speaking rate. The sentences come from the docstrings of Python's standard library (varied
technical English, no corpus download; the list, hence the output, depends on the Python version:
3.11 here). Output: 16 kHz mono FLAC files plus ``manifest.csv`` (file, voice, f0_hz, stretch,
seconds, text) in ``--out``; git-ignored ``runs/`` is the place. Usage:

    apt-get install flite
    python scripts/make_tts_speech.py --out runs/tts_speech --minutes 30 --seed 0
"""

from __future__ import annotations

import argparse
import csv
import importlib
import inspect
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import soundfile as sf

VOICES = ("awb", "kal16", "rms", "slt")
MODULES = ("argparse", "asyncio", "collections", "csv", "datetime", "decimal", "email", "fractions",
           "functools", "http.client", "inspect", "json", "logging", "os", "pathlib", "pickle",
           "random", "re", "shutil", "socket", "statistics", "string", "subprocess", "tarfile",
           "threading", "typing", "unittest", "urllib.request", "zipfile")


def sentences(min_words: int = 6, max_words: int = 30) -> list[str]:
    """Plain-English sentences from the standard library's docstrings, deduplicated and sorted."""
    found: set[str] = set()
    for name in MODULES:
        try:
            mod = importlib.import_module(name)
        except ImportError:
            continue
        docs = [inspect.getdoc(mod) or ""]
        for _, obj in inspect.getmembers(mod):
            if inspect.isclass(obj) or inspect.isfunction(obj):
                docs.append(inspect.getdoc(obj) or "")
        for doc in docs:
            for s in re.split(r"(?<=[.!?])\s+", " ".join(doc.split())):
                words = s.split()
                if (min_words <= len(words) <= max_words and re.fullmatch(r"[A-Za-z ,.;'?!-]+", s)
                        and s[0].isupper()):
                    found.add(s)
    return sorted(found)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out", type=Path, required=True, help="output folder (must not hold files)")
    p.add_argument("--minutes", type=float, default=30.0, help="total speech to make")
    p.add_argument("--seed", type=int, default=0)
    a = p.parse_args(argv)
    if shutil.which("flite") is None:
        sys.exit("flite not found: apt-get install flite")
    listed = subprocess.run(["flite", "-lv"], capture_output=True, text=True).stdout.split()
    missing = [v for v in VOICES if v not in listed]
    if missing:
        sys.exit(f"this flite build lacks the voices {missing} (it lists {listed[2:]})")
    if a.out.exists() and any(a.out.iterdir()):
        sys.exit(f"{a.out} is not empty; choose a new folder (nothing is overwritten)")
    a.out.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(a.seed)
    texts = sentences()
    order = rng.permutation(len(texts))
    total, rows = 0.0, []
    with tempfile.TemporaryDirectory() as tmp:
        for k, i in enumerate(order):
            if total >= 60.0 * a.minutes:
                break
            voice = VOICES[int(rng.integers(0, len(VOICES)))]
            f0 = float(rng.uniform(90.0, 230.0))
            stretch = float(rng.uniform(0.85, 1.2))
            wav = Path(tmp) / "u.wav"
            subprocess.run(["flite", "-voice", voice, "--setf", f"int_f0_target_mean={f0:.0f}",
                            "--setf", f"duration_stretch={stretch:.2f}", "-t", texts[i], "-o", str(wav)],
                           check=True, capture_output=True)
            x, sr = sf.read(wav, dtype="float32")
            if sr != 16000 or x.size < sr // 2 or not np.isfinite(x).all() or np.abs(x).max() == 0:
                continue
            x = x / np.abs(x).max() * 0.5  # flite levels differ by voice; the mixer sets the level
            name = f"tts_{k:05d}_{voice}.flac"
            sf.write(a.out / name, x, sr)
            total += x.size / sr
            rows.append({"file": name, "voice": voice, "f0_hz": round(f0), "stretch": round(stretch, 2),
                         "seconds": round(x.size / sr, 3), "text": texts[i]})
    with open(a.out / "manifest.csv", "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    print(f"{len(rows)} utterances, {total / 60:.1f} min, from {len(texts)} sentences -> {a.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
