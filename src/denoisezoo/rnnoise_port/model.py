"""RNNoise (Valin, MMSP 2018) in PyTorch, sample-rate generic, with ``forward`` and ``step``.

Data flow per 10 ms frame (48 kHz: 960-point Vorbis-window STFT, hop 480, 22 bands)::

    spec (B, F, T, 2) --inverse DFT + overlap-add--> time-domain pitch buffers (B, T, L)
      -> pitch period T_p, pitch-delayed spectrum P (B, T, F)
      -> band energies Ex, Ep, pitch correlation Exp (B, T, bands)
      -> 42 features: cepstrum (22; first 6 smoothed over 3 frames), first and second differences
         (6 + 6), DCT of the pitch correlation (6), pitch period, spectral non-stationarity
      -> dense 24 tanh -> GRU 24 (VAD: dense 1 sigmoid) -> GRU 48 ReLU -> GRU 96 -> dense sigmoid
      -> band gains g (B, T, bands)
      -> pitch comb filter X + r(g, Exp) P, band-energy renormalised
      -> gains floored by 0.6 x the previous frame's, interpolated to bins, applied -> (B, F, T, 2)

Everything along time is causal and carried in :class:`RNNoiseState` (time-domain history and
overlap-add tail for the pitch analysis, the last cepstra, the three GRU states, the last gains),
so ``forward_stateful`` takes any number of frames and ``step`` is the one-frame case.

Complex spectra are real tensors with a size-2 (real, imaginary) axis, the frame DFTs are matrix
products with constant bases and all sizes come from the config, so ``step`` exports to ONNX as
``(frame, *state) -> (out, *next_state)`` (:func:`denoisezoo.streaming.export_onnx`).

The time signal is rebuilt from the spectra the model receives: hop ``t`` of the padded signal is
exactly the overlap-add of frames ``t - 1`` and ``t`` (power-complementary window), and the newest
hop, which only frame ``t`` has seen yet, is recovered by a regularised division by the window.

Differences from the C code, by design and by default: the pitch search is a vectorised
normalised cross-correlation (coarse at ``pitch_search_rate``, period-doubling check, full-rate
refinement) instead of Opus's LPC-whitened search with its dependency on the previous period;
there is no input high-pass; the bin at the last band edge gets the last band's gain. The
config's release switches (:data:`~denoisezoo.rnnoise_port.config.RELEASE_DSP`, the
``rnnoise_48k`` preset) make each of these the release's. Always different: no skipping of
digitally silent frames (the release leaves its state and the signal untouched when a frame's
energy is below 0.04 in int16 units; the network here runs on every frame); the GRUs follow Keras
(reset gate before the recurrent product, one bias), as RNNoise was trained.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import torch
from torch import nn

from denoisezoo.rnnoise_port.config import RNNoiseConfig
from denoisezoo.rnnoise_port.features import (
    PitchSearch,
    RealDFT,
    band_matrices,
    dct_matrix,
    log_floor_kernels,
    log_spectrum_floor,
    rdft_matrices,
    spectral_variability,
)
from denoisezoo.rnnoise_port.release import (
    OpusPitch,
    biquad_hop_matrix,
    sigmoid_approx,
    tansig_approx,
)

__all__ = [
    "RNNoise", "RNNoiseState", "RNNoiseOutput", "RNNoiseFeatures", "KerasGRU", "mac_counters",
]


class RNNoiseState(NamedTuple):
    """Streaming state of an :class:`RNNoise` (all tensors, returned anew by each call).

    Attributes:
        history: ``(B, H)`` rebuilt input samples before the current frame's first hop
            (``config.pitch_history`` of them), for the pitch search; then, with the release's
            DSP, ``config.release_memory`` numbers: the high-pass filter's two memories (float64
            values as float32 high and low parts), the previous frame's period and pitch gain
            (``H = config.history_length``).
        ola: ``(B, hop)`` overlap-add tail (second half of the last frame, windowed twice).
        ceps: ``(B, ceps_memory - 1, bands)`` cepstra of the previous frames.
        vad_h: ``(B, vad_size)`` VAD GRU state.
        noise_h: ``(B, noise_size)`` noise GRU state.
        denoise_h: ``(B, denoise_size)`` denoising GRU state.
        gains: ``(B, bands)`` gains applied to the last frame (for the decay limit).
    """

    history: torch.Tensor
    ola: torch.Tensor
    ceps: torch.Tensor
    vad_h: torch.Tensor
    noise_h: torch.Tensor
    denoise_h: torch.Tensor
    gains: torch.Tensor


class RNNoiseFeatures(NamedTuple):
    """Per-frame analysis of :meth:`RNNoise.extract_features` (``T`` frames).

    Attributes:
        features: ``(B, T, n_features)`` network input.
        ex: ``(B, T, bands)`` band energies of the input (int16 scale, normalised FFT).
        ep: ``(B, T, bands)`` band energies of the pitch-delayed frame.
        exp: ``(B, T, bands)`` normalised band correlation of input and pitch-delayed frame.
        pitch_spec: ``(B, T, 2, F)`` spectrum (real, imaginary) of the pitch-delayed frame
            (input units).
        period: ``(B, T)`` pitch period in samples (int64).
        spec: ``(B, T, 2, F)`` the analysed spectrum the gains apply to: the input's, or with
            ``config.highpass`` that of the high-passed input.
    """

    features: torch.Tensor
    ex: torch.Tensor
    ep: torch.Tensor
    exp: torch.Tensor
    pitch_spec: torch.Tensor
    period: torch.Tensor
    spec: torch.Tensor


class RNNoiseOutput(NamedTuple):
    """Result of :meth:`RNNoise.forward_with_gains`.

    Attributes:
        spec: ``(B, F, T, 2)`` enhanced spectrum.
        gains: ``(B, T, bands)`` band gains predicted by the network (before the decay limit).
        vad: ``(B, T)`` voice activity probability.
        state: the next :class:`RNNoiseState`.
    """

    spec: torch.Tensor
    gains: torch.Tensor
    vad: torch.Tensor
    state: RNNoiseState


class KerasGRU(nn.Module):
    """GRU as trained for RNNoise (Keras ``reset_after=False``): gates ``[z, r, h]``,

    ``z = s(x Wz + h Uz + bz)``, ``r = s(x Wr + h Ur + br)``, ``c = act(x Wc + (r h) Uc + bc)``,
    ``h' = z h + (1 - z) c``; ``3 N (I + N + 1)`` parameters. The input products of all frames
    are one matrix product; the recurrence steps frame by frame (also for ``T = 1`` in ``step``).

    Args:
        input_size: ``I``.
        hidden_size: ``N``.
        activation: ``"tanh"`` or ``"relu"`` for the candidate state.
        tables: use the RNNoise release's table approximations of ``tanh`` and the sigmoid
            (:func:`~denoisezoo.rnnoise_port.release.tansig_approx`).
    """

    def __init__(self, input_size: int, hidden_size: int, activation: str = "tanh",
                 tables: bool = False):
        super().__init__()
        if activation not in ("tanh", "relu"):
            raise ValueError(f"activation must be 'tanh' or 'relu', got {activation!r}")
        self.input_size = input_size
        self.hidden_size = hidden_size
        self.activation = activation
        self.tables = tables
        self.kernel = nn.Parameter(torch.empty(input_size, 3 * hidden_size))
        self.recurrent_kernel = nn.Parameter(torch.empty(hidden_size, 3 * hidden_size))
        self.bias = nn.Parameter(torch.empty(3 * hidden_size))
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Keras defaults: Glorot-uniform kernel, orthogonal recurrent kernel, zero bias."""
        nn.init.xavier_uniform_(self.kernel)
        nn.init.orthogonal_(self.recurrent_kernel)
        nn.init.zeros_(self.bias)

    def forward(self, x: torch.Tensor, h: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``x (B, T, I)``, ``h (B, N)`` -> ``(outputs (B, T, N), last state (B, N))``."""
        n = self.hidden_size
        xw = torch.matmul(x, self.kernel) + self.bias  # B, T, 3N
        u_zr = self.recurrent_kernel[:, : 2 * n]
        u_c = self.recurrent_kernel[:, 2 * n :]
        tanh, sigmoid = (tansig_approx, sigmoid_approx) if self.tables else (torch.tanh,
                                                                               torch.sigmoid)
        act = tanh if self.activation == "tanh" else torch.relu
        outs = []
        for xt in xw.unbind(1):  # B, 3N per frame
            zr = sigmoid(xt[:, : 2 * n] + h @ u_zr)  # B, 2N
            z, r = zr[:, :n], zr[:, n:]
            c = act(xt[:, 2 * n :] + (r * h) @ u_c)  # B, N
            h = c + z * (h - c)
            outs.append(h)
        return torch.stack(outs, dim=1), h


class RNNoise(nn.Module):
    """Hybrid DSP + GRU noise suppressor operating on STFT frames (RNNoise, generalised).

    Args:
        config: an :class:`RNNoiseConfig` (default: the zoo's 16 kHz model).

    Example:
        >>> from denoisezoo.rnnoise_port import rnnoise_tiny
        >>> model = rnnoise_tiny().eval()
        >>> spec = torch.randn(2, 161, 10, 2)
        >>> model(spec).shape
        torch.Size([2, 161, 10, 2])
        >>> out = model.forward_with_gains(spec)
        >>> out.gains.shape, out.vad.shape
        (torch.Size([2, 10, 18]), torch.Size([2, 10]))
        >>> y, state = model.step(spec[:, :, 0], model.initial_state(batch=2))
        >>> y.shape
        torch.Size([2, 161, 2])
    """

    def __init__(self, config: RNNoiseConfig | None = None):
        super().__init__()
        self.config = cfg = config or RNNoiseConfig()
        self.geometry = cfg.geometry
        hop, n_fft = cfg.hop_length, cfg.n_fft
        window = self.geometry.make_window(torch.float64)
        tail = window[hop:]
        ana, syn = band_matrices(cfg.band_edges, cfg.n_freqs, top_bin=cfg.band_top_bin)
        self.register_buffer("self_pairs", torch.eye(cfg.ceps_memory, dtype=torch.bool),
                             persistent=False)  # spectral_variability's excluded pairs
        floor_before, floor_decay = log_floor_kernels(cfg.n_bands)
        nd = cfg.num_deltas
        self.register_buffer("window", window.float(), persistent=False)
        self.register_buffer("recover", (tail / (tail.square() + cfg.window_eps)).float(),
                             persistent=False)
        self.register_buffer("band_analysis", ana.t().contiguous(), persistent=False)  # F, bands
        self.register_buffer("band_synthesis", syn.t().contiguous(), persistent=False)  # bands, F
        self.register_buffer("dct", dct_matrix(cfg.n_bands).t().contiguous(), persistent=False)
        self.register_buffer("floor_before", floor_before, persistent=False)  # bands, bands + 1
        self.register_buffer("floor_decay", floor_decay, persistent=False)  # bands, bands + 1
        self.register_buffer("pcorr_offset", torch.tensor([1.3, 0.9] + [0.0] * (nd - 2))[:nd],
                             persistent=False)  # nd
        self.register_buffer("ceps_offset", torch.tensor([12.0, 4.0] + [0.0] * (cfg.n_bands - 2)),
                             persistent=False)  # bands
        self.dft = RealDFT(n_fft)
        if cfg.pitch_method == "opus":
            self.pitch = OpusPitch(cfg.pitch_buffer_length, n_fft, cfg.min_period, cfg.max_period)
        else:
            self.pitch = PitchSearch(cfg.pitch_buffer_length, n_fft, cfg.min_period,
                                     cfg.max_period, cfg.decimation, cfg.subharmonic_threshold)
        # the release's DSP needs the newest samples exactly (its pitch search weighs them fully):
        # the last ones, where the window is below 1e-3, are rebuilt in float64 (else a float32
        # rounding of 1e-7 divided by a window of 1e-6 moves them visibly)
        self.precise_tail = 16 if cfg.release_memory else 0
        if self.precise_tail:
            k = self.precise_tail
            self.register_buffer("inverse_tail", rdft_matrices(n_fft, torch.float64)[1][:, -k:],
                                 persistent=False)  # 2F, k
            self.register_buffer("recover_tail", tail[-k:] / (tail[-k:].square() + cfg.window_eps),
                                 persistent=False)  # k, float64
        if cfg.highpass:  # [hop | 2 memories] -> [filtered hop | 2 memories], float64 (below)
            self.register_buffer("highpass", biquad_hop_matrix(hop, dtype=torch.float64),
                                 persistent=False)
        self._feat_scale = cfg.input_scale / n_fft  # RNNoise: int16 input, FFT scaled by 1 / N

        nf = cfg.n_features
        self.input_dense = nn.Linear(nf, cfg.dense_size)
        act_vad, act_noise, act_denoise = cfg.gru_activations
        tab = cfg.activation_tables
        self.vad_gru = KerasGRU(cfg.dense_size, cfg.vad_size, act_vad, tab)
        self.vad_output = nn.Linear(cfg.vad_size, 1)
        self.noise_gru = KerasGRU(cfg.dense_size + cfg.vad_size + nf, cfg.noise_size, act_noise,
                                  tab)
        self.denoise_gru = KerasGRU(cfg.vad_size + cfg.noise_size + nf, cfg.denoise_size,
                                    act_denoise, tab)
        self._tanh, self._sigmoid = ((tansig_approx, sigmoid_approx) if tab
                                     else (torch.tanh, torch.sigmoid))
        self.denoise_output = nn.Linear(cfg.denoise_size, cfg.n_bands)
        for lin in (self.input_dense, self.vad_output, self.denoise_output):
            nn.init.xavier_uniform_(lin.weight)
            nn.init.zeros_(lin.bias)

    # ------------------------------------------------------------------ state
    def initial_state(self, batch: int = 1, device: torch.device | str | None = None,
                      dtype: torch.dtype = torch.float32) -> RNNoiseState:
        """Zero state for ``batch`` streams (equivalent to the offline zero padding)."""
        cfg = self.config

        def z(*shape: int) -> torch.Tensor:
            return torch.zeros(batch, *shape, device=device, dtype=dtype)

        return RNNoiseState(
            history=z(cfg.history_length), ola=z(cfg.hop_length),
            ceps=z(cfg.ceps_memory - 1, cfg.n_bands), vad_h=z(cfg.vad_size),
            noise_h=z(cfg.noise_size), denoise_h=z(cfg.denoise_size), gains=z(cfg.n_bands),
        )

    # --------------------------------------------------------------- features
    def _band(self, power: torch.Tensor) -> torch.Tensor:
        """``(B, T, F)`` -> ``(B, T, bands)`` triangular band sums."""
        return power @ self.band_analysis

    def _interp(self, g: torch.Tensor) -> torch.Tensor:
        """``(B, T, bands)`` -> ``(B, T, F)`` linear interpolation between band edges."""
        return g @ self.band_synthesis

    def extract_features(self, spec: torch.Tensor, state: RNNoiseState | None = None
                         ) -> tuple[RNNoiseFeatures, RNNoiseState]:
        """The 42-feature analysis (at 48 kHz) of ``T`` frames, vectorised over frames.

        Args:
            spec: ``(B, F, T, 2)`` noisy STFT of the model's geometry.
            state: streaming state (``None``: zeros); only the DSP fields are used and updated.

        Returns:
            ``(RNNoiseFeatures, state with history, ola and ceps advanced by T frames)``.
        """
        cfg = self.config
        if state is None:
            state = self.initial_state(spec.shape[0], spec.device, spec.dtype)
        hop, h_len, f = cfg.hop_length, cfg.pitch_history, cfg.n_freqs
        xs = spec.permute(0, 2, 3, 1)  # B, T, 2, F: (real, imaginary) of each frame
        history, memory = state.history[:, :h_len], state.history[:, h_len:]  # B, H; B, 4 (or 0)

        # time-domain buffers rebuilt from the spectra
        z = self.dft.inverse(xs.flatten(2))  # B, T, N: window * frame (inverse real DFT)
        y = z * self.window  # B, T, N: overlap-add contributions
        tails = torch.cat([state.ola[:, None], y[:, :, hop:]], dim=1)  # B, 1 + T, hop
        exact = tails[:, :-1] + y[:, :, :hop]  # B, T, hop: first hop of each frame, exact
        newest = z[:, :, hop:] * self.recover  # B, T, hop: second hop, window divided out
        if self.precise_tail:
            k = self.precise_tail
            last = (xs.flatten(2).to(self.inverse_tail.dtype) @ self.inverse_tail) * self.recover_tail
            newest = torch.cat([newest[..., :-k], last.to(newest.dtype)], dim=-1)  # B, T, hop
        if cfg.highpass:
            exact, newest, hp_mem = self._highpass(exact, newest, memory[:, :4])
        sig = torch.cat([history, exact.flatten(1)], dim=-1)  # B, H + T hop
        buf = torch.cat([sig.unfold(1, h_len + hop, hop), newest], dim=-1)  # B, T, H + 2 hop
        if cfg.highpass:  # the spectrum of the filtered frames replaces the input's
            xs = self.dft(buf[..., -cfg.n_fft :] * self.window).unflatten(-1, (2, f))
        buf = buf * cfg.input_scale

        # pitch period and pitch-delayed spectrum
        if cfg.pitch_method == "opus":
            period, last_period, last_gain = self.pitch.run(
                buf, memory[:, 4].round().long(), memory[:, 5])  # B, T; B; B
        else:
            period = self.pitch(buf)  # B, T
        p_frames = self.pitch.delayed(buf, period) * (self.window / cfg.input_scale)  # B, T, N
        ps = self.dft(p_frames).unflatten(-1, (2, f))  # B, T, 2, F (input units, like xs)

        # band energies and pitch correlation (RNNoise scale)
        s2 = self._feat_scale**2
        ex = self._band(xs.square().sum(-2)) * s2  # B, T, bands
        ep = self._band(ps.square().sum(-2)) * s2
        exp = self._band((xs * ps).sum(-2)) * s2
        exp = exp / torch.sqrt(0.001 + ex * ep)

        nd = cfg.num_deltas
        pcorr = exp @ self.dct[:, :nd] - self.pcorr_offset  # B, T, nd
        pitch_feat = 0.01 * (period.to(spec.dtype) * (48000.0 / cfg.sample_rate) - 300.0)

        ly = log_spectrum_floor(torch.log10(1e-2 + ex), (self.floor_before, self.floor_decay))
        ceps = ly @ self.dct - self.ceps_offset  # B, T, bands
        hist = torch.cat([state.ceps, ceps], dim=1)  # B, M - 1 + T, bands
        m = cfg.ceps_memory
        c0 = ceps[..., :nd]
        c1 = hist[:, m - 2 : -1, :nd]  # one frame back
        c2 = hist[:, m - 3 : -2, :nd]  # two frames back
        variability = spectral_variability(hist, m, self.self_pairs) - 2.1  # B, T
        features = torch.cat([
            c0 + c1 + c2, ceps[..., nd:], c0 - c2, c0 - 2 * c1 + c2, pcorr,
            pitch_feat[..., None], variability[..., None],
        ], dim=-1)  # B, T, n_features
        new_history = sig[:, -h_len:]
        if cfg.release_memory:
            mem = [hp_mem if cfg.highpass else memory[:, :4]]
            if cfg.pitch_method == "opus":
                mem += [last_period[:, None].to(sig.dtype), last_gain[:, None]]
            else:
                mem.append(memory[:, 4:])
            new_history = torch.cat([new_history, *mem], dim=-1)
        new_state = state._replace(history=new_history, ola=y[:, -1, hop:],
                                   ceps=hist[:, -(m - 1) :])
        return RNNoiseFeatures(features, ex, ep, exp, ps, period, xs), new_state

    def _highpass(self, exact: torch.Tensor, newest: torch.Tensor, mem: torch.Tensor
                  ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """The release's input biquad over the rebuilt hops: ``exact (B, T, hop)`` (hop ``t - 1``
        of each frame, which carries the filter on) and ``newest (B, T, hop)`` (hop ``t``,
        filtered from the memory after hop ``t - 1`` but not carried on); ``mem (B, 4)``: the two
        filter memories as float64 values split into float32 high and low parts
        ``[m0_hi, m1_hi, m0_lo, m1_lo]``.

        The products run in float64, as the C code's recursion does (the poles at radius 0.998
        make a float32 product drift by about one int16 step over a second), and the memories
        keep float64 precision between calls (rounded to float32, a one-ulp difference between
        two runtimes would echo through the poles for a frame)."""
        hop, dtype = self.config.hop_length, exact.dtype
        m = self.highpass
        mem64 = mem[:, :2].to(m.dtype) + mem[:, 2:].to(m.dtype)  # B, 2
        outs, news = [], []
        for t in range(exact.shape[1]):  # a recursion: one small product per frame
            out = torch.cat([exact[:, t].to(m.dtype), mem64], dim=-1) @ m  # B, hop + 2
            mem64 = out[:, hop:]
            outs.append(out[:, :hop].to(dtype))
            new = torch.cat([newest[:, t].to(m.dtype), mem64], dim=-1) @ m[:, :hop]
            news.append(new.to(dtype))
        hi = mem64.to(dtype)
        lo = (mem64 - hi.to(m.dtype)).to(dtype)
        return torch.stack(outs, 1), torch.stack(news, 1), torch.cat([hi, lo], dim=-1)

    # ---------------------------------------------------------------- network
    def forward(self, spec: torch.Tensor) -> torch.Tensor:
        """Enhance a whole spectrogram from zero state.

        Args:
            spec: ``(B, F, T, 2)`` noisy STFT (real, imaginary), ``F = hop + 1``.

        Returns:
            ``(B, F, T, 2)`` enhanced STFT.
        """
        return self.forward_with_gains(spec).spec

    def forward_stateful(self, spec: torch.Tensor, state: RNNoiseState | None
                         ) -> tuple[torch.Tensor, RNNoiseState]:
        """``forward`` that starts from ``state`` (``None`` = zeros) and returns the final state."""
        out = self.forward_with_gains(spec, state)
        return out.spec, out.state

    def forward_with_vad(self, spec: torch.Tensor, state: RNNoiseState | None = None
                         ) -> tuple[torch.Tensor, torch.Tensor, RNNoiseState]:
        """Like :meth:`forward_stateful`, also returning the VAD head's output ``(B, T)`` in [0, 1].

        Returns:
            ``(enhanced (B, F, T, 2), vad (B, T), next RNNoiseState)``.
        """
        out = self.forward_with_gains(spec, state)
        return out.spec, out.vad, out.state

    def step(self, frame: torch.Tensor, state: RNNoiseState, *, return_vad: bool = False):
        """Process one frame: ``frame (B, F, 2)`` -> ``(out (B, F, 2), next state)``, or
        ``(out, next state, vad (B,))`` with ``return_vad``."""
        out = self.forward_with_gains(frame.unsqueeze(2), state)
        if return_vad:
            return out.spec.squeeze(2), out.state, out.vad[:, 0]
        return out.spec.squeeze(2), out.state

    def forward_with_gains(self, spec: torch.Tensor, state: RNNoiseState | None = None
                           ) -> RNNoiseOutput:
        """Enhance ``spec (B, F, T, 2)`` and return the band gains and VAD of every frame."""
        cfg = self.config
        if spec.ndim != 4 or spec.shape[1] != cfg.n_freqs or spec.shape[-1] != 2:
            raise ValueError(f"expected spec (B, {cfg.n_freqs}, T, 2), got {tuple(spec.shape)}")
        if state is None:
            state = self.initial_state(spec.shape[0], spec.device, spec.dtype)
        feats, state = self.extract_features(spec, state)
        gains, vad, state = self._network(feats.features, state)
        xs = feats.spec  # B, T, 2, F
        if cfg.use_pitch_filter:
            xs = self._pitch_filter(xs, feats, gains)
        applied = self._decay_limit(gains, state.gains)  # B, T, bands
        ys = xs * self._interp(applied)[:, :, None]  # B, T, 2, F
        out = ys.permute(0, 3, 1, 2)  # B, F, T, 2
        return RNNoiseOutput(out, gains, vad, state._replace(gains=applied[:, -1]))

    def _network(self, feats: torch.Tensor, state: RNNoiseState):
        """``(B, T, n_features)`` -> ``(gains (B, T, bands), vad (B, T), state)``."""
        dense = self._tanh(self.input_dense(feats))  # B, T, 24
        vad_seq, vad_h = self.vad_gru(dense, state.vad_h)  # B, T, 24
        vad = self._sigmoid(self.vad_output(vad_seq))[..., 0]  # B, T
        noise_seq, noise_h = self.noise_gru(torch.cat([dense, vad_seq, feats], -1), state.noise_h)
        den_in = torch.cat([vad_seq, noise_seq, feats], -1)
        den_seq, den_h = self.denoise_gru(den_in, state.denoise_h)
        gains = self._sigmoid(self.denoise_output(den_seq))  # B, T, bands
        return gains, vad, state._replace(vad_h=vad_h, noise_h=noise_h, denoise_h=den_h)

    def _pitch_filter(self, xs: torch.Tensor, f: RNNoiseFeatures, g: torch.Tensor
                      ) -> torch.Tensor:
        """RNNoise ``pitch_filter`` on ``xs (B, T, 2, F)``: add the pitch-delayed spectrum where
        the pitch correlation exceeds what the gain implies, then restore each band's energy."""
        g2, e2 = g.square(), f.exp.square()
        r = (e2 * (1 - g2) / (0.001 + g2 * (1 - e2))).clamp(1e-12, 1.0).sqrt()
        r = torch.where(f.exp > g, torch.ones_like(r), r) * torch.sqrt(f.ex / (1e-8 + f.ep))
        xf = xs + self._interp(r)[:, :, None] * f.pitch_spec  # B, T, 2, F
        new_e = self._band(xf.square().sum(-2)) * self._feat_scale**2
        return xf * self._interp(torch.sqrt(f.ex / (1e-8 + new_e)))[:, :, None]

    def _decay_limit(self, g: torch.Tensor, last: torch.Tensor) -> torch.Tensor:
        """``g_t <- max(g_t, a g_{t-1})`` over frames, as a cumulative maximum in the log domain
        (float64): ``log g_t = t log a + max_{s <= t} (log g_s - s log a)``, ``s = -1`` being the
        state."""
        a = self.config.gain_decay
        if a <= 0:
            return g
        if g.shape[1] == 1:  # one frame (the streaming step, also in ONNX): the recursion itself
            return torch.maximum(g, a * last[:, None])
        la = math.log(a)
        t = g.shape[1]
        logs = torch.cat([last[:, None], g], dim=1).double().clamp_min(1e-30).log()  # B, 1+T, bands
        s = torch.arange(-1, t, device=g.device, dtype=torch.float64)[:, None]  # 1 + T, 1
        peak = (logs - s * la).cummax(dim=1).values
        return (peak + s * la)[:, 1:].exp().to(g.dtype)


