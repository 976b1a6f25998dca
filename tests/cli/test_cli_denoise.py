"""End-to-end tests of `denoisezoo denoise` and the file API (bad input, formats, long files)."""

import numpy as np
import pytest
import soundfile as sf
import torch

from denoisezoo.api import denoise_file, enhance, enhance_array
from denoisezoo.cli import main
from denoisezoo.gtcrn import gtcrn_tiny
from denoisezoo.hub import save_checkpoint


@pytest.fixture
def ckpt(tmp_path_factory):
    torch.manual_seed(0)
    model = gtcrn_tiny().eval()
    for m in model.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_var.uniform_(0.5, 1.5)
    return save_checkpoint(model, tmp_path_factory.mktemp("ck") / "tiny.pt")


def run(*args) -> int:
    return main([str(a) for a in args])


def test_denoise_one_file_matches_offline(wav_file, tmp_path, ckpt):
    src = wav_file(seconds=1.3)
    out = tmp_path / "out.wav"
    assert run("denoise", src, "-o", out, "--checkpoint", ckpt) == 0
    y, sr = sf.read(out, dtype="float32")
    x, _ = sf.read(src, dtype="float32")
    info_in, info_out = sf.info(src), sf.info(out)
    assert (sr, len(y), info_out.subtype) == (16000, len(x), info_in.subtype)
    from denoisezoo import load_model

    ref = enhance(load_model(ckpt), torch.from_numpy(x)).numpy()
    assert np.abs(y - np.clip(ref, -1, 1)).max() < 2 / 32768  # PCM_16 quantisation


def test_several_inputs_to_folder_keep_names(wav_file, tmp_path, ckpt):
    a = wav_file("a/x.wav", seconds=0.5)
    b = wav_file("b.flac", seconds=0.5, subtype="PCM_24")
    outdir = tmp_path / "outdir"
    assert run("denoise", a, b, "-o", outdir, "--checkpoint", ckpt) == 0
    assert sorted(p.name for p in outdir.iterdir()) == ["b.flac", "x.wav"]
    assert sf.info(outdir / "b.flac").subtype == "PCM_24"


def test_folder_input_recurses(wav_file, tmp_path, ckpt):
    wav_file("in/one.wav", seconds=0.4)
    wav_file("in/sub/two.wav", seconds=0.4)
    assert run("denoise", tmp_path / "in", "-o", tmp_path / "o", "--checkpoint", ckpt) == 0
    assert (tmp_path / "o/one.wav").is_file() and (tmp_path / "o/sub/two.wav").is_file()


def test_same_names_from_two_folders_refused(wav_file, tmp_path, ckpt, capsys):
    a, b = wav_file("a/x.wav", seconds=0.3), wav_file("b/x.wav", seconds=0.3)
    assert run("denoise", a, b, "-o", tmp_path / "o", "--checkpoint", ckpt) == 1
    assert "both be written" in capsys.readouterr().err
    assert not (tmp_path / "o").exists()


@pytest.mark.parametrize("sr,channels,subtype", [(44100, 2, "PCM_16"), (8000, 1, "FLOAT"),
                                                 (48000, 3, "PCM_24")])
def test_any_rate_and_channels(wav_file, tmp_path, ckpt, sr, channels, subtype):
    src = wav_file("in.wav", seconds=0.7, sr=sr, channels=channels, subtype=subtype)
    out = tmp_path / "o.wav"
    assert run("denoise", src, "-o", out, "--checkpoint", ckpt) == 0
    i, o = sf.info(src), sf.info(out)
    assert (o.samplerate, o.channels, o.frames, o.subtype) == (sr, channels, i.frames, subtype)
    y = sf.read(out, always_2d=True)[0]
    assert np.isfinite(y).all() and np.abs(y).max() > 0


