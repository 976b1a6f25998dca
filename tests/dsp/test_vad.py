"""Voice activity per frame: GTCRN's kept-power presence, RNNoise's VAD head, Streamer and CLI."""

import csv

import numpy as np
import pytest
import soundfile as sf
import torch
from conftest import randomised, shared_file, speechlike

from denoisezoo.api import denoise_file
from denoisezoo.cli import main
from denoisezoo.dsp.stft import num_frames, stft
from denoisezoo.dsp.vad import kept_power_fraction, speech_presence
from denoisezoo.gtcrn import gtcrn_tiny
from denoisezoo.hub import save_checkpoint
from denoisezoo.rnnoise_port.presets import rnnoise_tiny
from denoisezoo.streaming import Streamer


def _spec(t=20, f=257, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(2, f, t, 2, generator=g)


def test_kept_power_fraction_values():
    x = _spec()
    assert torch.allclose(kept_power_fraction(x, x, 16000), torch.ones(2, 20))
    assert torch.equal(kept_power_fraction(x, 0 * x, 16000), torch.zeros(2, 20))
    assert torch.allclose(kept_power_fraction(x, 0.5 * x, 16000), torch.full((2, 20), 0.25))
    assert torch.equal(kept_power_fraction(x, 3 * x, 16000), torch.ones(2, 20))  # clipped
    # only the speech band counts: zeroing the bins above 4 kHz changes nothing
    y = x.clone()
    y[:, 130:] = 0
    assert torch.allclose(kept_power_fraction(x, y, 16000), torch.ones(2, 20))
    with pytest.raises(ValueError):
        kept_power_fraction(x, x[:, :, :5], 16000)


def test_speech_presence_is_monotonic_in_kept_power():
    x = _spec(t=1)
    gains = torch.tensor([1e-3, 1e-2, 0.1, 0.3, 1.0])
    p = torch.cat([speech_presence(x, g * x, 16000)[:1] for g in gains], dim=-1)[0]
    assert torch.all(p[1:] > p[:-1]) and p[0] < 0.1 and p[-1] > 0.99
    # p = 0.01: 10 log10(p / (1 - p)) = -19.96 dB, just above the -20 dB centre
    assert 0.5 < speech_presence(x, 0.1 * x, 16000)[0, 0].item() < 0.505


@pytest.mark.parametrize("factory", [gtcrn_tiny, rnnoise_tiny], ids=["gtcrn", "rnnoise"])
def test_step_vad_equals_offline(factory):
    model = randomised(factory)
    g = model.geometry
    x = torch.from_numpy(speechlike(g.hop_length * 30))[None]
    spec = stft(x, g)
    with torch.no_grad():
        out, vad, _ = model.forward_with_vad(spec)
        assert vad.shape == (1, spec.shape[2]) and float(vad.min()) >= 0 and float(vad.max()) <= 1
        assert torch.allclose(out, model(spec), atol=1e-6)
        state = model.initial_state(1)
        steps = []
        for t in range(spec.shape[2]):
            _, state, v = model.step(spec[:, :, t], state, return_vad=True)
            steps.append(v)
    assert torch.allclose(torch.stack(steps, -1), vad, atol=1e-5)
    assert vad.std() > 0  # varies from frame to frame


def test_rnnoise_vad_is_its_head():
    model = randomised(rnnoise_tiny)
    spec = stft(torch.from_numpy(speechlike(4000))[None], model.geometry)
    with torch.no_grad():
        assert torch.equal(model.forward_with_vad(spec)[1], model.forward_with_gains(spec).vad)


class _NoVadHead(torch.nn.Module):
    """A model without ``forward_with_vad`` (like an exported step backend)."""

    def __init__(self, inner):
        super().__init__()
        self.inner, self.geometry = inner, inner.geometry

    def initial_state(self, *a, **k):
        return self.inner.initial_state(*a, **k)

    def forward_stateful(self, spec, state):
        return self.inner.forward_stateful(spec, state)


@pytest.mark.parametrize("chunk", [1, 100, 2000])
def test_streamer_vad_equals_offline(chunk):
    model = randomised(gtcrn_tiny)
    g = model.geometry
    n = 5000
    x = torch.from_numpy(speechlike(n, seed=3))
    with torch.no_grad():
        ref = model.forward_with_vad(stft(x[None], g))[1][0].numpy()
    for m in (model, _NoVadHead(model)):  # a backend without a head gets the same definition
        s = Streamer(m, vad=True)
        got = []
        for i in range(0, n, chunk):
            s.feed(x[i : i + chunk])
            got.append(s.pop_vad())
        s.flush()
        got.append(s.pop_vad())
        got = np.concatenate(got, axis=-1)[0]
        assert got.shape == (num_frames(n, g.n_fft, g.hop_length),) == ref.shape
        np.testing.assert_allclose(got, ref, atol=1e-5)
        assert s.pop_vad().shape == (1, 0)


def test_streamer_vad_needs_flag_and_fallback_repeats_last():
    model = randomised(gtcrn_tiny)
    with pytest.raises(RuntimeError, match="vad=True"):
        Streamer(model).pop_vad()
    ticks = iter(range(10**6))
    # every model hop "takes" 3 budgets, so the next hops are served by the fallback
    s = Streamer(model, budget_ms=1.0, vad=True, clock=lambda: next(ticks) * 0.0015)
    hop = model.geometry.hop_length
    s.feed(torch.from_numpy(speechlike(hop * 12)))
    v = s.pop_vad()[0]
    st = s.stats
    assert v.shape == (12,) and st["fallback_hops"] > 0
    used = v[0]
    assert v[1] == used  # the hop after an overrun repeats the last model value


def test_vad_tracks_speech_with_official_gtcrn():
    """Trained model: speech frames score high, noise-only frames low (official DNS3 weights)."""
    from denoisezoo import load_model

    tar = shared_file("reference/gtcrn/checkpoints/stream_onnx_models__model_trained_on_dns3.tar")
    speech = shared_file("data/speech/dev/it/" + sorted(
        p.name for p in (tar.parents[3] / "data/speech/dev/it").iterdir())[0])
    s, sr = sf.read(speech, dtype="float32")
    assert sr == 16000
    s = s[: 3 * sr] if s.ndim == 1 else s[: 3 * sr, 0]
    gap = np.zeros(sr, np.float32)
    clean = np.concatenate([gap, s, gap])
    rng = np.random.default_rng(0)
    noise = rng.standard_normal(clean.size).astype(np.float32)
    noise *= np.sqrt(np.mean(s**2) / np.mean(noise**2) / 10 ** (5 / 10))  # 5 dB SNR
    model = load_model(tar)
    g = model.geometry
    with torch.no_grad():
        vad = model.forward_with_vad(stft(torch.from_numpy(clean + noise)[None], g))[1][0].numpy()
        e = stft(torch.from_numpy(clean)[None], g)[0, 5:112].square().sum((0, 2)).numpy()
    speech_frames = 10 * np.log10(e + 1e-10) > 10 * np.log10(e.max()) - 20
    noise_only = np.zeros_like(speech_frames)
    hop_s = g.hop_length / sr
    t = np.arange(vad.size) * hop_s
    noise_only[(t > 0.1) & (t < 0.9)] = True
    noise_only[t > 4.1] = True
    assert vad[speech_frames].mean() > 0.7, vad[speech_frames].mean()
    assert vad[noise_only].mean() < 0.3, vad[noise_only].mean()


def _run(*args) -> int:
    return main([str(a) for a in args])


@pytest.fixture
def ckpt(tmp_path_factory):
    return save_checkpoint(randomised(gtcrn_tiny), tmp_path_factory.mktemp("ck") / "tiny.pt")


def _read_csv(p):
    with open(p) as f:
        return list(csv.DictReader(f))


def test_denoise_vad_csv_one_file(wav_file, tmp_path, ckpt):
    src = wav_file(seconds=0.7)
    out, vcsv = tmp_path / "o.wav", tmp_path / "v.csv"
    assert _run("denoise", src, "-o", out, "--checkpoint", ckpt, "--vad-csv", vcsv) == 0
    rows = _read_csv(vcsv)
    model = randomised(gtcrn_tiny)
    g = model.geometry
    x, _ = sf.read(src, dtype="float32")
    assert len(rows) == num_frames(len(x), g.n_fft, g.hop_length)
    assert list(rows[0]) == ["start_s", "end_s", "vad", "speech"]
    assert float(rows[1]["start_s"]) == pytest.approx(g.hop_length / 16000)
    with torch.no_grad():
        ref = model.forward_with_vad(stft(torch.from_numpy(x)[None], g))[1][0].numpy()
    np.testing.assert_allclose([float(r["vad"]) for r in rows], ref, atol=2e-3)  # PCM_16 input
    assert all(r["speech"] == str(int(float(r["vad"]) >= 0.5)) for r in rows)
    # an existing CSV is never overwritten without --overwrite (and the audio is not written)
    out2 = tmp_path / "o2.wav"
    assert _run("denoise", src, "-o", out2, "--checkpoint", ckpt, "--vad-csv", vcsv) == 1
    assert not out2.exists()
    assert _run("denoise", src, "-o", out2, "--checkpoint", ckpt, "--vad-csv", vcsv, "--overwrite") == 0


def test_denoise_vad_csv_several_files_and_stereo(wav_file, tmp_path, ckpt):
    a = wav_file("a.wav", seconds=0.4)
    b = wav_file("b.flac", seconds=0.4, channels=2)
    assert _run("denoise", a, b, "-o", tmp_path / "o", "--checkpoint", ckpt,
                "--vad-csv", tmp_path / "vads") == 0
    assert sorted(p.name for p in (tmp_path / "vads").iterdir()) == ["a.csv", "b.csv"]
    rows = _read_csv(tmp_path / "vads/b.csv")
    assert list(rows[0]) == ["start_s", "end_s", "vad_0", "speech_0", "vad_1", "speech_1"]
    assert any(r["vad_0"] != r["vad_1"] for r in rows)  # the channels differ


def test_denoise_vad_threshold_validated(wav_file, tmp_path, ckpt, capsys):
    src = wav_file(seconds=0.3)
    assert _run("denoise", src, "-o", tmp_path / "o.wav", "--checkpoint", ckpt,
                "--vad-csv", tmp_path / "v.csv", "--vad-threshold", "1.5") == 1
    assert "--vad-threshold" in capsys.readouterr().err


def test_denoise_file_api_vad(wav_file, tmp_path):
    model = randomised(rnnoise_tiny)
    src = wav_file(seconds=0.5, sr=8000)  # resampled to the model rate
    rep = denoise_file(src, tmp_path / "o.wav", model, vad_csv=tmp_path / "v.csv")
    rows = _read_csv(tmp_path / "v.csv")
    g = model.geometry
    assert len(rows) == num_frames(int(0.5 * g.sample_rate), g.n_fft, g.hop_length)
    assert rep["output"].endswith("o.wav")
