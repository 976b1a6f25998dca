"""Quantization-aware fine-tuning (fake quantization with a straight-through estimator).

What is simulated matches what :func:`denoisezoo.compress.quantize.quantize_step` runs in ONNX
Runtime, so the fine-tuned weights are exported to the same INT8 path:

- weights of every ``Conv2d`` / ``ConvTranspose2d`` / ``Linear`` except the first encoder conv and
  the last decoder conv (kept float there too): on the grid ``quantize_step`` exports with the
  same ``weights`` setting, one scale per output channel (per tensor for grouped transposed convs
  with several outputs per group, as ONNX Runtime does): ``"uint8"`` (default) 256 levels from
  ``min(w, 0)`` to ``max(w, 0)`` with a zero point, ``"int8"`` ``absmax / 127``,
  ``"int8_7bit"`` ``absmax / 64``;
- their input activations and their outputs (after the BatchNorm that follows, i.e. the folded
  conv's output): UINT8 asymmetric per tensor, ranges tracked as an exponential moving average of
  the batch min / max during training (frozen in eval mode);
- GRUs, LayerNorm, the ERB matrices and the states stay float.

Gradients pass straight through the rounding (``x + (q(x) - x).detach()``). Weights are wrapped
with :mod:`torch.nn.utils.parametrize`; :class:`QATCallback` keeps checkpoints in the plain
parameter names (``...weight``), so a QAT checkpoint loads as an ordinary float model everywhere
(:func:`denoisezoo.hub.load_model`) and :func:`strip_qat` returns the plain model.
"""

from __future__ import annotations

import re
from collections.abc import Callable

import lightning as L
import torch
from torch import nn
from torch.nn.utils import parametrize

from denoisezoo.compress.quantize import WEIGHT_TYPES
from denoisezoo.hub import family_of

__all__ = ["FakeQuantWeight", "ActivationFakeQuant", "prepare_qat", "strip_qat", "QATCallback",
           "qat_modules"]

_PARAM_KEY = re.compile(r"\.parametrizations\.(weight)\.original$")


def _ste(x: torch.Tensor, q: torch.Tensor) -> torch.Tensor:
    return x + (q - x).detach()


class FakeQuantWeight(nn.Module):
    """8-bit fake quantization of a weight, per channel along ``axis`` (``None``: per tensor), on
    ONNX Runtime's grid for ``weights`` (:data:`~denoisezoo.compress.quantize.WEIGHT_TYPES`):
    ``"uint8"`` asymmetric ``[0, 255]`` over ``[min(w, 0), max(w, 0)]`` with a zero point,
    ``"int8"`` symmetric ``[-127, 127]``, ``"int8_7bit"`` symmetric ``[-64, 64]``."""

    def __init__(self, axis: int | None, weights: str = "uint8"):
        super().__init__()
        if weights not in WEIGHT_TYPES:
            raise ValueError(f"weights must be one of {WEIGHT_TYPES}, got {weights!r}")
        self.axis = axis
        self.weights = weights

    def forward(self, w: torch.Tensor) -> torch.Tensor:
        dims = list(range(w.ndim)) if self.axis is None else [d for d in range(w.ndim)
                                                               if d != self.axis]
        wd = w.detach()
        if self.weights == "uint8":
            lo = wd.amin(dim=dims, keepdim=True).clamp_max(0)
            hi = wd.amax(dim=dims, keepdim=True).clamp_min(0)
            scale = ((hi - lo) / 255).clamp_min(1e-12)
            zp = torch.round(-lo / scale)
            return _ste(w, (torch.clamp(torch.round(w / scale) + zp, 0, 255) - zp) * scale)
        qmax = 127 if self.weights == "int8" else 64
        scale = wd.abs().amax(dim=dims, keepdim=True).clamp_min(1e-12) / qmax
        return _ste(w, torch.clamp(torch.round(w / scale), -qmax, qmax) * scale)


class ActivationFakeQuant:
    """UINT8 asymmetric per-tensor fake quantization with EMA min/max (frozen in eval mode)."""

    def __init__(self, momentum: float = 0.01):
        self.momentum = momentum
        self.lo: float | None = None
        self.hi: float | None = None

    def __call__(self, x: torch.Tensor, training: bool) -> torch.Tensor:
        if training or self.lo is None:
            lo, hi = float(x.detach().min()), float(x.detach().max())
            if self.lo is None:
                self.lo, self.hi = lo, hi
            else:
                m = self.momentum
                self.lo = (1 - m) * self.lo + m * lo
                self.hi = (1 - m) * self.hi + m * hi
        lo, hi = min(self.lo, 0.0), max(self.hi, 0.0)  # the range holds 0 exactly
        scale = max(hi - lo, 1e-8) / 255.0
        zp = round(-lo / scale)
        q = (torch.clamp(torch.round(x / scale) + zp, 0, 255) - zp) * scale
        return _ste(x, q)

    def state(self) -> list[float | None]:
        return [self.lo, self.hi]