def mac_counters() -> dict[type, object]:
    """Counters for :func:`denoisezoo.profile.count_macs` (convention of that module: one MAC or
    elementwise operation counts 1; the frame DFTs are matrix products and count as such)."""

    def gru(m: KerasGRU, inp, out) -> int:
        x = inp[0]
        b, t = x.shape[0], x.shape[1]
        n, i = m.hidden_size, m.input_size
        return b * t * (3 * n * (i + n) + 3 * n + 8 * n)  # products, bias, gate arithmetic

    def pitch(m: PitchSearch, inp, out) -> int:
        rows = inp[0].numel() // m.length
        lags_d = m.n_lags_d
        per_row = (m.length_d * m.taps  # decimation filter
                   + 2 * lags_d * m.win_d + 4 * lags_d  # coarse correlations, energies, norm
                   + 2 * m.n_fine * m.win + m.win + 4 * m.n_fine)  # full-rate candidates
        return rows * per_row

    def opus_pitch(m: OpusPitch, inp, out) -> int:
        rows = inp[0].numel() // m.length
        half_len = m.length // 2
        per_row = (half_len * (4 + 5 + 10)  # decimation, autocorrelation, whitening FIR
                   + 2 * m.n_lags4 * m.win4  # coarse correlations and energies
                   + 2 * 17 * m.win2  # 2x-decimated neighbourhoods and refinement
                   + 2 * 59 * m.win2 + m.win2 + 30 * 14)  # sub-multiples, offsets, choice
        return rows * per_row

    def model(m: RNNoise, inp, out) -> int:
        spec = inp[0]
        b, f, t, _ = spec.shape
        cfg = m.config
        n, nb = cfg.n_fft, cfg.n_bands
        recon = m.dft.macs + 3 * n  # inverse DFT, two windowings, overlap-add
        delayed = n + m.dft.macs  # delayed frame: windowing + DFT
        bands = 3 * (2 * f * nb + 2 * f) + 4 * nb  # Ex, Ep, Exp + normalisation
        floor = 2 * nb * (nb + 1) + 2 * nb  # two max-plus products of the log floor
        ceps = 2 * nb * nb + 6 * nb + floor + cfg.ceps_memory**2 * nb * 3 + 8 * cfg.num_deltas
        dense_act = cfg.dense_size + 1 + nb  # tanh / sigmoid of the dense layers
        filt = (12 * nb + 2 * f * nb + 4 * f  # r, interpolation, X + r P
                + 2 * f * nb + 2 * f + 3 * nb + f * nb + 2 * f) if cfg.use_pitch_filter else 0
        gains = 4 * nb + f * nb + 2 * f  # decay limit, interpolation, complex scaling
        # input high-pass (two hop products) and the filtered frame's windowing + DFT
        hp = 2 * (cfg.hop_length + 2) ** 2 + n + m.dft.macs if cfg.highpass else 0
        return b * t * (recon + delayed + bands + ceps + dense_act + filt + gains + hp)

    return {KerasGRU: gru, PitchSearch: pitch, OpusPitch: opus_pitch, RNNoise: model}
