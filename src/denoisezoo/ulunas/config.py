"""Typed configuration of the UL-UNAS family: geometry, block layout and widths stated once."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

from denoisezoo.dsp.stft import StftGeometry

__all__ = ["ULUNASConfig", "BLOCK_KINDS", "NETWORK_WINDOWS"]

# "conv": a (grouped) time-frequency conv; "dws": point-wise + depth-wise separable conv;
# "mb": mobile inverted bottleneck (point-wise, depth-wise, point-wise, residual when shapes allow).
BLOCK_KINDS = ("conv", "dws", "mb")
# Window of the spectra the network sees. The authors' network was trained on periodic-Hann
# spectra; the project's framing is sqrt-Hann, and the model converts exactly at its boundary
# (see denoisezoo.ulunas.model.WindowConverter). "sqrt_hann": no conversion.
NETWORK_WINDOWS = ("hann", "sqrt_hann")


@dataclass(frozen=True)
class ULUNASConfig:
    """Everything a UL-UNAS is built from; defaults are the searched model of the paper
    (Rong et al., "UL-UNAS: Ultra-Lightweight U-Nets for Real-Time Speech Enhancement via
    Network Architecture Search", IEEE/ACM TASLP 2026), 171,328 parameters with the ERB matrices.

    The encoder has one block per entry of ``block_types``; the decoder mirrors it (block ``i`` of
    the encoder maps ``channels[i - 1] -> channels[i]``, its decoder twin the reverse, the last
    decoder block gives the one-channel mask). The width of each stage follows from the strides
    (odd kernels, "same" frequency padding): 129 -> 65 -> 33 -> 33 -> 33 -> 33 at 16 kHz.

    Attributes:
        sample_rate: audio rate in Hz.
        n_fft: FFT size (window length).
        hop_length: frame advance in samples; must divide ``n_fft``.
        network_window: window of the spectra inside the network, ``"hann"`` (the authors') or
            ``"sqrt_hann"`` (the project's analysis window: no boundary conversion).
        erb_low_bins: low STFT bins kept unbanded (65).
        erb_bands: ERB bands replacing the remaining bins (64).
        block_types: kind of each encoder block (:data:`BLOCK_KINDS`).
        channels: output channels of each encoder block.
        kernels: ``(time, frequency)`` kernel of each block's time-frequency conv.
        strides: frequency stride of each block (1 or 2).
        groups: groups of each block's (point-wise) convs; 2 adds a channel shuffle.
        num_dual_path: grouped dual-path RNN blocks in the bottleneck (2).
        dp_hidden: hidden units of the dual-path RNNs (``None``: the bottleneck's channels).
        fa_ratio: frequency attention: bins per group of its bidirectional GRU (4).
    """

    sample_rate: int = 16000
    n_fft: int = 512
    hop_length: int = 256
    network_window: str = "hann"
    erb_low_bins: int = 65
    erb_bands: int = 64
    block_types: tuple[str, ...] = field(default=("conv", "mb", "dws", "mb", "dws"))
    channels: tuple[int, ...] = field(default=(12, 24, 24, 32, 16))
    kernels: tuple[tuple[int, int], ...] = field(default=((3, 3), (2, 3), (2, 3), (1, 5), (1, 5)))
    strides: tuple[int, ...] = field(default=(2, 2, 1, 1, 1))
    groups: tuple[int, ...] = field(default=(1, 2, 2, 2, 2))
    num_dual_path: int = 2
    dp_hidden: int | None = None
    fa_ratio: int = 4

    def __post_init__(self) -> None:
        set_ = object.__setattr__
        set_(self, "block_types", tuple(str(k) for k in self.block_types))
        set_(self, "channels", tuple(int(c) for c in self.channels))
        set_(self, "kernels", tuple((int(k[0]), int(k[1])) for k in self.kernels))
        set_(self, "strides", tuple(int(s) for s in self.strides))
        set_(self, "groups", tuple(int(g) for g in self.groups))
        n = len(self.block_types)
        if n < 1 or any(len(v) != n for v in (self.channels, self.kernels, self.strides, self.groups)):
            raise ValueError(f"block_types, channels, kernels, strides and groups need one entry per "
                             f"block ({n}), got {len(self.channels)}, {len(self.kernels)}, "
                             f"{len(self.strides)}, {len(self.groups)}")
        bad = [k for k in self.block_types if k not in BLOCK_KINDS]
        if bad:
            raise ValueError(f"unknown block types {bad}; expected one of {BLOCK_KINDS}")
        if self.groups[0] != 1:
            raise ValueError("the first block needs groups 1 (it reads one input channel, and its "
                             "decoder twin writes the one-channel mask)")
        if self.network_window not in NETWORK_WINDOWS:
            raise ValueError(f"network_window must be one of {NETWORK_WINDOWS}, "
                             f"got {self.network_window!r}")
        if self.hop_length <= 0 or self.n_fft % self.hop_length:
            raise ValueError(f"hop_length must divide n_fft, got {self.hop_length}, {self.n_fft}")
        if not 0 < self.erb_low_bins < self.n_fft // 2 + 1:
            raise ValueError("erb_low_bins must be below the number of STFT bins")
        for i, ((kt, kf), s, g, c) in enumerate(zip(self.kernels, self.strides, self.groups,
                                                    self.channels, strict=True)):
            if kt < 1 or kf < 1 or kf % 2 == 0:
                raise ValueError(f"block {i}: kernels need time >= 1 and an odd frequency size, "
                                 f"got {(kt, kf)}")
            if s not in (1, 2):
                raise ValueError(f"block {i}: stride must be 1 or 2, got {s}")
            if g not in (1, 2) or c % g or (i and self.channels[i - 1] % g):
                raise ValueError(f"block {i}: groups must be 1 or 2 and divide the channels")
        prod = 1
        for s in self.strides:
            prod *= s
        if (self.feature_bins - 1) % prod:
            raise ValueError(f"erb_low_bins + erb_bands - 1 ({self.feature_bins - 1}) must be "
                             f"divisible by the product of the strides ({prod})")
        if self.fa_ratio < 1:
            raise ValueError("fa_ratio must be positive")
        if self.rnn_hidden % 4 or self.channels[-1] % 2:
            raise ValueError("dp_hidden must be a multiple of 4 and the bottleneck channels even "
                             "(grouped, bidirectional GRUs)")

    @property
    def geometry(self) -> StftGeometry:
        """The project's framing: sqrt-Hann analysis and synthesis, frames from ``n_fft - hop``
        samples before the signal (equal to ``torch.stft(center=True)`` for 50 % overlap)."""
        return StftGeometry(self.sample_rate, self.n_fft, self.hop_length, "sqrt_hann")

    @property
    def n_freqs(self) -> int:
        return self.n_fft // 2 + 1

    @property
    def feature_bins(self) -> int:
        """Bins after ERB compression (129 for the paper model)."""
        return self.erb_low_bins + self.erb_bands

    @property
    def widths(self) -> tuple[int, ...]:
        """Frequency width before the first block and after each encoder block
        ``(129, 65, 33, 33, 33, 33)``."""
        w = [self.feature_bins]
        for s in self.strides:
            w.append((w[-1] - 1) // s + 1)
        return tuple(w)

    @property
    def rnn_hidden(self) -> int:
        return self.dp_hidden or self.channels[-1]

    def to_dict(self) -> dict:
        d = asdict(self)
        for k in ("block_types", "channels", "strides", "groups"):
            d[k] = list(d[k])
        d["kernels"] = [list(k) for k in self.kernels]
        return d

    @classmethod
    def from_dict(cls, d: dict) -> ULUNASConfig:
        return cls(**d)
