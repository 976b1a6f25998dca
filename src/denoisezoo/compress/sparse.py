"""Unstructured and block-sparse magnitude pruning of GRU and linear weights, gradual schedule.

- :func:`sparse_targets`: the weight matrices pruned (``nn.GRU`` ``weight_ih`` / ``weight_hh`` of
  every direction, the RNNoise port's Keras GRU ``kernel`` / ``recurrent_kernel``, ``nn.Linear``
  weights; optionally conv weights).
- :func:`magnitude_masks`: keep-masks at a sparsity, per tensor (``scope="layer"``) or one threshold
  over all (``"global"``), for single weights (``block=(1, 1)``) or blocks of ``(rows, cols)``
  (RNNoise-style block sparsity; a block's score is its L2 norm; blocks at the edges may be
  partial).
- :func:`cubic_sparsity`: the gradual schedule of Zhu & Gupta (2017),
  ``s_t = s_f + (s_i - s_f) (1 - (t - t_0) / (t_1 - t_0))^3`` for ``t_0 <= t <= t_1``.
- :class:`SparsityCallback`: applies that schedule during Lightning fine-tuning (``denoisezoo
  train``): every ``frequency`` optimizer steps it recomputes the masks at the scheduled
  sparsity, and after every step it re-applies them, so pruned weights stay exactly zero.

Dense kernels do not get faster from unstructured zeros: this reduces the non-zero parameter count
(and the compressed file size), not the dense MACs. Structured pruning
(:mod:`denoisezoo.compress.structured`) is the one that shrinks the dense model.
"""

from __future__ import annotations

from collections.abc import Sequence

import lightning as L
import torch
from torch import nn

__all__ = ["sparse_targets", "magnitude_masks", "apply_masks_", "cubic_sparsity", "sparsity",
           "prune_unstructured", "SparsityCallback"]


def sparse_targets(model: nn.Module, kinds: Sequence[str] = ("gru", "linear")
                   ) -> dict[str, nn.Parameter]:
    """``{name: weight}`` of the prunable matrices (kinds: ``"gru"``, ``"linear"``, ``"conv"``)."""
    from denoisezoo.rnnoise_port.model import KerasGRU

    out: dict[str, nn.Parameter] = {}
    for mname, m in model.named_modules():
        if isinstance(m, nn.GRU) and "gru" in kinds:
            for pname, p in m.named_parameters(recurse=False):
                if pname.startswith("weight_"):
                    out[f"{mname}.{pname}"] = p
        elif isinstance(m, KerasGRU) and "gru" in kinds:  # (I, 3N) and (N, 3N), biases kept
            out[f"{mname}.kernel"] = m.kernel
            out[f"{mname}.recurrent_kernel"] = m.recurrent_kernel
        elif isinstance(m, nn.Linear) and "linear" in kinds:
            out[f"{mname}.weight"] = _weight(m)
        elif isinstance(m, (nn.Conv2d, nn.ConvTranspose2d)) and "conv" in kinds:
            if m.weight.shape[1] * m.weight[0, 0].numel() > 1:  # skip depthwise 1-tap
                out[f"{mname}.weight"] = _weight(m)
    return out


def _weight(m: nn.Module) -> nn.Parameter:
    """The stored weight (under a parametrization such as QAT fake quantization: the original)."""
    par = getattr(m, "parametrizations", None)
    return par.weight.original if par is not None and hasattr(par, "weight") else m.weight


