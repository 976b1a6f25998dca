"""The eager inference fast path of GTCRN: its layers folded and fused into fewer, larger ops.

The network lives in :mod:`denoisezoo.gtcrn.model`; its layers keep their reference code and
hand over to the plain functions here, which take the layer module (``ConvBlock.folded``,
``GTConvBlock.folded``, ``GRNN.fused_weights`` / ``use_fused``, ``TRA.forward_functional`` and
the ``_forward_folded`` / ``_forward_fused`` methods delegate one line each). The same
parameters, rearranged, compute the same function to float rounding:

* :class:`~denoisezoo.gtcrn.model.ConvBlock`: the BatchNorm folded into the conv, grouped
  weights as one dense block-diagonal conv (oneDNN runs GTCRN's small grouped convs several
  times slower than the ``g`` times larger dense conv), a transposed conv as one ordinary conv
  over its ``stride`` output phases (polyphase);
* :class:`~denoisezoo.gtcrn.model.GTConvBlock`: SFE and the first point-wise conv as one
  ``(1, sfe_kernel)`` conv, each BatchNorm folded into the conv before it, transposed convs as
  ordinary convs, the depthwise conv of a one-frame step as a dense conv over its three taps,
  the TRA layers called directly (``torch.gru`` / ``F.linear``);
* :class:`~denoisezoo.gtcrn.model.GRNN`: its ``G * D`` recurrences (groups x directions) as one
  ``torch.gru`` recurrence with block-diagonal weights (the backward directions read the
  time-reversed input, their outputs are reversed back). Four times fewer sequential cell steps
  for the intra-frame GRU (33 bands per frame), where per-op overhead dominates on CPU: one
  intra-frame GRU call of the paper model's step about 3.8x faster, the whole eager step about
  1.5x, a CPU training step (batch 8 x 3 s) about 1.1x (measured with one thread on a loaded
  2-core machine).

When it is taken: the folded conv blocks only with autograd off, the block and its children in
eval mode with running BatchNorm statistics (or the ``nn.Identity`` left by
:func:`denoisezoo.compress.quantize.fold_batchnorm`), no forward hooks or parametrizations, and
plain eager CPU code (:func:`plain_eager`: no ONNX export, tracing, scripting,
``torch.compile`` / ``torch.export``, no global module hooks). The fused GRU needs only the last
two conditions (no hooks on ``rnn1`` / ``rnn2``): it also runs in CPU training, with its weights
rebuilt differentiably. Folded weights are cached on the module (``_folded_cache``,
``_fused_cache``: ``(key, source tensors, result)``, no parameter or buffer) until a source
tensor changes identity, storage, dtype or in-place version; inference tensors (no version
counter) are never cached, and the conv blocks then take the reference path.

Training (autograd on), QAT (parametrized fake quantization), MAC counting and Taylor pruning
(module hooks), ONNX and LiteRT export (tracing / ``torch.export``) therefore see the original
conv, BatchNorm and TRA layers; of the fused GRU, training sees the same gradients, and hooks
and exports see the ``nn.GRU`` calls.
``tests/models/test_gtcrn_fused.py`` checks that every fast path equals the reference path (outputs,
streaming state, gradients of the fused GRU) and when each path is taken.

This module imports only torch and :mod:`denoisezoo.nn`, never :mod:`denoisezoo.gtcrn.model`
(no import cycle): the functions read the layers' attributes.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from denoisezoo.nn.causal import CausalConv2d, CausalConvTranspose2d

__all__ = [
    "plain_eager",
    "plain_eval_modules",
    "bn_ok",
    "module_tensors",
    "weights_key",
    "cached_fold",
    "bn_fold",
    "transposed_as_conv",
    "dense",
    "fold_conv_block",
    "polyphase",
    "conv_block_folded_forward",
    "fold_gt_conv_block",
    "gt_conv_block_folded_forward",
    "tra_functional_forward",
    "gru_use_fused",
    "gru_fused_weights",
    "gru_fused_forward",
]


# ------------------------------------------------------------------------------ when to take it
def plain_eager(x: torch.Tensor) -> bool:
    """Whether ``x`` is processed by plain eager CPU code: no tracing, scripting, ``torch.compile``
    / ``torch.export``, ONNX export or global module hooks (MAC counting, Taylor pruning)."""
    if x.device.type != "cpu" or torch.jit.is_scripting() or torch.jit.is_tracing():
        return False
    if torch.compiler.is_compiling() or torch.onnx.is_in_onnx_export():
        return False
    return not (nn.modules.module._global_forward_hooks
                or nn.modules.module._global_forward_pre_hooks)


def plain_eval_modules(module: nn.Module) -> bool:
    """Whether ``module`` is in eval mode and neither it nor any child has hooks or
    parametrizations (fake quantization): then folded copies of their weights compute the same
    function and nobody expects to see the submodule calls. (The children's own training flags
    matter only for BatchNorm, see :func:`bn_ok`: ``fold_batchnorm`` leaves ``nn.Identity``
    modules in training mode in an eval model.)"""
    return not module.training and _no_hooks(module)


def _no_hooks(module: nn.Module) -> bool:
    if module._forward_hooks or module._forward_pre_hooks:
        return False
    children = module._modules
    if "parametrizations" in children:  # torch.nn.utils.parametrize
        return False
    return all(_no_hooks(m) for m in children.values() if m is not None)


def bn_ok(bn: nn.Module) -> bool:
    """An eval-mode ``nn.BatchNorm2d`` with running statistics, or the ``nn.Identity`` left by
    BN folding (:func:`denoisezoo.compress.quantize.fold_batchnorm`)."""
    if type(bn) is nn.Identity:
        return True
    return (type(bn) is nn.BatchNorm2d and not bn.training
            and bn._buffers.get("running_var") is not None
            and bn._buffers.get("running_mean") is not None)


# ------------------------------------------------------------------------------------- caching
def module_tensors(m: nn.Module) -> list[torch.Tensor]:
    """Parameters then buffers of ``m`` itself (direct dict reads: cheaper than attributes)."""
    return ([t for t in m._parameters.values() if t is not None]
            + [t for t in m._buffers.values() if t is not None])


def weights_key(tensors: list[torch.Tensor]) -> tuple | None:
    """Identity, storage, dtype and in-place version of ``tensors``, or ``None`` for inference
    tensors (no version counter: then nothing is cached and the reference path runs). Caches
    hold ``tensors`` alongside the key, so no identity is reused while the key is stored."""
    try:
        return tuple([(id(t), t.data_ptr(), t.dtype, t._version) for t in tensors])
    except RuntimeError:
        return None


def cached_fold(module: nn.Module, src: list[torch.Tensor], build: Callable[[], Any],
                attr: str = "_folded_cache") -> Any:
    """``build()``, cached on ``module.<attr>`` as ``(key, src, result)`` until a tensor of
    ``src`` changes (see :func:`weights_key`); ``None`` (nothing built or cached) for inference
    tensors."""
    key = weights_key(src)
    if key is None:
        return None
    cache = getattr(module, attr, None)  # absent in modules pickled before it
    if cache is not None and cache[0] == key:
        return cache[2]
    folded = build()
    setattr(module, attr, (key, src, folded))
    return folded


# ---------------------------------------------------------------------------- weight algebra
def bn_fold(w: torch.Tensor, b: torch.Tensor | None, bn: nn.Module):
    """Conv2d weight ``w (O, I, kh, kw)`` and bias ``b`` followed by eval-mode ``bn`` as one conv:
    ``(w * s, (b - mean) * s + beta)`` with ``s = gamma / sqrt(var + eps)``."""
    if b is None:
        b = w.new_zeros(w.shape[0])
    if type(bn) is nn.Identity:
        return w, b
    scale = torch.rsqrt(bn.running_var + bn.eps)
    if bn.weight is not None:
        scale = scale * bn.weight
    shift = -bn.running_mean * scale
    if bn.bias is not None:
        shift = shift + bn.bias
    return w * scale.reshape(-1, 1, 1, 1), b * scale + shift


def transposed_as_conv(conv: nn.ConvTranspose2d) -> torch.Tensor:
    """Conv2d weight ``(O, I / groups, kh, kw)`` computing the stride-1 ``conv`` (padding
    ``dilation * (k - 1) - padding``): per group, in/out swapped and the kernel flipped."""
    w = conv.weight  # I, O / g, kh, kw
    g = conv.groups
    i, og = w.shape[0], w.shape[1]
    w = w.reshape(g, i // g, og, *w.shape[2:]).transpose(1, 2).reshape(g * og, i // g, *w.shape[2:])
    return w.flip(2, 3)


def dense(w: torch.Tensor, groups: int) -> torch.Tensor:
    """Grouped conv weight ``(O, I / g, kh, kw)`` as the block-diagonal ``(O, I, kh, kw)`` weight
    of the same ungrouped conv (oneDNN runs GTCRN's small grouped and depthwise convs several
    times slower than the ``g`` times larger dense conv)."""
    if groups == 1:
        return w.contiguous()
    o, ig = w.shape[:2]
    og = o // groups
    d = w.new_zeros(o, ig * groups, *w.shape[2:])
    for i in range(groups):
        d[i * og : (i + 1) * og, i * ig : (i + 1) * ig] = w[i * og : (i + 1) * og]
    return d


# ------------------------------------------------------------------------------------ ConvBlock
def fold_conv_block(block: nn.Module) -> tuple | None:
    """``(weight, bias)`` of the dense conv2d equivalent to ``block.conv`` + ``block.bn`` in eval
    mode (for a transposed conv also ``(stride, padding)`` of its polyphase form, whose output
    channel ``o * stride + r`` holds the bins ``r mod stride`` of channel ``o``), or ``None``
    if the block takes the reference path (training, hooks, parametrizations, an unusual
    layer, inference-tensor parameters)."""
    mods = block._modules
    conv, bn, act = mods["conv"], mods["bn"], mods["act"]
    if type(act) not in (nn.PReLU, nn.Tanh) or not bn_ok(bn) or not plain_eval_modules(block):
        return None
    def build():
        if type(conv) is nn.ConvTranspose2d:
            return polyphase(conv, bn)
        if type(conv) is nn.Conv2d and conv.padding_mode == "zeros":
            w, b = bn_fold(conv.weight, conv.bias, bn)
            return (dense(w, conv.groups), b)
        return None

    return cached_fold(block, module_tensors(conv) + module_tensors(bn), build)


def polyphase(conv: nn.ConvTranspose2d, bn: nn.Module) -> tuple | None:
    """Transposed conv (time kernel 1, frequency stride ``s``) + BN as a dense conv2d with
    ``s * out`` channels over the input bins (padding ``(0, P)``, kernel ``(1, K)``)."""
    (kt, k), (st, s), (pt, p) = conv.kernel_size, conv.stride, conv.padding
    if (kt, st, pt) != (1, 1, 0) or conv.dilation != (1, 1) or conv.output_padding != (0, 0):
        return None
    g = conv.groups
    w = conv.weight  # I, O / g, 1, k
    i, og = w.shape[0], w.shape[1]
    w = w.reshape(g, i // g, og, 1, k).transpose(1, 2).reshape(g * og, i // g, 1, k)
    w, b = bn_fold(dense(w, g), conv.bias, bn)  # O, I, 1, k (tap l, not flipped)
    # output bin f = s m + r reads input bin m + d through tap l = r + p - s d
    offs = [(r, (r + p - l) // s, l) for r in range(s) for l in range(k) if (r + p - l) % s == 0]
    d_min, d_max = min(o[1] for o in offs), max(o[1] for o in offs)
    pad = -d_min
    if pad < 0 or d_max > pad:  # would need asymmetric padding: not the GTCRN geometry
        return None
    wp = w.new_zeros(w.shape[0], s, i, 1, d_max + pad + 1)
    for r, d, l in offs:
        wp[:, r, :, :, d + pad] = w[..., l]
    return (wp.reshape(w.shape[0] * s, i, 1, -1), b.repeat_interleave(s), s, pad)


def conv_block_folded_forward(block: nn.Module, x: torch.Tensor, p: tuple) -> torch.Tensor:
    """``ConvBlock.forward`` with the folded weights ``p`` of :func:`fold_conv_block`."""
    conv = block.conv
    if len(p) == 4:  # transposed
        w, b, s, pad = p
        bsz, _, t, n_in = x.shape
        n_out = (n_in - 1) * s - 2 * conv.padding[1] + conv.kernel_size[1]
        y = F.conv2d(x, w, b, 1, (0, pad))  # B, O s, T, L
        y = y.reshape(bsz, -1, s, t, y.shape[-1]).permute(0, 1, 3, 4, 2).flatten(3)
        y = y.narrow(3, 0, n_out)
    else:
        y = F.conv2d(x, p[0], p[1], conv.stride, conv.padding, conv.dilation)
    if type(block.act) is nn.PReLU:
        return F.prelu(y, block.act.weight)
    return torch.tanh(y)


# ---------------------------------------------------------------------------------- GTConvBlock
_GT_CONVS = ("point_conv1", "depth_conv", "point_conv2")
_GT_BNS = ("point_bn1", "depth_bn", "point_bn2")


def fold_gt_conv_block(block: nn.Module) -> tuple | None:
    """Conv2d weights and biases of ``sfe + point_conv1 + point_bn1`` (kernel ``(1, k)``),
    ``depth_conv + depth_bn`` (depthwise, and dense over the three taps of a one-frame step)
    and ``point_conv2 + point_bn2`` in eval mode, or ``None`` for the reference path."""
    mods = block._modules
    bns = [mods[n] for n in _GT_BNS]
    if not all(bn_ok(bn) for bn in bns) or not plain_eval_modules(block):
        return None
    if type(mods["point_act"]) is not nn.PReLU or type(mods["depth_act"]) is not nn.PReLU:
        return None
    src = [t for n in _GT_CONVS for t in module_tensors(mods[n])]
    src += [t for bn in bns for t in module_tensors(bn)]
    return cached_fold(block, src, lambda: _build_gt_conv_block(block))


def _build_gt_conv_block(block: nn.Module) -> tuple | None:
    pc1, dc, pc2 = block.point_conv1, block.depth_conv, block.point_conv2
    for c in (pc1, pc2):
        if type(c) not in (nn.Conv2d, nn.ConvTranspose2d) or c.padding_mode != "zeros":
            return None
        if (c.kernel_size, c.stride, c.padding, c.dilation, c.groups) != ((1, 1), (1, 1),
                                                                         (0, 0), (1, 1), 1):
            return None
        if type(c) is nn.ConvTranspose2d and c.output_padding != (0, 0):
            return None
    if type(dc) not in (CausalConv2d, CausalConvTranspose2d) or dc.padding_mode != "zeros":
        return None
    if dc.stride != (1, 1) or dc.kernel_size[0] != 3:
        return None
    if type(dc) is CausalConvTranspose2d:
        if dc.output_padding != (0, 0) or dc.padding[0] != 2 * dc.dilation[0]:
            return None
        wd = transposed_as_conv(dc)
        pad_f = dc.dilation[1] * (dc.kernel_size[1] - 1) - dc.padding[1]
    else:
        if dc.padding[0] != 0:
            return None
        wd, pad_f = dc.weight, dc.padding[1]
    k = block.sfe_kernel
    w1 = pc1.weight.transpose(0, 1) if type(pc1) is nn.ConvTranspose2d else pc1.weight
    w1, b1 = bn_fold(w1, pc1.bias, block.point_bn1)  # hidden, half * k, 1, 1
    w1 = w1.reshape(w1.shape[0], -1, 1, k)  # input channel c * k + j = bin offset j of c
    wd, bd = bn_fold(wd, dc.bias, block.depth_bn)
    w2 = pc2.weight.transpose(0, 1) if type(pc2) is nn.ConvTranspose2d else pc2.weight
    w2, b2 = bn_fold(w2, pc2.bias, block.point_bn2)
    return (w1.contiguous(), b1, wd.contiguous(), dense(wd, dc.groups), bd, pad_f,
            w2.contiguous(), b2)


def gt_conv_block_folded_forward(block: nn.Module, x: torch.Tensor, cache: torch.Tensor | None,
                                 h: torch.Tensor | None, p: tuple):
    """``GTConvBlock.forward`` with the folded weights ``p`` of :func:`fold_gt_conv_block`:
    ``x (B, C, T, F)``, ``cache (B, hidden, cache_len, F)``, ``h (1, B, C)``
    -> ``(y (B, C, T, F), cache', h')``."""
    w1, b1, wd, wd_dense, bd, pad_f, w2, b2 = p
    dc = block.depth_conv
    half = x.shape[1] // 2
    x1, x2 = x[:, :half], x[:, half:]
    h1 = F.prelu(F.conv2d(x1, w1, b1, 1, (0, block.sfe_kernel // 2)), block.point_act.weight)
    n = dc.cache_len
    if cache is None:
        cache = h1.new_zeros(h1.shape[0], h1.shape[1], n, h1.shape[3])
    hc = torch.cat([cache, h1], dim=2)  # B, hidden, cache_len + T, F
    dil = dc.dilation
    if h1.shape[2] == 1 and dil[1] == 1:  # one frame: the three taps, dense
        h1 = F.conv2d(hc[:, :, :: dil[0]], wd_dense, bd, 1, (0, pad_f))
    else:
        h1 = F.conv2d(hc, wd, bd, 1, (0, pad_f), dil, dc.groups)
    h1 = F.conv2d(F.prelu(h1, block.depth_act.weight), w2, b2)
    h1, h = tra_functional_forward(block.tra, h1, h)
    y = torch.stack([h1, x2], dim=2).flatten(1, 2)  # B, C, T, F
    return y, hc[:, :, hc.shape[2] - n :], h


def tra_functional_forward(tra: nn.Module, x: torch.Tensor, h: torch.Tensor | None = None):
    """``TRA.forward`` as direct ``torch.gru`` / ``F.linear`` calls on the same parameters
    (skips the ``nn.GRU`` / ``nn.Linear`` call overhead; for the folded GTConvBlock, which has
    checked there are no hooks): ``x (B, C, T, F)``, ``h (1, B, H)`` -> ``(x * gate, h')``."""
    g = tra.att_gru
    zt = x.pow(2).mean(dim=-1).transpose(1, 2)  # B, T, C
    if h is None:
        h = zt.new_zeros(1, zt.shape[0], g.hidden_size)
    at, h = torch.gru(zt, h, g._flat_weights, True, 1, 0.0, False, False, True)
    gate = torch.sigmoid(F.linear(at, tra.att_fc.weight, tra.att_fc.bias)).transpose(1, 2)
    return x * gate.unsqueeze(-1), h


# ----------------------------------------------------------------------------------------- GRNN
# nn.GRU parameter names of layer 0 in ``_flat_weights`` order (forward, then reverse direction)
_GRU_PARAMS = {
    bidi: tuple(f"{n}_l0{s}" for s in (("", "_reverse") if bidi else ("",))
                for n in ("weight_ih", "weight_hh", "bias_ih", "bias_hh"))
    for bidi in (False, True)
}


def gru_use_fused(grnn: nn.Module, x: torch.Tensor) -> bool:
    """Whether ``GRNN.forward`` takes the fused path for input ``x``: plain eager CPU code and
    no hooks on ``rnn1`` / ``rnn2``."""
    if not plain_eager(x):
        return False
    return not any(m._forward_hooks or m._forward_pre_hooks for m in (grnn.rnn1, grnn.rnn2))


def gru_fused_weights(grnn: nn.Module) -> tuple[list[torch.Tensor], torch.Tensor]:
    """Block-diagonal ``torch.gru`` parameters ``[w_ih, w_hh, b_ih, b_hh]`` of the fused
    recurrence of ``grnn`` and the ``(D * hidden,)`` bool mask of its backward-direction units.

    Unit ``u = 2 g + d`` (group ``g``, direction ``d``) owns hidden units
    ``[u h_g, (u + 1) h_g)`` of every gate (``h_g = hidden // 2``); it reads input columns
    ``[d C + g C_g, d C + (g + 1) C_g)`` of ``[x, x reversed in time]`` (``C`` input
    features, ``C_g = C / 2``). Built differentiably while autograd is on; with autograd off,
    cached on ``grnn._fused_cache`` until a parameter changes (storage, dtype, device or
    in-place version counter).
    """
    mods = grnn._modules
    names = _GRU_PARAMS[mods["rnn1"].bidirectional]
    params = []
    for rnn in (mods["rnn1"], mods["rnn2"]):  # direct dict reads: cheaper than getattr
        ps = rnn._parameters
        params += [ps[n] if ps.get(n) is not None else getattr(rnn, n) for n in names]
    if torch.is_grad_enabled():
        return _build_gru_fused(grnn, params)
    cached = cached_fold(grnn, params, lambda: _build_gru_fused(grnn, params), "_fused_cache")
    return cached if cached is not None else _build_gru_fused(grnn, params)  # inference tensors


def _build_gru_fused(grnn: nn.Module, params: list[torch.Tensor]
                     ) -> tuple[list[torch.Tensor], torch.Tensor]:
    """:func:`gru_fused_weights` from the ``rnn1`` then ``rnn2`` parameters in ``_flat_weights``
    order."""
    hg = grnn.rnn1.hidden_size
    cg = grnn.rnn1.input_size
    n_dir = 2 if grnn.bidirectional else 1
    w = [params[i::4] for i in range(4)]  # per kind: one tensor per unit
    gates = range(3)
    w_ih = torch.cat([torch.block_diag(*[t[k * hg : (k + 1) * hg] for t in w[0]])
                      for k in gates])  # 3 U h_g, U C_g (columns in unit order)
    w_hh = torch.cat([torch.block_diag(*[t[k * hg : (k + 1) * hg] for t in w[1]])
                      for k in gates])  # 3 U h_g, U h_g
    b_ih = torch.cat([t[k * hg : (k + 1) * hg] for k in gates for t in w[2]])
    b_hh = torch.cat([t[k * hg : (k + 1) * hg] for k in gates for t in w[3]])
    if n_dir == 2:
        # column c of [x, x reversed] = direction d, group g, feature j -> unit 2 g + d
        c = torch.arange(2 * 2 * cg, device=w_ih.device)
        d, g, j = c // (2 * cg), (c % (2 * cg)) // cg, c % cg
        w_ih = w_ih[:, (2 * g + d) * cg + j]
    u = torch.arange(2 * n_dir * hg, device=w_ih.device) // hg
    bwd = (u % n_dir) == 1
    return [w_ih.contiguous(), w_hh.contiguous(), b_ih, b_hh], bwd


def gru_fused_forward(grnn: nn.Module, x: torch.Tensor, h: torch.Tensor | None):
    """``GRNN.forward`` as one ``torch.gru`` recurrence: ``x (N, L, input)``,
    ``h (D, N, hidden)`` -> ``(y (N, L, D * hidden), h')`` in the layout of the reference path."""
    weights, bwd = grnn.fused_weights()
    n = x.shape[0]
    hg = grnn.rnn1.hidden_size
    n_dir = 2 if grnn.bidirectional else 1
    if h is None:
        h0 = x.new_zeros(1, n, 2 * n_dir * hg)
    else:  # (D, N, [g0, g1]) -> (1, N, [g0 d0, g0 d1, g1 d0, g1 d1])
        h0 = h.reshape(n_dir, n, 2, hg).permute(1, 2, 0, 3).reshape(1, n, 2 * n_dir * hg)
    if n_dir == 2:
        x = torch.cat([x, x.flip(1)], dim=-1)
    y, hn = torch.gru(x, h0, weights, True, 1, 0.0, False, False, True)
    if n_dir == 2:
        y = torch.where(bwd, y.flip(1), y)
        hn = hn.reshape(n, 2, n_dir, hg).permute(2, 0, 1, 3).reshape(n_dir, n, 2 * hg)
    return y, hn
