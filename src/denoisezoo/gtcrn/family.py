"""The GTCRN family as the rest of the package sees it (:class:`denoisezoo.family.Family`).

Structured pruning units (``kinds``):

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

INT8 (ONNX Runtime) keeps float the ERB band merge / split (root-scope ``MatMul``), the first
encoder conv and the last decoder conv; QAT leaves the same two convs float.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import replace

from torch import nn

from denoisezoo.family import Family, Pruning, Signal, Slice, UnitGroup
from denoisezoo.gtcrn.config import GTCRNConfig
from denoisezoo.gtcrn.model import DPGRNN, GTCRN, TRA, ConvBlock, GTConvBlock
from denoisezoo.gtcrn.presets import GTCRN_PRESETS
from denoisezoo.nn.losses import HybridLoss

__all__ = ["FAMILY", "KINDS"]

KINDS = ("gt", "tra", "intra", "inter")


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


def _gtcrn_slices(model: GTCRN, g: UnitGroup, sub: str) -> list[Slice]:
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


def _gtcrn_signals(model: GTCRN, g: UnitGroup) -> list[Signal]:
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


def _mac_counters() -> dict[type, Callable[..., int]]:
    """MACs of GTCRN's layers that the generic counters miss (denoisezoo.profile)."""
    def tra(m, i, o):
        x = i[0]  # B, C, T, F: energy (square + mean) and gating multiply
        return 3 * x.numel()

    def dpgrnn(m, i, o):
        return 2 * o[0].numel()  # two residual additions

    def model(m, i, o):
        spec = i[0]  # B, F, T, 2
        b, f, t, _ = spec.shape
        cfg = m.config
        high = f - cfg.erb_low_bins
        erb_ops = b * t * (3 * high * cfg.erb_bands + 2 * cfg.erb_bands * high)
        mag_mask = b * t * f * (3 + 6)  # magnitude; complex multiplication
        c, w = cfg.channels, cfg.width
        # decoder skip additions: temporal blocks and first upsampling conv at width w, last at 2w - 1
        skips = b * t * c * ((len(cfg.dilations) + 1) * w + (2 * w - 1))
        return erb_ops + mag_mask + skips

    return {TRA: tra, DPGRNN: dpgrnn, GTCRN: model}


def _conv_bn_pairs(model: nn.Module) -> list[tuple[nn.Module, str, str]]:
    pairs: list[tuple[nn.Module, str, str]] = []
    for mod in model.modules():
        if isinstance(mod, ConvBlock):
            pairs.append((mod, "conv", "bn"))
        elif isinstance(mod, GTConvBlock):
            pairs += [(mod, "point_conv1", "point_bn1"), (mod, "depth_conv", "depth_bn"),
                      (mod, "point_conv2", "point_bn2")]
    return pairs


def _qat_keep_float(model: GTCRN) -> list[nn.Module]:
    return [model.encoder.en_convs[0].conv, model.decoder.de_convs[-1].conv]


FAMILY = Family(
    name="gtcrn",
    model_cls=GTCRN,
    config_cls=GTCRNConfig,
    presets=GTCRN_PRESETS,
    loss=lambda model: HybridLoss(),
    pruning=Pruning(KINDS, _gtcrn_groups, _gtcrn_slices, _gtcrn_signals, _gtcrn_rebuild),
    int8_keep_float=("/MatMul*", "/en_convs.0/*", "/de_convs.{last}/*"),
    int8_float_ops=("GRU", "LayerNormalization", "PRelu", "Sigmoid", "Tanh"),
    litert_quant_scope=None,
    conv_bn_pairs=_conv_bn_pairs,
    qat_keep_float=_qat_keep_float,
    mac_counters=_mac_counters,
    legacy_names=("GTCRN",),
)