def _block_scores(w: torch.Tensor, block: tuple[int, int]) -> torch.Tensor:
    """``(R, C)`` -> ``(ceil(R / br), ceil(C / bc))`` L2 norms of the blocks."""
    w2 = w.detach().reshape(w.shape[0], -1).float()
    br, bc = block
    r, c = w2.shape
    pr, pc = (-r) % br, (-c) % bc
    wp = nn.functional.pad(w2, (0, pc, 0, pr))
    return wp.reshape((r + pr) // br, br, (c + pc) // bc, bc).pow(2).sum(dim=(1, 3)).sqrt()


def _expand(bmask: torch.Tensor, block: tuple[int, int], shape: torch.Size) -> torch.Tensor:
    br, bc = block
    m = bmask.repeat_interleave(br, 0).repeat_interleave(bc, 1)
    rows, cols = shape[0], int(torch.Size(shape[1:]).numel())
    return m[:rows, :cols].reshape(shape)


def magnitude_masks(weights: dict[str, torch.Tensor], target: float, block: tuple[int, int] = (1, 1),
                    scope: str = "layer") -> dict[str, torch.Tensor]:
    """Boolean keep-masks removing the ``target`` fraction of the smallest weights / blocks."""
    if not 0.0 <= target < 1.0:
        raise ValueError(f"sparsity must be in [0, 1), got {target}")
    if scope not in ("layer", "global"):
        raise ValueError(f"scope must be 'layer' or 'global', got {scope!r}")
    scores = {k: _block_scores(w, block) for k, w in weights.items()}
    masks: dict[str, torch.Tensor] = {}
    if scope == "global":
        allv = torch.cat([s.flatten() for s in scores.values()])
        n = round(target * allv.numel())
        order = torch.argsort(allv, stable=True)
        keep_flat = torch.ones_like(allv, dtype=torch.bool)
        keep_flat[order[:n]] = False
        i = 0
        for k, s in scores.items():
            masks[k] = _expand(keep_flat[i:i + s.numel()].reshape(s.shape), block, weights[k].shape)
            i += s.numel()
        return masks
    for k, s in scores.items():
        n = round(target * s.numel())
        order = torch.argsort(s.flatten(), stable=True)
        keep = torch.ones(s.numel(), dtype=torch.bool)
        keep[order[:n]] = False
        masks[k] = _expand(keep.reshape(s.shape), block, weights[k].shape)
    return masks


@torch.no_grad()
def apply_masks_(weights: dict[str, torch.Tensor], masks: dict[str, torch.Tensor]) -> None:
    """Zero the masked weights in place."""
    for k, m in masks.items():
        weights[k].mul_(m.to(weights[k].dtype))


def sparsity(model: nn.Module, kinds: Sequence[str] = ("gru", "linear")) -> float:
    """Fraction of exact zeros over the :func:`sparse_targets` weights."""
    ws = list(sparse_targets(model, kinds).values())
    total = sum(w.numel() for w in ws)
    return float(sum(int((w == 0).sum()) for w in ws)) / max(1, total)


def cubic_sparsity(step: int, final: float, begin: int, end: int, initial: float = 0.0) -> float:
    """Zhu & Gupta gradual sparsity at ``step``: ``initial`` before ``begin``, ``final`` after ``end``."""
    if end <= begin:
        return final if step >= begin else initial
    t = min(max((step - begin) / (end - begin), 0.0), 1.0)
    return final + (initial - final) * (1.0 - t) ** 3


def prune_unstructured(model: nn.Module, target: float, *, block: tuple[int, int] = (1, 1),
                       scope: str = "layer", kinds: Sequence[str] = ("gru", "linear")) -> dict:
    """One-shot magnitude pruning of ``model`` in place; returns the record stored in artefacts."""
    w = sparse_targets(model, kinds)
    if not w:
        raise ValueError(f"{type(model).__name__} has no {'/'.join(kinds)} weights to prune")
    apply_masks_(w, magnitude_masks(w, target, block, scope))
    return {"method": "unstructured" if tuple(block) == (1, 1) else "block_sparse",
            "ratio": target, "block": list(block), "scope": scope, "kinds": list(kinds),
            "sparsity": sparsity(model, kinds),
            "nonzero_params": sum(int((p != 0).sum()) for p in model.parameters())}


class SparsityCallback(L.Callback):
    """Gradual magnitude pruning during fine-tuning (Zhu & Gupta cubic schedule).

    Works with any system whose network is ``pl_module.model`` (the denoisezoo systems). YAML::

        trainer:
          callbacks:
            - class_path: denoisezoo.compress.SparsityCallback
              init_args: {final_sparsity: 0.5, begin_step: 0, end_step: 200, block: [4, 8]}

    Args:
        final_sparsity: target fraction of zeros in the pruned weights.
        begin_step: optimizer step of the first pruning.
        end_step: step at which ``final_sparsity`` is reached.
        frequency: steps between mask updates.
        initial_sparsity: sparsity at ``begin_step``.
        block: ``(rows, cols)`` block size (``(1, 1)``: unstructured).
        scope: ``"layer"`` or ``"global"`` thresholds.
        kinds: weights pruned (``"gru"``, ``"linear"``, ``"conv"``).
    """

    def __init__(self, final_sparsity: float = 0.5, begin_step: int = 0, end_step: int = 1000,
                 frequency: int = 10, initial_sparsity: float = 0.0,
                 block: tuple[int, int] | list[int] = (1, 1), scope: str = "layer",
                 kinds: Sequence[str] = ("gru", "linear")):
        if not 0.0 <= initial_sparsity <= final_sparsity < 1.0:
            raise ValueError("need 0 <= initial_sparsity <= final_sparsity < 1")
        if frequency < 1:
            raise ValueError("frequency must be >= 1")
        self.final, self.initial = final_sparsity, initial_sparsity
        self.begin, self.end, self.frequency = begin_step, end_step, frequency
        self.block = (int(block[0]), int(block[1]))
        self.scope, self.kinds = scope, tuple(kinds)
        self.current = 0.0
        self._masks: dict[str, torch.Tensor] | None = None

    def target(self, step: int) -> float:
        return cubic_sparsity(step, self.final, self.begin, self.end, self.initial)

    def _update(self, model: nn.Module, step: int) -> None:
        w = sparse_targets(model, self.kinds)
        self.current = self.target(step)
        self._masks = magnitude_masks(w, self.current, self.block, self.scope)
        apply_masks_(w, self._masks)

    def on_train_start(self, trainer, pl_module) -> None:
        if trainer.global_step >= self.begin:  # resumed mid-schedule: re-derive the masks
            self._update(pl_module.model, trainer.global_step)

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        step = trainer.global_step  # optimizer steps done
        model = pl_module.model
        due = step <= self.end and (step - self.begin) % self.frequency == 0
        if step >= self.begin and (due or self._masks is None or self.current < self.target(step)):
            self._update(model, step)
        if self._masks is not None:
            apply_masks_(sparse_targets(model, self.kinds), self._masks)
        pl_module.log("compress/sparsity_target", self.current)

    def state_dict(self) -> dict:
        return {"current": self.current}

    def load_state_dict(self, state_dict: dict) -> None:
        self.current = float(state_dict.get("current", 0.0))
