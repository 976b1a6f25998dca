"""INT8 post-training quantization of the streaming step with ONNX Runtime (a real INT8 path).

Pipeline (:func:`quantize_step`):

1. BatchNorm is folded into the preceding conv / transposed conv (:func:`fold_batchnorm`), so
   that each quantized conv is followed by its activation, not by a float BatchNorm.
2. The folded model's one-frame ``step`` is exported with
   :func:`denoisezoo.streaming.export_onnx` (inputs ``frame`` + state, outputs ``out`` + state).
3. Calibration feeds are real: the float model is run over calibration audio and every frame is
   recorded together with the recurrent / cache state the model had when it reached that frame
   (:func:`calibration_feeds`).
4. ``mode="static"``: ONNX Runtime QDQ static quantization: weights per output channel as UINT8
   with a zero point by default (``weights``, see :data:`WEIGHT_TYPES`: exact on every x86 CPU;
   signed INT8 weights are exact only with VNNI, since the older uint8 x int8 kernel saturates
   pairs of products at int16), activations UINT8 asymmetric per tensor with MinMax (or
   percentile / entropy) ranges from the feeds, for ``Conv``, ``ConvTranspose``, ``MatMul`` and
   ``Gemm``.
   ``mode="dynamic"``: ONNX Runtime dynamic quantization (8-bit weights, activation ranges
   computed per call; ``MatMul`` / ``Gemm`` / ``Conv``) needing no calibration.
   ``mode="mixed"``: static QDQ for ``MatMul`` / ``Gemm`` (their inputs are bounded: GRU
   outputs, LayerNorm'd features) and dynamic for ``Conv``. Why: GTCRN's conv activations scale
   with the input level, which varies by 40 dB and more between frames, so one calibrated
   per-tensor range quantizes quiet frames to a few levels (measured on 4 dev clips: static
   convs cost 10-50 % relative output error, calibrated MatMuls alone 0.2-0.6 %).
   ``ConvTranspose`` has no dynamic kernel and stays float in that mode.

Mixed precision (kept float on purpose, recorded in the sidecar): the ERB band merge at the input
and the ERB band split that produces the complex mask (root-scope ``MatMul`` nodes), the first
encoder conv and the last decoder conv (``gtcrn.family``), every ``GRU`` (ONNX Runtime
has no INT8 GRU kernel, static or dynamic), and all state tensors (they are graph inputs/outputs
that never pass through a quantize node, so the recurrent and cache states stay float).

RNNoise port (:class:`~denoisezoo.rnnoise_port.RNNoise`; each family's float keep-list is its
``Family.int8_keep_float``):
its step graph has no conv; the quantized nodes are the learned ``MatMul`` s (input dense layer,
the three Keras GRUs' input and recurrent products, output dense layer). The DSP front end stays
float: the root-scope band / DCT / log-floor matrices, the frame DFTs (``/dft/*``) and the pitch
search correlations (``/pitch/*``). Their inputs follow the signal level, and a calibrated range
wrecks quiet input (measured on ``rnnoise_16k``, a speech-like clip at -30 dB: static with the
pitch correlations quantized 91 % relative output error, with the whole front end float 8 %).
``mode="mixed"`` equals ``"static"`` there (no ``Conv`` for the dynamic part).

The result is an ``.onnx`` file plus the usual JSON sidecar with a ``compression`` record; it runs
in :class:`~denoisezoo.streaming.OnnxStepModel` / :class:`~denoisezoo.streaming.Streamer`
like any exported step.
"""

from __future__ import annotations

import copy
import fnmatch
import json
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from denoisezoo.dsp.stft import stft
from denoisezoo.export.calibration import calibration_feeds, load_calibration_audio
from denoisezoo.export.onnx import export_onnx, export_paths
from denoisezoo.hub import family_of
from denoisezoo.streaming.onnx_runtime import OnnxStepModel

__all__ = ["QUANT_OPS", "fold_batchnorm",
           "calibration_feeds", "default_keep_float", "quantize_step", "quantizable_nodes",
           "load_calibration_audio"]

