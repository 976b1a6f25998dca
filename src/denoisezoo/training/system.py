"""Lightning systems that receive their models: supervised enhancement and distillation.

The systems own the waveform <-> spectrum plumbing, the optimisation (manual, so that a step with
a non-finite loss or gradient is skipped and counted, never applied), the LR schedule and the
validation metrics. Models stay plain ``nn.Module`` objects from :mod:`denoisezoo.gtcrn` etc.
"""

from __future__ import annotations

import contextlib
import math
import time
from collections.abc import Iterator
from typing import Any, NamedTuple

import lightning as L
import torch
from torch import nn

from denoisezoo.dsp.stft import istft, stft
from denoisezoo.training.losses import HybridLoss

__all__ = ["EnhancementSystem", "DistillationSystem", "Pretrained", "TeacherEnsemble", "NonFiniteError"]


class NonFiniteError(RuntimeError):
    """Raised when too many consecutive steps had a non-finite loss or gradient."""


class Pretrained(nn.Module):
    """A frozen model loaded with :func:`denoisezoo.hub.load_model` (a shipped name, our checkpoint or
    an official GTCRN ``.tar``), for use as a distillation teacher from a YAML config::

        teacher:
          class_path: denoisezoo.training.Pretrained
          init_args:
            source: ../shared/reference/gtcrn/checkpoints/stream_onnx_models__model_trained_on_dns3.tar
    """

    def __init__(self, source: str):
        super().__init__()
        from denoisezoo.hub import load_model

        self.source = source
        self.model = load_model(source).eval()
        for p in self.model.parameters():
            p.requires_grad_(False)

    @property
    def geometry(self):
        return self.model.geometry

    def forward(self, spec: torch.Tensor) -> torch.Tensor:
        return self.model(spec)

    def forward_with_mask(self, spec: torch.Tensor, state=None):
        return self.model.forward_with_mask(spec, state)


class TeacherEnsemble(nn.Module):
    """A frozen teacher that averages the output waveforms of several zoo models, optionally each
    also run on the time-reversed input (``bidirectional``): a non-causal teacher built from causal
    models, for offline distillation only (a teacher never runs in real time). From a YAML config::

        teacher:
          class_path: denoisezoo.training.TeacherEnsemble
          init_args:
            sources: [gtcrn_dns3_ft, ../shared/reference/gtcrn/checkpoints/model_trained_on_dns3.tar]
            bidirectional: true

    Each member enhances its own STFT of the noisy waveform (its geometry, its window); the
    ``len(sources) * (1 + bidirectional)`` output waveforms are averaged.

    Args:
        sources: names or paths accepted by :func:`denoisezoo.hub.load_model` (at least one).
        bidirectional: also run every member on the reversed input and reverse its output back.

    Raises:
        ValueError: no source, or members at different sample rates.
    """

    def __init__(self, sources: list[str], bidirectional: bool = False):
        super().__init__()
        if not sources:
            raise ValueError("TeacherEnsemble needs at least one source")
        self.members = nn.ModuleList(Pretrained(s) for s in sources)
        rates = {m.geometry.sample_rate for m in self.members}
        if len(rates) > 1:
            raise ValueError(f"ensemble members run at different sample rates {sorted(rates)}; "
                             "use members at the student's rate")
        self.bidirectional = bidirectional
        self.source = (f"ensemble{'-bidirectional' if bidirectional else ''}("
                       + ", ".join(sources) + ")")

    @property
    def geometry(self):
        """The first member's geometry (the sample rate is common to all)."""
        return self.members[0].geometry

    @torch.no_grad()
    def enhance_waveform(self, wav: torch.Tensor) -> torch.Tensor:
        """``wav (B, N)`` -> the mean enhanced waveform ``(B, N)``."""
        b, n = wav.shape
        # the reversed copies ride in the same batch as the forward ones: one call per member
        x = torch.cat([wav, wav.flip(-1)]) if self.bidirectional else wav
        total = torch.zeros_like(wav)
        for member in self.members:
            g = member.geometry
            w = g.make_window(wav.dtype).to(wav.device)
            y = istft(member(stft(x, g, w)), g, n, w)
            total = total + (y[:b] + y[b:].flip(-1) if self.bidirectional else y)
        return total / (len(self.members) * (2 if self.bidirectional else 1))