def test_ogg_vorbis_in_and_out(wav_file, tmp_path, ckpt):
    src = wav_file("in.ogg", seconds=0.6, subtype="VORBIS")
    out = tmp_path / "o.ogg"
    assert run("denoise", src, "-o", out, "--checkpoint", ckpt) == 0
    i, o = sf.info(src), sf.info(out)
    assert (o.format, o.subtype, o.samplerate, o.frames) == ("OGG", "VORBIS", i.samplerate, i.frames)


def test_multichannel_is_per_channel(tmp_path, ckpt):
    from denoisezoo import load_model

    model = load_model(ckpt)
    rng = np.random.default_rng(3)
    x = (0.1 * rng.standard_normal((8000, 2))).astype(np.float32)
    y = enhance_array(model, x, 16000)
    y0 = enhance_array(model, x[:, 0], 16000)
    np.testing.assert_allclose(y[:, 0], y0, atol=1e-6)


def test_long_file_chunked_equals_whole(tmp_path, ckpt):
    """Block-wise processing (with resampling) equals processing the whole signal at once."""
    from denoisezoo import load_model

    model = load_model(ckpt)
    rng = np.random.default_rng(1)
    x = (0.1 * rng.standard_normal((3 * 22050, 1))).astype(np.float32)
    src = tmp_path / "long.wav"
    sf.write(src, x, 22050, subtype="FLOAT")
    denoise_file(src, tmp_path / "blocks.wav", model, block_seconds=0.37)
    y_blocks = sf.read(tmp_path / "blocks.wav", dtype="float32", always_2d=True)[0]
    y_whole = enhance_array(model, x, 22050)
    assert y_blocks.shape == y_whole.shape
    np.testing.assert_allclose(y_blocks, y_whole, atol=2e-5)


def test_missing_file(tmp_path, ckpt, capsys):
    assert run("denoise", tmp_path / "nope.wav", "-o", tmp_path / "o.wav", "--checkpoint", ckpt) == 1
    err = capsys.readouterr().err
    assert "no such file" in err and err.count("\n") == 1
    assert not (tmp_path / "o.wav").exists()


@pytest.mark.parametrize("content,msg", [(b"hello, I am text", "not a readable audio"),
                                         (None, "empty audio")])
def test_not_audio_or_empty(tmp_path, ckpt, capsys, content, msg):
    src = tmp_path / "bad.wav"
    if content is None:
        sf.write(src, np.zeros((0,), np.float32), 16000)
    else:
        src.write_bytes(content)
    assert run("denoise", src, "-o", tmp_path / "o.wav", "--checkpoint", ckpt) == 1
    assert msg in capsys.readouterr().err
    assert list(tmp_path.glob("o.wav*")) == [] and list(tmp_path.glob(".o.wav*")) == []


def test_shorter_than_a_frame(tmp_path, ckpt, capsys):
    src = tmp_path / "short.wav"
    sf.write(src, np.zeros(100, np.float32), 16000)
    assert run("denoise", src, "-o", tmp_path / "o.wav", "--checkpoint", ckpt) == 1
    assert "too short" in capsys.readouterr().err


def test_nan_input_writes_nothing(tmp_path, ckpt, capsys):
    x = np.zeros(40000, np.float32)
    x[35000] = np.nan
    src = tmp_path / "nan.wav"
    sf.write(src, x, 16000, subtype="FLOAT")
    assert run("denoise", src, "-o", tmp_path / "o.wav", "--checkpoint", ckpt,
               "--block-seconds", "0.5") == 1
    assert "non-finite" in capsys.readouterr().err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["nan.wav"]


def test_never_overwrites_without_flag(wav_file, tmp_path, ckpt, capsys):
    src = wav_file(seconds=0.5)
    out = tmp_path / "o.wav"
    out.write_bytes(b"precious")
    assert run("denoise", src, "-o", out, "--checkpoint", ckpt) == 1
    assert "exists" in capsys.readouterr().err
    assert out.read_bytes() == b"precious"
    assert run("denoise", src, "-o", out, "--checkpoint", ckpt, "--overwrite") == 0
    assert sf.info(out).frames == sf.info(src).frames


