"""The original RNNoise (v0.1.1) as ``rnnoise_48k``: the rnn_data.c converter, the release's DSP
(features and pitch against a plain C-semantics reference written here), and the output against
the release's own C demo on the reference files of ../shared (skipped when absent).

The reference below follows ``denoise.c`` / ``pitch.c`` / ``celt_lpc.c`` of the release line by
line (loops, float32 where the C code keeps floats); it shares no code with the port.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from denoisezoo.dsp.stft import stft
from denoisezoo.rnnoise_port import rnnoise_48k
from denoisezoo.rnnoise_port.official import (
    load_rnn_data,
    parse_rnn_data,
    state_dict_from_rnn_data,
)

REF = Path(__file__).resolve().parents[3] / "shared" / "reference" / "rnnoise"
needs_ref = pytest.mark.skipif(not (REF / "rnn_data.c").is_file(),
                               reason="../shared/reference/rnnoise not available")
f32 = np.float32


# ------------------------------------------------------------ C-semantics reference (numpy)
def _biquad(x, mem):
    b, a = (-2.0, 1.0), (float(f32(-1.99599)), float(f32(0.996)))
    y = np.empty_like(x)
    for i, xi in enumerate(x.astype(np.float64)):
        yi = f32(xi + mem[0])
        mem[0] = f32(mem[1] + (b[0] * xi - a[0] * float(yi)))
        mem[1] = f32(b[1] * xi - a[1] * float(yi))
        y[i] = yi
    return y


def _dot(a, b):
    return f32(np.dot(a.astype(np.float64), b.astype(np.float64)))


def _downsample(x):
    n = len(x) // 2
    lp = np.zeros(n, f32)
    for i in range(1, n):
        lp[i] = f32(.5) * (f32(.5) * (x[2 * i - 1] + x[2 * i + 1]) + x[2 * i])
    lp[0] = f32(.5) * (f32(.5) * x[1] + x[0])
    ac = np.array([_dot(lp[k:], lp[: n - k]) for k in range(5)], f32)
    ac[0] *= f32(1.0001)
    for i in range(1, 5):
        ac[i] -= ac[i] * (f32(.008) * i) * (f32(.008) * i)
    lpc, err = np.zeros(4, f32), ac[0]
    for i in range(4 if ac[0] != 0 else 0):
        rr = f32(0)
        for j in range(i):
            rr += lpc[j] * ac[i - j]
        r = -(rr + ac[i + 1]) / err
        lpc[i] = r
        for j in range((i + 1) >> 1):
            t1, t2 = lpc[j], lpc[i - 1 - j]
            lpc[j], lpc[i - 1 - j] = t1 + r * t2, t2 + r * t1
        err = err - r * r * err
        if err < f32(.001) * ac[0]:
            break
    lpc = lpc * f32(.9) ** np.arange(1, 5, dtype=f32)
    c1 = f32(.8)
    num = [lpc[0] + c1, lpc[1] + c1 * lpc[0], lpc[2] + c1 * lpc[1], lpc[3] + c1 * lpc[2],
           c1 * lpc[3]]
    out = lp.copy()
    for k in range(5):
        out[k + 1 :] += num[k] * lp[: n - k - 1]
    return out


def _best_pitch(xc, y, length, max_pitch):
    syy = f32(1) + _dot(y[:length], y[:length])
    num_, den_, best = [f32(-1), f32(-1)], [f32(0), f32(0)], [0, 1]
    for i in range(max_pitch):
        if xc[i] > 0:
            num = f32(xc[i] * f32(1e-12)) ** 2
            if num * den_[1] > num_[1] * syy:
                if num * den_[0] > num_[0] * syy:
                    num_[1], den_[1], best[1] = num_[0], den_[0], best[0]
                    num_[0], den_[0], best[0] = num, syy, i
                else:
                    num_[1], den_[1], best[1] = num, syy, i
        syy = max(f32(1), syy + (y[i + length] * y[i + length] - y[i] * y[i]))
    return best


def _pitch_search(xd, length=960, max_pitch=588):
    x, y = xd[384:], xd
    x4, y4 = x[: length >> 1 : 2], y[: (length + max_pitch) >> 1 : 2]
    xc = np.array([_dot(x4, y4[i : i + (length >> 2)]) for i in range(max_pitch >> 2)], f32)
    b = _best_pitch(xc, y4, length >> 2, max_pitch >> 2)
    xc = np.zeros(max_pitch >> 1, f32)
    for i in range(max_pitch >> 1):
        if abs(i - 2 * b[0]) <= 2 or abs(i - 2 * b[1]) <= 2:
            xc[i] = max(f32(-1), _dot(x[: length >> 1], y[i : i + (length >> 1)]))
    b = _best_pitch(xc, y, length >> 1, max_pitch >> 1)[0]
    off = 0
    if 0 < b < (max_pitch >> 1) - 1:
        a, m, c = xc[b - 1], xc[b], xc[b + 1]
        off = 1 if (c - a) > f32(.7) * (m - a) else (-1 if (a - c) > f32(.7) * (m - c) else 0)
    return 768 - (2 * b - off)


_SECOND = (0, 0, 3, 2, 3, 2, 5, 2, 3, 2, 3, 2, 5, 2, 3, 2)


def _remove_doubling(xd, t0, prev_period, prev_gain, maxp=384, minp=30, n=480):
    x = xd[maxp : maxp + n]

    def seg(t):
        return xd[maxp - t : maxp - t + n]

    t0 = min(t0 // 2, maxp - 1)
    pp = prev_period // 2
    xx = _dot(x, x)
    yyl = [max(f32(0), _dot(seg(i), seg(i))) for i in range(maxp + 1)]
    best_xy, best_yy, t = _dot(x, seg(t0)), yyl[t0], t0
    g = g0 = f32(best_xy / np.sqrt(1 + xx * best_yy))
    for k in range(2, 16):
        t1 = (2 * t0 + k) // (2 * k)
        if t1 < minp:
            break
        t1b = ((t0 if t1 + t0 > maxp else t0 + t1) if k == 2
               else (2 * _SECOND[k] * t0 + k) // (2 * k))
        xy = f32(.5) * (_dot(x, seg(t1)) + _dot(x, seg(t1b)))
        yy = f32(.5) * (yyl[t1] + yyl[t1b])
        g1 = f32(xy / np.sqrt(1 + xx * yy))
        cont = (prev_gain if abs(t1 - pp) <= 1 else
                f32(.5) * prev_gain if abs(t1 - pp) <= 2 and 5 * k * k < t0 else f32(0))
        thresh = (max(f32(.4), f32(.85) * g0 - cont) if t1 < 3 * minp
                  else max(f32(.3), f32(.7) * g0 - cont))
        if g1 > thresh:
            best_xy, best_yy, t, g = xy, yy, t1, g1
    best_xy = max(f32(0), best_xy)
    gain = min(f32(1) if best_yy <= best_xy else f32(best_xy / (best_yy + 1)), g)
    a, m, c = (_dot(x, seg(t + k - 1)) for k in range(3))
    off = 1 if (c - a) > f32(.7) * (m - a) else (-1 if (a - c) > f32(.7) * (m - c) else 0)
    return max(2 * t + off, 60), gain


_EDGES = (0, 1, 2, 3, 4, 5, 6, 7, 8, 10, 12, 14, 16, 20, 24, 28, 34, 40, 48, 60, 78, 100)


def _bands(x, p):
    s = np.zeros(22)
    for i in range(21):
        size = (_EDGES[i + 1] - _EDGES[i]) * 4
        for j in range(size):
            k, frac = _EDGES[i] * 4 + j, j / size
            v = (x[k] * np.conj(p[k])).real
            s[i] += (1 - frac) * v
            s[i + 1] += frac * v
    s[[0, 21]] *= 2
    return s


def _dct(v):
    i = np.arange(22)
    m = np.cos((i[None] + .5) * i[:, None] * np.pi / 22) * np.sqrt(2 / 22)
    m[0] *= np.sqrt(.5)
    return m @ v


def c_reference_features(x: np.ndarray, frames: int) -> tuple[np.ndarray, np.ndarray]:
    """``compute_frame_features`` of the release over int16-scale ``x``: (features (T, 42),
    periods (T,))."""
    half = np.sin(.5 * np.pi * np.sin(.5 * np.pi * (np.arange(480) + .5) / 480) ** 2)
    win = np.concatenate([half, half[::-1]])
    mem, buf, prev = [f32(0), f32(0)], np.zeros(1728, f32), np.zeros(480, f32)
    period, gain, ceps_mem, memid = 0, f32(0), np.zeros((8, 22)), 0
    feats, periods = [], []
    for t in range(frames):
        hp = _biquad(x[t * 480 : (t + 1) * 480], mem)
        spec = np.fft.rfft(np.concatenate([prev, hp]) * win) / 960
        prev, buf = hp, np.concatenate([buf[480:], hp])
        xd = _downsample(buf)
        period, gain = _remove_doubling(xd, _pitch_search(xd), period, gain)
        pspec = np.fft.rfft(buf[768 - period : 1728 - period] * win) / 960
        ex, ep, exp = _bands(spec, spec), _bands(pspec, pspec), _bands(spec, pspec)
        f = np.zeros(42)
        f[34:40] = _dct(exp / np.sqrt(.001 + ex * ep))[:6] - [1.3, .9, 0, 0, 0, 0]
        f[40] = .01 * (period - 300)
        log_max = follow = -2
        ly = np.zeros(22)
        for i in range(22):
            ly[i] = max(log_max - 7, follow - 1.5, np.log10(1e-2 + ex[i]))
            log_max, follow = max(log_max, ly[i]), max(follow - 1.5, ly[i])
        ceps = _dct(ly) - np.r_[12, 4, np.zeros(20)]
        ceps_mem[memid] = ceps
        c1, c2 = ceps_mem[(memid - 1) % 8], ceps_mem[(memid - 2) % 8]
        memid = (memid + 1) % 8
        f[:22], f[:6] = ceps, ceps[:6] + c1[:6] + c2[:6]
        f[22:28], f[28:34] = ceps[:6] - c2[:6], ceps[:6] - 2 * c1[:6] + c2[:6]
        dist = ((ceps_mem[:, None] - ceps_mem[None]) ** 2).sum(-1)
        np.fill_diagonal(dist, np.inf)
        f[41] = dist.min(1).mean() - 2.1
        feats.append(f)
        periods.append(period)
    return np.array(feats), np.array(periods)


def _features(model, x: np.ndarray, frames: int):
    with torch.inference_mode():
        f, _ = model.extract_features(stft(torch.from_numpy(x)[None], model.geometry))
    return f.features[0, :frames].numpy(), f.period[0, :frames].numpy()


# ------------------------------------------------------------------------------- converter
def _fake_rnn_data(rng: np.random.Generator) -> tuple[str, dict[str, np.ndarray]]:
    """An rnn_data.c text in the release's format (42 features, widths 4 / 3 / 5 / 6)."""
    sizes = {"input_dense": (42, 4, "Dense", "TANH"), "vad_gru": (4, 3, "GRU", "RELU"),
             "noise_gru": (4 + 3 + 42, 5, "GRU", "TANH"),
             "denoise_gru": (3 + 5 + 42, 6, "GRU", "RELU"),
             "denoise_output": (6, 22, "Dense", "SIGMOID"), "vad_output": (3, 1, "Dense", "SIGMOID")}
    text, tables = ["/*This file is automatically generated from a Keras model*/\n"], {}
    for name, (m, n, kind, act) in sizes.items():
        g = 3 if kind == "GRU" else 1
        shapes = {"weights": m * g * n, "bias": g * n}
        if kind == "GRU":
            shapes["recurrent_weights"] = n * 3 * n
        for part, size in shapes.items():
            v = rng.integers(-128, 128, size)
            tables[f"{name}_{part}"] = v
            body = ",\n   ".join(", ".join(map(str, v[i : i + 8])) for i in range(0, size, 8))
            text.append(f"static const rnn_weight {name}_{part}[{size}] = {{\n   {body}\n}};\n")
        refs = [f"{name}_bias", f"{name}_weights"] + ([f"{name}_recurrent_weights"]
                                                      if kind == "GRU" else [])
        text.append(f"static const {kind}Layer {name} = {{\n   " + ",\n   ".join(refs)
                    + f",\n   {m}, {n}, ACTIVATION_{act}\n}};\n")
    return "\n".join(text), tables


