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

from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import nn

from denoisezoo.dsp.erb import erb_filterbank
from denoisezoo.dsp.vad import speech_presence
from denoisezoo.gtcrn import fused as fast
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
        """:meth:`forward` as direct ``torch.gru`` / ``F.linear`` calls (for the fast path of
        :class:`GTConvBlock`; :func:`denoisezoo.gtcrn.fused.tra_functional_forward`)."""
        return fast.tra_functional_forward(self, x, h)


class ConvBlock(nn.Module):
    """Frequency-only conv (or transposed conv) + BatchNorm + PReLU/Tanh; no time context.

    With autograd off, in eval mode and plain eager CPU code, :meth:`forward` runs the folded
    fast path (:meth:`folded`, :func:`denoisezoo.gtcrn.fused.fold_conv_block`: BatchNorm folded
    into the conv, dense block-diagonal weights, transposed conv as polyphase conv).
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
        if not torch.is_grad_enabled() and fast.plain_eager(x):
            p = self.folded()
            if p is not None:
                return self._forward_folded(x, p)
        return self.act(self.bn(self.conv(x)))

    def folded(self) -> tuple | None:
        """Folded conv weights of the fast path, cached in ``_folded_cache``, or ``None`` for the
        reference path (:func:`denoisezoo.gtcrn.fused.fold_conv_block`)."""
        return fast.fold_conv_block(self)

    def _forward_folded(self, x: torch.Tensor, p: tuple) -> torch.Tensor:
        return fast.conv_block_folded_forward(self, x, p)


class GTConvBlock(nn.Module):
    """Grouped temporal conv block: split channels; one half goes through SFE, pointwise,
    causal dilated depthwise, pointwise and TRA; then the halves are shuffled back together.

    Folded fast path under the same conditions as :class:`ConvBlock` (:meth:`folded`,
    :func:`denoisezoo.gtcrn.fused.fold_gt_conv_block`: SFE merged into the first point-wise conv,
    BatchNorms folded, transposed convs as ordinary convs, TRA called directly).
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
        if not torch.is_grad_enabled() and fast.plain_eager(x):
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

    def folded(self) -> tuple | None:
        """Folded conv weights of the fast path, cached in ``_folded_cache``, or ``None`` for the
        reference path (:func:`denoisezoo.gtcrn.fused.fold_gt_conv_block`)."""
        return fast.fold_gt_conv_block(self)

    def _forward_folded(self, x: torch.Tensor, cache: torch.Tensor | None,
                        h: torch.Tensor | None, p: tuple):
        return fast.gt_conv_block_folded_forward(self, x, cache, h, p)


class GRNN(nn.Module):
    """Grouped GRU: the features and the hidden state are split in two, each half has its GRU.

    Two numerically equivalent paths (outputs agree to float rounding):

    * reference: ``rnn1`` and ``rnn2`` (:class:`torch.nn.GRU`) called one after the other; a
      bidirectional GRU runs its two directions one after the other too, so a grouped
      bidirectional GRU is four sequential recurrences of ``hidden_size // 2`` units.
    * fused: the ``G * D`` recurrences (groups x directions) as ONE ``torch.gru`` recurrence
      of ``D * hidden_size`` units with block-diagonal weights built from the same parameters
      (:meth:`fused_weights`, :mod:`denoisezoo.gtcrn.fused`, which has the measured speed-ups).

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
        return fast.gru_use_fused(self, x)

    def fused_weights(self) -> tuple[list[torch.Tensor], torch.Tensor]:
        """Block-diagonal ``torch.gru`` weights of the fused path, cached in ``_fused_cache``
        while autograd is off (:func:`denoisezoo.gtcrn.fused.gru_fused_weights`)."""
        return fast.gru_fused_weights(self)

    def _forward_fused(self, x: torch.Tensor, h: torch.Tensor | None):
        return fast.gru_fused_forward(self, x, h)


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
