"""`gtcrn_48k`: the same GTCRN with its STFT/ERB layout derived from the rate, warm start, rate variants."""

import numpy as np
import pytest
import torch
from conftest import randomised, speechlike

from denoisezoo import hub
from denoisezoo.gtcrn import GTCRNConfig, gtcrn, gtcrn_48k
from denoisezoo.profile import count_parameters, macs_per_second
from denoisezoo.streaming import Streamer
from denoisezoo.training.system import EnhancementSystem, warm_start


def test_layout_derived_from_rate():
    c = GTCRNConfig.for_sample_rate(48000)
    assert (c.n_fft, c.hop_length, c.erb_low_bins, c.erb_bands) == (1536, 768, 65, 64)
    g = c.geometry
    assert g.latency_ms == pytest.approx(32.0) and g.sample_rate == 48000
    assert GTCRNConfig.for_sample_rate(16000) == GTCRNConfig()
    with pytest.raises(ValueError, match="even number"):
        GTCRNConfig.for_sample_rate(44100)


def test_same_network_more_erb_and_fft_work():
    m48, m16 = gtcrn_48k(), gtcrn()
    assert count_parameters(m48) == count_parameters(m16) == 23669
    # ERB matrices cover 3x the bins; the network after them is unchanged
    assert count_parameters(m48, trainable_only=False) == 113781
    assert macs_per_second(m48) == pytest.approx(42.34e6, rel=0.01)
    assert m48.erb.analysis.shape[1] > 2.9 * m16.erb.analysis.shape[1]


def test_streaming_equals_offline_at_48k():
    model = randomised(gtcrn_48k)
    g = model.geometry
    x = torch.from_numpy(speechlike(g.hop_length * 12 + 123, sr=48000))
    with torch.no_grad():
        from denoisezoo.api import enhance

        ref = enhance(model, x).numpy()
    s = Streamer(model)
    y = torch.cat([s.feed(x[i : i + 1000]) for i in range(0, x.numel(), 1000)] + [s.flush()])
    np.testing.assert_allclose(y[g.delay :].numpy(), ref, atol=1e-5)


def test_warm_start_copies_all_but_the_erb_matrices():
    src = randomised(gtcrn, seed=1)
    dst = gtcrn_48k()
    import tempfile
    from pathlib import Path

    with tempfile.TemporaryDirectory() as d:
        path = hub.save_checkpoint(src, Path(d) / "g.pt")
        names = warm_start(dst, str(path))
        sys_ = EnhancementSystem(gtcrn_48k(), init_from=str(path))
    skipped = set(dst.state_dict()) - set(names)
    assert skipped == {"erb.analysis", "erb.synthesis"}
    for k, v in src.state_dict().items():
        if k not in skipped:
            assert torch.equal(dst.state_dict()[k], v), k
            assert torch.equal(sys_.model.state_dict()[k], v), k
    with pytest.raises(ValueError, match="no parameter"):
        from denoisezoo.rnnoise_port.presets import rnnoise_tiny

        with tempfile.TemporaryDirectory() as d:
            warm_start(rnnoise_tiny(), str(hub.save_checkpoint(src, Path(d) / "g.pt")))


def test_rate_variant_picks_the_shipped_native_model(tmp_path, monkeypatch):
    hub.save_checkpoint(gtcrn(), tmp_path / "gtcrn.pt", name="gtcrn")
    monkeypatch.setattr(hub, "_weights_dir", lambda: tmp_path)
    assert hub.rate_variant("gtcrn", 16000) == "gtcrn"
    assert hub.rate_variant("gtcrn", 48000) is None  # nothing ships at 48 kHz: resample
    hub.save_checkpoint(gtcrn_48k(), tmp_path / "gtcrn_48k.pt", name="gtcrn_48k")
    assert hub.rate_variant("gtcrn", 48000) == "gtcrn_48k"
    assert hub.rate_variant("gtcrn_48k", 16000) == "gtcrn"
    assert hub.rate_variant("gtcrn", 44100) is None