def _weight_axis(m: nn.Module) -> int | None:
    if isinstance(m, nn.ConvTranspose2d):
        if m.groups == 1:
            return 1
        return 0 if m.weight.shape[1] == 1 else None
    return 0  # Conv2d (out, in/g, kh, kw); Linear (out, in)


def qat_modules(model: nn.Module) -> dict[str, tuple[nn.Module, nn.Module]]:
    """``{name: (quantized module, module whose output is the quantized output)}``."""
    family = family_of(model)
    follow = {id(getattr(p, conv)): getattr(p, bn) for p, conv, bn in family.conv_bn_pairs(model)}
    skip = {id(m) for m in family.qat_keep_float(model)}
    out = {}
    for name, m in model.named_modules():
        if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d, nn.Linear)) and id(m) not in skip:
            out[name] = (m, follow.get(id(m), m))
    return out


def prepare_qat(model: nn.Module, momentum: float = 0.01, weights: str = "uint8") -> nn.Module:
    """Insert fake quantization into ``model`` in place (idempotent); returns it.

    ``weights`` must match the later :func:`~denoisezoo.compress.quantize.quantize_step` (both
    default to ``"uint8"``)."""
    if getattr(model, "_qat_handles", None):
        return model
    handles: list = []
    observers: dict[str, ActivationFakeQuant] = {}
    for name, (m, out_mod) in qat_modules(model).items():
        parametrize.register_parametrization(
            m, "weight", FakeQuantWeight(_weight_axis(m), weights))
        obs_in, obs_out = ActivationFakeQuant(momentum), ActivationFakeQuant(momentum)
        observers[f"{name}:in"], observers[f"{name}:out"] = obs_in, obs_out

        def pre(mod, args, _o=obs_in):
            return (_o(args[0], mod.training), *args[1:])

        def post(mod, args, out, _o=obs_out):
            return _o(out, mod.training)

        handles.append(m.register_forward_pre_hook(pre))
        handles.append(out_mod.register_forward_hook(post))
    handles.append(model._register_load_state_dict_pre_hook(_to_parametrized_keys(model)))
    model._qat_handles = handles
    model._qat_observers = observers
    return model


def _to_parametrized_keys(model: nn.Module) -> Callable:
    names = {f"{n}.weight" for n in qat_modules(model)}

    def hook(state_dict, prefix, *args, **kwargs):
        for n in names:
            k = prefix + n
            if k in state_dict:
                state_dict[prefix + n.rsplit(".", 1)[0] + ".parametrizations.weight.original"] = (
                    state_dict.pop(k))

    return hook


def plain_state_dict(sd: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Parametrized names (``x.parametrizations.weight.original``) back to ``x.weight``."""
    return {_PARAM_KEY.sub(r".\1", k): v for k, v in sd.items()}


def strip_qat(model: nn.Module) -> nn.Module:
    """Remove fake quantization in place (latent float weights kept); returns the plain model."""
    for h in getattr(model, "_qat_handles", []):
        h.remove()
    for m in model.modules():
        if parametrize.is_parametrized(m, "weight"):
            parametrize.remove_parametrizations(m, "weight", leave_parametrized=False)
    for attr in ("_qat_handles", "_qat_observers"):
        if hasattr(model, attr):
            delattr(model, attr)
    return model


class QATCallback(L.Callback):
    """Quantization-aware fine-tuning in ``denoisezoo train`` (network at ``pl_module.model``)::

        trainer:
          callbacks:
            - class_path: denoisezoo.compress.QATCallback

    Checkpoints keep plain parameter names, so ``compress quantize --checkpoint last.ckpt`` exports
    the fine-tuned weights to the ONNX Runtime INT8 path.
    """

    def __init__(self, momentum: float = 0.01, weights: str = "uint8"):
        self.momentum = momentum
        self.weights = weights

    def setup(self, trainer, pl_module, stage: str) -> None:
        prepare_qat(pl_module.model, self.momentum, self.weights)

    def on_save_checkpoint(self, trainer, pl_module, checkpoint) -> None:
        checkpoint["state_dict"] = plain_state_dict(checkpoint["state_dict"])

    def state_dict(self) -> dict:
        return {}

    def teardown(self, trainer, pl_module, stage: str) -> None:
        strip_qat(pl_module.model)
