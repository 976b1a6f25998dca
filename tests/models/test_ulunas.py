"""UL-UNAS: shapes, counts, causality, batching, the exact window change, the authors' checkpoint."""

import numpy as np
import pytest
import soundfile as sf
import torch
from conftest import randomised, shared_file

from denoisezoo import load_model
from denoisezoo.api import enhance
from denoisezoo.dsp.stft import istft, sqrt_hann, stft
from denoisezoo.hub import save_checkpoint
from denoisezoo.profile import count_parameters, macs_per_second
from denoisezoo.ulunas import ULUNAS, ULUNASConfig, load_official_checkpoint, ulunas, ulunas_tiny
from denoisezoo.ulunas.model import WindowConverter
from denoisezoo.ulunas.official import is_official_checkpoint

OFFICIAL = "reference/ul-unas/checkpoints/model_trained_on_dns3.tar"


def _snr(ref: np.ndarray, est: np.ndarray) -> float:
    return float(10 * np.log10(np.sum(ref**2) / np.sum((ref - est) ** 2)))


@pytest.mark.parametrize("factory", [ulunas_tiny, ulunas], ids=lambda f: f.__name__)
def test_shapes(factory, device):
    model = factory().to(device).eval()
    spec = torch.randn(2, 257, 9, 2, device=device)
    with torch.no_grad():
        out = model(spec)
    assert out.shape == spec.shape
    assert torch.isfinite(out).all()
    with pytest.raises(ValueError, match="257"):
        model(spec[:, :256])


def test_paper_model_counts():
    """171,328 parameters as the authors count them (all ``nn.Parameter``, the two frozen ERB
    matrices included); 146,752 of them learnable. 40.6 M MACs/s under denoisezoo.profile's
    convention: 33.1 M in convs, linears, GRUs and norms, + 1.5 M ERB products (34.6 M: what
    ptflops counts; the paper reports about 35 M), + 6 M elementwise work of the affine PReLUs,
    the attention gates, residuals, skips and the mask (the family's counters). The exact window
    change at the boundary is not counted."""
    model = ulunas()
    assert count_parameters(model) == 146_752
    assert count_parameters(model, trainable_only=False) == 171_328
    assert macs_per_second(model) == pytest.approx(40.59e6, rel=0.005)
    assert count_parameters(ulunas_tiny()) < count_parameters(model) / 5


@pytest.mark.parametrize("factory", [ulunas_tiny, ulunas], ids=lambda f: f.__name__)
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
    model = randomised(ulunas_tiny)
    spec = torch.randn(3, 257, 12, 2)
    with torch.no_grad():
        batched = model(spec)
        single = torch.cat([model(spec[i : i + 1]) for i in range(3)])
    torch.testing.assert_close(batched, single, atol=1e-5, rtol=1e-4)


def test_gradients_flow_to_all_learnable_parameters():
    model = ulunas_tiny().train()
    spec = torch.randn(2, 257, 6, 2)
    spec[:, :, 0] = 0  # silent frames (log of the clamped magnitude) keep gradients finite
    model(spec).pow(2).mean().backward()
    for name, p in model.named_parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all(), name
    assert all(not b.requires_grad for b in model.buffers())


def test_window_change_is_exact():
    """sqrt-Hann analysis -> Hann frames -> back to sqrt-Hann synthesis frames: the project's
    overlap-add gives the input back, eagerly (torch.fft) and through the matrices of the traced
    path; and with a unit mask the Hann-domain frames are torch.stft's Hann frames."""
    cfg = ULUNASConfig()
    g, conv = cfg.geometry, WindowConverter(cfg)
    x = torch.randn(1, 4000, dtype=torch.float64)
    spec = stft(x, g).transpose(1, 2)  # B, T, F, 2
    hann = conv.to_network(spec)
    ref = torch.view_as_real(torch.stft(x, 512, 256, 512, torch.hann_window(512, dtype=x.dtype),
                                        center=True, pad_mode="constant", return_complex=True))
    ref = ref.transpose(1, 2)  # B, T', F, 2: torch.stft stops at the frame holding the last sample
    torch.testing.assert_close(hann[:, : ref.shape[1]], ref, atol=1e-10, rtol=0)
    back = istft(conv.from_network(hann).transpose(1, 2), g, x.shape[-1])
    torch.testing.assert_close(back, x, atol=1e-10, rtol=0)
    for which in (0, 1):
        m = conv._get(x.device, x.dtype, True)[which]
        dense = (spec.flatten(-2) @ m).unflatten(-1, (257, 2))
        torch.testing.assert_close(dense, conv._convert(spec, which), atol=1e-9, rtol=0)
    assert not WindowConverter(ULUNASConfig(network_window="sqrt_hann")).active


