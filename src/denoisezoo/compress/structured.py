"""Structured pruning of GTCRN or the RNNoise port into a smaller dense model of the same class.

Each unit is removed with every weight that produces or consumes it, so the result is a plain
:class:`~denoisezoo.gtcrn.GTCRN` / :class:`~denoisezoo.rnnoise_port.RNNoise` built from its config
with narrower widths. GTCRN's prunable unit groups (:data:`KINDS`):

- ``gt``: hidden channels of each grouped temporal conv block (``point_conv1`` outputs, its
  BatchNorm, the depthwise causal conv + BatchNorm, ``point_conv2`` inputs, the conv cache);
- ``tra``: GRU hidden units of each block's temporal recurrent attention (gate rows of
  ``weight_ih/hh`` and biases, the recurrent column of ``weight_hh``, the ``att_fc`` column);
- ``intra``: hidden units of each dual-path block's bidirectional intra-frame grouped GRU (both
  groups and both directions keep the same count, each chooses its own units; ``intra_fc``
  columns);
- ``inter``: hidden units of each dual-path block's inter-frame (time) grouped GRU (both groups
  keep the same count; ``inter_fc`` columns; the recurrent state shrinks with them).

Not pruned: the encoder/decoder width ``channels`` (it ties skips, channel shuffle and the
LayerNorms over ``(width, channels)`` together), the stem convs and the ERB/SFE front end.

RNNoise's groups (:data:`RNNOISE_KINDS`; the DSP front end and the band-gain / VAD outputs stay):

- ``dense``: outputs of the input dense layer (its rows and bias; the first input rows of the VAD
  and noise GRU kernels);
- ``vad``, ``noise``, ``denoise``: hidden units of the three GRUs (gate columns ``[z, r, c]`` of
  the kernel, recurrent kernel and bias, the recurrent row, and the input rows of every consumer:
  the VAD / band-gain output layers and the next GRUs, which read ``[dense, vad, features]`` and
  ``[vad, noise, features]``); the streaming states shrink with them.

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

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, replace

import torch
from torch import nn

from denoisezoo.gtcrn import GTCRN, GTCRNConfig
from denoisezoo.rnnoise_port import RNNoise

__all__ = ["KINDS", "RNNOISE_KINDS", "UnitGroup", "unit_groups", "unit_importance",
           "select_units", "prune_structured", "apply_keep"]

KINDS = ("gt", "tra", "intra", "inter")
RNNOISE_KINDS = ("dense", "vad", "noise", "denoise")
_GATES = 3  # GRU gates stacked along one axis (torch: r, z, n rows; Keras: z, r, c columns)


@dataclass(frozen=True)
class UnitGroup:
    """One prunable group: ``subs`` sub-groups (module prefix, direction suffix) sharing a count.

    ``kind`` is one of :data:`KINDS` / :data:`RNNOISE_KINDS`; ``index`` is the block (GT blocks
    encoder then decoder, or dual-path blocks; 0 for RNNoise); ``size`` the units per sub-group.
    """

    kind: str
    index: int
    prefix: str
    subs: tuple[str, ...]
    size: int

    @property
    def key(self) -> str:
        return f"{self.kind}{self.index}"


def _gt_blocks(model: GTCRN) -> list[tuple[str, nn.Module]]:
    n_dil = len(model.config.dilations)
    enc = [(f"encoder.en_convs.{i + model.n_stem}", m)
           for i, m in enumerate(list(model.encoder.en_convs)[model.n_stem:])]
    dec = [(f"decoder.de_convs.{i}", m) for i, m in enumerate(list(model.decoder.de_convs)[:n_dil])]
    return enc + dec


def _gtcrn_groups(model: GTCRN, kinds: Sequence[str]) -> list[UnitGroup]:
    out: list[UnitGroup] = []
    blocks = _gt_blocks(model)
    for kind in kinds:
        if kind == "gt":
            out += [UnitGroup("gt", j, p, ("",), b.depth_conv.weight.shape[0])
                    for j, (p, b) in enumerate(blocks)]
        elif kind == "tra":
            out += [UnitGroup("tra", j, f"{p}.tra", ("att_gru",), b.tra.att_gru.hidden_size)
                    for j, (p, b) in enumerate(blocks)]
        elif kind == "intra":
            out += [UnitGroup("intra", k, f"dpgrnn.{k}", ("intra_rnn.rnn1:", "intra_rnn.rnn1:_reverse",
                                                           "intra_rnn.rnn2:", "intra_rnn.rnn2:_reverse"),
                              dp.intra_rnn.rnn1.hidden_size) for k, dp in enumerate(model.dpgrnn)]
        elif kind == "inter":
            out += [UnitGroup("inter", k, f"dpgrnn.{k}", ("inter_rnn.rnn1:", "inter_rnn.rnn2:"),
                              dp.inter_rnn.rnn1.hidden_size) for k, dp in enumerate(model.dpgrnn)]
    return out


# ----------------------------------------------------------------------------- parameter slices
def _is_deconv(model: GTCRN, group: UnitGroup) -> bool:
    return group.prefix.startswith("decoder.")


def _gtcrn_slices(model: GTCRN, g: UnitGroup, sub: str) -> list[tuple[str, int, str]]:
    p = g.prefix
    if g.kind == "gt":
        dec = _is_deconv(model, g)
        res = [(f"{p}.point_conv1.weight", 1 if dec else 0, "unit"),
               (f"{p}.point_conv1.bias", 0, "unit")]
        for bn in ("point_bn1", "depth_bn"):
            res += [(f"{p}.{bn}.{n}", 0, "unit") for n in ("weight", "bias", "running_mean",
                                                          "running_var")]
        res += [(f"{p}.depth_conv.weight", 0, "unit"), (f"{p}.depth_conv.bias", 0, "unit"),
                (f"{p}.point_conv2.weight", 0 if dec else 1, "unit")]
        return res
    if g.kind == "tra":
        gru = f"{p}.att_gru"
        return [(f"{gru}.weight_ih_l0", 0, "gate"), (f"{gru}.weight_hh_l0", 0, "gate"),
                (f"{gru}.weight_hh_l0", 1, "unit"), (f"{gru}.bias_ih_l0", 0, "gate"),
                (f"{gru}.bias_hh_l0", 0, "gate"), (f"{p}.att_fc.weight", 1, "out:0")]
    mod, suffix = sub.split(":")
    gru = f"{p}.{mod}"
    h = g.size
    if g.kind == "intra":  # fc input = [rnn1 fwd, rnn1 bwd, rnn2 fwd, rnn2 bwd], h each
        offset = (0 if mod.endswith("rnn1") else 2 * h) + (h if suffix else 0)
        fc = f"{p}.intra_fc.weight"
    else:  # inter: fc input = [rnn1, rnn2]
        offset = 0 if mod.endswith("rnn1") else h
        fc = f"{p}.inter_fc.weight"
    return [(f"{gru}.weight_ih_l0{suffix}", 0, "gate"), (f"{gru}.weight_hh_l0{suffix}", 0, "gate"),
            (f"{gru}.weight_hh_l0{suffix}", 1, "unit"), (f"{gru}.bias_ih_l0{suffix}", 0, "gate"),
            (f"{gru}.bias_hh_l0{suffix}", 0, "gate"), (fc, 1, f"out:{offset}")]


def _gtcrn_signals(model: GTCRN, g: UnitGroup) -> list[tuple[nn.Module, str, int, int]]:
    mods = dict(model.named_modules())
    if g.kind == "gt":
        return [(mods[f"{g.prefix}.point_conv2"], "pre", 1, 0)]
    if g.kind == "tra":
        return [(mods[f"{g.prefix}.att_gru"], "out", -1, 0)]
    res = []
    for sub in g.subs:
        mod, suffix = sub.split(":")
        res.append((mods[f"{g.prefix}.{mod}"], "out", -1, g.size if suffix else 0))
    return res


def _gtcrn_rebuild(model: GTCRN, groups: dict[str, UnitGroup], counts: dict[str, int]) -> GTCRN:
    cfg = model.config
    width = {"gt": list(cfg.block_hidden), "tra": list(cfg.block_tra_hidden),
             "intra": list(cfg.dp_intra_hidden), "inter": list(cfg.dp_inter_hidden)}
    for key, n in counts.items():
        g = groups[key]  # the dual-path GRUs' config width counts both groups / directions
        width[g.kind][g.index] = 2 * n if g.kind in ("intra", "inter") else n
    new_cfg = replace(cfg, hidden_channels=tuple(width["gt"]), tra_hidden=tuple(width["tra"]),
                      intra_hidden=tuple(width["intra"]), inter_hidden=tuple(width["inter"]))
    return GTCRN(_canonical(new_cfg))


def _canonical(cfg: GTCRNConfig) -> GTCRNConfig:
    """Drop width tuples that equal the defaults (an unpruned config stays the paper config)."""
    base = replace(cfg, hidden_channels=None, tra_hidden=None, intra_hidden=None, inter_hidden=None)
    kw = {}
    for name, default in (("hidden_channels", base.block_hidden), ("tra_hidden", base.block_tra_hidden),
                          ("intra_hidden", base.dp_intra_hidden), ("inter_hidden", base.dp_inter_hidden)):
        v = getattr(cfg, name)
        kw[name] = None if v is None or tuple(v) == tuple(default) else v
    return replace(base, **kw)


# ----------------------------------------------------------------------------- RNNoise
_RNN_MODULE = {"dense": "input_dense", "vad": "vad_gru", "noise": "noise_gru",
               "denoise": "denoise_gru"}


def _rnnoise_groups(model: RNNoise, kinds: Sequence[str]) -> list[UnitGroup]:
    return [UnitGroup(k, 0, _RNN_MODULE[k], ("",), getattr(model.config, f"{k}_size"))
            for k in kinds]


def _rnnoise_slices(model: RNNoise, g: UnitGroup, sub: str) -> list[tuple[str, int, str]]:
    cfg = model.config
    d, v = cfg.dense_size, cfg.vad_size
    if g.kind == "dense":  # Linear rows; first input rows of the VAD and noise GRU kernels
        return [("input_dense.weight", 0, "unit"), ("input_dense.bias", 0, "unit"),
                ("vad_gru.kernel", 0, "out:0"), ("noise_gru.kernel", 0, "out:0")]
    gru = g.prefix  # KerasGRU: kernel (I, 3N), recurrent_kernel (N, 3N), bias (3N); gates [z, r, c]
    own = [(f"{gru}.kernel", 1, "gate"), (f"{gru}.recurrent_kernel", 1, "gate"),
           (f"{gru}.recurrent_kernel", 0, "unit"), (f"{gru}.bias", 0, "gate")]
    consumers = {  # noise reads [dense, vad, feats], denoise reads [vad, noise, feats]
        "vad": [("vad_output.weight", 1, "unit"), ("noise_gru.kernel", 0, f"out:{d}"),
                ("denoise_gru.kernel", 0, "out:0")],
        "noise": [("denoise_gru.kernel", 0, f"out:{v}")],
        "denoise": [("denoise_output.weight", 1, "unit")],
    }
    return own + consumers[g.kind]


def _rnnoise_signals(model: RNNoise, g: UnitGroup) -> list[tuple[nn.Module, str, int, int]]:
    # the dense layer's pre-activation: a removed unit is a zero pre-activation (tanh(0) = 0)
    return [(getattr(model, g.prefix), "out", -1, 0)]


def _rnnoise_rebuild(model: RNNoise, groups: dict[str, UnitGroup], counts: dict[str, int]
                     ) -> RNNoise:
    sizes = {f"{groups[k].kind}_size": n for k, n in counts.items()}  # RNNoiseConfig fields
    return RNNoise(replace(model.config, **sizes))


# ----------------------------------------------------------------------------- families
@dataclass(frozen=True)
class _Family:
    """How structured pruning sees one model class (groups, parameter slices, signals, rebuild)."""

    kinds: tuple[str, ...]
    groups: Callable[[nn.Module, Sequence[str]], list[UnitGroup]]
    slices: Callable[[nn.Module, UnitGroup, str], list[tuple[str, int, str]]]
    signals: Callable[[nn.Module, UnitGroup], list[tuple[nn.Module, str, int, int]]]
    rebuild: Callable[[nn.Module, dict[str, UnitGroup], dict[str, int]], nn.Module]


_FAMILIES: dict[type, _Family] = {
    GTCRN: _Family(KINDS, _gtcrn_groups, _gtcrn_slices, _gtcrn_signals, _gtcrn_rebuild),
    RNNoise: _Family(RNNOISE_KINDS, _rnnoise_groups, _rnnoise_slices, _rnnoise_signals,
                     _rnnoise_rebuild),
}


def _family(model: nn.Module) -> _Family:
    for cls, fam in _FAMILIES.items():
        if isinstance(model, cls):
            return fam
    raise TypeError(f"structured pruning supports GTCRN and RNNoise models, got "
                    f"{type(model).__name__}")


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
    from denoisezoo.training.losses import HybridLoss

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
