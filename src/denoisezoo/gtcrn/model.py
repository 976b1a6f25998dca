"""Causal GTCRN (Rong et al., ICASSP 2024): one network with ``forward`` and ``step``.

Data flow (paper model, 16 kHz, 512-point STFT, hop 256)::

    spec (B, 257, T, 2) -> [|X|, Re, Im] (B, 3, T, 257) -> ERB (B, 3, T, 129) -> SFE (B, 9, T, 129)
      -> encoder: 2 strided convs (B, 16, T, 33) + 3 grouped temporal conv blocks (dil. 1, 2, 5)
      -> 2 grouped dual-path RNNs (B, 16, T, 33)
      -> decoder (mirror, additive skips) (B, 2, T, 129) -> inverse ERB (B, 2, T, 257)
      -> complex ratio mask * spec -> (B, 257, T, 2)

Everything along time is causal: temporal convs run through :mod:`denoisezoo.nn.causal` with a
frame cache, GRUs across time are unidirectional with carried hidden state, everything else acts
within a frame (BatchNorm in eval mode is per frame). ``forward_stateful`` therefore takes any
number of frames with a :class:`GTCRNState` and returns the next state; ``step`` is the one-frame
case and exports to ONNX as ``(frame, conv, tra, rnn) -> (out, conv, tra, rnn)``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

import torch
import torch.nn.functional as F
from torch import nn

from denoisezoo.dsp.erb import erb_filterbank
from denoisezoo.dsp.vad import speech_presence
from denoisezoo.gtcrn.config import GTCRNConfig
from denoisezoo.nn.causal import CausalConv2d, CausalConvTranspose2d

__all__ = ["GTCRN", "GTCRNState"]


class GTCRNState(NamedTuple):
    """Streaming state of a :class:`GTCRN` (all tensors, returned anew by each call).

    Attributes:
        conv: ``(B, C, L, W)`` left contexts of the temporal depthwise convs of all encoder then
            decoder blocks, concatenated over time (``L = 2 * sum(2 * dilations)``).
        tra: ``(2 * n_blocks, B, C)`` hidden states of the temporal recurrent attention GRUs.
        rnn: ``(num_dual_path, B, W, C)`` hidden states of the inter-frame (time) grouped GRUs.

    ``C`` is ``channels`` for the paper layout; with the pruned widths of :class:`GTCRNConfig`
    it is the largest width of its kind, and a narrower block uses the leading channels
    (the others stay zero).
    """

    conv: torch.Tensor
    tra: torch.Tensor
    rnn: torch.Tensor


def _narrow(x: torch.Tensor, dim: int, n: int) -> torch.Tensor:
    """The leading ``n`` entries of ``dim`` (no-op, hence no graph node, at full width)."""
    return x if x.shape[dim] == n else x.narrow(dim, 0, n)


def _pad_to(x: torch.Tensor, dim: int, n: int) -> torch.Tensor:
    """Zero-pad ``dim`` up to ``n`` entries (no-op at full width)."""
    extra = n - x.shape[dim]
    if extra == 0:
        return x
    shape = list(x.shape)
    shape[dim] = extra
    return torch.cat([x, x.new_zeros(shape)], dim=dim)


# ------------------------------------------------------------ inference-only fast paths (CPU eager)
def _plain_eager(x: torch.Tensor) -> bool:
    """Whether ``x`` is processed by plain eager CPU code: no tracing, scripting, ``torch.compile``
    / ``torch.export``, ONNX export or global module hooks (MAC counting, Taylor pruning)."""
    if x.device.type != "cpu" or torch.jit.is_scripting() or torch.jit.is_tracing():
        return False
    if torch.compiler.is_compiling() or torch.onnx.is_in_onnx_export():
        return False
    return not (nn.modules.module._global_forward_hooks
                or nn.modules.module._global_forward_pre_hooks)


def _plain_eval_modules(module: nn.Module) -> bool:
    """Whether ``module`` is in eval mode and neither it nor any child has hooks or
    parametrizations (fake quantization): then folded copies of their weights compute the same
    function and nobody expects to see the submodule calls. (The children's own training flags
    matter only for BatchNorm, see :func:`_bn_ok`: ``fold_batchnorm`` leaves ``nn.Identity``
    modules in training mode in an eval model.)"""
    return not module.training and _no_hooks(module)


def _no_hooks(module: nn.Module) -> bool:
    if module._forward_hooks or module._forward_pre_hooks:
        return False
    children = module._modules
    if "parametrizations" in children:  # torch.nn.utils.parametrize
        return False
    return all(_no_hooks(m) for m in children.values() if m is not None)


def _module_tensors(m: nn.Module) -> list[torch.Tensor]:
    """Parameters then buffers of ``m`` itself (direct dict reads: cheaper than attributes)."""
    return ([t for t in m._parameters.values() if t is not None]
            + [t for t in m._buffers.values() if t is not None])


def _weights_key(tensors: list[torch.Tensor]) -> tuple | None:
    """Identity, storage, dtype and in-place version of ``tensors``, or ``None`` for inference
    tensors (no version counter: then nothing is cached and the reference path runs). Caches
    hold ``tensors`` alongside the key, so no identity is reused while the key is stored."""
    try:
        return tuple([(id(t), t.data_ptr(), t.dtype, t._version) for t in tensors])
    except RuntimeError:
        return None


def _cached_fold(module: nn.Module, src: list[torch.Tensor], build: Callable[[], Any],
                 attr: str = "_folded_cache") -> Any:
    """``build()``, cached on ``module.<attr>`` as ``(key, src, result)`` until a tensor of
    ``src`` changes (see :func:`_weights_key`); ``None`` (nothing built or cached) for inference
    tensors."""
    key = _weights_key(src)
    if key is None:
        return None
    cache = getattr(module, attr, None)  # absent in modules pickled before it
    if cache is not None and cache[0] == key:
        return cache[2]
    folded = build()
    setattr(module, attr, (key, src, folded))
    return folded


def _bn_ok(bn: nn.Module) -> bool:
    """An eval-mode ``nn.BatchNorm2d`` with running statistics, or the ``nn.Identity`` left by
    BN folding (:func:`denoisezoo.compress.quantize.fold_batchnorm`)."""
    if type(bn) is nn.Identity:
        return True
    return (type(bn) is nn.BatchNorm2d and not bn.training
            and bn._buffers.get("running_var") is not None
            and bn._buffers.get("running_mean") is not None)


def _bn_fold(w: torch.Tensor, b: torch.Tensor | None, bn: nn.Module):
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


def _transposed_as_conv(conv: nn.ConvTranspose2d) -> torch.Tensor:
    """Conv2d weight ``(O, I / groups, kh, kw)`` computing the stride-1 ``conv`` (padding
    ``dilation * (k - 1) - padding``): per group, in/out swapped and the kernel flipped."""
    w = conv.weight  # I, O / g, kh, kw
    g = conv.groups
    i, og = w.shape[0], w.shape[1]
    w = w.reshape(g, i // g, og, *w.shape[2:]).transpose(1, 2).reshape(g * og, i // g, *w.shape[2:])
    return w.flip(2, 3)


def _dense(w: torch.Tensor, groups: int) -> torch.Tensor:
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


class ERB(nn.Module):
    """Frozen ERB band merging (``bm``) and splitting (``bs``) over the last dim."""

    def __init__(self, cfg: GTCRNConfig):
        super().__init__()
        fb = erb_filterbank(cfg.n_fft, cfg.sample_rate, cfg.erb_low_bins, cfg.erb_bands)
        self.low = cfg.erb_low_bins
        self.register_buffer("analysis", fb, persistent=True)  # bands, high bins
        self.register_buffer("synthesis", fb.t().contiguous(), persistent=True)  # high bins, bands

    def bm(self, x: torch.Tensor) -> torch.Tensor:
        """``(..., n_freqs)`` -> ``(..., low + bands)``."""
        return torch.cat([x[..., : self.low], x[..., self.low :] @ self.analysis.t()], dim=-1)

    def bs(self, x: torch.Tensor) -> torch.Tensor:
        """``(..., low + bands)`` -> ``(..., n_freqs)``."""
        return torch.cat([x[..., : self.low], x[..., self.low :] @ self.synthesis.t()], dim=-1)


def sfe(x: torch.Tensor, kernel: int) -> torch.Tensor:
    """Subband feature extraction: stack ``kernel`` neighbouring bins as channels.

    ``(B, C, T, F)`` -> ``(B, C * kernel, T, F)``; channel ``c * kernel + j`` holds bin
    ``f + j - kernel // 2`` of channel ``c``.
    """
    b, c, t, f = x.shape
    half = kernel // 2
    xp = F.pad(x, (half, half))
    return torch.stack([xp[..., j : j + f] for j in range(kernel)], dim=2).reshape(b, c * kernel, t, f)


class TRA(nn.Module):
    """Temporal recurrent attention: a GRU over per-channel frame energy gates the channels."""

    def __init__(self, channels: int, hidden: int | None = None):
        super().__init__()
        hidden = hidden or channels * 2
        self.att_gru = nn.GRU(channels, hidden, 1, batch_first=True)
        self.att_fc = nn.Linear(hidden, channels)

    def forward(self, x: torch.Tensor, h: torch.Tensor | None = None):
        """``x (B, C, T, F)``, ``h (1, B, H)`` (``H = 2C`` unpruned) -> ``(x * gate, h')``."""
        zt = x.pow(2).mean(dim=-1).transpose(1, 2)  # B, T, C
        at, h = self.att_gru(zt, h)  # B, T, 2C
        gate = torch.sigmoid(self.att_fc(at)).transpose(1, 2)  # B, C, T
        return x * gate.unsqueeze(-1), h

    def forward_functional(self, x: torch.Tensor, h: torch.Tensor | None = None):
        """:meth:`forward` as direct ``torch.gru`` / ``F.linear`` calls on the same parameters
        (skips the ``nn.GRU`` / ``nn.Linear`` call overhead; for the fast path of
        :class:`GTConvBlock`, which has checked there are no hooks)."""
        g = self.att_gru
        zt = x.pow(2).mean(dim=-1).transpose(1, 2)  # B, T, C
        if h is None:
            h = zt.new_zeros(1, zt.shape[0], g.hidden_size)
        at, h = torch.gru(zt, h, g._flat_weights, True, 1, 0.0, False, False, True)
        gate = torch.sigmoid(F.linear(at, self.att_fc.weight, self.att_fc.bias)).transpose(1, 2)
        return x * gate.unsqueeze(-1), h


class ConvBlock(nn.Module):
    """Frequency-only conv (or transposed conv) + BatchNorm + PReLU/Tanh; no time context.

    Inference fast path (:meth:`folded`): with autograd off, the block and its children in eval
    mode without hooks or parametrizations, in plain eager CPU code (:func:`_plain_eager`: not
    while exporting or tracing), the BatchNorm is folded into the conv weights (cached until a
    parameter or running statistic changes), grouped weights run as one dense block-diagonal
    conv, and a transposed conv as one ordinary conv over its ``stride`` output phases
    (polyphase). Same outputs to float rounding.
    """

    def __init__(self, cin: int, cout: int, kernel, stride, padding, groups: int = 1,
                 deconv: bool = False, last: bool = False):
        super().__init__()
        conv = nn.ConvTranspose2d if deconv else nn.Conv2d
        self.conv = conv(cin, cout, kernel, stride, padding, groups=groups)
        self.bn = nn.BatchNorm2d(cout)
        self.act = nn.Tanh() if last else nn.PReLU()
        self._folded_cache: tuple | None = None  # (key, source tensors, folded); not in state_dict

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not torch.is_grad_enabled() and _plain_eager(x):
            p = self.folded()
            if p is not None:
                return self._forward_folded(x, p)
        return self.act(self.bn(self.conv(x)))

    def folded(self) -> tuple | None:
        """``(weight, bias)`` of the dense conv2d equivalent to ``conv`` + ``bn`` in eval mode
        (for a transposed conv also ``(stride, padding)`` of its polyphase form, whose output
        channel ``o * stride + r`` holds the bins ``r mod stride`` of channel ``o``), or ``None``
        if the block takes the reference path (training, hooks, parametrizations, an unusual
        layer, inference-tensor parameters)."""
        mods = self._modules
        conv, bn, act = mods["conv"], mods["bn"], mods["act"]
        if type(act) not in (nn.PReLU, nn.Tanh) or not _bn_ok(bn) or not _plain_eval_modules(self):
            return None
        def build():
            if type(conv) is nn.ConvTranspose2d:
                return self._polyphase(conv, bn)
            if type(conv) is nn.Conv2d and conv.padding_mode == "zeros":
                w, b = _bn_fold(conv.weight, conv.bias, bn)
                return (_dense(w, conv.groups), b)
            return None

        return _cached_fold(self, _module_tensors(conv) + _module_tensors(bn), build)

    @staticmethod
    def _polyphase(conv: nn.ConvTranspose2d, bn: nn.Module) -> tuple | None:
        """Transposed conv (time kernel 1, frequency stride ``s``) + BN as a dense conv2d with
        ``s * out`` channels over the input bins (padding ``(0, P)``, kernel ``(1, K)``)."""
        (kt, k), (st, s), (pt, p) = conv.kernel_size, conv.stride, conv.padding
        if (kt, st, pt) != (1, 1, 0) or conv.dilation != (1, 1) or conv.output_padding != (0, 0):
            return None
        g = conv.groups
        w = conv.weight  # I, O / g, 1, k
        i, og = w.shape[0], w.shape[1]
        w = w.reshape(g, i // g, og, 1, k).transpose(1, 2).reshape(g * og, i // g, 1, k)
        w, b = _bn_fold(_dense(w, g), conv.bias, bn)  # O, I, 1, k (tap l, not flipped)
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

    def _forward_folded(self, x: torch.Tensor, p: tuple) -> torch.Tensor:
        conv = self.conv
        if len(p) == 4:  # transposed
            w, b, s, pad = p
            bsz, _, t, n_in = x.shape
            n_out = (n_in - 1) * s - 2 * conv.padding[1] + conv.kernel_size[1]
            y = F.conv2d(x, w, b, 1, (0, pad))  # B, O s, T, L
            y = y.reshape(bsz, -1, s, t, y.shape[-1]).permute(0, 1, 3, 4, 2).flatten(3)
            y = y.narrow(3, 0, n_out)
        else:
            y = F.conv2d(x, p[0], p[1], conv.stride, conv.padding, conv.dilation)
        if type(self.act) is nn.PReLU:
            return F.prelu(y, self.act.weight)
        return torch.tanh(y)


class GTConvBlock(nn.Module):
    """Grouped temporal conv block: split channels; one half goes through SFE, pointwise,
    causal dilated depthwise, pointwise and TRA; then the halves are shuffled back together.

    Inference fast path (:meth:`folded`; same conditions as :class:`ConvBlock`): SFE and the
    first point-wise conv are one ``(1, sfe_kernel)`` conv, every BatchNorm is folded into the
    conv before it (cached until a parameter or running statistic changes), the transposed convs
    of a decoder block run as ordinary convs, the depthwise conv of a one-frame step as a dense
    block-diagonal conv over its three taps, and the TRA layers are called directly. Same
    outputs to float rounding.
    """

    def __init__(self, channels: int, hidden: int, dilation: int, sfe_kernel: int, deconv: bool,
                 tra_hidden: int | None = None):
        super().__init__()
        half = channels // 2
        self.sfe_kernel = sfe_kernel
        pw = nn.ConvTranspose2d if deconv else nn.Conv2d
        self.point_conv1 = pw(half * sfe_kernel, hidden, 1)
        self.point_bn1 = nn.BatchNorm2d(hidden)
        self.point_act = nn.PReLU()
        if deconv:
            self.depth_conv = CausalConvTranspose2d(hidden, hidden, (3, 3), stride=1,
                                                    padding=(2 * dilation, 1),
                                                    dilation=(dilation, 1), groups=hidden)
        else:
            self.depth_conv = CausalConv2d(hidden, hidden, (3, 3), stride=1, padding=(0, 1),
                                           dilation=(dilation, 1), groups=hidden)
        self.depth_bn = nn.BatchNorm2d(hidden)
        self.depth_act = nn.PReLU()
        self.point_conv2 = pw(hidden, half, 1)
        self.point_bn2 = nn.BatchNorm2d(half)
        self.tra = TRA(half, tra_hidden)
        self._folded_cache: tuple | None = None  # (key, source tensors, folded); not in state_dict

    @property
    def cache_len(self) -> int:
        return self.depth_conv.cache_len

    def forward(self, x: torch.Tensor, cache: torch.Tensor | None = None,
                h: torch.Tensor | None = None):
        """``x (B, C, T, F)``, ``cache (B, hidden, cache_len, F)``, ``h (1, B, C)``
        -> ``(y (B, C, T, F), cache', h')``."""
        if not torch.is_grad_enabled() and _plain_eager(x):
            p = self.folded()
            if p is not None:
                return self._forward_folded(x, cache, h, p)
        x1, x2 = torch.chunk(x, 2, dim=1)
        h1 = self.point_act(self.point_bn1(self.point_conv1(sfe(x1, self.sfe_kernel))))
        h1, cache = self.depth_conv.forward_cached(h1, cache)
        h1 = self.depth_act(self.depth_bn(h1))
        h1 = self.point_bn2(self.point_conv2(h1))
        h1, h = self.tra(h1, h)
        # channel shuffle: interleave (h1[0], x2[0], h1[1], x2[1], ...)
        y = torch.stack([h1, x2], dim=2).flatten(1, 2)  # B, C, T, F
        return y, cache, h

    _CONVS = ("point_conv1", "depth_conv", "point_conv2")
    _BNS = ("point_bn1", "depth_bn", "point_bn2")

    def folded(self) -> tuple | None:
        """Conv2d weights and biases of ``sfe + point_conv1 + point_bn1`` (kernel ``(1, k)``),
        ``depth_conv + depth_bn`` (depthwise, and dense over the three taps of a one-frame step)
        and ``point_conv2 + point_bn2`` in eval mode, or ``None`` for the reference path."""
        mods = self._modules
        bns = [mods[n] for n in self._BNS]
        if not all(_bn_ok(bn) for bn in bns) or not _plain_eval_modules(self):
            return None
        if type(mods["point_act"]) is not nn.PReLU or type(mods["depth_act"]) is not nn.PReLU:
            return None
        src = [t for n in self._CONVS for t in _module_tensors(mods[n])]
        src += [t for bn in bns for t in _module_tensors(bn)]
        return _cached_fold(self, src, self._fold)

    def _fold(self) -> tuple | None:
        pc1, dc, pc2 = self.point_conv1, self.depth_conv, self.point_conv2
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
            wd = _transposed_as_conv(dc)
            pad_f = dc.dilation[1] * (dc.kernel_size[1] - 1) - dc.padding[1]
        else:
            if dc.padding[0] != 0:
                return None
            wd, pad_f = dc.weight, dc.padding[1]
        k = self.sfe_kernel
        w1 = pc1.weight.transpose(0, 1) if type(pc1) is nn.ConvTranspose2d else pc1.weight
        w1, b1 = _bn_fold(w1, pc1.bias, self.point_bn1)  # hidden, half * k, 1, 1
        w1 = w1.reshape(w1.shape[0], -1, 1, k)  # input channel c * k + j = bin offset j of c
        wd, bd = _bn_fold(wd, dc.bias, self.depth_bn)
        w2 = pc2.weight.transpose(0, 1) if type(pc2) is nn.ConvTranspose2d else pc2.weight
        w2, b2 = _bn_fold(w2, pc2.bias, self.point_bn2)
        return (w1.contiguous(), b1, wd.contiguous(), _dense(wd, dc.groups), bd, pad_f,
                w2.contiguous(), b2)

    def _forward_folded(self, x: torch.Tensor, cache: torch.Tensor | None,
                        h: torch.Tensor | None, p: tuple):
        w1, b1, wd, wd_dense, bd, pad_f, w2, b2 = p
        dc = self.depth_conv
        half = x.shape[1] // 2
        x1, x2 = x[:, :half], x[:, half:]
        h1 = F.prelu(F.conv2d(x1, w1, b1, 1, (0, self.sfe_kernel // 2)), self.point_act.weight)
        n = dc.cache_len
        if cache is None:
            cache = h1.new_zeros(h1.shape[0], h1.shape[1], n, h1.shape[3])
        hc = torch.cat([cache, h1], dim=2)  # B, hidden, cache_len + T, F
        dil = dc.dilation
        if h1.shape[2] == 1 and dil[1] == 1:  # one frame: the three taps, dense
            h1 = F.conv2d(hc[:, :, :: dil[0]], wd_dense, bd, 1, (0, pad_f))
        else:
            h1 = F.conv2d(hc, wd, bd, 1, (0, pad_f), dil, dc.groups)
        h1 = F.conv2d(F.prelu(h1, self.depth_act.weight), w2, b2)
        h1, h = self.tra.forward_functional(h1, h)
        y = torch.stack([h1, x2], dim=2).flatten(1, 2)  # B, C, T, F
        return y, hc[:, :, hc.shape[2] - n :], h


# nn.GRU parameter names of layer 0 in ``_flat_weights`` order (forward, then reverse direction)
_GRU_PARAMS = {
    bidi: tuple(f"{n}_l0{s}" for s in (("", "_reverse") if bidi else ("",))
                for n in ("weight_ih", "weight_hh", "bias_ih", "bias_hh"))
    for bidi in (False, True)
}


class GRNN(nn.Module):
    """Grouped GRU: the features and the hidden state are split in two, each half has its GRU.

    Two numerically equivalent paths (outputs agree to float rounding):

    * reference: ``rnn1`` and ``rnn2`` (:class:`torch.nn.GRU`) called one after the other; a
      bidirectional GRU runs its two directions one after the other too, so a grouped
      bidirectional GRU is four sequential recurrences of ``hidden_size // 2`` units.
    * fused: the ``G * D`` recurrences (groups x directions) as ONE ``torch.gru`` recurrence
      of ``D * hidden_size`` units with block-diagonal weights built from the same parameters
      (:meth:`fused_weights`); the backward directions read the time-reversed input and their
      outputs are reversed back. Four times fewer sequential cell steps for the intra-frame GRU
      (33 bands per frame), where per-op overhead dominates on CPU: one intra-frame GRU call of
      the paper model's step about 3.8x faster, the whole eager step about 1.5x, a CPU training
      step (batch 8 x 3 s) about 1.1x (measured with one thread on a loaded 2-core machine).

    :meth:`forward` takes the fused path (:meth:`use_fused`) on CPU, in training as in inference
    (the weights are rebuilt differentiably while autograd needs them, else cached), unless
    something needs the reference path: ONNX export, tracing, scripting or ``torch.compile`` /
    ``torch.export`` (exports keep their ``GRU`` operators), forward hooks on ``rnn1`` / ``rnn2``
    or global module hooks (MAC counting, the Taylor pruning criterion), or a non-CPU device
    (cuDNN runs the reference path in one kernel). ``fused=False`` / ``True`` forces a path.
    """

    def __init__(self, input_size: int, hidden_size: int, bidirectional: bool):
        super().__init__()
        self.hidden_size = hidden_size
        self.rnn1 = nn.GRU(input_size // 2, hidden_size // 2, 1, batch_first=True,
                           bidirectional=bidirectional)
        self.rnn2 = nn.GRU(input_size // 2, hidden_size // 2, 1, batch_first=True,
                           bidirectional=bidirectional)
        # (key, source tensors, (weights, backward-unit mask)) of the last cached fused_weights
        # build; not in state_dict
        self._fused_cache: tuple | None = None

    @property
    def bidirectional(self) -> bool:
        return self.rnn1.bidirectional

    def forward(self, x: torch.Tensor, h: torch.Tensor | None = None, fused: bool | None = None):
        """``x (N, L, input)``, ``h (D, N, hidden)`` -> ``(y (N, L, D * hidden), h')``.

        ``y`` holds ``[rnn1 fwd, rnn1 bwd, rnn2 fwd, rnn2 bwd]`` (``hidden // 2`` each) and
        ``h'[d]`` holds ``[rnn1 dir d, rnn2 dir d]``, as with the reference path.
        """
        if fused is None:
            fused = self.use_fused(x)
        if fused:
            return self._forward_fused(x, h)
        x1, x2 = torch.chunk(x, 2, dim=-1)
        if h is None:
            h1 = h2 = None
        else:
            h1, h2 = (t.contiguous() for t in torch.chunk(h, 2, dim=-1))
        y1, h1 = self.rnn1(x1, h1)
        y2, h2 = self.rnn2(x2, h2)
        return torch.cat([y1, y2], dim=-1), torch.cat([h1, h2], dim=-1)

    def use_fused(self, x: torch.Tensor) -> bool:
        """Whether :meth:`forward` takes the fused path for input ``x`` (see the class doc)."""
        if not _plain_eager(x):
            return False
        return not any(m._forward_hooks or m._forward_pre_hooks for m in (self.rnn1, self.rnn2))

    def fused_weights(self) -> tuple[list[torch.Tensor], torch.Tensor]:
        """Block-diagonal ``torch.gru`` parameters ``[w_ih, w_hh, b_ih, b_hh]`` of the fused
        recurrence and the ``(D * hidden,)`` bool mask of its backward-direction units.

        Unit ``u = 2 g + d`` (group ``g``, direction ``d``) owns hidden units
        ``[u h_g, (u + 1) h_g)`` of every gate (``h_g = hidden // 2``); it reads input columns
        ``[d C + g C_g, d C + (g + 1) C_g)`` of ``[x, x reversed in time]`` (``C`` input
        features, ``C_g = C / 2``). Built differentiably while autograd is on; with autograd off,
        cached until a parameter changes (storage, dtype, device or in-place version counter).
        """
        mods = self._modules
        names = _GRU_PARAMS[mods["rnn1"].bidirectional]
        params = []
        for rnn in (mods["rnn1"], mods["rnn2"]):  # direct dict reads: cheaper than getattr
            ps = rnn._parameters
            params += [ps[n] if ps.get(n) is not None else getattr(rnn, n) for n in names]
        if torch.is_grad_enabled():
            return self._build_fused(params)
        cached = _cached_fold(self, params, lambda: self._build_fused(params), "_fused_cache")
        return cached if cached is not None else self._build_fused(params)  # inference tensors

    def _build_fused(self, params: list[torch.Tensor]) -> tuple[list[torch.Tensor], torch.Tensor]:
        """:meth:`fused_weights` from the ``rnn1`` then ``rnn2`` parameters in ``_flat_weights``
        order."""
        hg = self.rnn1.hidden_size
        cg = self.rnn1.input_size
        n_dir = 2 if self.bidirectional else 1
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

    def _forward_fused(self, x: torch.Tensor, h: torch.Tensor | None):
        weights, bwd = self.fused_weights()
        n = x.shape[0]
        hg = self.rnn1.hidden_size
        n_dir = 2 if self.bidirectional else 1
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


class DPGRNN(nn.Module):
    """Grouped dual-path RNN: bidirectional grouped GRU across frequency (within a frame), causal
    grouped GRU across time, each followed by Linear + LayerNorm + residual."""

    def __init__(self, channels: int, width: int, intra_hidden: int | None = None,
                 inter_hidden: int | None = None):
        super().__init__()
        self.width = width
        self.channels = channels
        intra_hidden = intra_hidden or channels // 2
        self.inter_hidden = inter_hidden = inter_hidden or channels
        self.intra_rnn = GRNN(channels, intra_hidden, bidirectional=True)
        self.intra_fc = nn.Linear(2 * intra_hidden, channels)
        self.intra_ln = nn.LayerNorm((width, channels), eps=1e-8)
        self.inter_rnn = GRNN(channels, inter_hidden, bidirectional=False)
        self.inter_fc = nn.Linear(inter_hidden, channels)
        self.inter_ln = nn.LayerNorm((width, channels), eps=1e-8)

    def forward(self, x: torch.Tensor, h: torch.Tensor | None = None):
        """``x (B, C, T, W)``, ``h (B, W, H)`` (``H = inter_hidden``) -> ``(y (B, C, T, W), h')``."""
        b, c, t, w = x.shape
        x = x.permute(0, 2, 3, 1)  # B, T, W, C
        intra = self.intra_rnn(x.reshape(b * t, w, c))[0]  # B*T, W, C
        intra = self.intra_ln(self.intra_fc(intra).reshape(b, t, w, c))
        x = x + intra  # B, T, W, C
        xi = x.transpose(1, 2).reshape(b * w, t, c)  # B*W, T, C
        hd = self.inter_hidden
        h0 = None if h is None else h.reshape(1, b * w, hd)
        inter, h1 = self.inter_rnn(xi, h0)  # B*W, T, H
        inter = self.inter_fc(inter).reshape(b, w, t, c).transpose(1, 2)  # B, T, W, C
        x = x + self.inter_ln(inter)
        return x.permute(0, 3, 1, 2), h1.reshape(b, w, hd)


class Encoder(nn.Module):
    def __init__(self, cfg: GTCRNConfig):
        super().__init__()
        c = cfg.channels
        hid, tra = cfg.block_hidden, cfg.block_tra_hidden
        self.en_convs = nn.ModuleList(
            [
                ConvBlock(3 * cfg.sfe_kernel, c, (1, 5), (1, 2), (0, 2)),
                ConvBlock(c, c, (1, 5), (1, 2), (0, 2), groups=2),
                *[GTConvBlock(c, hid[i], d, cfg.sfe_kernel, deconv=False, tra_hidden=tra[i])
                  for i, d in enumerate(cfg.dilations)],
            ]
        )


class Decoder(nn.Module):
    def __init__(self, cfg: GTCRNConfig):
        super().__init__()
        c = cfg.channels
        n = len(cfg.dilations)
        hid, tra = cfg.block_hidden[n:], cfg.block_tra_hidden[n:]
        self.de_convs = nn.ModuleList(
            [
                *[GTConvBlock(c, hid[i], d, cfg.sfe_kernel, deconv=True, tra_hidden=tra[i])
                  for i, d in enumerate(reversed(cfg.dilations))],
                ConvBlock(c, c, (1, 5), (1, 2), (0, 2), groups=2, deconv=True),
                ConvBlock(c, 2, (1, 5), (1, 2), (0, 2), deconv=True, last=True),
            ]
        )


class GTCRN(nn.Module):
    """Causal GTCRN speech enhancer operating on STFT frames.

    Args:
        config: a :class:`GTCRNConfig` (default: the paper model).

    Example:
        >>> from denoisezoo.gtcrn import gtcrn_tiny
        >>> model = gtcrn_tiny().eval()
        >>> spec = torch.randn(2, 257, 10, 2)
        >>> model(spec).shape
        torch.Size([2, 257, 10, 2])
        >>> state = model.initial_state(batch=2)
        >>> out, state = model.step(spec[:, :, 0], state)
        >>> out.shape
        torch.Size([2, 257, 2])
    """

    def __init__(self, config: GTCRNConfig | None = None):
        super().__init__()
        self.config = cfg = config or GTCRNConfig()
        self.geometry = cfg.geometry
        self.erb = ERB(cfg)
        self.encoder = Encoder(cfg)
        self.dpgrnn = nn.ModuleList([DPGRNN(cfg.channels, cfg.width, a, r) for a, r in
                                     zip(cfg.dp_intra_hidden, cfg.dp_inter_hidden, strict=True)])
        self.decoder = Decoder(cfg)
        self.n_stem = 2  # strided freq convs before the temporal blocks
        caches = [blk.cache_len for blk in self._gt_blocks()]
        self._cache_bounds = [0]
        for n in caches:
            self._cache_bounds.append(self._cache_bounds[-1] + n)

    # ------------------------------------------------------------------ state
    def _gt_blocks(self) -> list[GTConvBlock]:
        enc = list(self.encoder.en_convs)[self.n_stem :]
        dec = list(self.decoder.de_convs)[: len(self.config.dilations)]
        return enc + dec

    def initial_state(self, batch: int = 1, device: torch.device | str | None = None,
                      dtype: torch.dtype = torch.float32) -> GTCRNState:
        """Zero state for ``batch`` streams (equivalent to the offline zero padding)."""
        cfg = self.config
        w = cfg.width
        n_blocks = 2 * len(cfg.dilations)
        c_conv, c_tra, c_rnn = (max(cfg.block_hidden), max(cfg.block_tra_hidden),
                                max(cfg.dp_inter_hidden))
        return GTCRNState(
            conv=torch.zeros(batch, c_conv, self._cache_bounds[-1], w, device=device, dtype=dtype),
            tra=torch.zeros(n_blocks, batch, c_tra, device=device, dtype=dtype),
            rnn=torch.zeros(cfg.num_dual_path, batch, w, c_rnn, device=device, dtype=dtype),
        )

    # ---------------------------------------------------------------- network
    def forward(self, spec: torch.Tensor) -> torch.Tensor:
        """Enhance a whole spectrogram from zero state.

        Args:
            spec: ``(B, F, T, 2)`` noisy STFT (real, imaginary), ``F = n_fft // 2 + 1``.

        Returns:
            ``(B, F, T, 2)`` enhanced STFT.
        """
        return self.forward_stateful(spec, None)[0]

    def forward_stateful(self, spec: torch.Tensor, state: GTCRNState | None):
        """``forward`` that starts from ``state`` (``None`` = zeros) and returns the final state.

        Returns:
            ``(enhanced (B, F, T, 2), next GTCRNState)``.
        """
        out, state, _ = self._run(spec, state)
        return out, state

    def output_sign_parameters(self) -> list[str]:
        """Names of the parameters whose negation flips the sign of the output: the scale and
        shift of the mask layer's BatchNorm (``conv -> BN -> tanh``; tanh is odd, the ERB band
        synthesis and the complex ratio mask are linear in the mask)."""
        last = len(self.decoder.de_convs) - 1
        return [f"decoder.de_convs.{last}.bn.weight", f"decoder.de_convs.{last}.bn.bias"]

    @torch.no_grad()
    def invert_polarity_(self) -> GTCRN:
        """Negate the complex mask in place, so the enhanced output ``y`` becomes ``-y`` exactly.

        The hybrid loss's SI-SNR term does not see the sign; a student can settle in the inverted
        basin (PESQ, STOI and SI-SDR unchanged, SNR against the clean speech far below 0 dB). This
        repairs such weights: the compressed-complex loss term then drops, and PESQ / STOI / SI-SDR
        stay the same.
        """
        params = dict(self.named_parameters())
        for name in self.output_sign_parameters():
            params[name].neg_()
        return self

    def forward_with_mask(self, spec: torch.Tensor, state: GTCRNState | None = None):
        """Like :meth:`forward_stateful`, also returning the complex mask ``(B, 2, T, F)``."""
        return self._run(spec, state)

    def forward_with_vad(self, spec: torch.Tensor, state: GTCRNState | None = None):
        """Like :meth:`forward_stateful`, also returning a per-frame speech presence ``(B, T)``.

        GTCRN has no VAD head; the estimate comes from the fraction of input power its mask keeps
        in the speech band (:func:`denoisezoo.dsp.vad.speech_presence`), in ``[0, 1]``.

        Returns:
            ``(enhanced (B, F, T, 2), vad (B, T), next GTCRNState)``.
        """
        out, state, _ = self._run(spec, state)
        return out, speech_presence(spec, out, self.geometry.sample_rate), state

    def step(self, frame: torch.Tensor, state: GTCRNState, *, return_vad: bool = False):
        """Process one frame: ``frame (B, F, 2)`` -> ``(out (B, F, 2), next state)``, or
        ``(out, next state, vad (B,))`` with ``return_vad`` (see :meth:`forward_with_vad`)."""
        if return_vad:
            out, vad, state = self.forward_with_vad(frame.unsqueeze(2), state)
            return out.squeeze(2), state, vad[:, 0]
        out, state, _ = self._run(frame.unsqueeze(2), state)
        return out.squeeze(2), state

    def _run(self, spec: torch.Tensor, state: GTCRNState | None):
        cfg = self.config
        b = spec.shape[0]
        if state is None:
            state = self.initial_state(b, spec.device, spec.dtype)
        re = spec[..., 0].transpose(1, 2)  # B, T, F
        im = spec[..., 1].transpose(1, 2)
        mag = torch.sqrt(re * re + im * im + 1e-12)
        feat = torch.stack([mag, re, im], dim=1)  # B, 3, T, F
        feat = sfe(self.erb.bm(feat), cfg.sfe_kernel)  # B, 3k, T, F_erb

        n_dil = len(cfg.dilations)
        bounds = self._cache_bounds
        hid, tra = cfg.block_hidden, cfg.block_tra_hidden  # per-block widths (pruned models)
        c_conv, c_tra, c_rnn = max(hid), max(tra), max(cfg.dp_inter_hidden)
        new_conv, new_tra = [], []
        skips = []
        x = feat
        for i, blk in enumerate(self.encoder.en_convs):
            if i < self.n_stem:
                x = blk(x)
            else:
                j = i - self.n_stem
                x, cache, h = blk(x, _narrow(state.conv[:, :, bounds[j] : bounds[j + 1]], 1,
                                             hid[j]), _narrow(state.tra[j : j + 1], 2, tra[j]))
                new_conv.append(_pad_to(cache, 1, c_conv))
                new_tra.append(_pad_to(h, 2, c_tra))
            skips.append(x)  # B, C, T, W

        new_rnn = []
        for k, dp in enumerate(self.dpgrnn):
            x, h = dp(x, _narrow(state.rnn[k], 2, dp.inter_hidden))
            new_rnn.append(_pad_to(h, 2, c_rnn))

        n = len(self.decoder.de_convs)
        for i, blk in enumerate(self.decoder.de_convs):
            x = x + skips[n - 1 - i]
            if i < n_dil:
                j = n_dil + i
                x, cache, h = blk(x, _narrow(state.conv[:, :, bounds[j] : bounds[j + 1]], 1,
                                             hid[j]), _narrow(state.tra[j : j + 1], 2, tra[j]))
                new_conv.append(_pad_to(cache, 1, c_conv))
                new_tra.append(_pad_to(h, 2, c_tra))
            else:
                x = blk(x)
        mask = self.erb.bs(x)  # B, 2, T, F
        s_re, s_im = re, im  # B, T, F
        m_re, m_im = mask[:, 0], mask[:, 1]
        out = torch.stack([s_re * m_re - s_im * m_im, s_im * m_re + s_re * m_im], dim=-1)  # B, T, F, 2
        next_state = GTCRNState(
            conv=torch.cat(new_conv, dim=2),
            tra=torch.cat(new_tra, dim=0),
            rnn=torch.stack(new_rnn, dim=0),
        )
        return out.transpose(1, 2), next_state, mask
