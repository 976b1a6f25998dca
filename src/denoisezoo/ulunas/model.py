"""Causal UL-UNAS (Rong et al., IEEE/ACM TASLP 2026): one network with ``forward`` and ``step``.

Data flow (paper model, 16 kHz, 512-point STFT, hop 256)::

    spec (B, 257, T, 2), sqrt-Hann frames -> exact change to Hann frames (WindowConverter)
      -> log10 |X| (B, 1, T, 257) -> ERB (B, 1, T, 129)
      -> encoder: conv (B, 12, T, 65), mb (B, 24, T, 33), dws (B, 24, T, 33), mb (B, 32, T, 33),
                  dws (B, 16, T, 33); each block ends in causal time-frequency attention
      -> 2 grouped dual-path RNNs (B, 16, T, 33)
      -> decoder (mirror, additive skips, transposed time-frequency convs) (B, 1, T, 129)
      -> sigmoid, inverse ERB (B, 1, T, 257) -> real mask * Hann spectrum
      -> exact change back to the project's sqrt-Hann synthesis -> (B, 257, T, 2)

Everything along time is causal: the time-frequency convs run through
:func:`denoisezoo.nn.causal.cached_time_conv` with a frame cache, the GRUs across time
(time attention, inter-frame RNN) are unidirectional with carried hidden state, everything else
acts within a frame (BatchNorm in eval mode, the frequency attention's bidirectional GRU over
bins). ``forward_stateful`` therefore takes any number of frames with a :class:`ULUNASState`;
``step`` is the one-frame case and exports to ONNX as ``(frame, conv, tfa, rnn) -> (out, ...)``.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from denoisezoo.dsp.erb import erb_filterbank
from denoisezoo.nn.causal import cached_time_conv
from denoisezoo.ulunas.config import ULUNASConfig

__all__ = ["ULUNAS", "ULUNASState", "WindowConverter"]


class ULUNASState(NamedTuple):
    """Streaming state of a :class:`ULUNAS` (all tensors, returned anew by each call).

    Attributes:
        conv: ``(B, Nc)`` left contexts of the time-frequency convs with a time kernel above 1,
            encoder then decoder blocks, each ``(C, kt - 1, W)`` flattened and concatenated
            (paper model: ``Nc = 258 + 1560 + 792 + 792 + 396 + 1560 = 5358``).
        tfa: ``(B, Nt)`` hidden states of the time-attention GRUs (``2 C`` each), encoder then
            decoder blocks (paper model: ``Nt = 402``).
        rnn: ``(num_dual_path, B, W, H)`` hidden states of the inter-frame grouped GRUs.
    """

    conv: torch.Tensor
    tfa: torch.Tensor
    rnn: torch.Tensor


def _traced() -> bool:
    """Whether the call is being traced, scripted, compiled or exported (no complex tensors)."""
    return (torch.jit.is_tracing() or torch.jit.is_scripting() or torch.onnx.is_in_onnx_export()
            or torch.compiler.is_compiling())


def _real_view(z: np.ndarray) -> np.ndarray:
    """Complex ``(..., F)`` -> real ``(..., F, 2)``."""
    return np.stack([z.real, z.imag], axis=-1)


class WindowConverter(nn.Module):
    """Exact change of frame window between the project's framing and the network's.

    The project analyses and synthesises with the power-complementary sqrt-Hann window ``g``
    (:mod:`denoisezoo.dsp.stft`); the authors' network reads periodic-Hann spectra ``h = g^2``
    and their ``torch.istft`` divides the Hann overlap-add by its envelope
    ``e(n) = sum_k h^2(n + k hop)``. Frame by frame, both conversions are exact and causal:

    * in:  ``irfft(X_g) = x g`` so ``X_h = rfft(irfft(X_g) * h / g)``;
    * out: ``Y_g = rfft(irfft(Y_h) * h / (g e))``, so that the project's sqrt-Hann overlap-add of
      ``Y_g`` equals the authors' normalised Hann overlap-add of ``Y_h``.

    Eager code uses ``torch.fft``; traced / exported code (no complex tensors in ONNX) uses the
    same maps as real ``(2F, 2F)`` matrices, built with numpy once per device and dtype (outside
    any trace).
    The converter has no parameters or buffers (nothing enters the state dict or the counts).
    """

    def __init__(self, cfg: ULUNASConfig):
        super().__init__()
        self.active = cfg.network_window != "sqrt_hann"
        self.n_fft, self.hop = cfg.n_fft, cfg.hop_length
        self._tables: dict = {}

    def _windows(self) -> tuple[np.ndarray, np.ndarray]:
        """``(h / g, h / (g e))`` in float64, zero where ``g == 0`` (numpy: invisible to tracers)."""
        n = np.arange(self.n_fft)
        h = 0.5 - 0.5 * np.cos(2 * np.pi * n / self.n_fft)  # periodic Hann
        g = np.sqrt(h)
        env = sum(np.roll(h * h, k * self.hop) for k in range(self.n_fft // self.hop))
        safe = np.where(g > 0, g, 1.0)
        return np.where(g > 0, h / safe, 0.0), np.where(g > 0, h / (safe * env), 0.0)

    def _get(self, device: torch.device, dtype: torch.dtype, dense: bool) -> tuple:
        key = (device, dtype, dense)
        if key not in self._tables:
            wins = self._windows()
            if dense:  # row j: the image of the j-th real coordinate of a (F, 2) frame
                n_f = self.n_fft // 2 + 1
                eye = np.eye(2 * n_f).reshape(2 * n_f, n_f, 2)
                frames = np.fft.irfft(eye[..., 0] + 1j * eye[..., 1], n=self.n_fft, axis=-1)
                wins = tuple(_real_view(np.fft.rfft(frames * w, axis=-1)).reshape(2 * n_f, 2 * n_f)
                             for w in wins)
            self._tables[key] = tuple(torch.as_tensor(w, dtype=dtype, device=device) for w in wins)
        return self._tables[key]

    def _convert(self, spec: torch.Tensor, which: int) -> torch.Tensor:
        """``spec (B, T, F, 2)`` -> ``(B, T, F, 2)`` in the other window."""
        if not self.active:
            return spec
        if _traced():
            m = self._get(spec.device, spec.dtype, True)[which]
            return (spec.flatten(-2) @ m).unflatten(-1, (spec.shape[-2], 2))
        w = self._get(spec.device, spec.dtype, False)[which]
        frames = torch.fft.irfft(torch.view_as_complex(spec.contiguous()), n=self.n_fft, dim=-1)
        return torch.view_as_real(torch.fft.rfft(frames * w, dim=-1))

    def to_network(self, spec: torch.Tensor) -> torch.Tensor:
        """Project-window frames ``(B, T, F, 2)`` -> network-window frames."""
        return self._convert(spec, 0)

    def from_network(self, spec: torch.Tensor) -> torch.Tensor:
        """Network-window output frames ``(B, T, F, 2)`` -> project-window synthesis frames."""
        return self._convert(spec, 1)


class ERB(nn.Module):
    """Frozen ERB band merging (``bm``) and splitting (``bs``) over the last dim."""

    def __init__(self, cfg: ULUNASConfig):
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


class AffinePReLU(nn.Module):
    """``scale * x + shift + prelu(x)``: a per-(channel, bin) affine map plus a per-channel PReLU."""

    def __init__(self, channels: int, width: int, slope: float = 0.25):
        super().__init__()
        self.scale = nn.Parameter(torch.ones(channels, width))
        self.shift = nn.Parameter(torch.zeros(channels, width))
        self.slope = nn.Parameter(torch.full((channels,), slope))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, C, T, W)`` -> same shape."""
        y = self.scale[:, None] * x + self.shift[:, None]
        return y + torch.where(x > 0, x, self.slope[:, None, None] * x)


