"""Distillation across STFT geometries: a GTCRN teacher (512/256 sqrt-Hann) for an RNNoise student
(320/160 Vorbis), distilled in the band-gain domain with the RNNoise loss."""

from __future__ import annotations

import math

import pytest
import torch
from conftest import randomised
from torch import nn

from denoisezoo.dsp.stft import StftGeometry
from denoisezoo.gtcrn import GTCRNConfig, gtcrn_tiny
from denoisezoo.rnnoise_port import rnnoise_tiny
from denoisezoo.training import DistillationSystem
from denoisezoo.training.losses import RNNoiseLoss


class _Identity(nn.Module):
    """A 'teacher' that returns its input spectrum, in a geometry of our choice."""

    def __init__(self, geometry: StftGeometry):
        super().__init__()
        self.geometry = geometry
        self.scale = nn.Parameter(torch.ones(()))  # a parameter, to check it stays frozen

    def forward(self, spec: torch.Tensor) -> torch.Tensor:
        return spec * self.scale


def _batch(n: int = 4800) -> tuple[torch.Tensor, torch.Tensor]:
    t = torch.arange(n, dtype=torch.float64) / 16000
    clean = torch.stack([0.3 * torch.sin(2 * math.pi * 300 * t), 0.2 * torch.sin(2 * math.pi * 500 * t)])
    clean = clean.float()
    return clean + 0.05 * torch.randn_like(clean), clean


def _system(teacher: nn.Module, alpha: float = 0.5, **kwargs) -> DistillationSystem:
    return DistillationSystem(rnnoise_tiny(), teacher, alpha=alpha, loss=RNNoiseLoss(),
                              val_metrics=False, name="rnnoise_tiny", **kwargs)


def test_gtcrn_teacher_for_rnnoise_student_matters_and_stays_frozen():
    teacher = randomised(gtcrn_tiny, seed=1)
    assert teacher.geometry != rnnoise_tiny().geometry
    system = _system(teacher)
    system.train()
    assert not system.teacher.training and system.model.training
    noisy, clean = _batch()
    loss, parts = system.compute_loss(noisy, clean)
    assert torch.isfinite(loss)
    torch.testing.assert_close(loss.detach(), 0.5 * parts["loss_teacher"] + 0.5 * parts["loss_clean"])
    loss.backward()
    assert all(p.grad is None for p in system.teacher.parameters())
    grads = [p.grad for p in system.model.parameters() if p.grad is not None]
    assert grads and all(torch.isfinite(g).all() for g in grads) and any(g.abs().sum() > 0 for g in grads)

    # another teacher (same student weights): the teacher term changes, the clean term does not
    other = _system(randomised(gtcrn_tiny, seed=2))
    other.model.load_state_dict(system.model.state_dict())
    other.train()
    _, parts2 = other.compute_loss(noisy, clean)
    torch.testing.assert_close(parts2["loss_clean"], parts["loss_clean"])
    assert abs(parts2["loss_teacher"] - parts["loss_teacher"]) > 1e-3


def test_teacher_output_is_resynthesised_and_reanalysed_in_the_student_geometry():
    # an identity teacher in GTCRN's geometry gives back the noisy waveform (perfect
    # reconstruction), so the teacher term equals the clean term when clean == noisy
    ident = _Identity(GTCRNConfig().geometry)
    system = _system(ident, alpha=1.0)
    system.eval()
    noisy, _ = _batch()
    t_spec, t_wav, t_mask, _ = system.teacher_reference(noisy, system.analyse(noisy))
    assert t_mask is None and t_spec.shape == system.analyse(noisy).shape
    torch.testing.assert_close(t_wav, noisy, atol=1e-5, rtol=0)
    _, parts = system.compute_loss(noisy, noisy)
    torch.testing.assert_close(parts["loss_teacher"], parts["loss_clean"], atol=1e-4, rtol=1e-4)
    assert not ident.scale.requires_grad


def test_distillation_alone_reduces_the_loss():
    system = _system(randomised(gtcrn_tiny, seed=1), alpha=1.0)
    system.train()
    noisy, clean = _batch()
    opt = torch.optim.Adam(system.model.parameters(), lr=3e-3)
    losses = []
    for _ in range(10):
        loss, parts = system.compute_loss(noisy, clean)
        torch.testing.assert_close(loss.detach(), parts["loss_teacher"])
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert all(math.isfinite(v) for v in losses) and losses[-1] < 0.9 * losses[0]


def test_mismatched_geometry_or_rate_raises():
    with pytest.raises(ValueError, match="mask_weight"):
        _system(gtcrn_tiny(), mask_weight=0.5)
    with pytest.raises(ValueError, match="sample rate"):
        _system(_Identity(StftGeometry(48000, 960, 480)))
    _system(gtcrn_tiny(), mask_weight=0.0)  # no mask matching: fine
