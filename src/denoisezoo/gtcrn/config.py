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

    def __post_init__(self) -> None:
        object.__setattr__(self, "dilations", tuple(int(d) for d in self.dilations))
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

    def to_dict(self) -> dict:
        d = asdict(self)
        d["dilations"] = list(self.dilations)
        return d

    @classmethod
    def from_dict(cls, d: dict) -> GTCRNConfig:
        return cls(**{**d, "dilations": tuple(d.get("dilations", (1, 2, 5)))})