def warm_start(model: nn.Module, source: str) -> list[str]:
    """Copy the parameters and buffers of the zoo model ``source`` into ``model`` where name and
    shape match; returns the copied names. Raises ``ValueError`` if no learnable parameter matches."""
    from denoisezoo.hub import load_model

    src = load_model(source).state_dict()
    dst = model.state_dict()
    copied = [k for k, v in src.items() if k in dst and dst[k].shape == v.shape]
    learnable = {k for k, _ in model.named_parameters()}
    if not learnable & set(copied):
        raise ValueError(f"init_from={source!r}: no parameter of it matches this model")
    model.load_state_dict({**dst, **{k: src[k] for k in copied}})
    return copied


@contextlib.contextmanager
def capture_features(net: nn.Module, names: list[str]) -> Iterator[dict[str, torch.Tensor]]:
    """Record the outputs of ``net``'s submodules ``names`` (dotted paths, e.g. ``dpgrnn.0``) while
    the block runs: yields a dict filled as the modules are called (the first element of a tuple
    output, e.g. a recurrent block's ``(y, h)``). Hooks are removed on exit.

    Raises:
        AttributeError: if a name is not a submodule of ``net``.
    """
    feats: dict[str, torch.Tensor] = {}
    handles = []

    def hook(name):
        def record(module, args, output):
            feats[name] = output[0] if isinstance(output, tuple) else output
        return record

    try:
        for name in names:
            handles.append(net.get_submodule(name).register_forward_hook(hook(name)))
        yield feats
    finally:
        for h in handles:
            h.remove()


def feature_loss(student: dict[str, torch.Tensor], teacher: dict[str, torch.Tensor]) -> torch.Tensor:
    """Mean over layers of the relative squared error ``||s - t||^2 / ||t||^2`` (scale-free, so
    layers of any magnitude weigh alike; 1 for a student that outputs zeros).

    Raises:
        ValueError: if a layer's student and teacher outputs differ in shape (never broadcast).
    """
    for k, t in teacher.items():
        if student[k].shape != t.shape:
            raise ValueError(f"feature layer {k!r}: student output {tuple(student[k].shape)} vs "
                             f"teacher {tuple(t.shape)}; hints need equal shapes")
    terms = [(student[k] - teacher[k]).pow(2).mean() / (teacher[k].pow(2).mean() + 1e-8) for k in teacher]
    return torch.stack(terms).mean()


class TeacherOutput(NamedTuple):
    """The teacher's targets for one batch (see :meth:`DistillationSystem.teacher_reference`).

    Fields: ``spec`` ``(B, F, T, 2)`` in the student's geometry; ``wav`` ``(B, N)``; ``mask`` the
    complex mask ``(B, 2, T, F)`` or ``None``; ``features`` outputs of the hinted layers by name.
    """

    spec: torch.Tensor
    wav: torch.Tensor
    mask: torch.Tensor | None
    features: dict[str, torch.Tensor]


class StudentPass(NamedTuple):
    """One forward of the trained model, ready for the loss.

    Fields: ``spec`` enhanced ``(B, F, T, 2)``; ``wav`` its synthesis ``(B, N)``; ``loss_kwargs``
    the extra keyword arguments of the loss (``noisy_spec``, ``outputs``); ``mask`` the complex
    mask ``(B, 2, T, F)`` when asked for, else ``None``; ``features`` the outputs of the
    submodules asked for, by name (empty if none).
    """

    spec: torch.Tensor
    wav: torch.Tensor
    loss_kwargs: dict[str, Any]
    mask: torch.Tensor | None
    features: dict[str, torch.Tensor]