class FrequencyAttention(nn.Module):
    """Gate logits over bins from the channel-mean energy: bins in groups of ``ratio``, a
    bidirectional GRU across the groups (within one frame), a linear map back to bins."""

    def __init__(self, width: int, ratio: int):
        super().__init__()
        self.ratio = ratio
        self.pad = (-width) % ratio
        self.gru = nn.GRU(ratio, ratio, batch_first=True, bidirectional=True)
        self.fc = nn.Linear(2 * ratio, ratio)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, C, T, W)`` -> ``(B, T, W)`` logits."""
        b, _, t, w = x.shape
        e = F.pad(x.pow(2).mean(dim=1), (0, self.pad))  # B, T, W + pad
        g = self.fc(self.gru(e.reshape(b * t, -1, self.ratio))[0])  # B*T, groups, ratio
        return g.reshape(b, t, -1)[..., :w]


class TFAttention(nn.Module):
    """Causal time-frequency attention: a GRU over time of per-channel energy gates the channels,
    :class:`FrequencyAttention` gates the bins."""

    def __init__(self, channels: int, width: int, ratio: int):
        super().__init__()
        self.hidden = 2 * channels
        self.ta_gru = nn.GRU(channels, self.hidden, batch_first=True)
        self.ta_fc = nn.Linear(self.hidden, channels)
        self.fa = FrequencyAttention(width, ratio)

    def forward(self, x: torch.Tensor, h: torch.Tensor | None = None):
        """``x (B, C, T, W)``, ``h (1, B, 2C)`` -> ``(gated x, h')``."""
        at, h = self.ta_gru(x.pow(2).mean(dim=-1).transpose(1, 2), h)  # B, T, 2C
        at = torch.sigmoid(self.ta_fc(at)).transpose(1, 2)  # B, C, T
        af = torch.sigmoid(self.fa(x))  # B, T, W
        return at.unsqueeze(-1) * x * af.unsqueeze(1), h


def shuffle(x: torch.Tensor) -> torch.Tensor:
    """Channel shuffle of two groups: ``(B, 2C, T, W)``, channels ``(a0, b0, a1, b1, ...)``."""
    a, b = torch.chunk(x, 2, dim=1)
    return torch.stack([a, b], dim=2).flatten(1, 2)


class Unit(nn.Module):
    """Conv + BatchNorm (+ :class:`AffinePReLU`) (+ channel shuffle); ``conv`` may carry time
    context, run causally by :meth:`Block.forward`."""

    def __init__(self, conv: nn.Module, cout: int, width: int, act: bool, shuffled: bool = False):
        super().__init__()
        self.conv = conv
        self.bn = nn.BatchNorm2d(cout)
        self.act = AffinePReLU(cout, width) if act else nn.Identity()
        self.shuffled = shuffled

    def post(self, x: torch.Tensor) -> torch.Tensor:
        x = self.act(self.bn(x))
        return shuffle(x) if self.shuffled else x

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.post(self.conv(x))


class Block(nn.Module):
    """One searched U-Net block (``kind`` of :data:`~denoisezoo.ulunas.config.BLOCK_KINDS`):

    * ``conv``: time-frequency conv (``groups``) -> BN -> act -> attention -> shuffle;
    * ``dws``: point-wise conv -> BN -> act -> shuffle -> depth-wise time-frequency conv -> BN
      -> act -> attention;
    * ``mb``: point-wise -> BN -> act -> shuffle -> depth-wise time-frequency conv -> BN -> act
      -> point-wise -> BN -> attention -> residual (same shape) -> shuffle.

    The time-frequency conv is strided over frequency; in the decoder it is transposed. The last
    decoder block drops its final activation and shuffle. Shuffles need ``groups == 2``.
    """

    def __init__(self, kind: str, cin: int, cout: int, in_width: int, out_width: int,
                 kernel: tuple[int, int], stride: int, groups: int, deconv: bool, last: bool,
                 fa_ratio: int):
        super().__init__()
        kt, kf = kernel
        self.kind = kind
        self.cache_len = kt - 1
        pointwise = kind in ("dws", "mb")
        c_tf = cout if pointwise else cin
        self.pw1 = (Unit(nn.Conv2d(cin, cout, 1, groups=groups), cout, in_width, True, groups == 2)
                    if pointwise else None)
        g_tf = cout if pointwise else groups
        if deconv:  # left context kt - 1 plus time padding kt - 1: T frames in, T out
            tf = nn.ConvTranspose2d(c_tf, cout, kernel, stride=(1, stride), padding=(kt - 1, kf // 2),
                                    groups=g_tf)
        else:
            tf = nn.Conv2d(c_tf, cout, kernel, stride=(1, stride), padding=(0, kf // 2), groups=g_tf)
        self.tf = Unit(tf, cout, out_width, act=kind == "mb" or not last)
        self.pw2 = (Unit(nn.Conv2d(cout, cout, 1, groups=groups), cout, out_width, False)
                    if kind == "mb" else None)
        self.tfa = TFAttention(cout, out_width, fa_ratio)
        self.residual = kind == "mb" and cin == cout and in_width == out_width
        self.shuffle_out = kind in ("conv", "mb") and groups == 2 and not last
        self.cache_shape = (c_tf, self.cache_len, in_width)  # C, L, W of the conv cache

    def forward(self, x: torch.Tensor, cache: torch.Tensor | None = None,
                h: torch.Tensor | None = None):
        """``x (B, Cin, T, Win)``, ``cache (B, C, kt - 1, Win)``, ``h (1, B, 2 Cout)``
        -> ``(y (B, Cout, T, Wout), cache', h')``."""
        inp = x
        if self.pw1 is not None:
            x = self.pw1(x)
        x, cache = cached_time_conv(self.tf.conv, x, cache, self.cache_len)
        x = self.tf.post(x)
        if self.pw2 is not None:
            x = self.pw2(x)
        x, h = self.tfa(x, h)
        if self.residual:
            x = x + inp
        if self.shuffle_out:
            x = shuffle(x)
        return x, cache, h


class GRNN(nn.Module):
    """Grouped GRU: features and hidden state split in two halves, one GRU each."""

    def __init__(self, input_size: int, hidden_size: int, bidirectional: bool):
        super().__init__()
        self.rnn1 = nn.GRU(input_size // 2, hidden_size // 2, batch_first=True,
                           bidirectional=bidirectional)
        self.rnn2 = nn.GRU(input_size // 2, hidden_size // 2, batch_first=True,
                           bidirectional=bidirectional)

    def forward(self, x: torch.Tensor, h: torch.Tensor | None = None):
        """``x (N, L, in)``, ``h (D, N, hidden)`` -> ``(y (N, L, D * hidden), h')``."""
        x1, x2 = torch.chunk(x, 2, dim=-1)
        h1 = h2 = None
        if h is not None:
            h1, h2 = (t.contiguous() for t in torch.chunk(h, 2, dim=-1))
        y1, h1 = self.rnn1(x1, h1)
        y2, h2 = self.rnn2(x2, h2)
        return torch.cat([y1, y2], dim=-1), torch.cat([h1, h2], dim=-1)


class DPGRNN(nn.Module):
    """Grouped dual-path RNN: bidirectional grouped GRU across frequency (within a frame), causal
    grouped GRU across time, each followed by Linear + LayerNorm + residual."""

    def __init__(self, channels: int, width: int, hidden: int):
        super().__init__()
        self.hidden = hidden
        self.intra_rnn = GRNN(channels, hidden // 2, bidirectional=True)
        self.intra_fc = nn.Linear(hidden, channels)
        self.intra_ln = nn.LayerNorm((width, channels), eps=1e-8)
        self.inter_rnn = GRNN(channels, hidden, bidirectional=False)
        self.inter_fc = nn.Linear(hidden, channels)
        self.inter_ln = nn.LayerNorm((width, channels), eps=1e-8)

    def forward(self, x: torch.Tensor, h: torch.Tensor | None = None):
        """``x (B, C, T, W)``, ``h (B, W, H)`` -> ``(y (B, C, T, W), h')``."""
        b, c, t, w = x.shape
        x = x.permute(0, 2, 3, 1)  # B, T, W, C
        intra = self.intra_fc(self.intra_rnn(x.reshape(b * t, w, c))[0])  # B*T, W, C
        x = x + self.intra_ln(intra.reshape(b, t, w, c))
        xi = x.transpose(1, 2).reshape(b * w, t, c)  # B*W, T, C
        h0 = None if h is None else h.reshape(1, b * w, self.hidden)
        inter, h1 = self.inter_rnn(xi, h0)  # B*W, T, H
        inter = self.inter_fc(inter).reshape(b, w, t, c).transpose(1, 2)  # B, T, W, C
        x = x + self.inter_ln(inter)
        return x.permute(0, 3, 1, 2), h1.reshape(b, w, self.hidden)


class Encoder(nn.Module):
    """The encoder blocks (``en_convs``, the authors' name); run by :meth:`ULUNAS.forward`."""

    def __init__(self, blocks: list[Block]):
        super().__init__()
        self.en_convs = nn.ModuleList(blocks)


class Decoder(nn.Module):
    """The decoder blocks (``de_convs``), the last one gives the mask; run by :meth:`ULUNAS.forward`."""

    def __init__(self, blocks: list[Block]):
        super().__init__()
        self.de_convs = nn.ModuleList(blocks)


class ULUNAS(nn.Module):
    """Causal UL-UNAS speech enhancer operating on STFT frames.

    Args:
        config: a :class:`ULUNASConfig` (default: the paper model).

    Example:
        >>> from denoisezoo.ulunas import ulunas_tiny
        >>> model = ulunas_tiny().eval()
        >>> spec = torch.randn(2, 257, 10, 2)
        >>> model(spec).shape
        torch.Size([2, 257, 10, 2])
        >>> state = model.initial_state(batch=2)
        >>> out, state = model.step(spec[:, :, 0], state)
        >>> out.shape
        torch.Size([2, 257, 2])
    """

    def __init__(self, config: ULUNASConfig | None = None):
        super().__init__()
        self.config = cfg = config or ULUNASConfig()
        self.geometry = cfg.geometry
        self.window = WindowConverter(cfg)
        self.erb = ERB(cfg)
        w, c, n = cfg.widths, cfg.channels, len(cfg.block_types)

        def block(i: int, deconv: bool) -> Block:
            cin, cout = ((c[i], c[i - 1] if i else 1) if deconv else (c[i - 1] if i else 1, c[i]))
            win, wout = (w[i + 1], w[i]) if deconv else (w[i], w[i + 1])
            return Block(cfg.block_types[i], cin, cout, win, wout, cfg.kernels[i], cfg.strides[i],
                         cfg.groups[i], deconv, deconv and i == 0, cfg.fa_ratio)

        self.encoder = Encoder([block(i, False) for i in range(n)])
        self.dpgrnn = nn.ModuleList([DPGRNN(c[-1], w[-1], cfg.rnn_hidden)
                                     for _ in range(cfg.num_dual_path)])
        self.decoder = Decoder([block(i, True) for i in reversed(range(n))])
        # flat state layout: (offset, shape) of every conv cache and time-attention state
        self._conv_slots: list[tuple[int, tuple[int, int, int]] | None] = []
        self._tfa_slots: list[tuple[int, int]] = []
        nc = nt = 0
        for blk in self.blocks:
            shape = blk.cache_shape
            self._conv_slots.append((nc, shape) if blk.cache_len else None)
            nc += shape[0] * shape[1] * shape[2] if blk.cache_len else 0
            self._tfa_slots.append((nt, blk.tfa.hidden))
            nt += blk.tfa.hidden
        self._state_sizes = (nc, nt)

    @property
    def blocks(self) -> list[Block]:
        """Encoder then decoder blocks (the order of the state)."""
        return [*self.encoder.en_convs, *self.decoder.de_convs]

    # ------------------------------------------------------------------ state
    def initial_state(self, batch: int = 1, device: torch.device | str | None = None,
                      dtype: torch.dtype = torch.float32) -> ULUNASState:
        """Zero state for ``batch`` streams (equivalent to the offline zero padding)."""
        nc, nt = self._state_sizes
        cfg = self.config
        return ULUNASState(
            conv=torch.zeros(batch, nc, device=device, dtype=dtype),
            tfa=torch.zeros(batch, nt, device=device, dtype=dtype),
            rnn=torch.zeros(cfg.num_dual_path, batch, cfg.widths[-1], cfg.rnn_hidden,
                            device=device, dtype=dtype),
        )

    # ---------------------------------------------------------------- network
    def forward(self, spec: torch.Tensor) -> torch.Tensor:
        """Enhance a whole spectrogram from zero state.

        Args:
            spec: ``(B, F, T, 2)`` noisy STFT (real, imaginary) in the project's sqrt-Hann
                framing (:attr:`geometry`), ``F = n_fft // 2 + 1``.

        Returns:
            ``(B, F, T, 2)`` enhanced STFT in the same framing.
        """
        return self.forward_stateful(spec, None)[0]

    def forward_stateful(self, spec: torch.Tensor, state: ULUNASState | None):
        """``forward`` that starts from ``state`` (``None`` = zeros) and returns the final state.

        Returns:
            ``(enhanced (B, F, T, 2), next ULUNASState)``.
        """
        n_f = self.config.n_freqs
        if spec.ndim != 4 or spec.shape[1] != n_f or spec.shape[3] != 2:
            raise ValueError(f"expected a (B, {n_f}, T, 2) spectrum, got {tuple(spec.shape)}")
        return self._run(spec, state)

    def step(self, frame: torch.Tensor, state: ULUNASState):
        """Process one frame: ``frame (B, F, 2)`` -> ``(out (B, F, 2), next state)``."""
        n_f = self.config.n_freqs
        if frame.ndim != 3 or frame.shape[1] != n_f or frame.shape[2] != 2:
            raise ValueError(f"expected a (B, {n_f}, 2) frame, got {tuple(frame.shape)}")
        out, state = self._run(frame.unsqueeze(2), state)
        return out.squeeze(2), state

    def _run(self, spec: torch.Tensor, state: ULUNASState | None):
        b = spec.shape[0]
        if state is None:
            state = self.initial_state(b, spec.device, spec.dtype)
        xs = self.window.to_network(spec.transpose(1, 2))  # B, T, F, 2 (network window)
        re, im = xs[..., 0], xs[..., 1]  # B, T, F
        # log10 of the magnitude clamped at 1e-12, written on the power (no sqrt: finite gradients)
        feat = 0.5 * torch.log10((re * re + im * im).clamp_min(1e-24))
        x = self.erb.bm(feat).unsqueeze(1)  # B, 1, T, F_erb (ERB on rank 3: LiteRT's matmul)

        new_conv, new_tfa = [], []
        blocks = self.blocks
        n_enc = len(self.encoder.en_convs)

        def run_block(k: int, x: torch.Tensor) -> torch.Tensor:
            slot = self._conv_slots[k]
            cache = None
            if slot is not None:
                off, shape = slot
                cache = state.conv[:, off : off + shape[0] * shape[1] * shape[2]].reshape(b, *shape)
            t_off, t_n = self._tfa_slots[k]
            h = state.tfa[:, t_off : t_off + t_n].unsqueeze(0)  # 1, B, 2C
            y, cache, h = blocks[k](x, cache, h)
            if slot is not None:
                new_conv.append(cache.reshape(b, -1))
            new_tfa.append(h[0])
            return y

        skips = []
        for k in range(n_enc):
            x = run_block(k, x)
            skips.append(x)  # B, C, T, W
        new_rnn = []
        for j, dp in enumerate(self.dpgrnn):
            x, h = dp(x, state.rnn[j])
            new_rnn.append(h)
        for i in range(len(self.decoder.de_convs)):
            x = run_block(n_enc + i, x + skips[n_enc - 1 - i])
        m = self.erb.bs(torch.sigmoid(x[:, 0]))  # B, T, F real mask
        out = self.window.from_network(torch.stack([re * m, im * m], dim=-1))  # B, T, F, 2
        next_state = ULUNASState(
            conv=torch.cat(new_conv, dim=1) if new_conv else state.conv,
            tfa=torch.cat(new_tfa, dim=1),
            rnn=torch.stack(new_rnn, dim=0) if new_rnn else state.rnn,
        )
        return out.transpose(1, 2), next_state