def test_rnn_data_layout_and_scale(tmp_path):
    text, tables = _fake_rnn_data(np.random.default_rng(0))
    path = tmp_path / "rnn_data.c"
    path.write_text(text)
    model = load_rnn_data(path)
    cfg = model.config
    assert (cfg.dense_size, cfg.vad_size, cfg.noise_size, cfg.denoise_size) == (4, 3, 5, 6)
    assert cfg.gru_activations == ("relu", "tanh", "relu") and cfg.pitch_method == "opus"
    sd = model.state_dict()
    # dense: input-major w[j * N + i] -> Linear.weight[i, j]; values / 256
    w = tables["input_dense_weights"].reshape(42, 4)
    assert torch.equal(sd["input_dense.weight"], torch.tensor(w.T / 256, dtype=torch.float32))
    # GRU: w[j * 3N + gate * N + i] is KerasGRU.kernel[j, gate * N + i] as it is
    k = tables["noise_gru_weights"].reshape(49, 15)
    assert torch.equal(sd["noise_gru.kernel"], torch.tensor(k / 256, dtype=torch.float32))
    r = tables["denoise_gru_recurrent_weights"].reshape(6, 18)
    assert torch.equal(sd["denoise_gru.recurrent_kernel"], torch.tensor(r / 256,
                                                                        dtype=torch.float32))
    assert torch.equal(sd["vad_output.bias"], torch.tensor(tables["vad_output_bias"] / 256,
                                                           dtype=torch.float32))