def test_config_validation_and_round_trip():
    with pytest.raises(ValueError, match="block types"):
        ULUNASConfig(block_types=("conv", "xx", "dws", "mb", "dws"))
    with pytest.raises(ValueError, match="one entry per block"):
        ULUNASConfig(channels=(12, 24))
    with pytest.raises(ValueError, match="divisible"):
        ULUNASConfig(erb_bands=62)
    cfg = ulunas_tiny().config
    assert ULUNASConfig.from_dict(cfg.to_dict()) == cfg
    assert ULUNASConfig().widths == (129, 65, 33, 33, 33, 33)


def test_save_load_round_trip(tmp_path):
    model = randomised(ulunas_tiny)
    path = save_checkpoint(model, tmp_path / "m.pt", name="tiny-test", meta={"steps": 3})
    loaded = load_model(path)
    assert isinstance(loaded, ULUNAS) and loaded.config == model.config
    assert loaded.checkpoint_meta["name"] == "tiny-test"
    spec = torch.randn(1, 257, 5, 2)
    with torch.no_grad():
        torch.testing.assert_close(loaded(spec), model(spec))


# ----------------------------------------------------------------- the authors' checkpoint
def test_official_checkpoint_loads_and_is_told_apart(shared):
    path = shared_file(OFFICIAL)
    model = load_official_checkpoint(path)
    assert count_parameters(model, trainable_only=False) == 171_328
    hub_model = load_model(path)  # hub.model_from_checkpoint recognises the authors' file
    assert isinstance(hub_model, ULUNAS) and hub_model.checkpoint_meta["name"] == "ulunas_official"
    for name in ("model_trained_on_dns3.tar", "stream_onnx_models__model_trained_on_dns3.tar"):
        gt = shared_file(f"reference/gtcrn/checkpoints/{name}")
        assert not is_official_checkpoint(torch.load(gt, map_location="cpu", weights_only=True))
        assert type(load_model(gt)).__name__ == "GTCRN"


@pytest.mark.parametrize("clip", ["0119", "0174"])
def test_official_checkpoint_reproduces_the_authors_enhanced_files(shared, clip):
    """The authors' ``enhanced/`` files, made by their ulunas.py: torch.stft(center=True,
    reflect padding), periodic Hann, istft normalised by the Hann envelope.

    - With the authors' framing (reflect-padded frames, here analysed with our sqrt-Hann window
      and changed to Hann by the model): >= 60 dB SNR (65.7 / 67.8 dB measured).
    - With the project's zero-padded framing (``denoisezoo.api.enhance``, as every command runs
      it): the first and the last frame differ by the padding, and the recurrent states carry the
      difference on; >= 40 dB over the file without its first and last window (512 samples each;
      40.8 / 41.1 dB measured), >= 35 dB over the whole file (35.6 / 35.4 dB).
    """
    model = load_official_checkpoint(shared_file(OFFICIAL))
    x, sr = sf.read(shared_file(f"reference/ul-unas/audio/noisy/{clip}.wav"), dtype="float32")
    ref, _ = sf.read(shared_file(f"reference/ul-unas/audio/enhanced/{clip}.wav"), dtype="float32")
    assert sr == 16000 and len(x) == len(ref)
    xt = torch.from_numpy(x)
    w = sqrt_hann(512)
    spec = torch.view_as_real(torch.stft(xt, 512, 256, 512, w, return_complex=True))  # reflect
    with torch.no_grad():
        out = model(spec[None])[0]
    y = torch.istft(torch.view_as_complex(out.contiguous()), 512, 256, 512, w, length=len(x))
    assert _snr(ref, y.numpy()) >= 60
    y = enhance(model, xt).numpy()
    assert _snr(ref[512:-512], y[512:-512]) >= 40
    assert _snr(ref, y) >= 35


def test_shipped_weights_are_the_authors(shared):
    from denoisezoo.hub import shipped_models

    if "ulunas" not in shipped_models():
        pytest.skip("ulunas weights not shipped")
    official = load_official_checkpoint(shared_file(OFFICIAL)).state_dict()
    shipped = load_model("ulunas").state_dict()
    assert shipped.keys() == official.keys()
    assert all(torch.equal(shipped[k], official[k]) for k in official)
