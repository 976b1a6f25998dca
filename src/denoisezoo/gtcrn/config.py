"""Typed configuration of the GTCRN family: geometry and widths stated once."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

from denoisezoo.dsp.stft import StftGeometry

__all__ = ["GTCRNConfig"]


@dataclass(frozen=True)
class GTCRNConfig:
    """Everything a GTCRN is built from; defaults are the ICASSP 2024 paper model.

    Attributes:
        sample_rate: audio rate in Hz.
        n_fft: FFT size (sqrt-Hann window of the same length).
        hop_length: frame advance in samples.
        erb_low_bins: low STFT bins kept unbanded (65 at 16 kHz / 512).
        erb_bands: ERB bands replacing the remaining bins (64).
        channels: encoder/decoder width (16).
        dilations: time dilations of the grouped temporal conv blocks (1, 2, 5).
        num_dual_path: number of grouped dual-path RNN blocks (2).
        sfe_kernel: neighbouring bins stacked by subband feature extraction (3).
        hidden_channels: hidden width of each grouped temporal conv block, encoder blocks then
            decoder blocks (``2 * len(dilations)`` values); ``None``: ``channels`` everywhere.
            Set by structured pruning (:mod:`denoisezoo.compress`).
        tra_hidden: GRU hidden units of each block's temporal recurrent attention (same order);
            ``None``: ``channels``.
        intra_hidden: hidden units (per direction, both groups together, even) of each dual-path
            block's intra-frame GRU; ``None``: ``channels // 2``.
        inter_hidden: hidden units (both groups together, even) of each dual-path block's
            inter-frame GRU; ``None``: ``channels``.
    """

    sample_rate: int = 16000
    n_fft: int = 512
    hop_length: int = 256
    erb_low_bins: int = 65
    erb_bands: int = 64
    channels: int = 16
    dilations: tuple[int, ...] = field(default=(1, 2, 5))
    num_dual_path: int = 2
    sfe_kernel: int = 3
    hidden_channels: tuple[int, ...] | None = None
    tra_hidden: tuple[int, ...] | None = None
    intra_hidden: tuple[int, ...] | None = None
    inter_hidden: tuple[int, ...] | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "dilations", tuple(int(d) for d in self.dilations))
        n_blocks, n_dp = 2 * len(self.dilations), self.num_dual_path
        for name, n, even in (("hidden_channels", n_blocks, False), ("tra_hidden", n_blocks, False),
                              ("intra_hidden", n_dp, True), ("inter_hidden", n_dp, True)):
            v = getattr(self, name)
            if v is None:
                continue
            v = tuple(int(x) for x in v)
            object.__setattr__(self, name, v)
            if len(v) != n or min(v) < 1 or (even and any(x % 2 for x in v)):
                raise ValueError(f"{name} must hold {n} positive{' even' if even else ''} "
                                 f"widths, got {v}")
        if self.channels % 4 or self.channels < 4:
            raise ValueError(f"channels must be a positive multiple of 4, got {self.channels}")
        if (self.feature_bins - 1) % 4:
            raise ValueError(
                f"erb_low_bins + erb_bands - 1 must be divisible by 4 (two stride-2 convs), got "
                f"{self.feature_bins}"
            )
        if self.erb_low_bins >= self.n_fft // 2 + 1:
            raise ValueError("erb_low_bins must be below the number of STFT bins")
        if self.sfe_kernel % 2 == 0:
            raise ValueError("sfe_kernel must be odd")
        if not self.dilations or min(self.dilations) < 1:
            raise ValueError("dilations must be positive")

    @classmethod
    def for_sample_rate(cls, sample_rate: int, **kwargs) -> GTCRNConfig:
        """The paper layout at another rate, derived from the rate: the same 32 ms sqrt-Hann
        window and 16 ms hop (``n_fft = 512 * sample_rate / 16000``), hence the same 31.25 Hz bin
        spacing, the same 65 unbanded bins (0-2 kHz) and 64 ERB bands from 2 kHz up to the new
        Nyquist. The network after the ERB stage has the paper model's shapes (129 features), so
        16 kHz weights load into it (:func:`denoisezoo.training.system.warm_start`).

        Example:
            >>> c = GTCRNConfig.for_sample_rate(48000)
            >>> c.n_fft, c.hop_length, c.feature_bins
            (1536, 768, 129)
        """
        n_fft = 512 * sample_rate / 16000
        if n_fft != int(n_fft) or int(n_fft) % 2:
            raise ValueError(f"sample_rate {sample_rate}: 32 ms must be an even number of samples")
        return cls(sample_rate=sample_rate, n_fft=int(n_fft), hop_length=int(n_fft) // 2, **kwargs)

    @property
    def geometry(self) -> StftGeometry:
        return StftGeometry(self.sample_rate, self.n_fft, self.hop_length, "sqrt_hann")

    @property
    def n_freqs(self) -> int:
        return self.n_fft // 2 + 1

    @property
    def feature_bins(self) -> int:
        """Bins after ERB compression (129 for the paper model)."""
        return self.erb_low_bins + self.erb_bands

    @property
    def width(self) -> int:
        """Frequency width inside the bottleneck after two stride-2 convs (33)."""
        return (self.feature_bins - 1) // 4 + 1

    @property
    def block_hidden(self) -> tuple[int, ...]:
        """Hidden width of each grouped temporal conv block (encoder then decoder)."""
        return self.hidden_channels or (self.channels,) * (2 * len(self.dilations))

    @property
    def block_tra_hidden(self) -> tuple[int, ...]:
        return self.tra_hidden or (self.channels,) * (2 * len(self.dilations))

    @property
    def dp_intra_hidden(self) -> tuple[int, ...]:
        return self.intra_hidden or (self.channels // 2,) * self.num_dual_path

    @property
    def dp_inter_hidden(self) -> tuple[int, ...]:
        return self.inter_hidden or (self.channels,) * self.num_dual_path

    def to_dict(self) -> dict:
        d = asdict(self)
        d["dilations"] = list(self.dilations)
        for k in ("hidden_channels", "tra_hidden", "intra_hidden", "inter_hidden"):
            if d[k] is None:
                del d[k]  # keep the paper config's dict (and old checkpoints) unchanged
            else:
                d[k] = list(d[k])
        return d

    @classmethod
    def from_dict(cls, d: dict) -> GTCRNConfig:
        return cls(**{**d, "dilations": tuple(d.get("dilations", (1, 2, 5)))})
