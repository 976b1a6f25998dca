"""Checkpoint weight averaging (a cheap alternative or complement to an LR cool-down).

Averaging the weights of several snapshots along one high-learning-rate run (SWA / "latest weight
averaging") cancels much of the run's step noise without extra training. The snapshots must lie in
one basin: same run, same output polarity, no warm start in between.

    from denoisezoo.training.averaging import average_checkpoints
    average_checkpoints(["runs/a_9000.ckpt", "runs/a_10000.ckpt"], "runs/a_avg.ckpt")
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import torch

__all__ = ["average_checkpoints", "average_state_dicts"]


def average_state_dicts(states: Sequence[dict[str, torch.Tensor]],
                        weights: Sequence[float] | None = None) -> dict[str, torch.Tensor]:
    """Weighted mean of floating-point tensors across ``states`` (same keys and shapes in each).

    Integer tensors (e.g. BatchNorm ``num_batches_tracked``) are taken from the last state. BatchNorm
    running statistics are averaged like weights, the usual approximation when the snapshots are
    close; re-estimate them on training data if they are not.
    """
    if not states:
        raise ValueError("nothing to average")
    keys = list(states[-1])
    for i, s in enumerate(states):
        if list(s) != keys:
            missing = set(keys) ^ set(s)
            raise ValueError(f"state {i} has different keys: {sorted(missing)[:5]}")
    w = torch.tensor([1.0] * len(states) if weights is None else list(weights), dtype=torch.float64)
    if len(w) != len(states) or (w < 0).any() or w.sum() <= 0:
        raise ValueError("weights: one non-negative value per state, not all zero")
    w = w / w.sum()
    out: dict[str, torch.Tensor] = {}
    for k in keys:
        ref = states[-1][k]
        if any(s[k].shape != ref.shape for s in states):
            raise ValueError(f"{k}: shapes differ across states")
        if ref.is_floating_point():
            acc = sum(wi * s[k].double() for wi, s in zip(w.tolist(), states, strict=True))
            out[k] = acc.to(ref.dtype)
        else:
            out[k] = ref.clone()
    return out


def average_checkpoints(paths: Sequence[str | Path], out: str | Path,
                        weights: Sequence[float] | None = None, overwrite: bool = False) -> Path:
    """Average the ``state_dict`` of Lightning checkpoints of one run into ``out``.

    ``out`` is the last checkpoint with its weights replaced (so ``hub.load_model`` and
    ``init_from`` read it as usual) and the sources recorded under ``denoisezoo_averaged``; its
    optimizer and loop states are dropped, so it cannot be resumed by mistake as if it were a step
    of the run.
    """
    out = Path(out)
    if out.exists() and not overwrite:
        raise FileExistsError(f"{out} exists")
    cks = [torch.load(p, map_location="cpu", weights_only=False) for p in paths]
    for p, c in zip(paths, cks, strict=True):
        if "state_dict" not in c:
            raise ValueError(f"{p}: not a Lightning checkpoint (no state_dict)")
    merged = dict(cks[-1])
    merged["state_dict"] = average_state_dicts([c["state_dict"] for c in cks], weights)
    for k in ("optimizer_states", "lr_schedulers", "loops", "callbacks"):
        merged.pop(k, None)
    merged["denoisezoo_averaged"] = {
        "sources": [str(p) for p in paths],
        "steps": [int(c.get("global_step", -1)) for c in cks],
        "weights": None if weights is None else [float(x) for x in weights],
    }
    out.parent.mkdir(parents=True, exist_ok=True)
    torch.save(merged, out)
    return out
