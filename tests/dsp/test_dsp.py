import numpy as np
import pytest
import torch

from denoisezoo.dsp import StftGeometry, erb_filterbank, istft, num_frames, stft
from denoisezoo.dsp.resample import Resampler, resample


@pytest.mark.parametrize("n", [1, 255, 256, 257, 4000])
def test_stft_istft_perfect_reconstruction(n):
    g = StftGeometry(16000, 512, 256)
    x = torch.randn(2, n, dtype=torch.float64)
    spec = stft(x, g, g.make_window(torch.float64))
    assert spec.shape == (2, 257, num_frames(n, 512, 256), 2)
    y = istft(spec, g, n, g.make_window(torch.float64))
    torch.testing.assert_close(y, x, atol=1e-10, rtol=0)


def test_stft_matches_torch_center_constant():
    g = StftGeometry(16000, 512, 256)
    x = torch.randn(3000, dtype=torch.float64)
    ours = stft(x, g, g.make_window(torch.float64))
    ref = torch.stft(x, 512, 256, 512, g.make_window(torch.float64), center=True,
                     pad_mode="constant", return_complex=True)
    ref = torch.view_as_real(ref)
    t = min(ours.shape[1], ref.shape[1])
    torch.testing.assert_close(ours[:, :t], ref[:, :t], atol=1e-9, rtol=0)


def test_vorbis_window_is_power_complementary():
    g = StftGeometry(48000, 960, 480, window="vorbis")
    w = g.make_window(torch.float64)
    torch.testing.assert_close(w[:480] ** 2 + w[480:] ** 2, torch.ones(480, dtype=torch.float64))


def test_erb_filterbank_layout():
    fb = erb_filterbank(512, 16000, 65, 64)
    assert fb.shape == (64, 192)
    assert (fb >= 0).all()
    # every high bin is covered and neighbouring triangles sum to one across the covered range
    torch.testing.assert_close(fb.sum(0), torch.ones(192), atol=1e-5, rtol=0)
    # band centres increase monotonically
    centres = (fb * torch.arange(192)).sum(1) / fb.sum(1)
    assert (centres[1:] > centres[:-1]).all()


def test_erb_matches_official_matrix(shared):
    ck = torch.load(shared / "reference/gtcrn/checkpoints/model_trained_on_dns3.tar",
                    map_location="cpu", weights_only=True)
    official = ck["model"]["erb.erb_fc.weight"]
    torch.testing.assert_close(erb_filterbank(512, 16000, 65, 64), official, atol=1e-6, rtol=0)


def test_blockwise_resampling_equals_whole():
    x = np.random.default_rng(0).standard_normal((44100, 2)).astype(np.float32)
    whole = resample(x, 44100, 16000)
    r = Resampler(44100, 16000, 2)
    parts = [r.process(x[i : i + 777]) for i in range(0, len(x), 777)]
    parts.append(r.process(np.zeros((0, 2), np.float32), last=True))
    blk = np.concatenate(parts)
    assert blk.shape == whole.shape
    np.testing.assert_allclose(blk, whole, atol=1e-6)
    assert abs(whole.shape[0] - 16000) <= 1