class EnhancementSystem(L.LightningModule):
    """Supervised training of a spectral enhancement model on ``(noisy, clean)`` waveform batches.

    Args:
        model: the network (e.g. ``denoisezoo.gtcrn.GTCRN``), with ``geometry`` and ``forward(spec)``.
        loss: a loss taking ``(est_spec, ref_spec, est_wav, ref_wav)`` (default: GTCRN hybrid loss).
        lr: peak learning rate (Adam).
        weight_decay: AdamW weight decay.
        warmup_steps: linear warm-up steps.
        decay_steps: cosine decay length after warm-up (0: the trainer's ``max_steps``).
        min_lr_ratio: final LR as a fraction of ``lr``.
        grad_clip: max gradient norm.
        max_bad_steps: consecutive non-finite steps tolerated before stopping with an error.
        val_metrics: compute PESQ / ESTOI / SI-SDR in validation (slower).
        name: model name recorded in exported checkpoints.
        training_data: description recorded in exported checkpoints.
        init_from: warm start: a zoo model (shipped name or checkpoint path, see
            :func:`denoisezoo.hub.load_model`) whose parameters and buffers are copied into
            ``model`` wherever name and shape match (e.g. ``gtcrn`` into ``gtcrn_48k``: everything
            but the rate-dependent ERB matrices). Applied at construction, so resuming from a
            Lightning checkpoint still restores the trained weights.
    """

    def __init__(self, model: nn.Module, loss: nn.Module | None = None, lr: float = 1e-3,
                 weight_decay: float = 0.0, warmup_steps: int = 500, decay_steps: int = 0,
                 min_lr_ratio: float = 0.05, grad_clip: float = 5.0, max_bad_steps: int = 20,
                 val_metrics: bool = True, name: str = "gtcrn", training_data: str = "",
                 init_from: str | None = None):
        super().__init__()
        self.save_hyperparameters(ignore=["model", "loss", "teacher"])
        self.automatic_optimization = False
        self.model = model
        self.warm_started: list[str] = warm_start(model, init_from) if init_from else []
        self.loss = loss if loss is not None else HybridLoss()
        self.geometry = model.geometry
        self.register_buffer("window", self.geometry.make_window(torch.float32), persistent=False)
        self.bad_steps = 0  # consecutive
        self.skipped_steps = 0  # total
        self.train_seconds = 0.0  # wall time spent in training steps, summed over resumed sessions
        self._t_last: float | None = None

    # ------------------------------------------------------------ plumbing
    def analyse(self, wav: torch.Tensor) -> torch.Tensor:
        """``(B, N)`` -> ``(B, F, T, 2)``."""
        return stft(wav, self.geometry, self.window)

    def synthesise(self, spec: torch.Tensor, length: int) -> torch.Tensor:
        return istft(spec, self.geometry, length, self.window)

    def forward(self, noisy: torch.Tensor) -> torch.Tensor:
        """Enhance ``(B, N)`` waveforms."""
        return self.synthesise(self.model(self.analyse(noisy)), noisy.shape[-1])

    def student_pass(self, noisy_spec: torch.Tensor, length: int,
                     with_mask: bool = False, features: list[str] | tuple[str, ...] = ()) -> StudentPass:
        """Run the model on ``noisy_spec (B, F, T, 2)`` and collect what ``self.loss`` needs.

        ``length`` is the waveform length ``N`` to synthesise. With ``with_mask`` the model runs
        through ``forward_with_mask`` and its complex mask is returned too; ``features`` names
        submodules whose outputs are returned (:func:`capture_features`). Losses with
        ``needs_model_outputs`` (e.g. RNNoise band gains + VAD) get the model's full outputs
        (``forward_with_gains``), losses with ``needs_noisy_spec`` the noisy spectrum.
        """
        extra: dict[str, Any] = {}
        mask = None
        with capture_features(self.model, list(features)) as feats:
            if with_mask:  # DistillationSystem refuses mask matching with needs_model_outputs
                est_spec, _, mask = self.model.forward_with_mask(noisy_spec)
            elif getattr(self.loss, "needs_model_outputs", False):
                out = self.model.forward_with_gains(noisy_spec)
                est_spec, extra["outputs"] = out.spec, out
            else:
                est_spec = self.model(noisy_spec)
        if getattr(self.loss, "needs_noisy_spec", False):
            extra["noisy_spec"] = noisy_spec
        return StudentPass(est_spec, self.synthesise(est_spec, length), extra, mask, feats)

    def compute_loss(self, noisy: torch.Tensor, clean: torch.Tensor) -> tuple[torch.Tensor, dict]:
        noisy_spec, clean_spec = self.analyse(noisy), self.analyse(clean)
        s = self.student_pass(noisy_spec, noisy.shape[-1])
        loss = self.loss(s.spec, clean_spec, s.wav, clean, **s.loss_kwargs)
        return loss, {}

    # ------------------------------------------------------------ training
    def on_train_batch_start(self, batch, batch_idx: int) -> None:
        self._t_last = time.perf_counter()

    def on_train_batch_end(self, outputs, batch, batch_idx: int) -> None:
        if self._t_last is not None:
            self.train_seconds += time.perf_counter() - self._t_last
            self._t_last = None

    def training_step(self, batch, batch_idx: int):
        noisy, clean = batch
        opt = self.optimizers()
        sched = self.lr_schedulers()
        loss, parts = self.compute_loss(noisy, clean)
        if not torch.isfinite(loss):
            self._skip("loss")
            return None
        opt.zero_grad(set_to_none=True)
        self.manual_backward(loss)
        norm = torch.nn.utils.clip_grad_norm_(self.model.parameters(), self.hparams.grad_clip)
        if not torch.isfinite(norm):
            opt.zero_grad(set_to_none=True)
            self._skip("gradient")
            return None
        opt.step()
        sched.step()
        self.bad_steps = 0
        bs = noisy.shape[0]
        self.log("train/loss", loss.detach(), prog_bar=True, batch_size=bs)
        self.log("train/grad_norm", norm, batch_size=bs)
        self.log("train/lr", sched.get_last_lr()[0], batch_size=bs)
        self.log("train/skipped", float(self.skipped_steps), batch_size=bs)
        self.log("train/seconds", self.train_seconds, batch_size=bs)
        for k, v in parts.items():
            self.log(f"train/{k}", v, batch_size=bs)
        return loss.detach()

    def _skip(self, what: str) -> None:
        self.bad_steps += 1
        self.skipped_steps += 1
        if self.bad_steps > self.hparams.max_bad_steps:
            raise NonFiniteError(
                f"{self.bad_steps} consecutive steps had a non-finite {what}; stopping at global step "
                f"{self.global_step}. Lower the learning rate or check the data for NaN/inf samples."
            )
        self.print(f"warning: non-finite {what} at global step {self.global_step}; step skipped "
                   f"({self.skipped_steps} skipped so far)")

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        for name, p in self.model.state_dict().items():
            if p.is_floating_point() and not torch.isfinite(p).all():
                raise NonFiniteError(f"refusing to checkpoint: parameter {name} is not finite")
        from denoisezoo.hub import model_family

        checkpoint["denoisezoo_model"] = {
            "family": model_family(self.model),
            "config": self.model.config.to_dict(),
            "name": self.hparams.name,
            "prefix": "model.",
        }
        checkpoint["denoisezoo_counters"] = {"skipped_steps": self.skipped_steps,
                                             "train_seconds": self.train_seconds}

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        counters = checkpoint.get("denoisezoo_counters", {})
        self.skipped_steps = counters.get("skipped_steps", 0)
        self.train_seconds = counters.get("train_seconds", 0.0)

    # ---------------------------------------------------------- validation
    def validation_step(self, batch, batch_idx: int):
        noisy, clean = batch
        loss, _ = self.compute_loss(noisy, clean)
        est = self(noisy)
        bs = noisy.shape[0]
        self.log("val/loss", loss, prog_bar=True, batch_size=bs, sync_dist=True)
        from denoisezoo.training.losses import si_sdr, snr

        self.log("val/si_sdr", si_sdr(est, clean).mean(), batch_size=bs, sync_dist=True)
        self.log("val/snr", snr(est, clean).mean(), batch_size=bs, sync_dist=True)
        if self.hparams.val_metrics:
            from denoisezoo.evaluation import validation_metrics

            for k, v in validation_metrics(clean, est, self.geometry.sample_rate).items():
                if k != "si_sdr" and v == v:  # NaN (PESQ could not score any item) is not logged
                    self.log(f"val/{k}", v, prog_bar=k == "pesq", batch_size=bs, sync_dist=True)

    def on_validation_epoch_end(self) -> None:
        from denoisezoo.evaluation import sign_inverted

        m = self.trainer.callback_metrics
        if "val/snr" in m and "val/si_sdr" in m and sign_inverted(float(m["val/snr"]),
                                                                  float(m["val/si_sdr"])):
            from lightning.pytorch.utilities import rank_zero_warn

            rank_zero_warn(f"validation SNR {float(m['val/snr']):.1f} dB but SI-SDR "
                           f"{float(m['val/si_sdr']):.1f} dB: the output looks sign-inverted (a "
                           "sign-blind loss term can settle there); GTCRN.invert_polarity_ / "
                           "scripts/invert_polarity.py repair the weights exactly")

    # ----------------------------------------------------------- optimiser
    def configure_optimizers(self):
        params = [p for p in self.model.parameters() if p.requires_grad]
        opt = torch.optim.AdamW(params, lr=self.hparams.lr, weight_decay=self.hparams.weight_decay)
        warm = max(0, self.hparams.warmup_steps)
        decay = self.hparams.decay_steps or max(1, (self.trainer.max_steps if self.trainer else 0) - warm)
        floor = self.hparams.min_lr_ratio

        def factor(step: int) -> float:
            if step < warm:
                return (step + 1) / warm
            t = min(1.0, (step - warm) / max(1, decay))
            return floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi * t))

        sched = torch.optim.lr_scheduler.LambdaLR(opt, factor)
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step"}}

    # ------------------------------------------------------------- export
    def export(self, path, meta: dict[str, Any] | None = None):
        """Write the model as a self-describing denoisezoo checkpoint."""
        from denoisezoo.hub import save_checkpoint

        info = {"global_step": int(self.global_step), "skipped_steps": self.skipped_steps,
                "train_hours": round(self.train_seconds / 3600, 3),
                "training_data": self.hparams.training_data}
        return save_checkpoint(self.model, path, name=self.hparams.name, meta={**info, **(meta or {})})


