"""RNNoise training: band-gain targets, VAD labels, the RNNoise loss, Lightning system and CLI."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch

from denoisezoo.dsp.stft import stft
from denoisezoo.rnnoise_port import (
    RNNoiseConfig,
    band_energies,
    band_gain_targets,
    effective_band_gains,
    rnnoise_tiny,
    vad_labels,
)
from denoisezoo.training import EnhancementSystem
from denoisezoo.training.losses import RNNoiseLoss

REPO = Path(__file__).resolve().parents[2]
SHARED = REPO.parent / "shared"
CFG = RNNoiseConfig()



def _tone(n: int, amp: float = 0.3, f: float = 440.0) -> torch.Tensor:
    t = torch.arange(n, dtype=torch.float64) / 16000
    return (amp * torch.sin(2 * math.pi * f * t)).float()


def _spec(x: torch.Tensor) -> torch.Tensor:
    return stft(x, CFG.geometry)


def test_band_gain_targets():
    clean = _tone(3200)[None]
    noise = 0.05 * torch.randn(1, 3200)
    g, valid = band_gain_targets(_spec(clean), _spec(clean), CFG)
    assert torch.allclose(g, torch.ones_like(g)) and valid.any()
    g, valid = band_gain_targets(_spec(torch.zeros_like(noise)), _spec(noise), CFG)
    assert valid[:, 2:-1].all() and g[valid].max() < 0.02  # pure noise: gains towards 0
    g, _ = band_gain_targets(_spec(clean), _spec(clean + noise), CFG)
    band = int(440 / 50 / 4)  # 440 Hz lies in band 2 (400 - 600 Hz): speech-dominated
    assert g[0, 3:-3, band].min() > 0.9 and g[0, 3:-3, -3].max() < 0.1
    g, valid = band_gain_targets(_spec(torch.zeros(1, 3200)), _spec(torch.zeros(1, 3200)), CFG)
    assert not valid.any()  # both silent: masked


def test_effective_gains_of_a_band_mask():
    x = 0.1 * torch.randn(1, 3200)
    spec = _spec(x)
    est = spec * 0.5
    g = effective_band_gains(est, spec, CFG)
    loud = band_energies(spec, CFG) > 10
    assert torch.allclose(g[loud], torch.full_like(g[loud], 0.5), atol=1e-3)


def test_vad_labels_follow_the_c_counter():
    hop = CFG.hop_length
    loud = _tone(20 * hop, 0.3)  # about -13 dBFS: speech
    quiet = torch.zeros(20 * hop)
    v = vad_labels(torch.cat([loud, quiet, loud])[None], CFG, frames=60)
    assert v.shape == (1, 60)
    assert torch.all(v[0, :20] == 1)
    # silence: counter +2 per frame -> 0.5 for 4 frames, then 0 from the 5th silent frame
    assert torch.all(v[0, 20:24] == 0.5) and torch.all(v[0, 24:40] == 0)
    assert torch.all(v[0, 40:] == 1)  # a loud frame resets the counter at once
    mid = _tone(20 * hop, 0.3 * 10 ** (-15 / 20))  # between the 1e8 and 1e9 thresholds
    assert torch.all(vad_labels(mid[None], CFG)[0, 1:-1] == 1)


def test_loss_zero_at_target_and_gradient():
    loss = RNNoiseLoss()
    clean, noise = _tone(3200)[None], 0.05 * torch.randn(1, 3200)
    noisy_spec, clean_spec = _spec(clean + noise), _spec(clean)
    target, valid = band_gain_targets(clean_spec, noisy_spec, CFG)
    labels = vad_labels(clean, CFG, frames=target.shape[1])

    class Out:  # what RNNoise.forward_with_gains returns (gains, vad)
        gains = target.clone()
        vad = labels.clone()

    perfect = loss(None, clean_spec, None, clean, noisy_spec=noisy_spec, outputs=Out())
    ideal_bce = 10 * 0.01 * (torch.nn.functional.binary_cross_entropy(
        target.clamp(1e-6, 1 - 1e-6), target, reduction="none") * valid).mean()
    assert perfect.item() == pytest.approx(ideal_bce.item(), abs=1e-4)  # only the BCE entropy floor
    gains = torch.full_like(target, 0.5, requires_grad=True)

    class Bad:
        vad = torch.full_like(labels, 0.5)

    Bad.gains = gains
    bad = loss(None, clean_spec, None, clean, noisy_spec=noisy_spec, outputs=Bad())
    assert bad > perfect + 0.1
    bad.backward()
    assert torch.isfinite(gains.grad).all() and gains.grad[~valid].abs().sum() == 0
    with pytest.raises(ValueError, match="noisy_spec"):
        loss(clean_spec, clean_spec, clean, clean)


def test_enhancement_system_trains_rnnoise():
    torch.manual_seed(0)
    model = rnnoise_tiny()
    system = EnhancementSystem(model, loss=RNNoiseLoss(), warmup_steps=1, val_metrics=False,
                               name="rnnoise_tiny")
    clean = torch.stack([_tone(4800, 0.3, 300.0), _tone(4800, 0.2, 500.0)])
    noisy = clean + 0.05 * torch.randn_like(clean)
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    losses = []
    for _ in range(8):
        loss, _ = system.compute_loss(noisy, clean)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert all(math.isfinite(v) for v in losses) and losses[-1] < losses[0]


@pytest.mark.parametrize("config,steps", [("experiments/rnnoise_16k", 3), ("experiments/rnnoise_48k", 2),
                                          ("rnnoise_16k_distill", 2)])
def test_cli_fit_a_few_steps(tmp_path, monkeypatch, config, steps):
    """Each RNNoise config trains through LightningCLI (the distilled one with the official GTCRN
    teacher: another STFT geometry, distilled in the band-gain domain)."""
    if not (SHARED / "data" / "speech" / "dev" / "it").is_dir():
        pytest.skip(f"../shared data not found at {SHARED}")
    teacher = SHARED / "reference/gtcrn/checkpoints/stream_onnx_models__model_trained_on_dns3.tar"
    if config.endswith("distill") and not teacher.is_file():
        pytest.skip(f"official GTCRN checkpoint not found at {teacher}")
    from denoisezoo.cli import main

    monkeypatch.chdir(REPO)
    monkeypatch.setenv("DENOISEZOO_THREADS", "1")
    rc = main(["train", "fit", "--config", f"configs/{config}.yaml", "--trainer.max_steps", str(steps),
               "--run.dir", str(tmp_path), "--trainer.limit_val_batches", "1",
               "--trainer.val_check_interval", str(steps), "--trainer.enable_progress_bar", "false",
               "--model.init_args.val_metrics", "false", "--data.init_args.num_workers", "0",
               "--data.init_args.train_speech", "[../shared/data/speech/dev/it]",
               "--data.init_args.train_noise", "[../shared/data/noise/dev]",
               "--data.init_args.batch_size", "2", "--data.init_args.segment_seconds", "1.0",
               "--data.init_args.val_length", "2", "--data.init_args.val_segment_seconds", "1.0"])
    assert rc in (0, None)
    ck = torch.load(tmp_path / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=False)
    assert ck["global_step"] == steps  # written where --run.dir pointed, not under the repo's runs/
