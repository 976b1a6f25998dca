"""Training: losses, the Lightning systems through LightningCLI, distillation, faults, resume, DDP."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch
import yaml
from conftest import speechlike

from denoisezoo import load_model
from denoisezoo.gtcrn import gtcrn_tiny
from denoisezoo.hub import save_checkpoint
from denoisezoo.training import (
    DistillationSystem,
    EnhancementSystem,
    HybridLoss,
    MultiResolutionSTFTLoss,
    NonFiniteError,
    Pretrained,
    RunLayout,
    TeacherEnsemble,
    si_sdr,
)
from denoisezoo.training.averaging import average_checkpoints, average_state_dicts
from denoisezoo.training.system import capture_features, feature_loss

REPO = Path(__file__).resolve().parents[2]


# ----------------------------------------------------------------------------- losses
def test_si_sdr_known_values():
    x = torch.randn(2, 8000, dtype=torch.float64)
    assert (si_sdr(3 * x, x) > 100).all()
    n = torch.randn(2, 8000, dtype=torch.float64)
    n = n - (n * x).sum(-1, keepdim=True) / (x * x).sum(-1, keepdim=True) * x  # orthogonal noise
    n = n / n.norm(dim=-1, keepdim=True) * x.norm(dim=-1, keepdim=True) / 10 ** (10 / 20)
    torch.testing.assert_close(si_sdr(x + n, x), torch.full((2,), 10.0, dtype=torch.float64),
                               atol=0.05, rtol=0)


def test_si_sdr_gradcheck():
    est = torch.randn(1, 64, dtype=torch.float64, requires_grad=True)
    ref = torch.randn(1, 64, dtype=torch.float64)
    assert torch.autograd.gradcheck(lambda e: si_sdr(e, ref), (est,))


def test_signed_si_sdr_sees_the_sign_and_matches_si_sdr_near_the_optimum():
    from denoisezoo.training.losses import signed_si_sdr

    x = torch.randn(3, 8000, dtype=torch.float64)
    n = torch.randn(3, 8000, dtype=torch.float64)
    est = x + n * torch.tensor([[0.1], [0.3], [1.0]], dtype=torch.float64)  # ~20, 10, 0 dB
    assert torch.allclose(si_sdr(-est, x), si_sdr(est, x))  # SI-SDR is blind to the sign
    signed = signed_si_sdr(est, x)
    diff = (signed - si_sdr(est, x)).abs()
    assert diff[0] < 0.03 and diff[1] < 0.25  # 20 log10((1 + rho) / (2 rho)) at 20 and 10 dB
    assert (signed_si_sdr(-est, x) < -9).all() and (signed_si_sdr(-est, x) < signed - 9).all()
    # monotonic in the correlation: blending towards -x only lowers it
    blend = [signed_si_sdr((1 - a) * est + a * -est, x)[0].item() for a in (0.0, 0.3, 0.45, 0.55, 1.0)]
    assert blend == sorted(blend, reverse=True)


@pytest.mark.parametrize("sign_aware", [False, True])
def test_sign_aware_hybrid_loss_leaves_the_inverted_optimum(sign_aware):
    """Gradient descent on the SI-SNR term from an inverted estimate: plain SI-SNR is at an optimum
    there and keeps it; the sign-aware term walks out to the right sign."""
    torch.manual_seed(0)
    ref = torch.randn(1, 2000)
    est = (-ref + 0.3 * torch.randn_like(ref)).requires_grad_(True)
    loss = HybridLoss(complex_weight=0.0, mag_weight=0.0, sisnr_weight=1.0, sign_aware=sign_aware)
    opt = torch.optim.Adam([est], lr=0.05)
    spec = torch.zeros(1, 1, 1, 2)
    for _ in range(300):
        opt.zero_grad()
        loss(spec, spec, est, ref).backward()
        opt.step()
    corr = torch.corrcoef(torch.cat([est.detach(), ref]))[0, 1].item()
    assert (corr > 0.9) if sign_aware else (corr < -0.9)


@pytest.mark.parametrize("loss", [HybridLoss(), MultiResolutionSTFTLoss()], ids=["hybrid", "mrstft"])
def test_losses_zero_at_target_and_differentiable(loss):
    sys_ = EnhancementSystem(gtcrn_tiny())
    wav = torch.randn(2, 4000)
    spec = sys_.analyse(wav)
    same = loss(spec, spec, wav, wav)
    other_wav = wav + 0.3 * torch.randn_like(wav)
    other = sys_.analyse(other_wav).requires_grad_(True)
    worse = loss(other, spec, other_wav, wav)
    assert worse > same + 1e-3
    if isinstance(loss, HybridLoss):
        assert same < -9  # only the SI-SNR term remains, at > 90 dB
        worse.backward()
        assert torch.isfinite(other.grad).all()


# ------------------------------------------------------------------------ data on disk
@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    root = tmp_path_factory.mktemp("corpus")
    for i in range(4):
        (root / "speech").mkdir(exist_ok=True)
        sf.write(root / "speech" / f"s{i}.wav", speechlike(24000, seed=i), 16000)
    rng = np.random.default_rng(0)
    (root / "noise").mkdir()
    for i in range(2):
        noise = (0.1 * rng.standard_normal(20000)).astype(np.float32)
        sf.write(root / "noise" / f"n{i}.wav", noise, 16000)
    return root


def tiny_config(corpus: Path, run_dir: Path, steps: int = 4, system: dict | None = None,
                callbacks: list | None = None, ckpt_every: int = 2,
                extra_trainer: dict | None = None) -> Path:
    cfg = {
        "seed_everything": 0,
        "trainer": {
            "accelerator": "cpu", "devices": 1, "max_steps": steps, "val_check_interval": 2,
            "check_val_every_n_epoch": None, "limit_val_batches": 1, "log_every_n_steps": 1,
            "enable_model_summary": False, "enable_progress_bar": False,
            "default_root_dir": str(run_dir),
            "logger": {"class_path": "lightning.pytorch.loggers.CSVLogger",
                       "init_args": {"save_dir": str(run_dir), "name": "logs", "version": 0}},
            "callbacks": [{"class_path": "lightning.pytorch.callbacks.ModelCheckpoint",
                           "init_args": {"dirpath": str(run_dir / "ckpt"), "save_last": True,
                                         "every_n_train_steps": ckpt_every, "save_top_k": 0}}]
                         + (callbacks or []),
            **(extra_trainer or {}),
        },
        "model": system or {
            "class_path": "denoisezoo.training.EnhancementSystem",
            "init_args": {"model": {"class_path": "denoisezoo.gtcrn.GTCRN",
                                    "init_args": {"config": {"channels": 8, "dilations": [1, 2],
                                                             "num_dual_path": 1}}},
                          "lr": 0.001, "warmup_steps": 1, "val_metrics": True, "name": "tiny"},
        },
        "data": {
            "class_path": "denoisezoo.datasets.MixDataModule",
            "init_args": {"train_speech": [str(corpus / "speech")], "train_noise": [str(corpus / "noise")],
                          "val_speech": [str(corpus / "speech")], "val_noise": [str(corpus / "noise")],
                          "segment_seconds": 0.5, "batch_size": 2, "num_workers": 0, "train_length": 8,
                          "val_length": 2, "val_segment_seconds": 1.0},
        },
    }
    path = run_dir / "config.yaml"
    run_dir.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(cfg))
    return path


def train_cli(*args: str, check: bool = True, env: dict | None = None) -> subprocess.CompletedProcess:
    e = {**os.environ, "DENOISEZOO_THREADS": "1", **(env or {})}
    p = subprocess.run([sys.executable, "-m", "denoisezoo", "train", *args], capture_output=True,
                       text=True, env=e, cwd=REPO, timeout=600)
    if check and p.returncode != 0:
        raise AssertionError(f"train failed ({p.returncode}):\n{p.stdout[-3000:]}\n{p.stderr[-3000:]}")
    return p


# ------------------------------------------------------------------------ systems
@pytest.fixture(scope="module")
def fitted(corpus, tmp_path_factory) -> Path:
    """Run folder of a 4-step tiny fit through the CLI."""
    run = tmp_path_factory.mktemp("fit") / "run"
    train_cli("fit", "--config", str(tiny_config(corpus, run)))
    return run


def test_fit_through_cli_writes_loadable_checkpoint(fitted):
    last = fitted / "ckpt/last.ckpt"
    assert last.is_file()
    metrics = (fitted / "logs/version_0/metrics.csv").read_text()
    for col in ("train/loss", "val/loss", "val/pesq_wb", "val/stoi", "val/estoi", "val/si_sdr"):
        assert col in metrics, col
    model = load_model(last)  # a Lightning checkpoint loads straight into the zoo
    assert model.config.channels == 8
    assert model.checkpoint_meta["global_step"] == 4


def test_average_checkpoints_is_the_weighted_mean_and_loads(fitted, tmp_path):
    last = fitted / "ckpt/last.ckpt"
    ck = torch.load(last, map_location="cpu", weights_only=False)
    shifted = dict(ck, state_dict={k: v + 1.0 if v.is_floating_point() else v + 7
                                   for k, v in ck["state_dict"].items()})
    torch.save(shifted, tmp_path / "shifted.ckpt")
    out = average_checkpoints([last, tmp_path / "shifted.ckpt"], tmp_path / "avg.ckpt", weights=[3, 1])
    avg = torch.load(out, map_location="cpu", weights_only=False)
    for k, v in ck["state_dict"].items():
        if v.is_floating_point():
            torch.testing.assert_close(avg["state_dict"][k], v + 0.25)
        else:  # integer buffers (BatchNorm num_batches_tracked) come from the last checkpoint
            assert torch.equal(avg["state_dict"][k], v + 7)
    assert "optimizer_states" not in avg and avg["denoisezoo_averaged"]["steps"] == [4, 4]
    model = load_model(out)
    name, w = next((n, p) for n, p in model.named_parameters())
    torch.testing.assert_close(w.detach(), ck["state_dict"][f"model.{name}"] + 0.25)
    with pytest.raises(FileExistsError):
        average_checkpoints([last], out)
    with pytest.raises(ValueError, match="different keys"):
        average_state_dicts([{"a": torch.zeros(1)}, {"b": torch.zeros(1)}])
    with pytest.raises(ValueError, match="weights"):
        average_state_dicts([{"a": torch.zeros(1)}], weights=[-1.0])


def test_distillation_keeps_teacher_frozen_and_mixes_terms(tmp_path):
    teacher_path = save_checkpoint(gtcrn_tiny(), tmp_path / "teacher.pt")
    teacher = Pretrained(str(teacher_path))
    before = {k: v.clone() for k, v in teacher.state_dict().items()}
    system = DistillationSystem(gtcrn_tiny(), teacher, alpha=0.7, mask_weight=0.5)
    system.train()
    assert not system.teacher.training and system.model.training
    noisy, clean = torch.randn(2, 4000) * 0.1, torch.randn(2, 4000) * 0.1
    loss, parts = system.compute_loss(noisy, clean)
    expected = 0.7 * parts["loss_teacher"] + 0.3 * parts["loss_clean"] + 0.5 * parts["loss_mask"]
    torch.testing.assert_close(loss.detach(), expected)
    loss.backward()
    assert all(p.grad is None for p in system.teacher.parameters())
    assert any(p.grad is not None for p in system.model.parameters())
    for k, v in teacher.state_dict().items():
        torch.testing.assert_close(v, before[k])
    # alpha = 1 with a student identical to the teacher gives zero distillation loss
    twin = DistillationSystem(load_model(teacher_path), Pretrained(str(teacher_path)), alpha=1.0)
    twin.eval()
    loss, parts = twin.compute_loss(noisy, clean)
    assert parts["loss_teacher"] < -9  # only the SI-SNR term, at > 90 dB


HINTS = ["encoder.en_convs.0", "encoder.en_convs.3", "dpgrnn.0", "decoder.de_convs.1"]


def test_capture_features_records_named_outputs_and_removes_hooks():
    model = gtcrn_tiny().eval()
    spec = torch.randn(1, 257, 6, 2)
    with capture_features(model, ["dpgrnn.0", "encoder.en_convs.3"]) as feats:
        model(spec)
    # a recurrent block returns (y, h): the hint is y, shaped like the block's input (B, C, T, W)
    assert feats["dpgrnn.0"].shape == feats["encoder.en_convs.3"].shape == (1, 8, 6, 33)
    assert not any(m._forward_hooks for m in model.modules())
    with pytest.raises(AttributeError):
        with capture_features(model, ["no.such.layer"]):
            pass
    assert not any(m._forward_hooks for m in model.modules())


def test_feature_distillation_matches_hints_of_the_teacher(tmp_path):
    torch.manual_seed(0)
    teacher_path = save_checkpoint(gtcrn_tiny(), tmp_path / "teacher.pt")
    noisy, clean = torch.randn(2, 4000) * 0.1, torch.randn(2, 4000) * 0.1
    system = DistillationSystem(gtcrn_tiny(), Pretrained(str(teacher_path)), alpha=1.0,
                                feature_layers=HINTS, feature_weight=2.0)
    system.eval()  # BatchNorm on running statistics, as in the teacher
    loss, parts = system.compute_loss(noisy, clean)
    torch.testing.assert_close(loss.detach(), parts["loss_teacher"] + 2.0 * parts["loss_feature"])
    assert parts["loss_feature"] > 0.1
    loss.backward()
    assert all(p.grad is None for p in system.teacher.parameters())
    hinted = system.model.get_submodule("encoder.en_convs.0")
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in hinted.parameters())
    # a student with the teacher's weights matches every hint exactly
    twin = DistillationSystem(load_model(teacher_path), Pretrained(str(teacher_path)), alpha=1.0,
                              feature_layers=HINTS, feature_weight=2.0)
    twin.eval()
    assert twin.compute_loss(noisy, clean)[1]["loss_feature"] < 1e-10
    # descending on the hints alone pulls the student's layers towards the teacher's
    opt = torch.optim.Adam(system.model.parameters(), lr=3e-3)
    start = float(parts["loss_feature"])
    for _ in range(30):
        opt.zero_grad()
        s = system.student_pass(system.analyse(noisy), noisy.shape[-1], features=HINTS)
        t = system.teacher_reference(noisy, system.analyse(noisy))
        feature_loss(s.features, t.features).backward()
        opt.step()
    s = system.student_pass(system.analyse(noisy), noisy.shape[-1], features=HINTS)
    assert float(feature_loss(s.features, t.features).detach()) < 0.5 * start


def test_feature_distillation_refuses_what_it_cannot_match(tmp_path):
    from denoisezoo.gtcrn import GTCRN, GTCRNConfig

    teacher = Pretrained(str(save_checkpoint(gtcrn_tiny(), tmp_path / "teacher.pt")))
    with pytest.raises(ValueError, match="not a submodule of the student"):
        DistillationSystem(gtcrn_tiny(), teacher, feature_layers=["encoder.nope"], feature_weight=1.0)
    with pytest.raises(ValueError, match="needs feature_layers"):
        DistillationSystem(gtcrn_tiny(), teacher, feature_weight=1.0)
    ensemble = TeacherEnsemble([teacher.source])
    with pytest.raises(ValueError, match="feature_weight"):
        DistillationSystem(gtcrn_tiny(), ensemble, feature_layers=HINTS, feature_weight=1.0)
    # layers present in both but of other widths: a clear error at the first step
    wide = GTCRN(GTCRNConfig(channels=16, dilations=(1, 2), num_dual_path=1))
    system = DistillationSystem(wide, teacher, feature_layers=HINTS, feature_weight=1.0)
    with pytest.raises(ValueError, match="equal shapes"):
        system.compute_loss(torch.randn(1, 4000) * 0.1, torch.randn(1, 4000) * 0.1)
    # feature_weight 0 leaves the hints off whatever the layer list says
    off = DistillationSystem(gtcrn_tiny(), teacher, feature_layers=HINTS, feature_weight=0.0)
    assert "loss_feature" not in off.compute_loss(torch.randn(1, 4000) * 0.1, torch.randn(1, 4000) * 0.1)[1]


def test_distillation_through_cli(corpus, tmp_path):
    teacher = save_checkpoint(gtcrn_tiny(), tmp_path / "teacher.pt")
    system = {
        "class_path": "denoisezoo.training.DistillationSystem",
        "init_args": {"model": {"class_path": "denoisezoo.gtcrn.GTCRN",
                                "init_args": {"config": {"channels": 8, "dilations": [1],
                                                         "num_dual_path": 1}}},
                      "teacher": {"class_path": "denoisezoo.training.Pretrained",
                                  "init_args": {"source": str(teacher)}},
                      "alpha": 0.5, "val_metrics": False, "name": "tiny_student"},
    }
    cfg = tiny_config(corpus, tmp_path / "run", steps=2, system=system)
    train_cli("fit", "--config", str(cfg))
    metrics = (tmp_path / "run/logs/version_0/metrics.csv").read_text()
    assert "train/loss_teacher" in metrics and "train/loss_clean" in metrics
    ck = torch.load(tmp_path / "run/ckpt/last.ckpt", map_location="cpu", weights_only=False)
    assert ck["denoisezoo_model"]["teacher"] == str(teacher)


def test_teacher_ensemble_averages_members_and_reversed_runs(tmp_path):
    from denoisezoo.api import enhance

    torch.manual_seed(0)
    paths = [str(save_checkpoint(gtcrn_tiny(), tmp_path / f"t{i}.pt")) for i in range(2)]
    models = [load_model(p).eval() for p in paths]
    x = torch.as_tensor(speechlike(6000, seed=3)).unsqueeze(0)
    with torch.no_grad():
        fwd = [enhance(m, x[0]) for m in models]
        rev = [enhance(m, x[0].flip(-1)).flip(-1) for m in models]
    single = TeacherEnsemble(paths[:1]).enhance_waveform(x)[0]
    torch.testing.assert_close(single, fwd[0], atol=1e-5, rtol=0)
    both = TeacherEnsemble(paths).enhance_waveform(x)[0]
    torch.testing.assert_close(both, (fwd[0] + fwd[1]) / 2, atol=1e-5, rtol=0)
    bidir = TeacherEnsemble(paths, bidirectional=True)
    assert bidir.source.startswith("ensemble-bidirectional(") and paths[1] in bidir.source
    torch.testing.assert_close(bidir.enhance_waveform(x)[0], sum(fwd + rev) / 4, atol=1e-5, rtol=0)
    # the forward-only ensemble is causal; the bidirectional one sees the future
    late = x.clone()
    late[:, 4000:] += 0.5 * torch.randn(1, 2000)
    causal = TeacherEnsemble(paths)
    assert torch.equal(causal.enhance_waveform(late)[:, :3000], causal.enhance_waveform(x)[:, :3000])
    assert (bidir.enhance_waveform(late)[:, :3000] - bidir.enhance_waveform(x)[:, :3000]).abs().max() > 1e-4
    with pytest.raises(ValueError, match="at least one"):
        TeacherEnsemble([])


def test_distillation_from_an_ensemble_uses_its_waveform(tmp_path):
    paths = [str(save_checkpoint(gtcrn_tiny(), tmp_path / f"t{i}.pt")) for i in range(2)]
    teacher = TeacherEnsemble(paths, bidirectional=True)
    system = DistillationSystem(gtcrn_tiny(), teacher, alpha=1.0)
    assert system.waveform_teacher and not system.same_geometry
    noisy = torch.randn(2, 4000) * 0.1
    t_spec, t_wav, t_mask, _ = system.teacher_reference(noisy, system.analyse(noisy))
    torch.testing.assert_close(t_wav, teacher.enhance_waveform(noisy))
    torch.testing.assert_close(t_spec, system.analyse(t_wav))
    assert t_mask is None
    loss, parts = system.compute_loss(noisy, torch.randn(2, 4000) * 0.1)
    loss.backward()
    assert all(p.grad is None for p in system.teacher.parameters())
    with pytest.raises(ValueError, match="mask_weight"):
        DistillationSystem(gtcrn_tiny(), teacher, mask_weight=0.5)


class _NaNLoss(torch.nn.Module):
    def __init__(self, bad_steps):
        super().__init__()
        self.bad, self.calls = set(bad_steps), 0

    def forward(self, est_spec, ref_spec, est_wav, ref_wav):
        self.calls += 1
        loss = (est_wav - ref_wav).pow(2).mean()
        return loss * float("nan") if self.calls in self.bad else loss


def _fit_toy(system, steps):
    import lightning as L

    data = torch.utils.data.TensorDataset(torch.randn(16, 2000) * 0.1, torch.randn(16, 2000) * 0.1)
    trainer = L.Trainer(accelerator="cpu", max_steps=steps, logger=False, enable_checkpointing=False,
                        enable_progress_bar=False, enable_model_summary=False)
    trainer.fit(system, torch.utils.data.DataLoader(data, batch_size=2))
    return trainer


def test_nonfinite_loss_is_skipped_and_counted():
    system = EnhancementSystem(gtcrn_tiny(), loss=_NaNLoss({2, 3}), val_metrics=False)
    trainer = _fit_toy(system, steps=4)
    assert system.skipped_steps == 2 and trainer.global_step == 4
    for p in system.model.parameters():
        assert torch.isfinite(p).all()


def test_persistent_nonfinite_loss_stops_with_clear_message():
    system = EnhancementSystem(gtcrn_tiny(), loss=_NaNLoss(range(1, 100)), val_metrics=False,
                               max_bad_steps=3)
    with pytest.raises(NonFiniteError, match="consecutive steps had a non-finite loss"):
        _fit_toy(system, steps=10)


def test_nonfinite_gradient_is_skipped():
    import lightning as L

    system = EnhancementSystem(gtcrn_tiny(), val_metrics=False)
    orig = system.model.forward

    def forward_with_inf_grad(spec):
        out = orig(spec)
        out.register_hook(lambda g: g * float("inf"))  # finite loss, non-finite gradient
        return out

    system.model.forward = forward_with_inf_grad
    data = torch.utils.data.TensorDataset(torch.randn(8, 2000) * 0.1, torch.randn(8, 2000) * 0.1)
    trainer = L.Trainer(accelerator="cpu", max_steps=3, max_epochs=1, logger=False,
                        enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False)
    before = {k: v.clone() for k, v in system.model.named_parameters()}
    trainer.fit(system, torch.utils.data.DataLoader(data, batch_size=2))
    assert system.skipped_steps == 4 and trainer.global_step == 0
    for k, v in system.model.named_parameters():  # no update applied (BatchNorm statistics may move)
        torch.testing.assert_close(v, before[k], msg=k)


# ------------------------------------------------------------------- faults / resume
@pytest.mark.slow
@pytest.mark.parametrize("ckpt_every,kill_at", [(2, 7), (4, 5)], ids=["mid_epoch", "epoch_end"])
def test_sigkill_then_resume_equals_uninterrupted(corpus, tmp_path, ckpt_every, kill_at):
    """A run SIGKILLed mid-epoch resumes from its last checkpoint and ends bit-identical to a run
    that was never interrupted (model, optimizer, scheduler, data order, RNG). Epochs are 4 batches:
    the last checkpoint is mid-epoch 1 (step 6), or the last batch of epoch 0 (step 4), which once
    resumed into an empty epoch and stopped with "No training batches"."""
    steps = 8
    ref_cfg = tiny_config(corpus, tmp_path / "ref", steps=steps, ckpt_every=ckpt_every)
    train_cli("fit", "--config", str(ref_cfg))
    kill = [{"class_path": "denoisezoo.training.callbacks.KillAtStep", "init_args": {"step": kill_at}}]
    cfg = tiny_config(corpus, tmp_path / "run", steps=steps, ckpt_every=ckpt_every, callbacks=kill)
    p = train_cli("fit", "--config", str(cfg), check=False)
    assert p.returncode == -9, p.stderr[-2000:]
    ck = torch.load(tmp_path / "run/ckpt/last.ckpt", map_location="cpu", weights_only=False)
    assert ck["global_step"] == kill_at // ckpt_every * ckpt_every  # lost at most one interval
    cfg2 = tiny_config(corpus, tmp_path / "run", steps=steps, ckpt_every=ckpt_every)  # no killer
    train_cli("fit", "--config", str(cfg2), "--ckpt_path", "last")
    a = torch.load(tmp_path / "ref/ckpt/last.ckpt", map_location="cpu", weights_only=False)
    b = torch.load(tmp_path / "run/ckpt/last.ckpt", map_location="cpu", weights_only=False)
    assert a["global_step"] == b["global_step"] == steps
    for k, v in a["state_dict"].items():
        torch.testing.assert_close(b["state_dict"][k], v, atol=0, rtol=0, msg=k)
    sa, sb = a["optimizer_states"][0]["state"], b["optimizer_states"][0]["state"]
    for k in sa:
        torch.testing.assert_close(sb[k]["exp_avg"], sa[k]["exp_avg"], atol=0, rtol=0)
    assert a["lr_schedulers"][0]["last_epoch"] == b["lr_schedulers"][0]["last_epoch"]


@pytest.mark.slow
def test_ddp_two_cpu_processes(corpus, tmp_path):
    cfg = tiny_config(corpus, tmp_path / "ddp", steps=2,
                      extra_trainer={"devices": 2, "strategy": "ddp"})
    p = train_cli("fit", "--config", str(cfg), env={"MASTER_PORT": "29517"})
    assert (tmp_path / "ddp/ckpt/last.ckpt").is_file(), p.stderr[-2000:]
    ck = torch.load(tmp_path / "ddp/ckpt/last.ckpt", map_location="cpu", weights_only=False)
    assert ck["global_step"] == 2
    assert json.dumps(ck["denoisezoo_model"]["config"])


@pytest.mark.parametrize("config", sorted(
    str(p.relative_to(REPO / "configs")) for pattern in ("*.yaml", "experiments/*.yaml")
    for p in (REPO / "configs").glob(pattern)))
def test_every_shipped_config_parses(config, monkeypatch, capsys):
    """Each configs/*.yaml and configs/experiments/*.yaml is valid for LightningCLI (classes,
    argument names and types)."""
    from denoisezoo.cli import main

    monkeypatch.chdir(REPO)
    with pytest.raises(SystemExit) as done:
        main(["train", "fit", "--config", f"configs/{config}", "--print_config"])
    assert done.value.code in (0, None)
    printed = yaml.safe_load(capsys.readouterr().out)
    assert printed["model"]["class_path"].startswith("denoisezoo.")
    assert printed["trainer"]["max_steps"] > 0
    assert printed["data"]["init_args"]["train_speech"]  # a configs/data/*.yaml fragment resolved
    text = (REPO / "configs" / config).read_text()
    if "loss: losses/" in text or "loss: ../losses/" in text:  # a configs/losses/ fragment
        assert printed["model"]["init_args"]["loss"]["init_args"]["sisnr_weight"] > 0
    if config != "tiny_smoke.yaml":  # each long run writes under its own runs/ folder
        assert printed["run"]["dir"].startswith("runs/") and printed["trainer"]["default_root_dir"] is None


def test_run_layout_derives_loggers_and_callbacks(tmp_path):
    from lightning.pytorch.callbacks import LearningRateMonitor, ModelCheckpoint
    from lightning.pytorch.loggers import CSVLogger, TensorBoardLogger

    assert RunLayout().trainer_kwargs({"callbacks": ["kept"]}) == {}  # no folder: trainer as configured
    layout = RunLayout(dir=str(tmp_path / "r"), checkpoint_every=7, snapshot_every=21)
    kw = layout.trainer_kwargs({"callbacks": "user"})
    assert kw["default_root_dir"] == str(tmp_path / "r")
    assert [type(x) for x in kw["logger"]] == [CSVLogger, TensorBoardLogger]
    assert kw["logger"][0].log_dir.startswith(str(tmp_path / "r" / "logs"))
    user, last, snap, lr = kw["callbacks"]
    assert user == "user" and isinstance(lr, LearningRateMonitor)
    assert isinstance(last, ModelCheckpoint) and last.dirpath == str(tmp_path / "r" / "checkpoints")
    assert last.save_last and last._every_n_train_steps == 7 and last.save_top_k == 0
    assert snap.dirpath == str(tmp_path / "r" / "snapshots") and snap._every_n_train_steps == 21
    assert snap.save_top_k == -1
    # what the config states explicitly wins: a root dir, `logger: false`
    kw = layout.trainer_kwargs({"default_root_dir": "elsewhere", "logger": False})
    assert "default_root_dir" not in kw and "logger" not in kw
    assert len(RunLayout(dir="x").callbacks()) == 2  # no snapshots unless asked
    with pytest.raises(ValueError, match="checkpoint_every"):
        RunLayout(dir="x", checkpoint_every=0)
    with pytest.raises(ValueError, match="snapshot_every"):
        RunLayout(dir="x", snapshot_every=0)
    with pytest.raises(ValueError, match="differ"):
        RunLayout(dir="x", checkpoint_every=5, snapshot_every=5)


def test_run_folder_from_the_config_and_resume_into_it(corpus, tmp_path):
    """`run: {dir: ...}` alone gives a run its checkpoints, snapshots and logs; `--ckpt_path last` resumes
    from that folder, and `--run.dir` branches the same config into another folder."""
    cfg_path = tiny_config(corpus, tmp_path / "cfg")
    cfg = yaml.safe_load(cfg_path.read_text())
    for key in ("default_root_dir", "logger", "callbacks"):
        del cfg["trainer"][key]
    run = tmp_path / "run"
    cfg["run"] = {"dir": str(run), "checkpoint_every": 1, "snapshot_every": 2}
    cfg_path.write_text(yaml.safe_dump(cfg))
    train_cli("fit", "--config", str(cfg_path))
    assert torch.load(run / "checkpoints/last.ckpt", weights_only=False)["global_step"] == 4
    assert (run / "logs/version_0/metrics.csv").is_file() and any((run / "tb/version_0").iterdir())
    train_cli("fit", "--config", str(cfg_path), "--trainer.max_steps", "6", "--ckpt_path", "last")
    assert torch.load(run / "checkpoints/last.ckpt", weights_only=False)["global_step"] == 6
    assert sorted(p.name for p in (run / "snapshots").iterdir()) == ["step2.ckpt", "step4.ckpt", "step6.ckpt"]
    assert (run / "logs/version_1/metrics.csv").is_file()  # a new CSV version per (re)start
    branch = tmp_path / "branch"
    train_cli("fit", "--config", str(cfg_path), "--trainer.max_steps", "2", "--run.dir", str(branch))
    assert torch.load(branch / "checkpoints/last.ckpt", weights_only=False)["global_step"] == 2
    assert not (run / "logs/version_2").exists()


def test_snr_sees_the_sign_that_si_sdr_ignores():
    from denoisezoo.evaluation import sign_inverted
    from denoisezoo.training.losses import si_sdr, snr

    x = torch.from_numpy(speechlike(8000))[None]
    assert abs(float(snr(-x, x)) + 6.02) < 0.01  # |x - (-x)|^2 = 4 |x|^2
    assert abs(float(snr(0.9 * x, x)) - 20.0) < 0.01
    assert abs(float(si_sdr(-x, x)) - float(si_sdr(x, x))) < 1e-3
    assert sign_inverted(float(snr(-x, x)), float(si_sdr(-x, x)))
    assert not sign_inverted(float(snr(0.9 * x, x)), float(si_sdr(0.9 * x, x)))
    # against a noisy input's scores: a 10 dB noisy input, an inverted estimate at 15 dB SI-SDR
    assert sign_inverted(-5.0, 15.0, noisy_snr_db=10.0, noisy_si_sdr_db=10.0)
    assert not sign_inverted(12.0, 15.0, noisy_snr_db=10.0, noisy_si_sdr_db=10.0)


def test_half_width_configs_take_every_weight_of_the_pruned_teacher(tmp_path):
    """configs/gtcrn_half_*.yaml build the widths `compress prune --ratio 0.5` gives the teacher, so
    their `init_from` copies every parameter and buffer (warm_start alone would copy only matching
    shapes, silently) and the warm-started student computes what the pruned teacher does."""
    import importlib

    from denoisezoo.compress import prune_structured
    from denoisezoo.gtcrn import gtcrn_half
    from denoisezoo.training.system import warm_start

    teacher = load_model("gtcrn_dns3_ft")
    pruned, _ = prune_structured(teacher, 0.5)
    path = save_checkpoint(pruned, tmp_path / "pruned50.pt")
    for name in ("gtcrn_half_distill.yaml", "experiments/gtcrn_half_alone.yaml"):
        cfg = yaml.safe_load((REPO / "configs" / name).read_text())["model"]["init_args"]
        module, _, factory = cfg["model"]["class_path"].rpartition(".")
        student = getattr(importlib.import_module(module), factory)(**cfg["model"].get("init_args", {}))
        assert student.config == pruned.config == gtcrn_half().config, name
        assert sum(p.numel() for p in student.parameters()) == 13797
        copied = warm_start(student, str(path))
        assert set(copied) == set(student.state_dict()), name
    spec = torch.randn(1, 257, 20, 2)
    with torch.no_grad():
        torch.testing.assert_close(student.eval()(spec), pruned.eval()(spec))