def test_interrupted_run_leaves_no_file(wav_file, tmp_path, ckpt, monkeypatch):
    from denoisezoo import api, load_model

    src = wav_file(seconds=2.0)
    calls = {"n": 0}
    orig = api.Streamer.feed

    def boom(self, x):
        calls["n"] += 1
        if calls["n"] == 2:
            raise KeyboardInterrupt
        return orig(self, x)

    monkeypatch.setattr(api.Streamer, "feed", boom)
    with pytest.raises(KeyboardInterrupt):
        denoise_file(src, tmp_path / "o.wav", load_model(ckpt), block_seconds=0.5)
    assert sorted(p.name for p in tmp_path.iterdir()) == [src.name]


def test_clipping_is_reported(tmp_path, ckpt, capsys, monkeypatch):
    from denoisezoo import api

    src = tmp_path / "loud.wav"
    sf.write(src, np.full(8000, 0.9, np.float32), 16000)
    monkeypatch.setattr(api.Streamer, "feed", lambda self, x: 4 * torch.as_tensor(x))
    monkeypatch.setattr(api.Streamer, "flush", lambda self: torch.zeros(1, 256))
    assert run("denoise", src, "-o", tmp_path / "o.wav", "--checkpoint", ckpt) == 0
    assert "clipped" in capsys.readouterr().err
    assert np.abs(sf.read(tmp_path / "o.wav")[0]).max() <= 1.0


def test_count_clipped_counts_flat_tops_not_lone_peaks():
    from denoisezoo.audio import count_clipped

    x = np.zeros((10, 2), np.float32)
    x[2:5, 0] = 1.0           # a 3-sample flat top
    x[7, 0] = -1.0            # a lone peak at full scale: not clipping
    x[8, 0] = 1.0             # next to a peak of the other sign: not a flat top
    x[4:6, 1] = -1.0          # 2 samples on a negative flat top
    assert count_clipped(x) == 5
    assert count_clipped(x[:1]) == 0


def test_clipped_input_warns_and_clean_input_does_not(tmp_path, ckpt, capsys):
    t = np.arange(16000) / 16000
    tone = 0.5 * np.sin(2 * np.pi * 220 * t)
    sf.write(tmp_path / "ok.wav", tone, 16000, subtype="PCM_16")
    sf.write(tmp_path / "hot.wav", np.clip(4 * tone, -1, 1), 16000, subtype="PCM_16")
    assert run("denoise", tmp_path / "ok.wav", tmp_path / "hot.wav", "-o", tmp_path / "out",
               "--checkpoint", ckpt) == 0
    err = capsys.readouterr().err
    warned = [ln for ln in err.splitlines() if "input is clipped" in ln]
    assert len(warned) == 1 and "hot.wav" in warned[0]
    assert (tmp_path / "out/hot.wav").exists()  # a warning, not a failure


def test_other_rate_input_gets_a_resampling_note(tmp_path, ckpt, capsys):
    sf.write(tmp_path / "tel.wav", 0.1 * np.random.default_rng(0).standard_normal(8000), 8000)
    assert run("denoise", tmp_path / "tel.wav", "-o", tmp_path / "o.wav", "--checkpoint", ckpt) == 0
    assert "8000 Hz input, resampled to the model's 16000 Hz and back; nothing above 4 kHz" in \
        capsys.readouterr().err
    assert sf.info(tmp_path / "o.wav").samplerate == 8000


def test_unknown_model_name(wav_file, tmp_path, capsys):
    assert run("denoise", wav_file(), "-o", tmp_path / "o.wav", "--model", "nonexistent") == 1
    assert "nonexistent" in capsys.readouterr().err


def test_official_tar_via_checkpoint(shared, wav_file, tmp_path):
    tar = shared / "reference/gtcrn/checkpoints/model_trained_on_dns3.tar"
    assert run("denoise", wav_file(seconds=0.5), "-o", tmp_path / "o.wav", "--checkpoint", tar) == 0
