"""Typed configuration of the RNNoise family: geometry, bands, pitch range, widths stated once."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

from denoisezoo.dsp.stft import StftGeometry

__all__ = ["RNNoiseConfig", "RELEASE_DSP", "RNNOISE_EDGES_HZ", "default_band_edges_hz"]

# Band edges of the 2018 RNNoise (``eband5ms`` x 200 Hz): 22 triangular bands up to 20 kHz.
RNNOISE_EDGES_HZ: tuple[float, ...] = (
    0, 200, 400, 600, 800, 1000, 1200, 1400, 1600, 2000, 2400, 2800, 3200, 4000, 4800, 5600,
    6800, 8000, 9600, 12000, 15600, 20000,
)


def default_band_edges_hz(sample_rate: int) -> tuple[float, ...]:
    """The RNNoise edges that fit below Nyquist (22 bands at 48 kHz, 18 at 16 kHz); Nyquist is
    appended when it is below 20 kHz and not already an edge."""
    nyq = sample_rate / 2
    edges = [e for e in RNNOISE_EDGES_HZ if e <= nyq]
    if edges[-1] < nyq <= RNNOISE_EDGES_HZ[-1]:
        edges.append(nyq)
    return tuple(float(e) for e in edges)


@dataclass(frozen=True)
class RNNoiseConfig:
    """Everything an :class:`~denoisezoo.rnnoise_port.RNNoise` is built from.

    Defaults give the zoo's 16 kHz model;
    ``RNNoiseConfig(sample_rate=48000, pitch_search_rate=12000)`` is the 2018 geometry
    (22 bands, 42 features, GRUs 24/48/96). :data:`RELEASE_DSP` holds the switches that make the
    DSP the RNNoise v0.1.1 release's (the ``rnnoise_48k`` preset, which carries its weights).

    Attributes:
        sample_rate: audio rate in Hz.
        frame_ms: hop in milliseconds (10); the window is two hops (20 ms, Vorbis window).
        band_edges_hz: triangular band centres/edges in Hz (empty: :func:`default_band_edges_hz`).
        num_deltas: cepstral coefficients that get smoothing and first/second differences (6), also
            the number of pitch-correlation DCT coefficients.
        ceps_memory: frames of cepstra compared by the non-stationarity feature (8).
        min_period_ms: shortest pitch period searched (1.25 ms = 60 samples at 48 kHz).
        max_period_ms: longest pitch period searched (16 ms = 768 samples at 48 kHz).
        pitch_search_rate: rate of the coarse pitch search (the signal is low-passed and decimated
            by ``round(sample_rate / pitch_search_rate)``); the result is refined at full rate.
        subharmonic_threshold: a period ``T / k`` replaces the best coarse period ``T`` when its
            normalised correlation reaches this fraction of ``T``'s (removes period doubling).
        dense_size: width of the input dense layer (24, tanh).
        vad_size: VAD GRU width (24, tanh).
        noise_size: noise-spectrum GRU width (48, ReLU).
        denoise_size: denoising GRU width (96, tanh).
        use_pitch_filter: apply the pitch comb post-filter before the band gains.
        gain_decay: per-frame floor factor of the gains (``g_t >= gain_decay * g_{t-1}``; 0: off).
        input_scale: waveform scale the features are computed at (32768: the C code's int16 units,
            which its feature offsets and floors assume).
        window_eps: regulariser of the division by the window that recovers the newest hop of
            samples for the pitch analysis (samples where ``w^2`` is below it are attenuated).
        gru_activations: candidate activations of the VAD, noise and denoising GRUs
            (``"tanh"`` or ``"relu"``; the 2018 release: ReLU in all three).
        pitch_method: ``"xcorr"`` (the port's vectorised normalised cross-correlation) or
            ``"opus"`` (the release's LPC-whitened Opus pitch analysis with period-doubling
            removal that remembers the previous frame: :mod:`~denoisezoo.rnnoise_port.release`).
        highpass: filter the input with the release's DC-blocking biquad first (the features,
            the pitch analysis and the output then all see the filtered signal).
        band_top_bin: the bin at the last band edge belongs to the last band and gets its gain
            (the port); ``False``: it and the bins above get gain 0 and count in no band (the
            release's ``compute_band_energy`` / ``interp_band_gain``).
        activation_tables: the network's tanh and sigmoids are the release's table
            approximations (``tansig_approx``, differences of about 1e-5) instead of exact.
    """

    sample_rate: int = 16000
    frame_ms: float = 10.0
    band_edges_hz: tuple[float, ...] = field(default=())
    num_deltas: int = 6
    ceps_memory: int = 8
    min_period_ms: float = 1.25
    max_period_ms: float = 16.0
    pitch_search_rate: int = 8000
    subharmonic_threshold: float = 0.85
    dense_size: int = 24
    vad_size: int = 24
    noise_size: int = 48
    denoise_size: int = 96
    use_pitch_filter: bool = True
    gain_decay: float = 0.6
    input_scale: float = 32768.0
    window_eps: float = 1e-3
    gru_activations: tuple[str, str, str] = ("tanh", "relu", "tanh")
    pitch_method: str = "xcorr"
    highpass: bool = False
    band_top_bin: bool = True
    activation_tables: bool = False

    def __post_init__(self) -> None:
        object.__setattr__(self, "band_edges_hz", tuple(float(e) for e in self.band_edges_hz))
        object.__setattr__(self, "gru_activations", tuple(self.gru_activations))
        if len(self.gru_activations) != 3 or not set(self.gru_activations) <= {"tanh", "relu"}:
            raise ValueError(f"gru_activations must be 3 of 'tanh' / 'relu', got "
                             f"{self.gru_activations}")
        if self.pitch_method not in ("xcorr", "opus"):
            raise ValueError(f"pitch_method must be 'xcorr' or 'opus', got {self.pitch_method!r}")
        if self.pitch_method == "opus" and (self.n_fft % 4 or self.min_period % 2
                                            or self.max_period % 2
                                            or self.max_period - 3 * self.min_period < 8):
            raise ValueError("pitch_method='opus' needs n_fft % 4 == 0, even periods and "
                             "max_period >= 3 min_period + 8")
        hop = self.sample_rate * self.frame_ms / 1000
        if self.sample_rate <= 0 or abs(hop - round(hop)) > 1e-9 or hop < 8:
            raise ValueError(f"frame_ms * sample_rate must be a whole number of samples >= 8, got "
                             f"{self.frame_ms} ms at {self.sample_rate} Hz")
        edges = self.band_edges
        if len(edges) < 3:
            raise ValueError(f"need at least 3 band edges, got {len(edges)}")
        if any(b <= a for a, b in zip(edges[:-1], edges[1:], strict=True)):
            raise ValueError(f"band edges must map to strictly increasing bins, got {edges}")
        if edges[-1] > self.n_freqs - 1:
            raise ValueError(f"last band edge {self.edges_hz[-1]} Hz is above Nyquist")
        if self.num_deltas < 1 or self.num_deltas > self.n_bands:
            raise ValueError(f"num_deltas must be in [1, n_bands={self.n_bands}], "
                             f"got {self.num_deltas}")
        if self.ceps_memory < 3:
            raise ValueError(f"ceps_memory must be >= 3, got {self.ceps_memory}")
        if not 0 < self.min_period_ms < self.max_period_ms:
            raise ValueError("need 0 < min_period_ms < max_period_ms")
        if self.min_period < 2 * self.decimation:
            raise ValueError(f"min_period_ms too short for the pitch search rate "
                             f"({self.min_period} samples, decimation {self.decimation})")
        if not 0.0 <= self.gain_decay < 1.0:
            raise ValueError(f"gain_decay must be in [0, 1), got {self.gain_decay}")
        if not 0.0 < self.subharmonic_threshold <= 1.0:
            raise ValueError("subharmonic_threshold must be in (0, 1]")
        for name in ("dense_size", "vad_size", "noise_size", "denoise_size"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be positive")

    # -------------------------------------------------------------- geometry
    @property
    def hop_length(self) -> int:
        return int(round(self.sample_rate * self.frame_ms / 1000))

    @property
    def n_fft(self) -> int:
        return 2 * self.hop_length

    @property
    def n_freqs(self) -> int:
        return self.hop_length + 1

    @property
    def geometry(self) -> StftGeometry:
        return StftGeometry(self.sample_rate, self.n_fft, self.hop_length, "vorbis")

    # ----------------------------------------------------------------- bands
    @property
    def edges_hz(self) -> tuple[float, ...]:
        return self.band_edges_hz or default_band_edges_hz(self.sample_rate)

    @property
    def band_edges(self) -> tuple[int, ...]:
        """Band edges as STFT bin indices."""
        bin_hz = self.sample_rate / self.n_fft
        return tuple(int(round(e / bin_hz)) for e in self.edges_hz)

    @property
    def n_bands(self) -> int:
        return len(self.edges_hz)

    @property
    def n_features(self) -> int:
        """``bands`` cepstrum + 2 x ``num_deltas`` derivatives + ``num_deltas`` pitch correlation
        + pitch period + non-stationarity (42 at 48 kHz, 38 at 16 kHz)."""
        return self.n_bands + 3 * self.num_deltas + 2

    # ----------------------------------------------------------------- pitch
    @property
    def min_period(self) -> int:
        return int(round(self.min_period_ms * self.sample_rate / 1000))

    @property
    def max_period(self) -> int:
        return int(round(self.max_period_ms * self.sample_rate / 1000))

    @property
    def decimation(self) -> int:
        return max(1, int(round(self.sample_rate / self.pitch_search_rate)))

    @property
    def pitch_history(self) -> int:
        """Samples of reconstructed input kept before the current frame's first hop: the longest
        period (``"opus"``: exactly, as the release's pitch buffer), else also the decimation
        filter and a margin of two decimated samples."""
        if self.pitch_method == "opus":
            return self.max_period
        d = self.decimation
        return self.max_period + (2 * d - 2) + 3 * d

    @property
    def release_memory(self) -> int:
        """Numbers of the release's DSP memory kept after the samples in the state's ``history``:
        the high-pass filter's two memories (each as float32 high and low parts), the previous
        period and pitch gain (6; 0 when neither ``highpass`` nor ``pitch_method="opus"`` is
        on)."""
        return 6 if self.highpass or self.pitch_method == "opus" else 0

    @property
    def history_length(self) -> int:
        """Length of the state's ``history``: :attr:`pitch_history` samples, then
        :attr:`release_memory` numbers."""
        return self.pitch_history + self.release_memory

    @property
    def pitch_buffer_length(self) -> int:
        """Samples the pitch analysis sees per frame (history + the frame's two hops)."""
        return self.pitch_history + self.n_fft

    def to_dict(self) -> dict:
        d = asdict(self)
        d["band_edges_hz"] = list(self.band_edges_hz)
        d["gru_activations"] = list(self.gru_activations)
        return d

    @classmethod
    def from_dict(cls, d: dict) -> RNNoiseConfig:
        """Inverse of :meth:`to_dict`; fields missing from older checkpoints take their defaults."""
        d = {**d, "band_edges_hz": tuple(d.get("band_edges_hz", ()))}
        if "gru_activations" in d:
            d["gru_activations"] = tuple(d["gru_activations"])
        return cls(**d)


# The switches that turn the port's DSP into the RNNoise v0.1.1 release's (rnnoise_48k).
RELEASE_DSP = dict(gru_activations=("relu", "relu", "relu"), pitch_method="opus", highpass=True,
                   band_top_bin=False, window_eps=1e-14)
