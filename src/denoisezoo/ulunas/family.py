"""The UL-UNAS family as the rest of the package sees it (:class:`denoisezoo.family.Family`).

- Loss: the generic :class:`~denoisezoo.nn.losses.HybridLoss` (compressed complex / magnitude
  MSE + SI-SNR; the authors point to their SEtrain recipe for training, whose hybrid loss is
  this one).
- Structured pruning: none yet (``pruning=None``).
- INT8 (ONNX Runtime): kept float are the root-scope ``MatMul`` nodes (the exact window
  change and the ERB band merge / split), the first encoder block and the last decoder block
  (the log-magnitude input and the mask); GRUs, LayerNorms and the gates stay float as op types.
- MACs: :func:`_mac_counters` adds the elementwise work of the blocks, the ERB products, the
  mask and the skips to the generic counts.
- LiteRT INT8 scope: the ops of the blocks and dual-path RNNs only (LiteRT tensor names carry
  the module classes); the window change and the ERB products stay float.
- BatchNorm folding / QAT: every conv with its BatchNorm (``Unit``); QAT leaves the first and
  the last time-frequency conv in float.
"""

from __future__ import annotations

from collections.abc import Callable

from torch import nn

from denoisezoo.family import Family
from denoisezoo.nn.losses import HybridLoss
from denoisezoo.ulunas.config import ULUNASConfig
from denoisezoo.ulunas.model import DPGRNN, ULUNAS, AffinePReLU, Block, TFAttention, Unit
from denoisezoo.ulunas.presets import ULUNAS_PRESETS

__all__ = ["FAMILY"]


def _mac_counters() -> dict[type, Callable[..., int]]:
    """MACs of UL-UNAS's layers that the generic counters (conv, linear, GRU, norms) miss
    (:func:`denoisezoo.profile.count_macs`). Not counted: the exact window change at the
    boundary (four real 512-point FFTs per frame in eager code; two (514, 514) MatMuls in the
    exported step), which the authors' own pipeline does not need."""

    def affine_prelu(m, i, o):
        return 3 * o.numel()  # scale, shift, PReLU

    def attention(m, i, o):
        return 6 * i[0].numel()  # time and frequency energies (square + mean), two gates

    def block(m, i, o):
        return o[0].numel() if m.residual else 0  # the bottleneck's residual addition

    def dpgrnn(m, i, o):
        return 2 * o[0].numel()  # two residual additions

    def model(m, i, o):
        spec = i[0]  # B, F, T, 2
        b, f, t, _ = spec.shape
        cfg = m.config
        erb = 2 * b * t * (f - cfg.erb_low_bins) * cfg.erb_bands  # band merge and split
        feat_mask = b * t * f * (3 + 2)  # power + log; the real mask times Re and Im
        skips = b * t * sum(c * w for c, w in zip(cfg.channels, cfg.widths[1:], strict=True))
        return erb + feat_mask + skips

    return {AffinePReLU: affine_prelu, TFAttention: attention, Block: block, DPGRNN: dpgrnn,
            ULUNAS: model}


def _conv_bn_pairs(model: nn.Module) -> list[tuple[nn.Module, str, str]]:
    return [(m, "conv", "bn") for m in model.modules() if isinstance(m, Unit)]


def _qat_keep_float(model: ULUNAS) -> list[nn.Module]:
    return [model.encoder.en_convs[0].tf.conv, model.decoder.de_convs[-1].tf.conv]


FAMILY = Family(
    name="ulunas",
    model_cls=ULUNAS,
    config_cls=ULUNASConfig,
    presets=ULUNAS_PRESETS,
    loss=lambda model: HybridLoss(),
    pruning=None,
    int8_keep_float=("/MatMul*", "/en_convs.0/*", "/de_convs.{last}/*"),
    int8_float_ops=("GRU", "LayerNormalization", "Sigmoid", "Where"),
    litert_quant_scope=r"ulunas\.model\.(Block|DPGRNN)",
    conv_bn_pairs=_conv_bn_pairs,
    qat_keep_float=_qat_keep_float,
    mac_counters=_mac_counters,
)
