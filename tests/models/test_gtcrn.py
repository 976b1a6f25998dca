import numpy as np
import pytest
import soundfile as sf
import torch
from conftest import randomised

from denoisezoo import load_model
from denoisezoo.api import enhance
from denoisezoo.gtcrn import (
    GTCRN,
    GTCRNConfig,
    gtcrn,
    gtcrn_half,
    gtcrn_large,
    gtcrn_tiny,
    load_official_checkpoint,
)
from denoisezoo.hub import build_model, save_checkpoint
from denoisezoo.profile import count_parameters, macs_per_second

PRESETS = [gtcrn_tiny, gtcrn_half, gtcrn, gtcrn_large]


@pytest.mark.parametrize("factory", PRESETS, ids=lambda f: f.__name__)
def test_shapes(factory, device):
    model = factory().to(device).eval()
    spec = torch.randn(2, 257, 9, 2, device=device)
    with torch.no_grad():
        out = model(spec)
    assert out.shape == spec.shape
    assert torch.isfinite(out).all()


def test_paper_model_counts():
    model = gtcrn()
    assert count_parameters(model) == pytest.approx(23.7e3, rel=0.005)
    assert count_parameters(model, trainable_only=False) == pytest.approx(48.2e3, rel=0.005)
    assert macs_per_second(model) == pytest.approx(33e6, rel=0.05)


def test_half_model_counts():
    """gtcrn_half: the paper model's widths halved inside the blocks (the pruned-by-half shape)."""
    model = gtcrn_half()
    assert count_parameters(model) == 13797
    assert count_parameters(model, trainable_only=False) == 13797 + (48245 - 23669)  # same ERB
    assert macs_per_second(model) == pytest.approx(22.3e6, rel=0.01)
    assert macs_per_second(model) < 0.75 * macs_per_second(gtcrn())


def test_large_is_several_times_bigger_and_tiny_smaller():
    p = count_parameters(gtcrn())
    assert count_parameters(gtcrn_large()) > 3 * p
    assert count_parameters(gtcrn_tiny()) < p / 3
    assert macs_per_second(gtcrn_large()) > 2.5 * macs_per_second(gtcrn())


@pytest.mark.parametrize("factory", [gtcrn_tiny, gtcrn_half, gtcrn], ids=lambda f: f.__name__)
def test_causality(factory):
    """Changing the input after sample t leaves the output up to t (minus one window) unchanged."""
    model = randomised(factory, seed=1)
    x = torch.randn(16000) * 0.1
    t = 9000
    x2 = x.clone()
    x2[t:] = torch.randn(16000 - t)
    y1, y2 = enhance(model, x), enhance(model, x2)
    n = model.geometry.n_fft
    torch.testing.assert_close(y1[: t - n], y2[: t - n], atol=1e-6, rtol=0)
    assert (y1[t:] - y2[t:]).abs().max() > 1e-3  # and the change does reach the output


def test_batch_equals_items():
    model = gtcrn_tiny().eval()
    spec = torch.randn(3, 257, 12, 2)
    with torch.no_grad():
        batched = model(spec)
        single = torch.cat([model(spec[i : i + 1]) for i in range(3)])
    torch.testing.assert_close(batched, single, atol=1e-5, rtol=1e-4)


def test_gradients_flow_to_all_learnable_parameters():
    model = gtcrn_tiny().train()
    spec = torch.randn(2, 257, 6, 2)
    model(spec).pow(2).mean().backward()
    for name, p in model.named_parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all(), name
    assert all(not b.requires_grad for b in model.buffers())


def test_config_validation():
    with pytest.raises(ValueError, match="channels"):
        GTCRNConfig(channels=6)
    with pytest.raises(ValueError, match="divisible by 4"):
        GTCRNConfig(erb_bands=63)


def test_save_load_round_trip(tmp_path):
    model = gtcrn_tiny().eval()
    path = save_checkpoint(model, tmp_path / "m.pt", name="tiny-test", meta={"steps": 3})
    loaded = load_model(path)
    assert isinstance(loaded, GTCRN) and loaded.config == model.config
    assert loaded.checkpoint_meta["steps"] == 3 and loaded.checkpoint_meta["name"] == "tiny-test"
    spec = torch.randn(1, 257, 5, 2)
    with torch.no_grad():
        torch.testing.assert_close(loaded(spec), model(spec))


def test_unknown_names_and_bad_files(tmp_path):
    with pytest.raises(KeyError, match="no trained model"):
        load_model("no_such_model")
    assert isinstance(build_model("gtcrn_tiny"), GTCRN)
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"not a checkpoint")
    with pytest.raises(ValueError, match="not a readable checkpoint"):
        load_model(bad)
    with pytest.raises(FileNotFoundError):
        load_model(tmp_path / "missing.tar")


@pytest.mark.parametrize("name", ["model_trained_on_dns3.tar", "model_trained_on_vctk.tar",
                                  "stream_onnx_models__model_trained_on_dns3.tar"])
def test_official_checkpoints_load(shared, name):
    model = load_official_checkpoint(shared / "reference/gtcrn/checkpoints" / name)
    assert count_parameters(model) == 23669


def test_golden_official_example(shared):
    """Our GTCRN + the epoch-96 official checkpoint reproduces the official enh.wav (>= 40 dB SNR)."""
    ref_dir = shared / "reference/gtcrn"
    model = load_model(ref_dir / "checkpoints/stream_onnx_models__model_trained_on_dns3.tar")
    mix, sr = sf.read(ref_dir / "test_wavs/mix.wav", dtype="float32")
    ref, _ = sf.read(ref_dir / "test_wavs/enh.wav", dtype="float32")
    assert sr == 16000
    # the official pipeline: torch.stft(center=True, reflect padding), sqrt-Hann 512/256
    w = torch.hann_window(512).sqrt()
    spec = torch.view_as_real(torch.stft(torch.from_numpy(mix), 512, 256, 512, w, return_complex=True))
    with torch.no_grad():
        out = model(spec[None])[0]
    y = torch.istft(torch.view_as_complex(out.contiguous()), 512, 256, 512, w).numpy()
    n = min(len(y), len(ref))
    snr = 10 * np.log10(np.sum(ref[:n] ** 2) / np.sum((ref[:n] - y[:n]) ** 2))
    assert snr >= 40, snr
    # our own zero-padded framing (shared with streaming) differs only at the first frame
    y2 = enhance(model, torch.from_numpy(mix)).numpy()
    snr2 = 10 * np.log10(np.sum(ref[:n] ** 2) / np.sum((ref[:n] - y2[:n]) ** 2))
    assert snr2 >= 40, snr2
