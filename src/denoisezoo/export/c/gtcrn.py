"""A GTCRN (any :class:`~denoisezoo.gtcrn.GTCRNConfig`) as the C layer tables of ``dz_net.h``.

Every BatchNorm is folded into the conv before it with the algebra of the eager fast path
(:func:`denoisezoo.gtcrn.fused.bn_fold`; the grouped temporal conv blocks through
:func:`~denoisezoo.gtcrn.fused.fold_gt_conv_block`, which also merges SFE into the first point
conv and turns the decoder's transposed depthwise conv into an ordinary one). The strided
frequency convs keep their groups; the transposed ones are stored per output channel
(``[n_out][n_in / groups][kernel]``) and computed as transposed convs in C. The grouped GRUs
of the dual-path blocks are fused into one recurrence each, with the block-diagonal weights of
:func:`~denoisezoo.gtcrn.fused.gru_fused_weights` (wider loops the compiler vectorises, at the
price of the zero blocks). The ERB filterbank is stored as band edges and per-band weights,
never as a dense matrix.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from denoisezoo.dsp import vad
from denoisezoo.export.c.tables import CNetwork, CTables
from denoisezoo.gtcrn import fused
from denoisezoo.gtcrn.model import GTCRN

__all__ = ["gtcrn_network"]


def _np(t: torch.Tensor) -> np.ndarray:
    return t.detach().to(torch.float32).cpu().numpy()


def _prelu(act: nn.Module, n: int) -> np.ndarray:
    """``n`` PReLU slopes (one shared slope repeated)."""
    w = _np(act.weight).reshape(-1)
    return np.broadcast_to(w, (n,)).copy() if w.size == 1 else w


def _act(act: nn.Module) -> str:
    if type(act) is nn.PReLU:
        return "DZ_ACT_PRELU"
    if type(act) is nn.Tanh:
        return "DZ_ACT_TANH"
    raise ValueError(f"unsupported activation {type(act).__name__}")


def _conv_block(t: CTables, name: str, block: nn.Module) -> str:
    """A ``ConvBlock`` (conv or transposed conv over frequency + BatchNorm + PReLU / tanh)."""
    conv, bn, act = block.conv, block.bn, block.act
    if conv.kernel_size[0] != 1 or conv.stride[0] != 1 or conv.padding[0] != 0:
        raise ValueError(f"{name}: only frequency-only convs are supported")
    g = conv.groups
    w = conv.weight  # Conv2d: O, I/g, 1, k; ConvTranspose2d: I, O/g, 1, k
    transposed = type(conv) is nn.ConvTranspose2d
    if transposed:
        if conv.output_padding != (0, 0) or conv.dilation != (1, 1):
            raise ValueError(f"{name}: unsupported transposed conv geometry")
        i, og = w.shape[0], w.shape[1]
        w = w.reshape(g, i // g, og, *w.shape[2:]).transpose(1, 2).reshape(g * og, i // g, *w.shape[2:])
    elif conv.dilation != (1, 1) or conv.padding_mode != "zeros":
        raise ValueError(f"{name}: unsupported conv geometry")
    if not fused.bn_ok(bn):
        raise ValueError(f"{name}: BatchNorm must be in eval mode with running statistics")
    w, b = fused.bn_fold(w, conv.bias, bn)  # O, I/g, 1, k
    kind = _act(act)
    return _conv(t, name, _np(w), _np(b), groups=g, stride=conv.stride[1], pad=conv.padding[1],
                 transposed=transposed, activation=kind,
                 prelu=_prelu(act, w.shape[0]) if kind == "DZ_ACT_PRELU" else None)


def _gru(t: CTables, name: str, rnn: nn.GRU) -> str:
    """A one-layer unidirectional ``nn.GRU``, its weights transposed (``[n_in][3 n_hidden]``)."""
    if rnn.num_layers != 1 or not rnn.bias or not rnn.batch_first or rnn.bidirectional:
        raise ValueError(f"{name}: only one-layer batch-first GRUs with biases are supported")
    p = {n: getattr(rnn, f"{n}_l0") for n in ("weight_ih", "weight_hh", "bias_ih", "bias_hh")}
    return t.struct(
        w_ih=t.add(f"{name}_w_ih", _np(p["weight_ih"].t())),
        w_hh=t.add(f"{name}_w_hh", _np(p["weight_hh"].t())),
        b_ih=t.add(f"{name}_b_ih", _np(p["bias_ih"])), b_hh=t.add(f"{name}_b_hh", _np(p["bias_hh"])),
        n_in=rnn.input_size, n_hidden=rnn.hidden_size)


def _dense(t: CTables, name: str, fc: nn.Linear, activation: str = "DZ_ACT_NONE") -> str:
    """A ``nn.Linear``, its weight transposed (``[n_in][n_out]``)."""
    return t.struct(weight=t.add(f"{name}_weight", _np(fc.weight.t())),
                    bias=t.add(f"{name}_bias", _np(fc.bias)), n_in=fc.in_features,
                    n_out=fc.out_features, activation=activation)


def _layer_norm(t: CTables, name: str, ln: nn.LayerNorm) -> str:
    """The ``(width, channels)`` LayerNorm, its weights in the ``[channels][width]`` order of
    the C planes."""
    return t.struct(weight=t.add(f"{name}_weight", _np(ln.weight).T),
                    bias=t.add(f"{name}_bias", _np(ln.bias).T), n=int(np.prod(ln.normalized_shape)),
                    eps=float(ln.eps))


def _gt_block(t: CTables, name: str, block: nn.Module, cache_offset: int) -> tuple[str, int]:
    """A ``GTConvBlock``: its initializer and the floats its depthwise cache ring takes."""
    p = fused.fold_gt_conv_block(block)
    if p is None:
        raise ValueError(f"{name}: cannot fold this block (eval mode, no hooks, BatchNorm with "
                         "running statistics, the GTCRN geometry)")
    w1, b1, wd, _wd_dense, bd, pad_f, w2, b2 = p
    dc = block.depth_conv
    if dc.dilation[1] != 1 or tuple(wd.shape[2:]) != (3, 3):
        raise ValueError(f"{name}: only 3x3 depthwise kernels without frequency dilation")
    hidden, k = w1.shape[0], w1.shape[3]
    point1 = _conv(t, f"{name}_point1", _np(w1), _np(b1), pad=k // 2, activation="DZ_ACT_PRELU",
                   prelu=_prelu(block.point_act, hidden))
    depth = t.struct(weight=t.add(f"{name}_depth_weight", _np(wd)),
                     bias=t.add(f"{name}_depth_bias", _np(bd)),
                     prelu=t.add(f"{name}_depth_prelu", _prelu(block.depth_act, hidden)),
                     channels=hidden, dilation=dc.dilation[0], pad=pad_f)
    point2 = _conv(t, f"{name}_point2", _np(w2), _np(b2))
    init = t.struct(point1=point1, depth=depth, point2=point2,
                    tra_gru=_gru(t, f"{name}_tra_gru", block.tra.att_gru),
                    tra_fc=_dense(t, f"{name}_tra_fc", block.tra.att_fc, "DZ_ACT_SIGMOID"),
                    cache_offset=cache_offset)
    width = t.macros["DZ_WIDTH"]
    return init, dc.cache_len * hidden * width


def _conv(t: CTables, name: str, weight: np.ndarray, bias: np.ndarray, *, groups: int = 1,
          stride: int = 1, pad: int = 0, transposed: bool = False, activation: str = "DZ_ACT_NONE",
          prelu: np.ndarray | None = None) -> str:
    """A ``DzConv``: ``weight (n_out, n_in / groups, kernel)``; records ``DZ_MAX_TAPS``."""
    w = np.asarray(weight, np.float32)
    w = w.reshape(w.shape[0], w.shape[1], -1)
    n_out, cin, k = w.shape
    t.macros["DZ_MAX_TAPS"] = max(int(t.macros.get("DZ_MAX_TAPS", 1)), cin * k)
    return t.struct(weight=t.add(f"{name}_weight", w), bias=t.add(f"{name}_bias", bias),
                    prelu="NULL" if prelu is None else t.add(f"{name}_prelu", prelu),
                    n_in=cin * groups, n_out=n_out, kernel=k, stride=stride, pad=pad,
                    groups=groups, transposed=int(transposed), activation=activation)


def _grouped_rows(n: int, groups: int, split: int = 1) -> np.ndarray:
    """Rows of a fused gate-major GRU matrix (``gate * n + unit``) in the order
    ``[group][gate][unit of the group]`` of the per-bin projection convs."""
    per = n // groups
    return np.asarray([gate * n + g * per + u for g in range(groups) for gate in range(3)
                       for u in range(per)])


def _dp_block(t: CTables, name: str, dp: nn.Module) -> str:
    """A ``DPGRNN``: both GRNNs through :func:`denoisezoo.gtcrn.fused.gru_fused_weights` (one
    recurrence each, units ``[g0 fwd, g0 bwd, g1 fwd, g1 bwd]`` / ``[g0, g1]``); their input
    and hidden projections become per-bin grouped convs with exactly the grouped weights."""
    c, cg = dp.channels, dp.channels // 2
    (wi, wh, bi, bh), bwd = fused.gru_fused_weights(dp.intra_rnn)
    wi, wh, bi, bh = _np(wi), _np(wh), _np(bi), _np(bh)
    n = wh.shape[1]
    if not np.array_equal(bwd.cpu().numpy(), (np.arange(n) // (n // 4)) % 2 == 1):
        raise ValueError(f"{name}: unexpected unit order of the fused intra GRU")
    rows = _grouped_rows(n, 2)
    # row (g, gate, d, u) reads its group's features; direction d's columns are the reversed copy
    per, hg = n // 2, n // 4
    w_in = np.stack([wi[r, (i % per) // hg * c + (i // (3 * per)) * cg + np.arange(cg)]
                     for i, r in enumerate(rows)])
    intra_in = _conv(t, f"{name}_intra_in", w_in[:, :, None], bi[rows], groups=2)
    intra = t.struct(w_ih="NULL", w_hh=t.add(f"{name}_intra_w_hh", wh.T), b_ih="NULL",
                     b_hh=t.add(f"{name}_intra_b_hh", bh), n_in=0, n_hidden=n)
    (wi, wh, bi, bh), bwd = fused.gru_fused_weights(dp.inter_rnn)
    wi, wh, bi, bh = _np(wi), _np(wh), _np(bi), _np(bh)
    ne = wh.shape[1]
    rows = _grouped_rows(ne, 2)
    he = ne // 2
    w_in = np.stack([wi[r, (i // (3 * he)) * cg + np.arange(cg)] for i, r in enumerate(rows)])
    w_hh = np.stack([wh[r, (i // (3 * he)) * he + np.arange(he)] for i, r in enumerate(rows)])
    return t.struct(
        intra_in=intra_in, intra=intra,
        intra_fc=_conv(t, f"{name}_intra_fc", _np(dp.intra_fc.weight), _np(dp.intra_fc.bias)),
        intra_ln=_layer_norm(t, f"{name}_intra_ln", dp.intra_ln),
        inter_in=_conv(t, f"{name}_inter_in", w_in, bi[rows], groups=2),
        inter_hh=_conv(t, f"{name}_inter_hh", w_hh, bh[rows], groups=2),
        inter_fc=_conv(t, f"{name}_inter_fc", _np(dp.inter_fc.weight), _np(dp.inter_fc.bias)),
        inter_ln=_layer_norm(t, f"{name}_inter_ln", dp.inter_ln))


def _erb(t: CTables, model: GTCRN) -> str:
    """Band edges and weights of the ERB filterbank (the nonzero span of each band's row)."""
    fb = _np(model.erb.analysis)  # bands, high bins
    start, length, offset, weights = [], [], [], []
    for row in fb:
        nz = np.flatnonzero(row)
        lo, hi = (int(nz[0]), int(nz[-1]) + 1) if nz.size else (0, 0)
        start.append(lo)
        length.append(hi - lo)
        offset.append(len(weights))
        weights.extend(row[lo:hi].tolist())
    return t.struct(start=t.add("erb_start", np.asarray(start), "int"),
                    len=t.add("erb_len", np.asarray(length), "int"),
                    offset=t.add("erb_offset", np.asarray(offset), "int"),
                    weight=t.add("erb_weight", np.asarray(weights, np.float32)),
                    low=model.erb.low, n_bands=fb.shape[0], n_high=fb.shape[1])


def _vad_band(n_freqs: int, sample_rate: int) -> tuple[int, int]:
    """The bins :func:`denoisezoo.dsp.vad.kept_power_fraction` sums over."""
    hz_per_bin = sample_rate / (2.0 * (n_freqs - 1))
    lo = max(0, int(round(vad.SPEECH_BAND_HZ[0] / hz_per_bin)))
    hi = min(n_freqs, int(round(vad.SPEECH_BAND_HZ[1] / hz_per_bin)) + 1)
    return lo, hi


@torch.no_grad()
def gtcrn_network(model: GTCRN) -> CNetwork:
    """The folded layer tables and size macros of ``model`` (put in eval mode)."""
    if not isinstance(model, GTCRN):
        raise TypeError(f"expected a GTCRN, got {type(model).__name__}")
    model.eval()
    cfg = model.config
    enc, dec = list(model.encoder.en_convs), list(model.decoder.de_convs)
    n_dil = len(cfg.dilations)
    blocks = enc[model.n_stem :] + dec[:n_dil]
    c0 = enc[0].conv
    w0 = (cfg.feature_bins + 2 * c0.padding[1] - c0.kernel_size[1]) // c0.stride[1] + 1
    lo, hi = _vad_band(cfg.n_freqs, cfg.sample_rate)
    t = CTables({
        "DZ_SAMPLE_RATE": cfg.sample_rate, "DZ_N_FFT": cfg.n_fft, "DZ_HOP": cfg.hop_length,
        "DZ_N_FREQS": cfg.n_freqs, "DZ_DELAY": cfg.n_fft - cfg.hop_length,
        "DZ_FEAT_BINS": cfg.feature_bins, "DZ_SFE_KERNEL": cfg.sfe_kernel,
        "DZ_CHANNELS": cfg.channels, "DZ_W0": w0, "DZ_STEM_KERNEL": c0.kernel_size[1],
        "DZ_STEM_STRIDE": c0.stride[1], "DZ_WIDTH": cfg.width, "DZ_N_DIL": n_dil,
        "DZ_N_DP": cfg.num_dual_path, "DZ_MAX_HIDDEN": max(cfg.block_hidden),
        "DZ_MAX_INTER": max(cfg.dp_inter_hidden),
        "DZ_MAX_UNITS": max(*cfg.block_tra_hidden, *(2 * h for h in cfg.dp_intra_hidden),
                            *cfg.dp_inter_hidden),
        "DZ_VAD_LO": lo, "DZ_VAD_HI": hi, "DZ_VAD_CENTRE_DB": float(vad.PRESENCE_CENTRE_DB),
        "DZ_VAD_SCALE_DB": float(vad.PRESENCE_SCALE_DB),
    })
    if w0 != (cfg.width - 1) * 2 + 1:
        raise ValueError(f"unexpected encoder widths {cfg.feature_bins} -> {w0} -> {cfg.width}")
    if len(dec) - n_dil != 2 or model.n_stem != 2:
        raise ValueError("expected two strided convs on each side of the temporal blocks")
    erb = _erb(t, model)  # tables in the order a frame runs through them
    stem = [_conv_block(t, f"enc{i}", enc[i]) for i in range(model.n_stem)]
    gt, offset = [], 0
    for j, blk in enumerate(blocks[:n_dil]):
        init, floats = _gt_block(t, f"gt{j}", blk, offset)
        gt.append(init)
        offset += floats
    dps = [_dp_block(t, f"dp{k}", dp) for k, dp in enumerate(model.dpgrnn)]
    for j, blk in enumerate(blocks[n_dil:], start=n_dil):
        init, floats = _gt_block(t, f"gt{j}", blk, offset)
        gt.append(init)
        offset += floats
    head = [_conv_block(t, f"dec{i}", blk) for i, blk in enumerate(dec[n_dil:])]
    t.macros["DZ_CACHE_FLOATS"] = offset
    init = t.struct(erb=erb, enc=t.array_init(stem), gt=t.array_init(gt), dp=t.array_init(dps),
                    dec=t.array_init(head))
    return CNetwork(macros=t.macros, tables=t, init=init, struct="DzNetwork", symbol="dz_network",
                    header="dz_net.h")