class DistillationSystem(EnhancementSystem):
    """Teacher-to-student training: ``alpha * L(student, teacher) + (1 - alpha) * L(student, clean)``
    plus optionally ``mask_weight * MSE(student mask, teacher mask)`` and
    ``feature_weight * feature_loss(student layers, teacher layers)`` (intermediate distillation).

    The teacher's output takes the place of the clean reference in the first term, with the same
    loss and the same extra loss arguments as the second (``noisy_spec``, the student's
    ``outputs``); so :class:`~denoisezoo.training.losses.RNNoiseLoss` distils in the band-gain
    domain: gain targets from the teacher's spectrum vs the noisy one, VAD labels from the
    teacher's waveform.

    Teacher and student must share the sample rate; their STFT geometries may differ (e.g. a GTCRN
    teacher, 512-point sqrt-Hann frames with hop 256, for an RNNoise student, 320/160 Vorbis). Then
    the teacher enhances its own STFT of the noisy waveform (with its own window), its output is
    synthesised to a waveform and re-analysed with the student's geometry to give the teacher's
    reference spectrum. With equal geometries the teacher runs on the student's noisy spectrum.
    A teacher with ``enhance_waveform(wav)`` (:class:`TeacherEnsemble`) maps the noisy waveform to
    its output waveform, which is analysed in the student's geometry.

    Args:
        model: the student.
        teacher: any zoo model with ``geometry`` and ``forward(spec)`` (frozen, kept in eval mode),
            e.g. ``Pretrained("path/to/official.tar")`` or a trained ``gtcrn_large``, or a
            :class:`TeacherEnsemble`.
        alpha: weight of the distillation term.
        mask_weight: weight of the complex-mask matching term (both models must expose
            ``forward_with_mask`` and share the STFT geometry; not with an ensemble).
        feature_layers: submodules (dotted names, e.g. ``["encoder.en_convs.4", "dpgrnn.0"]``)
            whose outputs the student matches in the teacher (hints, as in FitNets). Both models
            need these submodules with outputs of equal shape (e.g. GTCRN student and teacher of
            the same config) and the same STFT geometry; not with an ensemble.
        feature_weight: weight of :func:`feature_loss` over ``feature_layers`` (0: off).
        **kwargs: the :class:`EnhancementSystem` arguments (``loss``, ``lr``, ...).

    Raises:
        ValueError: if the sample rates differ, or ``mask_weight > 0`` / ``feature_weight > 0``
            with differing geometries or a teacher without those submodules, or ``mask_weight > 0``
            with a loss that needs the model's outputs.
    """

    def __init__(self, model: nn.Module, teacher: nn.Module, alpha: float = 0.5,
                 mask_weight: float = 0.0, feature_layers: list[str] | None = None,
                 feature_weight: float = 0.0, **kwargs):
        super().__init__(model, **kwargs)
        t_geom, s_geom = teacher.geometry, model.geometry
        if t_geom.sample_rate != s_geom.sample_rate:
            raise ValueError(f"teacher sample rate {t_geom.sample_rate} Hz differs from the student's "
                             f"{s_geom.sample_rate} Hz; distil from a teacher at the student's rate")
        # a teacher with ``enhance_waveform`` (e.g. TeacherEnsemble) is used through waveforms only
        self.waveform_teacher = callable(getattr(teacher, "enhance_waveform", None))
        self.same_geometry = t_geom == s_geom and not self.waveform_teacher
        if mask_weight and not self.same_geometry:
            raise ValueError(f"mask_weight={mask_weight} needs a single teacher with the student's STFT "
                             f"geometry (no mask to match otherwise): teacher {t_geom}, student "
                             f"{s_geom}; use mask_weight=0")
        if mask_weight and getattr(self.loss, "needs_model_outputs", False):
            raise ValueError(f"{type(self.loss).__name__} needs the model's outputs; it cannot "
                             "be combined with mask matching (mask_weight)")
        self.feature_layers = list(feature_layers or []) if feature_weight else []
        if self.feature_layers:
            if not self.same_geometry:
                raise ValueError(f"feature_weight={feature_weight} needs a single teacher with the "
                                 f"student's STFT geometry: teacher {t_geom}, student {s_geom}")
            t_net = self._network(teacher)
            for name in self.feature_layers:
                for who, net in (("student", model), ("teacher", t_net)):
                    try:
                        net.get_submodule(name)
                    except AttributeError:
                        raise ValueError(f"feature layer {name!r} is not a submodule of the {who} "
                                         f"({type(net).__name__})") from None
        elif feature_weight:
            raise ValueError(f"feature_weight={feature_weight} needs feature_layers")
        self.teacher = teacher.eval()
        for p in self.teacher.parameters():
            p.requires_grad_(False)
        self.teacher_source = getattr(teacher, "source", type(teacher).__name__)
        self.register_buffer("teacher_window", t_geom.make_window(torch.float32), persistent=False)

    @staticmethod
    def _network(teacher: nn.Module) -> nn.Module:
        """The network whose submodules ``feature_layers`` name (a :class:`Pretrained` wraps it)."""
        return getattr(teacher, "model", teacher)

    def train(self, mode: bool = True):
        super().train(mode)
        self.teacher.eval()
        return self

    @torch.no_grad()
    def teacher_reference(self, noisy: torch.Tensor, noisy_spec: torch.Tensor) -> TeacherOutput:
        """The teacher's output for ``noisy (B, N)`` (``noisy_spec`` its STFT in the student's
        geometry); the mask only with ``mask_weight``, the features (outputs of ``feature_layers``)
        only with ``feature_weight`` (then the geometries are equal)."""
        n = noisy.shape[-1]
        if self.waveform_teacher:
            t_wav = self.teacher.enhance_waveform(noisy)
            return TeacherOutput(self.analyse(t_wav), t_wav, None, {})
        if self.same_geometry:
            with capture_features(self._network(self.teacher), self.feature_layers) as feats:
                if self.hparams.mask_weight:
                    t_spec, _, t_mask = self.teacher.forward_with_mask(noisy_spec)
                else:
                    t_spec, t_mask = self.teacher(noisy_spec), None
            return TeacherOutput(t_spec, self.synthesise(t_spec, n), t_mask, feats)
        g, w = self.teacher.geometry, self.teacher_window
        t_wav = istft(self.teacher(stft(noisy, g, w)), g, n, w)
        return TeacherOutput(self.analyse(t_wav), t_wav, None, {})

    def compute_loss(self, noisy, clean):
        noisy_spec, clean_spec = self.analyse(noisy), self.analyse(clean)
        t_spec, t_wav, t_mask, t_feats = self.teacher_reference(noisy, noisy_spec)
        s = self.student_pass(noisy_spec, noisy.shape[-1], with_mask=bool(self.hparams.mask_weight),
                              features=self.feature_layers)
        l_teacher = self.loss(s.spec, t_spec, s.wav, t_wav, **s.loss_kwargs)
        l_clean = self.loss(s.spec, clean_spec, s.wav, clean, **s.loss_kwargs)
        a = self.hparams.alpha
        loss = a * l_teacher + (1 - a) * l_clean
        parts = {"loss_teacher": l_teacher.detach(), "loss_clean": l_clean.detach()}
        if self.hparams.mask_weight:
            l_mask = nn.functional.mse_loss(s.mask, t_mask)
            loss = loss + self.hparams.mask_weight * l_mask
            parts["loss_mask"] = l_mask.detach()
        if self.feature_layers:
            l_feat = feature_loss(s.features, t_feats)
            loss = loss + self.hparams.feature_weight * l_feat
            parts["loss_feature"] = l_feat.detach()
        return loss, parts

    def on_save_checkpoint(self, checkpoint):
        super().on_save_checkpoint(checkpoint)
        checkpoint["denoisezoo_model"]["teacher"] = str(self.teacher_source)

    def export(self, path, meta=None):
        return super().export(path, {"teacher": str(self.teacher_source), "alpha": self.hparams.alpha,
                                     **(meta or {})})