def test_rnn_data_rejects_other_layouts(tmp_path):
    text, _ = _fake_rnn_data(np.random.default_rng(1))
    path = tmp_path / "rnn_data.c"
    path.write_text(text.replace("42, 4, ACTIVATION_TANH", "41, 4, ACTIVATION_TANH"))
    with pytest.raises(ValueError):
        load_rnn_data(path)
    with pytest.raises(FileNotFoundError):
        load_rnn_data(tmp_path / "missing.c")


@needs_ref
def test_shipped_weights_are_the_release_weights():
    from denoisezoo import load_model

    shipped = load_model("rnnoise_48k")
    layers = parse_rnn_data((REF / "rnn_data.c").read_text())
    want = state_dict_from_rnn_data(layers)
    assert shipped.config == rnnoise_48k().config
    for key, value in shipped.state_dict().items():
        assert torch.equal(value, want[key]), key
    meta = shipped.checkpoint_meta
    assert meta["licence"] == "BSD-3-Clause" and "Jean-Marc Valin" in meta["licence_notice"]
    lic = Path(__file__).resolve().parents[2] / "src/denoisezoo/weights/rnnoise_48k.LICENSE"
    assert lic.read_text() == (REF / "COPYING").read_text()


# ----------------------------------------------------------------------------- golden DSP
def _speechlike_48k(n: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    t = np.arange(n) / 48000
    f0 = 140 * (1 + 0.15 * np.sin(2 * np.pi * 0.7 * t))
    phase = 2 * np.pi * np.cumsum(f0) / 48000
    x = sum(np.sin(k * phase) / k for k in range(1, 12)) * (np.sin(2 * np.pi * 2.5 * t) > -0.4)
    return (0.15 * x + 0.02 * rng.standard_normal(n)).astype(np.float32)


def test_features_match_the_c_semantics_on_a_synthetic_voice():
    frames = 40
    x = _speechlike_48k(frames * 480 + 480)
    got, periods = _features(rnnoise_48k().eval(), x, frames)
    want, want_periods = c_reference_features(x * 32768, frames)
    assert (periods == want_periods).all()
    np.testing.assert_allclose(got, want, atol=2e-2)


@needs_ref
def test_features_match_the_c_semantics_on_a_reference_file():
    frames = 60
    x, _ = sf.read(REF / "test_wavs" / "noisy0_48k.wav", dtype="float32")
    got, periods = _features(rnnoise_48k().eval(), x, frames)
    want, want_periods = c_reference_features(x * 32768, frames)
    assert (periods == want_periods).mean() >= 0.95
    same = periods == want_periods
    np.testing.assert_allclose(got[same], want[same], atol=2e-2)


# --------------------------------------------------------------- output vs the C demo
@needs_ref
@pytest.mark.parametrize("k", [0, 1, 2])
def test_output_reproduces_the_c_demo(k, tmp_path):
    """``denoisezoo denoise --model rnnoise_48k`` vs what the release's rnnoise_demo wrote (which
    drops its first 480-sample frame, so its sample n is input sample n): >= 30 dB SNR."""
    from denoisezoo.cli import main

    src = REF / "test_wavs" / f"noisy{k}_48k.wav"
    theirs, _ = sf.read(REF / "test_wavs" / f"noisy{k}_48k__rnnoise_v0.1.1.wav", dtype="float64")
    out = tmp_path / "out.wav"
    assert main(["denoise", str(src), "-o", str(out), "--model", "rnnoise_48k"]) == 0
    ours, sr = sf.read(out, dtype="float64")
    assert sr == 48000
    n = len(theirs)
    snr = 10 * np.log10(np.sum(theirs**2) / np.sum((ours[:n] - theirs) ** 2))
    assert snr >= 30.0, snr