QUANT_OPS = ("Conv", "ConvTranspose", "MatMul", "Gemm")
MODES = ("static", "dynamic", "mixed")
# weight encodings: uint8 asymmetric (zero point per channel; exact on every x86 CPU), int8
# symmetric full range (exact only on CPUs with VNNI or ARM
# dot-product kernels: x86 without VNNI multiplies uint8 x int8 with vpmaddubsw, which saturates
# pairs of products at int16), int8 on ONNX Runtime's reduced 7-bit range [-64, 64] (exact
# everywhere, but coarser)
WEIGHT_TYPES = ("uint8", "int8", "int8_7bit")


def default_keep_float(model: nn.Module) -> tuple[str, ...]:
    """The node-name patterns kept float by default for ``model``'s family
    (:attr:`denoisezoo.family.Family.int8_keep_float`)."""
    return family_of(model).int8_keep_float


# ------------------------------------------------------------------------------- BN folding
def _fold_conv_bn(conv: nn.Module, bn: nn.BatchNorm2d) -> None:
    scale = bn.weight / torch.sqrt(bn.running_var + bn.eps)  # (out,)
    shift = bn.bias - bn.running_mean * scale
    w = conv.weight
    out_ch = scale.numel()
    if isinstance(conv, nn.ConvTranspose2d):
        g = conv.groups
        w5 = w.reshape(g, w.shape[0] // g, w.shape[1], *w.shape[2:])  # g, in/g, out/g, kh, kw
        w5 = w5 * scale.reshape(g, 1, out_ch // g, 1, 1)
        new_w = w5.reshape_as(w)
    else:
        new_w = w * scale.reshape(-1, 1, 1, 1)
    bias = conv.bias if conv.bias is not None else torch.zeros(out_ch)
    conv.weight = nn.Parameter(new_w.detach())
    conv.bias = nn.Parameter((bias * scale + shift).detach())


@torch.no_grad()
def fold_batchnorm(model: nn.Module) -> nn.Module:
    """A copy of ``model`` with every eval-mode BatchNorm of its family's ``conv_bn_pairs``
    folded into the conv before it (GTCRN; nothing for RNNoise)."""
    m = copy.deepcopy(model).eval()
    for parent, conv, bn in family_of(m).conv_bn_pairs(m):
        _fold_conv_bn(getattr(parent, conv), getattr(parent, bn))
        setattr(parent, bn, nn.Identity())
    return m


def _reader(feeds: list[dict[str, np.ndarray]]):
    from onnxruntime.quantization import CalibrationDataReader

    class _Feeds(CalibrationDataReader):
        def __init__(self) -> None:
            self._it = iter(feeds)

        def get_next(self):
            return next(self._it, None)

        def rewind(self) -> None:
            self._it = iter(feeds)

    return _Feeds()


# ------------------------------------------------------------------------------- quantization
def quantizable_nodes(onnx_path: str | Path) -> list[tuple[str, str]]:
    """``(name, op_type)`` of the nodes of :data:`QUANT_OPS` in graph order."""
    import onnx

    g = onnx.load(str(onnx_path)).graph
    return [(n.name, n.op_type) for n in g.node if n.op_type in QUANT_OPS]


def _grouped_deconv_overrides(onnx_path: str | Path, symmetric: bool
                              ) -> dict[str, list[dict[str, Any]]]:
    """Weight-scale axes for grouped ``ConvTranspose`` (ONNX Runtime assumes axis 1 = output
    channels, true only for ``group == 1``): depthwise ones (one output per group) get per-channel
    scales on axis 0, other grouped ones per-tensor scales."""
    import onnx
    from onnx import numpy_helper

    g = onnx.load(str(onnx_path)).graph
    inits = {i.name: numpy_helper.to_array(i).shape for i in g.initializer}
    out: dict[str, list[dict[str, Any]]] = {}
    for n in g.node:
        if n.op_type != "ConvTranspose":
            continue
        group = next((a.i for a in n.attribute if a.name == "group"), 1)
        shape = inits.get(n.input[1])
        if group == 1 or shape is None:
            continue
        out[n.input[1]] = ([{"axis": 0, "symmetric": symmetric}] if shape[1] == 1
                           else [{"symmetric": symmetric}])
    return out


def _resolve_keep_float(nodes: Sequence[tuple[str, str]], patterns: Sequence[str],
                        model: nn.Module) -> list[str]:
    last = len(getattr(getattr(model, "decoder", None), "de_convs", [])) - 1
    pats = [p.replace("{last}", str(last)) for p in patterns]
    return [n for n, _ in nodes if any(fnmatch.fnmatchcase(n, p) for p in pats)]


def quantize_step(model: nn.Module, output: str | Path, calibration: Sequence[np.ndarray] | None,
                  *, mode: str = "static", keep_float: Sequence[str] | None = None,
                  per_channel: bool = True, calibrate_method: str = "minmax",
                  max_frames: int = 2000, weights: str = "uint8", overwrite: bool = False,
                  name: str | None = None,
                  source: str | None = None, extra_record: dict[str, Any] | None = None
                  ) -> dict[str, Any]:
    """Write an INT8 ONNX Runtime model of ``model.step`` (see the module docstring).

    Args:
        model: a float GTCRN (e.g. pruned, or QAT-fine-tuned and stripped) or RNNoise port.
        output: the ``.onnx`` file; the sidecar goes beside it (``.json``).
        calibration: waveforms at the model rate (``mode="static"``; ignored for dynamic).
        mode: ``"static"`` (QDQ, calibrated), ``"dynamic"`` or ``"mixed"`` (static QDQ for
            ``MatMul`` / ``Gemm``, dynamic for ``Conv``; see the module docstring).
        keep_float: ONNX node-name patterns left in float (``{last}``: last decoder block);
            ``None``: :func:`default_keep_float` of the model's family.
        per_channel: per-output-channel weight scales.
        calibrate_method: ``"minmax"``, ``"percentile"`` or ``"entropy"``.
        max_frames: calibration frames used.
        weights: weight encoding, one of :data:`WEIGHT_TYPES`: ``"uint8"`` (default; per channel
            with a zero point) gives the same output on every CPU; with ``"int8"`` the same file
            gave 0.4-0.9 % relative output error on ``rnnoise_tiny`` on a machine with AVX512-VNNI
            and 6.5 % on our CI machine (and on qemu's Haswell); ``"int8_7bit"`` is exact
            everywhere but coarser. Dev-set PESQ-wb change of the official GTCRN DNS3 model,
            mixed mode, measured on a VNNI machine: uint8 -0.027, int8 +0.016, int8_7bit -0.045
            (``benchmarks/results/compression_gtcrn_int8_weights.md``).
        overwrite: replace existing files (else ``FileExistsError``).
        name: model name in the sidecar.
        source: where the float model came from (recorded).
        extra_record: more fields for the ``compression`` record (e.g. QAT details).

    Returns:
        The sidecar metadata (also on disk), with ``compression`` describing what was done and
        ``check_max_abs_diff`` / ``check_rel_err`` against the float model on calibration frames.
    """
    from onnxruntime.quantization import (
        CalibrationMethod,
        QuantFormat,
        QuantType,
        quantize_dynamic,
        quantize_static,
    )

    output, side = export_paths(output, ".onnx", overwrite)
    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
    if weights not in WEIGHT_TYPES:
        raise ValueError(f"weights must be one of {WEIGHT_TYPES}, got {weights!r}")
    if mode in ("static", "mixed") and not calibration:
        raise ValueError("static quantization needs calibration audio")
    methods = {"minmax": CalibrationMethod.MinMax, "percentile": CalibrationMethod.Percentile,
               "entropy": CalibrationMethod.Entropy}
    if calibrate_method not in methods:
        raise ValueError(f"calibrate_method must be one of {sorted(methods)}")
    model = model.eval()
    family = family_of(model)
    if keep_float is None:
        keep_float = default_keep_float(model)
    folded = fold_batchnorm(model)
    feeds = calibration_feeds(model, calibration, max_frames) if calibration else []
    with tempfile.TemporaryDirectory(prefix="denoisezoo_q_") as tmp:
        fpath = Path(tmp) / "float.onnx"
        meta = export_onnx(folded, fpath, name=name)
        nodes = quantizable_nodes(fpath)
        excluded = _resolve_keep_float(nodes, keep_float, model)
        qpath = Path(tmp) / "int8.onnx"
        w_type = QuantType.QUInt8 if weights == "uint8" else QuantType.QInt8
        w_sym = weights != "uint8"
        reduce_range = weights == "int8_7bit"
        if mode in ("static", "mixed"):
            static_ops = list(QUANT_OPS) if mode == "static" else ["MatMul", "Gemm"]
            spath = Path(tmp) / "static.onnx" if mode == "mixed" else qpath
            quantize_static(
                str(fpath), str(spath), _reader(feeds), quant_format=QuantFormat.QDQ,
                op_types_to_quantize=static_ops, per_channel=per_channel,
                reduce_range=reduce_range, activation_type=QuantType.QUInt8,
                weight_type=w_type, nodes_to_exclude=excluded,
                calibrate_method=methods[calibrate_method],
                extra_options={"ActivationSymmetric": False, "WeightSymmetric": w_sym,
                               "TensorQuantOverrides": _grouped_deconv_overrides(fpath, w_sym)})
            if mode == "mixed":  # then the level-dependent convs with per-call ranges
                quantize_dynamic(str(spath), str(qpath), op_types_to_quantize=["Conv"],
                                 per_channel=per_channel, reduce_range=reduce_range,
                                 weight_type=w_type, nodes_to_exclude=excluded,
                                 extra_options={"WeightSymmetric": w_sym})
        else:
            quantize_dynamic(str(fpath), str(qpath), op_types_to_quantize=["MatMul", "Gemm", "Conv"],
                             per_channel=per_channel, reduce_range=reduce_range,
                             weight_type=w_type, nodes_to_exclude=excluded,
                             extra_options={"WeightSymmetric": w_sym})
        output.parent.mkdir(parents=True, exist_ok=True)
        part = output.with_name(output.name + ".part")
        part.write_bytes(qpath.read_bytes())
        part.replace(output)
    ops = {"static": QUANT_OPS, "dynamic": ("MatMul", "Gemm", "Conv"),
           "mixed": ("MatMul", "Gemm", "Conv")}[mode]
    quantized = [n for n, op in nodes if n not in excluded and op in ops]
    record = {
        "method": f"int8_{mode}",
        "backend": "onnxruntime",
        "format": {"static": "QDQ", "dynamic": "integer ops",
                   "mixed": "QDQ (MatMul/Gemm) + integer ops (Conv)"}[mode],
        "weights": ({"uint8": "uint8 with zero point (exact on every x86 CPU)",
                     "int8": "int8 symmetric, full range (exact only with VNNI / ARM dot product)",
                     "int8_7bit": "int8 symmetric, 7-bit range [-64, 64]"}[weights]
                    + (" per output channel" if per_channel else " per tensor")),
        "weight_type": weights,
        "activations": {
            "static": f"uint8 asymmetric per tensor, calibrated {calibrate_method}",
            "dynamic": "uint8, ranges computed per call",
            "mixed": f"MatMul/Gemm inputs uint8 calibrated {calibrate_method}; Conv inputs "
                     "uint8 with ranges computed per call"}[mode],
        "float_op_types": list(family.int8_float_ops)
        + (["ConvTranspose"] if mode != "static" and family.conv_bn_pairs(model) else []),
        "calibration_frames": len(feeds),
        "calibration_clips": len(calibration) if calibration else 0,
        "quantized_nodes": quantized,
        "float_nodes": excluded,
        "states": "float",
        "source": source,
        **(extra_record or {}),
    }
    meta["compression"] = record
    meta["name"] = name or meta.get("name")
    # deviation from the float model on (a subset of) the calibration frames, run as a stream
    if calibration:
        onnx_model = OnnxStepModel(output, meta=meta)
        wav = torch.as_tensor(calibration[0][: 3 * model.geometry.sample_rate])[None]
        spec = stft(wav, model.geometry)
        with torch.inference_mode():
            ref = model.forward_stateful(spec, None)[0]
        got = onnx_model.forward_stateful(spec, None)[0]
        meta["check_frames"] = int(spec.shape[2])
        meta["check_max_abs_diff"] = float((ref - got).abs().max())
        meta["check_rel_err"] = float((ref - got).norm() / ref.norm().clamp_min(1e-12))
    side.write_text(json.dumps(meta, indent=2) + "\n")
    return meta
