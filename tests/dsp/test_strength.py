"""Strength controls: attenuation limit and dry/wet mix, offline, streaming and CLI."""

import numpy as np
import pytest
import soundfile as sf
import torch
from conftest import randomised

from denoisezoo.api import enhance
from denoisezoo.cli import main
from denoisezoo.dsp.stft import stft
from denoisezoo.dsp.strength import apply_strength, db_to_floor
from denoisezoo.gtcrn import gtcrn_tiny
from denoisezoo.hub import save_checkpoint
from denoisezoo.streaming import Streamer


def _model():
    return randomised(gtcrn_tiny)


@pytest.mark.parametrize("limit_db", [3.0, 6.0, 12.0])
def test_no_bin_attenuated_beyond_limit(limit_db):
    noisy = torch.randn(2, 50, 257, dtype=torch.complex64)
    enh = noisy * torch.rand(2, 50, 257) * 0.01  # 40 dB+ suppression everywhere
    out = apply_strength(noisy, enh, db_to_floor(limit_db))
    ratio_db = 20 * torch.log10(out.abs() / noisy.abs())
    assert ratio_db.min() >= -limit_db - 1e-3
    # bins the model suppressed less than the limit are untouched
    mild = noisy * 0.9
    torch.testing.assert_close(apply_strength(noisy, mild, db_to_floor(limit_db)), mild)


def test_zero_db_returns_input_and_mix():
    model = _model()
    x = torch.randn(8000) * 0.1
    torch.testing.assert_close(enhance(model, x, atten_lim_db=0.0), x, atol=1e-6, rtol=0)
    full, dry = enhance(model, x), x
    half = enhance(model, x, wet=0.5)
    torch.testing.assert_close(half, 0.5 * full + 0.5 * dry, atol=1e-5, rtol=0)


def test_limit_in_model_stft_domain():
    model = _model()
    x = torch.randn(16000) * 0.1
    g = model.geometry
    spec = stft(x[None], g)
    with torch.no_grad():
        out = model(spec)
    nc, oc = torch.view_as_complex(spec.contiguous()), torch.view_as_complex(out.contiguous())
    limited = apply_strength(nc, oc, db_to_floor(6.0))
    assert (20 * torch.log10(oc.abs() / nc.abs())).min() < -6.5  # the model does suppress more
    assert (20 * torch.log10(limited.abs() / nc.abs())).min() >= -6.0 - 1e-3


def test_streamer_equals_offline_with_limit_and_ramps_without_click():
    model = _model()
    x = torch.randn(12000) * 0.1
    s = Streamer(model)
    s.set_strength(9.0, wet=0.8)
    y = np.concatenate([s.feed(x[i:i + 333]) for i in range(0, len(x), 333)] + [s.flush()])
    ref = enhance(model, x, atten_lim_db=9.0, wet=0.8).numpy()
    np.testing.assert_allclose(y[s.delay:], ref, atol=1e-5)
    # changing strength mid-stream ramps over a few frames: no jump larger than the signal's own
    s2 = Streamer(model)
    first = s2.feed(x[:6000].numpy())
    s2.set_strength(0.0)  # to bypass, while streaming
    rest = np.concatenate([s2.feed(x[i:i + 256].numpy()) for i in range(6000, len(x), 256)])
    out = np.concatenate([first, rest])
    jumps = np.abs(np.diff(out))
    assert jumps.max() < 4 * np.abs(np.diff(x.numpy())).max()
    # after the ramp the output is the input (delayed)
    d = s2.delay
    tail = out[-2000:]
    np.testing.assert_allclose(tail, x.numpy()[len(out) - 2000 - d:len(out) - d], atol=1e-5)


def test_cli_atten_lim(tmp_path):
    ck = save_checkpoint(_model(), tmp_path / "m.pt")
    x = (0.1 * np.random.default_rng(0).standard_normal(8000)).astype(np.float32)
    sf.write(tmp_path / "in.wav", x, 16000, subtype="FLOAT")
    assert main(["denoise", str(tmp_path / "in.wav"), "-o", str(tmp_path / "o.wav"), "--checkpoint", str(ck),
                 "--atten-lim-db", "0"]) == 0
    y, _ = sf.read(tmp_path / "o.wav", dtype="float32")
    np.testing.assert_allclose(y, x, atol=1e-5)
    assert main(["denoise", str(tmp_path / "in.wav"), "-o", str(tmp_path / "p.wav"), "--checkpoint", str(ck),
                 "--atten-lim-db", "-3"]) == 1
