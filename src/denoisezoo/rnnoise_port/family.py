"""The RNNoise port as the rest of the package sees it (:class:`denoisezoo.family.Family`).

Structured pruning units (``kinds``; the DSP front end and the band-gain / VAD outputs stay):

- ``dense``: outputs of the input dense layer (its rows and bias; the first input rows of the VAD
  and noise GRU kernels);
- ``vad``, ``noise``, ``denoise``: hidden units of the three GRUs (gate columns ``[z, r, c]`` of
  the kernel, recurrent kernel and bias, the recurrent row, and the input rows of every consumer:
  the VAD / band-gain output layers and the next GRUs, which read ``[dense, vad, features]`` and
  ``[vad, noise, features]``); the streaming states shrink with them.

INT8 (ONNX Runtime): the step graph has no conv; the learned ``MatMul`` s are quantized (input
dense, the GRUs' input and recurrent products, output dense) and the DSP front end stays float:
the root-scope band / DCT / log-floor matrices, the frame DFTs (``/dft/*``) and the pitch
correlations (``/pitch/*``), whose inputs follow the signal level (measured on ``rnnoise_16k``,
a speech-like clip at -30 dB: static with the pitch correlations quantized 91 % relative output
error, with the whole front end float 8 %).

LiteRT INT8 quantizes only the network (input dense, the three GRUs, output dense), as RNNoise
itself does (float DSP, 8-bit weights): the feature DSP (pitch search, band energies, the log
floor's max-plus with -inf kernels, DCT, inverse DFT) has no integer form in LiteRT; quantizing it
all makes the interpreter abort in ADD (the -inf constants) and the quantizer fail on a constant
CONCATENATION input.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

from denoisezoo.family import Family, Pruning, Signal, Slice, UnitGroup
from denoisezoo.rnnoise_port.config import RNNoiseConfig
from denoisezoo.rnnoise_port.loss import RNNoiseLoss
from denoisezoo.rnnoise_port.model import RNNoise, mac_counters
from denoisezoo.rnnoise_port.presets import RNNOISE_PRESETS

__all__ = ["FAMILY", "KINDS"]

KINDS = ("dense", "vad", "noise", "denoise")

_RNN_MODULE = {"dense": "input_dense", "vad": "vad_gru", "noise": "noise_gru",
               "denoise": "denoise_gru"}


def _rnnoise_groups(model: RNNoise, kinds: Sequence[str]) -> list[UnitGroup]:
    return [UnitGroup(k, 0, _RNN_MODULE[k], ("",), getattr(model.config, f"{k}_size"))
            for k in kinds]


def _rnnoise_slices(model: RNNoise, g: UnitGroup, sub: str) -> list[Slice]:
    cfg = model.config
    d, v = cfg.dense_size, cfg.vad_size
    if g.kind == "dense":  # Linear rows; first input rows of the VAD and noise GRU kernels
        return [("input_dense.weight", 0, "unit"), ("input_dense.bias", 0, "unit"),
                ("vad_gru.kernel", 0, "out:0"), ("noise_gru.kernel", 0, "out:0")]
    gru = g.prefix  # KerasGRU: kernel (I, 3N), recurrent_kernel (N, 3N), bias (3N); gates [z, r, c]
    own = [(f"{gru}.kernel", 1, "gate"), (f"{gru}.recurrent_kernel", 1, "gate"),
           (f"{gru}.recurrent_kernel", 0, "unit"), (f"{gru}.bias", 0, "gate")]
    consumers = {  # noise reads [dense, vad, feats], denoise reads [vad, noise, feats]
        "vad": [("vad_output.weight", 1, "unit"), ("noise_gru.kernel", 0, f"out:{d}"),
                ("denoise_gru.kernel", 0, "out:0")],
        "noise": [("denoise_gru.kernel", 0, f"out:{v}")],
        "denoise": [("denoise_output.weight", 1, "unit")],
    }
    return own + consumers[g.kind]


def _rnnoise_signals(model: RNNoise, g: UnitGroup) -> list[Signal]:
    # the dense layer's pre-activation: a removed unit is a zero pre-activation (tanh(0) = 0)
    return [(getattr(model, g.prefix), "out", -1, 0)]


def _rnnoise_rebuild(model: RNNoise, groups: dict[str, UnitGroup], counts: dict[str, int]
                     ) -> RNNoise:
    sizes = {f"{groups[k].kind}_size": n for k, n in counts.items()}  # RNNoiseConfig fields
    return RNNoise(replace(model.config, **sizes))


def _loss(model: RNNoise) -> RNNoiseLoss:
    cfg = model.config
    return RNNoiseLoss(sample_rate=cfg.sample_rate, frame_ms=cfg.frame_ms,
                       band_edges_hz=tuple(cfg.band_edges_hz))


FAMILY = Family(
    name="rnnoise",
    model_cls=RNNoise,
    config_cls=RNNoiseConfig,
    presets=RNNOISE_PRESETS,
    loss=_loss,
    pruning=Pruning(KINDS, _rnnoise_groups, _rnnoise_slices, _rnnoise_signals, _rnnoise_rebuild),
    int8_keep_float=("/MatMul*", "/dft/*", "/pitch/*"),
    int8_float_ops=("MatMul (DSP front end)", "Gather", "Sigmoid", "Tanh", "Relu"),
    litert_quant_scope=r"KerasGRU_|Linear_(input_dense|vad_output|denoise_output)",
    mac_counters=mac_counters,
    legacy_names=("RNNoise",),
)
