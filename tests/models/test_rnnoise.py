"""RNNoise port: geometry, DSP blocks, pitch, streaming == offline, causality, hub, counts."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from denoisezoo import load_model
from denoisezoo.api import enhance
from denoisezoo.dsp.stft import stft
from denoisezoo.hub import build_model, save_checkpoint
from denoisezoo.profile import count_macs, count_parameters, macs_per_second
from denoisezoo.rnnoise_port import (
    RNNoise,
    RNNoiseConfig,
    rnnoise_16k,
    rnnoise_48k,
    rnnoise_tiny,
)
from denoisezoo.rnnoise_port.features import (
    RealDFT,
    band_matrices,
    dct_matrix,
    log_spectrum_floor,
    normalized_xcorr,
    pitch_search,
    triangle_kernel,
)
from denoisezoo.streaming import Streamer

TOL = 1e-5



def _voiced(n: int, sr: int, f0: float = 150.0, seed: int = 0) -> torch.Tensor:
    """Harmonic bursts (f0 gliding +-20 %) plus white noise, peak about 0.4."""
    g = torch.Generator().manual_seed(seed)
    t = torch.arange(n, dtype=torch.float64) / sr
    phase = 2 * math.pi * torch.cumsum(f0 * (1 + 0.2 * torch.sin(2 * math.pi * 0.8 * t)), 0) / sr
    gate = torch.sin(2 * math.pi * 3 * t) > -0.3
    harm = sum(torch.sin(k * phase) / k for k in range(1, 10)) * gate
    x = 0.2 * harm + 0.03 * torch.randn(n, generator=g, dtype=torch.float64)
    return x.float()


@pytest.fixture(scope="module")
def tiny() -> RNNoise:
    torch.manual_seed(0)
    return rnnoise_tiny().eval()


# ------------------------------------------------------------------- config and counts
def test_presets_geometry():
    c48 = rnnoise_48k().config
    assert (c48.hop_length, c48.n_fft, c48.n_bands, c48.n_features) == (480, 960, 22, 42)
    assert c48.band_edges[-1] == 400 and c48.geometry.window == "vorbis"
    assert (c48.min_period, c48.max_period, c48.decimation) == (60, 768, 4)
    c16 = rnnoise_16k().config
    assert (c16.hop_length, c16.n_fft, c16.n_bands, c16.n_features) == (160, 320, 18, 38)
    assert c16.edges_hz[-1] == 8000 and c16.band_edges[-1] == 160 == c16.n_freqs - 1
    assert RNNoiseConfig.from_dict(c48.to_dict()) == c48
    small = RNNoiseConfig(band_edges_hz=(0, 500, 2000, 8000), num_deltas=3)
    assert RNNoiseConfig.from_dict(small.to_dict()) == small and small.n_features == 4 + 9 + 2


@pytest.mark.parametrize("kwargs", [dict(frame_ms=10.03), dict(band_edges_hz=(0, 100, 9000)),
                                    dict(gain_decay=1.0), dict(num_deltas=30),
                                    dict(min_period_ms=20.0)])
def test_config_rejects(kwargs):
    with pytest.raises(ValueError):
        RNNoiseConfig(**kwargs)


def _keras_count(cfg: RNNoiseConfig) -> int:
    def gru(i, n):
        return 3 * n * (i + n + 1)

    nf, d, v, n, o = (cfg.n_features, cfg.dense_size, cfg.vad_size, cfg.noise_size,
                      cfg.denoise_size)
    return ((nf + 1) * d + gru(d, v) + (v + 1) + gru(d + v + nf, n) + gru(v + n + nf, o)
            + (o + 1) * cfg.n_bands)


def test_parameter_counts():
    m48 = rnnoise_48k()
    assert count_parameters(m48) == _keras_count(m48.config) == 87_503  # the 2018 model
    m16 = rnnoise_16k()
    assert count_parameters(m16) == _keras_count(m16.config) == 85_291
    # derived matrices are buffers outside the state dict: a checkpoint holds weights only
    assert sum(v.numel() for v in m48.state_dict().values()) == 87_503


def test_macs():
    m = rnnoise_48k()
    per_s = macs_per_second(m)
    # each weight is used once per frame (100 frames/s), plus the DSP front end and gates; the
    # release DSP's input high-pass, a 482 x 482 product per hop, is 46 M of the 106.9 M
    assert 100 * 87_503 < per_s < 120e6
    spec = torch.randn(1, 481, 3, 2)
    assert count_macs(m, spec) == pytest.approx(3 * count_macs(m, spec[:, :, :1]), rel=1e-6)


# ------------------------------------------------------------------------ DSP blocks
def test_band_matrices():
    edges = RNNoiseConfig(sample_rate=48000).band_edges
    ana, syn = band_matrices(edges, 481, torch.float64)
    one = torch.ones(481, dtype=torch.float64)
    assert torch.allclose(syn.sum(1)[: edges[-1] + 1], one[: edges[-1] + 1])
    assert syn[edges[-1] + 1 :].abs().sum() == 0  # above 20 kHz: gain 0, as in RNNoise
    col = ana.sum(0)  # each bin distributes weight 1 over its two bands (x2 at the outer bands)
    assert torch.allclose(col[edges[1] : edges[-2]], one[edges[1] : edges[-2]])
    g = torch.rand(22, dtype=torch.float64)
    assert torch.allclose((syn @ g)[list(edges)], g)  # band edges get their band's gain


def test_dct_orthonormal():
    m = dct_matrix(22, torch.float64)
    assert torch.allclose(m @ m.t(), torch.eye(22, dtype=torch.float64), atol=1e-12)
    assert m[0, 0] == pytest.approx(math.sqrt(1 / 22))


@pytest.mark.parametrize("n,factors", [(320, None), (960, (30, 32)), (640, (20, 32))])
def test_real_dft_matches_torch_fft(n, factors):
    dft = RealDFT(n)
    assert dft.factors == factors
    f = n // 2 + 1
    x = torch.randn(2, 3, n) * 100
    ref = torch.fft.rfft(x.double())
    got = dft(x)
    assert got.shape == (2, 3, 2 * f)
    scale = ref.abs().max().item()
    assert (got[..., :f] - ref.real).abs().max() < 1e-6 * scale
    assert (got[..., f:] - ref.imag).abs().max() < 1e-6 * scale
    spec = torch.randn(2, 3, 2 * f)
    want = torch.fft.irfft(torch.complex(spec[..., :f].double(), spec[..., f:].double()), n=n)
    # the imaginary parts of the DC and Nyquist bins are ignored, as by irfft
    assert (dft.inverse(spec) - want).abs().max() < 1e-6 * want.abs().max()


def test_log_floor_matches_c_loop():
    ly = torch.randn(400, 22, dtype=torch.float64) * 4
    ly[:100] -= 8
    lm = torch.full((400,), -2.0, dtype=torch.float64)
    fo = lm.clone()
    ref = []
    for i in range(22):
        v = torch.maximum(torch.maximum(lm - 7, fo - 1.5), ly[:, i])
        lm, fo = torch.maximum(lm, v), torch.maximum(fo - 1.5, v)
        ref.append(v)
    assert torch.allclose(log_spectrum_floor(ly), torch.stack(ref, 1), atol=1e-12)


def test_normalized_xcorr_matches_direct():
    buf = torch.randn(3, 200, dtype=torch.float64) * 100
    win = 64
    r = normalized_xcorr(buf, win)
    assert r.shape == (3, 200 - win + 1)
    x = buf[:, -win:]
    for lag in (0, 1, 17, 136):
        y = buf[:, 200 - win - lag : 200 - lag]
        ref = (x * y).sum(-1) / (x.square().sum(-1) * y.square().sum(-1)).sqrt()
        assert torch.allclose(r[:, lag], ref, atol=1e-9)
    assert torch.all(normalized_xcorr(torch.zeros(2, 200), win) == 0)  # silence: exactly zero


@pytest.mark.parametrize("sr,dec", [(16000, 2), (48000, 4)])
@pytest.mark.parametrize("f0", [85.0, 150.0, 240.0, 420.0])
def test_pitch_search_finds_period(sr, dec, f0):
    cfg = RNNoiseConfig(sample_rate=sr, pitch_search_rate=sr // dec)
    n = cfg.pitch_buffer_length
    t = torch.arange(n, dtype=torch.float64) / sr
    x = sum(torch.cos(2 * math.pi * k * f0 * t + k) / k for k in range(1, 6))
    x = (x + 0.05 * torch.randn(n, dtype=torch.float64)).float()[None] * 3000
    p = pitch_search(x, cfg.n_fft, cfg.min_period, cfg.max_period, cfg.decimation,
                     triangle_kernel(cfg.decimation), cfg.subharmonic_threshold)
    assert abs(p.item() - sr / f0) <= 1.0


def test_time_signal_rebuilt_from_spectra(tiny):
    x = _voiced(4000, 16000)
    spec = stft(x[None], tiny.geometry)
    _, state = tiny.extract_features(spec)
    cfg, t = tiny.config, spec.shape[2]
    padded = torch.nn.functional.pad(x, (cfg.hop_length, t * cfg.hop_length))
    ref = padded[t * cfg.hop_length - cfg.history_length : t * cfg.hop_length]
    assert torch.allclose(state.history[0], ref, atol=1e-6)


def test_features_of_voiced_frames(tiny):
    sr, f0 = 16000, 160.0
    t = torch.arange(sr, dtype=torch.float64) / sr
    harm = (0.1 * sum(torch.sin(2 * math.pi * k * f0 * t) / k for k in range(1, 10))).float()
    noise = 0.1 * torch.randn(sr)
    fv, _ = tiny.extract_features(stft(harm[None], tiny.geometry))
    fn, _ = tiny.extract_features(stft(noise[None], tiny.geometry))
    assert fv.features.shape == (1, 101, 38) and torch.isfinite(fv.features).all()
    assert fv.exp[0, 5:, :8].mean() > 0.9  # harmonics below 1.6 kHz: strong pitch correlation
    assert fn.exp[0, 5:, :8].abs().mean() < 0.6  # few bins per low band: noisy, but lower
    assert (fv.period[0, 5:] - 100).abs().max() <= 1
    # pitch feature 0.01 (T * 48000 / sr - 300): 100 samples at 16 kHz = 300 at 48 kHz -> 0
    assert fv.features[0, 5:, 36].abs().max() < 0.02


# ------------------------------------------------------------------ network behaviour
def test_decay_limit_matches_recursion(tiny):
    x = _voiced(8000, 16000)
    spec = stft(x[None], tiny.geometry)
    g = torch.rand(1, spec.shape[2], 18) ** 3
    last = torch.rand(1, 18)
    out = tiny._decay_limit(g, last)
    prev, ref = last, []
    for i in range(g.shape[1]):
        prev = torch.maximum(g[:, i], 0.6 * prev)
        ref.append(prev)
    assert torch.allclose(out, torch.stack(ref, 1), rtol=1e-5, atol=1e-7)


def test_shapes_and_gains(tiny):
    spec = stft(_voiced(3200, 16000)[None].repeat(2, 1), tiny.geometry)
    out = tiny.forward_with_gains(spec)
    assert out.spec.shape == spec.shape
    assert out.gains.shape == (2, spec.shape[2], 18) and out.vad.shape == (2, spec.shape[2])
    assert ((out.gains > 0) & (out.gains < 1)).all() and ((out.vad > 0) & (out.vad < 1)).all()
    with pytest.raises(ValueError, match="expected spec"):
        tiny(torch.randn(1, 257, 4, 2))


def test_no_pitch_filter_is_band_gain_mask():
    torch.manual_seed(1)
    m = RNNoise(RNNoiseConfig(dense_size=8, vad_size=8, noise_size=8, denoise_size=8,
                              use_pitch_filter=False, gain_decay=0.0)).eval()
    spec = stft(_voiced(3200, 16000)[None], m.geometry)
    out = m.forward_with_gains(spec)
    mask = (out.gains @ m.band_synthesis).transpose(1, 2)[..., None]  # B, F, T, 1
    assert torch.allclose(out.spec, spec * mask, atol=1e-6)


def test_causal(tiny):
    x = _voiced(6400, 16000)
    spec = stft(x[None], tiny.geometry)
    k = 20
    spec2 = spec.clone()
    spec2[:, :, k:] = torch.randn_like(spec2[:, :, k:]) * 5
    with torch.inference_mode():
        a, b = tiny(spec), tiny(spec2)
    assert torch.equal(a[:, :, :k], b[:, :, :k])
    assert not torch.allclose(a[:, :, k:], b[:, :, k:])


def test_batch_equals_items(tiny):
    xs = torch.stack([_voiced(4800, 16000, f0=f, seed=i) for i, f in enumerate((110, 190, 260))])
    with torch.inference_mode():
        batch = enhance(tiny, xs)
        items = torch.stack([enhance(tiny, x) for x in xs])
    assert torch.allclose(batch, items, atol=TOL)


@pytest.mark.parametrize("factory,chunks", [
    (rnnoise_tiny, (1, 160, 97, 1231)),
    (rnnoise_16k, (160, 333)),
    (rnnoise_48k, (480, 1001)),
], ids=["tiny", "16k", "48k"])
def test_streamer_equals_offline(factory, chunks):
    torch.manual_seed(0)
    model = factory().eval()
    g = model.geometry
    x = _voiced(int(0.35 * g.sample_rate) + 37, g.sample_rate)
    ref = enhance(model, x)
    assert ref.abs().max() > 1e-3
    for chunk in chunks:
        s = Streamer(model)
        outs = [s.feed(x[i : i + chunk]) for i in range(0, x.numel(), chunk)] + [s.flush()]
        y = torch.cat(outs)
        assert y.numel() == g.delay + x.numel()
        err = (y[g.delay :] - ref).abs().max()
        assert err < TOL, (chunk, err)


def test_silence_in_silence_out(tiny):
    y = enhance(tiny, torch.zeros(3200))
    assert torch.equal(y, torch.zeros(3200))


# ---------------------------------------------------------------------------- hub
def test_hub_build_and_checkpoint_roundtrip(tmp_path, tiny):
    assert isinstance(build_model("rnnoise_16k"), RNNoise)
    assert load_model("rnnoise_48k", pretrained=False).config.sample_rate == 48000
    path = save_checkpoint(tiny, tmp_path / "rn.pt", name="rnnoise_tiny")
    loaded = load_model(path)
    assert isinstance(loaded, RNNoise) and loaded.config == tiny.config
    x = _voiced(3200, 16000)
    assert torch.equal(enhance(loaded, x), enhance(tiny, x))
    obj = torch.load(path, weights_only=True)
    assert obj["family"] == "rnnoise" and obj["meta"]["hop_length"] == 160


def test_gradients_finite(tiny):
    m = rnnoise_tiny().train()
    spec = stft(_voiced(3200, 16000)[None].repeat(2, 1), m.geometry)
    out = m.forward_with_gains(spec)
    (out.spec.square().mean() + out.gains.mean() + out.vad.mean()).backward()
    grads = [p.grad for p in m.parameters()]
    assert all(gr is not None and torch.isfinite(gr).all() for gr in grads)
    assert all(gr.abs().sum() > 0 for gr in grads)


def test_numpy_free_of_nan_on_loud_input(tiny):
    x = torch.from_numpy(np.clip(np.random.default_rng(0).standard_normal(4800) * 2, -1, 1)).float()
    assert torch.isfinite(enhance(tiny, x)).all()
