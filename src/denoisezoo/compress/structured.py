"""Structured pruning of GTCRN or the RNNoise port into a smaller dense model of the same class.

Each unit is removed with every weight that produces or consumes it, so the result is a plain
:class:`~denoisezoo.gtcrn.GTCRN` / :class:`~denoisezoo.rnnoise_port.RNNoise` built from its config
with narrower widths. Each family declares its prunable unit groups, the parameter slices each
unit owns or feeds, the signals that score it and how to rebuild a narrower model
(:class:`denoisezoo.family.Pruning`; GTCRN: :mod:`denoisezoo.gtcrn.family`, RNNoise:
:mod:`denoisezoo.rnnoise_port.family`).

Importance of a unit (:func:`unit_importance`):

- ``"l1"`` / ``"l2"``: norm of all parameters attached to it (incoming rows, BatchNorm scale and
  shift, outgoing columns, recurrent column). A unit whose parameters are all zero scores 0 and
  removing it leaves the function unchanged.
- ``"taylor"``: first-order Taylor estimate of the loss change (Molchanov et al. 2017),
  ``mean_items |sum_positions a * dL/da|`` of the unit's output signal on calibration batches of
  ``(noisy, clean)`` waveforms with the GTCRN hybrid loss.

Selection (:func:`prune_structured`): ``scope="layer"`` removes ``round(ratio * n)`` units from every
group; ``scope="global"`` normalises importances within each group (mean 1), ranks all units of all
groups together and removes the lowest ``ratio`` fraction, keeping at least ``min_keep`` of each
group. Coupled sub-groups (the GRU groups/directions of one block) share a count: the group's
profile is the mean of their sorted importances.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import torch
from torch import nn

from denoisezoo.family import Pruning, UnitGroup
from denoisezoo.gtcrn import GTCRN
from denoisezoo.gtcrn.family import KINDS
from denoisezoo.hub import family_of
from denoisezoo.rnnoise_port import RNNoise
from denoisezoo.rnnoise_port.family import KINDS as RNNOISE_KINDS

__all__ = ["KINDS", "RNNOISE_KINDS", "UnitGroup", "unit_groups", "unit_importance",
           "select_units", "prune_structured", "apply_keep"]

_GATES = 3  # GRU gates stacked along one axis (torch: r, z, n rows; Keras: z, r, c columns)


def _family(model: nn.Module) -> Pruning:
    fam = family_of(model, strict=False)
    if fam is None or fam.pruning is None:
        raise TypeError(f"structured pruning does not support {type(model).__name__} (no pruning "
                        "tables in its family)")
    return fam.pruning


def unit_groups(model: GTCRN | RNNoise, kinds: Sequence[str] | None = None) -> list[UnitGroup]:
    """The prunable groups of ``model`` (in a fixed order); ``kinds`` default: all of its family
    (:data:`KINDS` for GTCRN, :data:`RNNOISE_KINDS` for RNNoise)."""
    fam = _family(model)
    kinds = fam.kinds if kinds is None else tuple(kinds)
    bad = set(kinds) - set(fam.kinds)
    if bad:
        raise ValueError(f"unknown unit kinds {sorted(bad)} for {type(model).__name__}; "
                         f"expected some of {fam.kinds}")
    return fam.groups(model, kinds)


def _slices(model: nn.Module, g: UnitGroup, sub: str) -> list[tuple[str, int, str]]:
    """``(state-dict key, dim, how)`` entries touched by the units of one sub-group.

    ``how`` is ``"unit"`` (index = unit) or ``"gate"`` (indices ``k, H + k, 2H + k``) or
    ``"out:<offset>"`` (consumer index ``offset + k``); indices are in the unpruned layout.
    """
    return _family(model).slices(model, g, sub)


def _index(how: str, units: torch.Tensor, h: int) -> torch.Tensor:
    if how == "unit":
        return units
    if how == "gate":
        return torch.cat([units + i * h for i in range(_GATES)])
    return units + int(how.split(":")[1])


# ----------------------------------------------------------------------------- importance
def _magnitude(model: nn.Module, g: UnitGroup, sub: str, p: float) -> torch.Tensor:
    sd = model.state_dict()
    acc = torch.zeros(g.size, dtype=torch.float64)
    units = torch.arange(g.size)
    for key, dim, how in _slices(model, g, sub):
        if key.endswith(("running_mean", "running_var")):
            continue
        w = sd[key].detach().double()
        for i in range(_GATES if how == "gate" else 1):
            idx = _index("unit" if how == "gate" else how, units, g.size) + i * g.size
            part = w.index_select(dim, idx).movedim(dim, 0).reshape(g.size, -1)
            acc += part.abs().pow(p).sum(1)
    return acc.pow(1 / p).float()


def _taylor(model: nn.Module, groups: Sequence[UnitGroup],
            batches: Iterable[tuple[torch.Tensor, torch.Tensor]]) -> dict[str, list[torch.Tensor]]:
    from denoisezoo.dsp.stft import istft, stft
    from denoisezoo.nn.losses import HybridLoss

    signals = _family(model).signals
    loss_fn = HybridLoss()
    store: dict[int, list[torch.Tensor]] = {}
    hooks = []

    def keep(module: nn.Module, t: torch.Tensor) -> None:
        if t.requires_grad:
            t.retain_grad()
            store.setdefault(id(module), []).append(t)

    def first(out):  # RNN modules return (sequence, state)
        return out[0] if isinstance(out, tuple) else out

    seen: set[int] = set()
    for g in groups:
        for m, where, _, _ in signals(model, g):
            if id(m) in seen:
                continue
            seen.add(id(m))
            if where == "pre":
                hooks.append(m.register_forward_pre_hook(lambda mod, inp: keep(mod, inp[0])))
            else:
                hooks.append(m.register_forward_hook(lambda mod, inp, out: keep(mod, first(out))))
    acc = {g.key: [torch.zeros(g.size, dtype=torch.float64) for _ in g.subs] for g in groups}
    was_training = model.training
    model.eval()  # BatchNorm with its running statistics: the network as deployed
    geo = model.geometry
    window = geo.make_window(torch.float32)
    n_batches = 0
    try:
        for noisy, clean in batches:
            store.clear()
            model.zero_grad(set_to_none=True)
            spec = stft(noisy, geo, window)
            est = model(spec)
            est_wav = istft(est, geo, noisy.shape[-1], window)
            loss = loss_fn(est, stft(clean, geo, window), est_wav, clean)
            loss.backward()
            n_batches += 1
            for g in groups:
                for s, (m, _, dim, off) in enumerate(signals(model, g)):
                    for a in store.get(id(m), []):
                        prod = (a * a.grad).movedim(dim, -1)  # items, positions..., units
                        prod = prod.narrow(-1, off, g.size)
                        per_item = prod.flatten(1, -2).sum(1)  # sum over time (and frequency)
                        acc[g.key][s] += per_item.abs().mean(0).double()
    finally:
        for h in hooks:
            h.remove()
        model.zero_grad(set_to_none=True)
        model.train(was_training)
    if n_batches == 0:
        raise ValueError("the taylor criterion needs at least one calibration batch")
    return {k: [(v / n_batches).float() for v in vs] for k, vs in acc.items()}


def unit_importance(model: GTCRN | RNNoise, criterion: str = "l2",
                    kinds: Sequence[str] | None = None,
                    batches: Iterable[tuple[torch.Tensor, torch.Tensor]] | None = None
                    ) -> dict[str, list[torch.Tensor]]:
    """Importance of every unit: ``{group key: [tensor (size,) per sub-group]}``.

    Args:
        model: a GTCRN or RNNoise.
        criterion: ``"l1"``, ``"l2"`` or ``"taylor"``.
        kinds: unit kinds to score (default: all of the model's family).
        batches: ``(noisy (B, N), clean (B, N))`` waveform batches (``"taylor"`` only).
    """
    groups = unit_groups(model, kinds)
    if criterion in ("l1", "l2"):
        p = 1.0 if criterion == "l1" else 2.0
        return {g.key: [_magnitude(model, g, s, p) for s in g.subs] for g in groups}
    if criterion == "taylor":
        if batches is None:
            raise ValueError("criterion 'taylor' needs calibration batches")
        return _taylor(model, groups, batches)
    raise ValueError(f"unknown criterion {criterion!r}; expected 'l1', 'l2' or 'taylor'")


# ----------------------------------------------------------------------------- selection
def select_units(groups: Sequence[UnitGroup], importance: dict[str, list[torch.Tensor]],
                 ratio: float | dict[str, float], scope: str = "layer",
                 min_keep: int = 1) -> dict[str, list[torch.Tensor]]:
    """Units to KEEP: ``{group key: [sorted indices per sub-group]}``.

    ``ratio`` is the fraction of units removed: one number, or per kind / per group key
    (``{"tra": 0.75, "gt0": 0.5}``; group keys win over kinds; missing ones are 0) with
    ``scope="layer"``.
    """
    if scope not in ("layer", "global"):
        raise ValueError(f"scope must be 'layer' or 'global', got {scope!r}")
    counts: dict[str, int] = {}
    if scope == "layer":
        for g in groups:
            r = ratio if isinstance(ratio, (int, float)) else ratio.get(g.key, ratio.get(g.kind, 0.0))
            if not 0.0 <= r < 1.0:
                raise ValueError(f"pruning ratio must be in [0, 1), got {r} for {g.key}")
            counts[g.key] = max(min(min_keep, g.size), g.size - round(r * g.size))
    else:
        if not isinstance(ratio, (int, float)) or not 0.0 <= ratio < 1.0:
            raise ValueError(f"global pruning needs one ratio in [0, 1), got {ratio}")
        # profile of a group: mean over sub-groups of the ascending normalised importances
        cands = []
        for g in groups:
            prof = torch.stack([torch.sort(v / v.mean().clamp_min(1e-12)).values
                                for v in importance[g.key]]).mean(0)
            counts[g.key] = g.size
            cands += [(float(prof[i]), g.key, i) for i in range(g.size)]
        total = sum(g.size for g in groups)
        to_remove = round(ratio * total)
        floor = {g.key: min(min_keep, g.size) for g in groups}
        for _score, key, _ in sorted(cands):
            if to_remove == 0:
                break
            if counts[key] > floor[key]:
                counts[key] -= 1
                to_remove -= 1
    keep = {}
    for g in groups:
        n = counts[g.key]
        keep[g.key] = [torch.sort(torch.argsort(v, descending=True, stable=True)[:n]).values
                       for v in importance[g.key]]
    return keep


def apply_keep(model: GTCRN | RNNoise, keep: dict[str, list[torch.Tensor]],
               kinds: Sequence[str] | None = None) -> GTCRN | RNNoise:
    """A new dense model of the same class holding only the kept units of ``model`` (see
    :func:`select_units`); groups missing from ``keep`` stay whole."""
    fam = _family(model)
    groups = {g.key: g for g in unit_groups(model, kinds)}
    sd = {k: v.detach().clone() for k, v in model.state_dict().items()}
    # one keep-mask per (key, dim) in the unpruned layout: a tensor can be touched by several
    # groups (a GRU kernel's input rows come from several producers) and on several dims
    masks: dict[tuple[str, int], torch.Tensor] = {}
    counts: dict[str, int] = {}
    for key_g, idx_list in keep.items():
        g = groups[key_g]
        counts[key_g] = n = len(idx_list[0])
        if any(len(i) != n for i in idx_list):
            raise ValueError(f"{key_g}: coupled sub-groups must keep the same number of units")
        for sub, units in zip(g.subs, idx_list, strict=True):
            gone = torch.ones(g.size, dtype=torch.bool)
            gone[units.long()] = False
            drop = gone.nonzero().squeeze(1)
            for key, dim, how in fam.slices(model, g, sub):
                mask = masks.setdefault((key, dim), torch.ones(sd[key].shape[dim], dtype=torch.bool))
                mask[_index(how, drop, g.size)] = False
    for (key, dim), mask in masks.items():
        sd[key] = sd[key].index_select(dim, mask.nonzero().squeeze(1))
    pruned = fam.rebuild(model, groups, counts)
    pruned.load_state_dict(sd)
    return pruned.train(model.training)


def prune_structured(model: GTCRN | RNNoise, ratio: float | dict[str, float], *,
                     criterion: str = "l2", scope: str = "layer",
                     kinds: Sequence[str] | None = None, min_keep: int = 1,
                     batches: Iterable[tuple[torch.Tensor, torch.Tensor]] | None = None
                     ) -> tuple[GTCRN | RNNoise, dict]:
    """Prune ``ratio`` of the units of ``model`` into a new, smaller dense model of its class.

    Args:
        model: a :class:`GTCRN` or :class:`RNNoise` (left unchanged).
        ratio: fraction of units removed (see :func:`select_units`).
        criterion: ``"l1"``, ``"l2"`` or ``"taylor"`` (needs ``batches``).
        scope: ``"layer"`` (same ratio in every group) or ``"global"``.
        kinds: unit kinds to prune (default: all of :data:`KINDS` / :data:`RNNOISE_KINDS`).
        min_keep: units kept at least in every group.
        batches: calibration ``(noisy, clean)`` waveform batches for ``"taylor"``.

    Returns:
        ``(pruned model, record)``; ``record`` describes the pruning (stored in artefacts).

    Example:
        >>> from denoisezoo.gtcrn import gtcrn_tiny
        >>> small, rec = prune_structured(gtcrn_tiny(), 0.5)
        >>> small.config.hidden_channels, rec["params_after"] < rec["params_before"]
        ((4, 4, 4, 4), True)
        >>> from denoisezoo.rnnoise_port import RNNoise
        >>> small, rec = prune_structured(RNNoise(), 0.5)
        >>> small.config.noise_size, small.config.denoise_size
        (24, 48)
    """
    fam = _family(model)
    kinds = fam.kinds if kinds is None else tuple(kinds)
    groups = unit_groups(model, kinds)
    imp = unit_importance(model, criterion, kinds, batches)
    keep = select_units(groups, imp, ratio, scope, min_keep)
    pruned = apply_keep(model, keep, kinds)
    from denoisezoo.profile import count_parameters

    record = {
        "method": "structured",
        "ratio": ratio,
        "criterion": criterion,
        "scope": scope,
        "kinds": list(kinds),
        "units_before": {g.key: g.size for g in groups},
        "units_after": {k: len(v[0]) for k, v in keep.items()},
        "params_before": count_parameters(model),
        "params_after": count_parameters(pruned),
    }
    return pruned, record
