"""INT8 / int16x8 quantization of an exported LiteRT step with ``ai-edge-quantizer``.

``int8=True`` quantizes the float file with ``ai-edge-quantizer``: int8 weights per output
channel, activations per tensor with ranges calibrated (true min/max) on real frames and states
recorded by running the float model over calibration audio. Every op runs in integer except
those the quantizer does not support, which it wraps in dequantize/quantize: for GTCRN the 4
``REVERSE_V2`` of the backward intra-frame GRUs and, with int16 activations, the 4
``SQUARED_DIFFERENCE`` of the LayerNorms (the sidecar lists them under ``float_ops``).
``activation_bits=8`` (precision ``"int8"``, recipe ``static_wi8_ai8``): int8 activations and
int8 I/O; ``activation_bits=16`` (``"int16x8"``, ``static_wi8_ai16``): int16 activations and
I/O; there, every ADD / SUB is set to general int16 rescaling (``pot_scale_int16`` off: with it
on, the interpreter refuses GTCRN's GRU ``1 - z`` once calibration saturates the hidden state,
see :func:`_general_int16_add_sub`). The I/O tensors (frame, states, out) carry their own scale
and zero point; :class:`LiteRTStepModel` quantizes and dequantizes at the boundary, so its
interface stays float. The deviation from PyTorch is measured and stored in the sidecar (``check_rel_err``).
Measured here on the official GTCRN (DNS3) over the 6 s example clip (376 frames, calibrated on
100 frames of it): relative spectral error 0.47 for int8, 0.075 for int16x8 (ONNX Runtime's
mixed INT8 with float GRUs: 0.105). Giving int16 activations to one op family only (fully
connected, or convolutions, or the GRU elementwise ops) leaves int8 above 0.44: int8 activations
are too coarse for GTCRN throughout, and int16x8 is the usable integer variant.

The RNNoise port's step is mostly feature DSP; only its network is quantized
(its family's ``litert_quant_scope``: input dense, GRUs, output dense, int8 weights), the DSP stays float and
the I/O is float except the GRU states and gains. Relative spectral error vs PyTorch: rnnoise_tiny
0.021 (int8) / 0.0042 (int16x8) on held-out speech-like audio; a 16 kHz checkpoint in training
(runs/rnnoise_16k, 200 calibration frames of 4 dev speech + noise mixes at 5 dB, 4 other mixes
held out) 0.029 / 0.0043. The file hardly shrinks (the DSP's DFT matrices stay float32).
"""

from __future__ import annotations

import contextlib
import io
import time
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from denoisezoo.streaming.litert_runtime import (
    EXTRA_HINT,
    SIGNATURE,
    LiteRTUnavailableError,
    require_interpreter,
)

__all__ = ["quantize_tflite"]


def _tflite_feeds(feeds: Sequence[dict[str, np.ndarray]], names: Sequence[str],
                  tfl_names: Sequence[str]) -> list[dict[str, np.ndarray]]:
    return [{t: np.asarray(f[n], np.float32) for n, t in zip(names, tfl_names, strict=True)}
            for f in feeds]


def quantize_tflite(float_path: str | Path, output: str | Path,
                    feeds: Sequence[dict[str, np.ndarray]], names: Sequence[str],
                    activation_bits: int = 8, threads: int = 1,
                    scope: str | None = None) -> dict[str, Any]:
    """Full-integer post-training quantization of a float step ``.tflite``.

    ``activation_bits=8``: ``static_wi8_ai8`` (int8 weights per output channel, int8 activations
    and I/O per tensor); ``16``: ``static_wi8_ai16`` (int8 weights, int16 symmetric activations
    and I/O). Activation ranges are the true min/max over the calibration frames
    (ai-edge-quantizer's default, a moving average of per-frame min/max, under-estimates the
    ranges of a spectral model, whose loud frames are rare, and clips them).

    Args:
        float_path: float model written by :func:`export_tflite`.
        output: the quantized ``.tflite`` (no sidecar written here).
        feeds: calibration inputs ``{"frame": (1, F, 2), <state name>: ...}`` (float), e.g. from
            :func:`denoisezoo.export.calibration.calibration_feeds`.
        names: input names in graph order (``["frame", *state names]``).
        activation_bits: 8 or 16.
        threads: calibration threads.
        scope: quantize only the ops whose output tensor name matches this regex (the others
            stay float, with quantize / dequantize at the boundary, I/O float if the boundary
            ops are float); ``None``: every op the quantizer supports (full-integer I/O). See
            its family's ``litert_quant_scope``.

    Returns:
        The ``compression`` record for the sidecar.
    """
    try:
        import ai_edge_quantizer
        from ai_edge_quantizer import calibrator, quantizer, recipe, recipe_manager
        from ai_edge_quantizer.utils import qsv_utils
    except ImportError as exc:
        raise LiteRTUnavailableError(f"INT8 needs ai-edge-quantizer; {EXTRA_HINT}") from exc
    if activation_bits not in (8, 16):
        raise ValueError(f"activation_bits must be 8 or 16, got {activation_bits}")
    if not feeds:
        raise ValueError("INT8 quantization needs calibration frames")
    tfl_names = [f"args_{i}" for i in range(len(names))]
    rcp = recipe.static_wi8_ai8() if activation_bits == 8 else recipe.static_wi8_ai16()
    if scope is not None:
        rcp = [{**r, "regex": scope} for r in rcp]
    rm = recipe_manager.RecipeManager()
    rm.load_quantization_recipe(rcp)
    t0 = time.perf_counter()
    data = {SIGNATURE: _tflite_feeds(feeds, names, tfl_names)}
    with contextlib.redirect_stderr(io.StringIO()), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # tqdm bars (ignore TQDM_DISABLE), preserve-tensors notice
        cal = calibrator.Calibrator(Path(float_path).read_bytes(), num_threads=threads,
                                    mode=calibrator.CalibrationMode.CALIBRATION_PROFILER_BASED,
                                    qsv_update_func=qsv_utils.min_max_update)
        cal.calibrate(data, rm)
        q = quantizer.Quantizer(str(float_path))
        q.load_quantization_recipe(rcp)
        result = q.quantize(cal.get_model_qsvs(), enable_progress_report=False)
    data, general_ops = _repair_quantized(bytes(result.quantized_model), activation_bits == 16)
    output = Path(output)
    part = output.with_name(output.name + ".part")
    part.write_bytes(data)
    part.replace(output)
    io_type = "int8" if activation_bits == 8 else "int16"
    float_ops = _float_ops(output)
    int_in, int_out = _integer_io(output, names)
    full_io = len(int_in) == len(names) and len(int_out) == len(names)
    return {"method": f"static_w8a{activation_bits}", "backend": "litert",
            "recipe": f"ai-edge-quantizer static_wi8_ai{activation_bits}, true min/max ranges"
                      + (f", ops matching {scope!r} only" if scope is not None else ""),
            **({"integer_scope": scope} if scope is not None else {}),
            "weights": "int8 symmetric per output channel",
            "activations": f"{io_type} per tensor"
                           + (" (asymmetric)" if activation_bits == 8 else " (symmetric)"),
            "io": (f"{io_type} (per-tensor scale / zero point; LiteRTStepModel converts at the "
                   "boundary)") if full_io else
                  (f"{io_type} for inputs {int_in} and outputs {int_out} (LiteRTStepModel "
                   "converts at the boundary), float32 for the others"),
            "states": f"{io_type} at the graph boundary" if full_io else "mixed, see io",
            "float_ops": float_ops,
            **({"int16_add_sub_general_scale": general_ops} if activation_bits == 16 else {}),
            "calibration_frames": len(feeds),
            "calibration_seconds": round(time.perf_counter() - t0, 1),
            "ai_edge_quantizer": getattr(ai_edge_quantizer, "__version__", None)}


def _repair_quantized(data: bytes, int16: bool) -> tuple[bytes, int]:
    """Post-process ai-edge-quantizer's output (returns the model and the number of ADD / SUB
    set to general int16 rescaling, see :func:`_general_int16_add_sub`).

    * Buffers stored by offset after the flatbuffer are read into the model object
      (``read_model_from_bytearray``; packing the object of ``convert_bytearray_to_object`` drops
      them: "Constant buffer 9 specified an out of range offset").
    * Signature tensors are re-pointed at the subgraph's inputs / outputs: when an output of a
      partly quantized graph is also consumed inside it, the quantizer appends a DEQUANTIZE and
      makes its result the subgraph output but leaves the signature on the int8 tensor (the
      interpreter then returns no data for it: "Tensor data is null").
    """
    from ai_edge_litert.tools import flatbuffer_utils as fbu

    model = fbu.read_model_from_bytearray(bytearray(data))
    n = 0
    for sd in model.signatureDefs or []:
        sg = model.subgraphs[sd.subgraphIndex]
        for sig, graph in ((sd.inputs, sg.inputs), (sd.outputs, sg.outputs)):
            if len(sig) != len(graph):
                raise ValueError("signature and subgraph I/O counts differ")
            for t, idx in zip(sig, graph, strict=True):
                if t.tensorIndex != int(idx):
                    t.tensorIndex = int(idx)
                    n += 1
    general = _general_int16_add_sub(model) if int16 else 0
    if not n and not general:
        return data, 0
    for b in model.buffers:  # offset-resolved buffers are memoryviews: Pack needs arrays
        if b.data is not None and not isinstance(b.data, np.ndarray):
            b.data = np.frombuffer(bytes(b.data), np.uint8)
    return bytes(fbu.convert_object_to_bytearray(model)), general


def _integer_io(path: Path, names: Sequence[str]) -> tuple[list[str], list[str]]:
    """Names of the integer (quantized) inputs and outputs of the ``.tflite`` signature, given
    the input names in graph order (outputs are ``out`` and ``<state>_out``)."""
    Interpreter = require_interpreter()
    runner = Interpreter(model_path=str(path)).get_signature_runner(SIGNATURE)
    ins, outs = runner.get_input_details(), runner.get_output_details()
    out_names = ["out", *(f"{n}_out" for n in names[1:])]
    return ([n for i, n in enumerate(names) if ins[f"args_{i}"]["dtype"] != np.float32],
            [n for i, n in enumerate(out_names) if outs[f"output_{i}"]["dtype"] != np.float32])


def _general_int16_add_sub(model) -> int:
    """Clear ``pot_scale_int16`` on every ADD / SUB of a ``.tflite`` model object (in place;
    returns the number of ops changed).

    The converter leaves the flag at its default (true), which makes the int16 kernels take
    their power-of-two-scale path whenever all three scales happen to be powers of two, and that
    path refuses two inputs that both need a shift ("input1_shift == 0 || input2_shift == 0 was
    not true ... SUB failed to prepare"). It happens on GTCRN's GRU update ``1 - z`` once the
    calibrated hidden-state range reaches +-1 (scale 1/32767 ~ 2^-15), e.g. with 2000
    calibration frames of the official DNS3 model. Without the flag the kernels rescale in
    general form, for any scales.
    """
    from ai_edge_litert import schema_py_generated as schema
    from ai_edge_litert.tools import flatbuffer_utils as fbu

    codes = [fbu.get_builtin_code_from_operator_code(c) for c in model.operatorCodes]
    wanted = (schema.BuiltinOperator.ADD, schema.BuiltinOperator.SUB)
    n = 0
    for sg in model.subgraphs:
        for op in sg.operators:
            opts = op.builtinOptions
            if codes[op.opcodeIndex] in wanted and getattr(opts, "potScaleInt16", False):
                opts.potScaleInt16 = False
                n += 1
    return n


def _float_ops(path: Path) -> dict[str, int]:
    """Op types (and counts) of a quantized model that still compute in float32."""
    Interpreter = require_interpreter()
    it = Interpreter(model_path=str(path))
    dtypes = {d["index"]: d["dtype"] for d in it.get_tensor_details()}
    out: dict[str, int] = {}
    for op in it._get_ops_details():  # noqa: SLF001 (no public op listing in ai-edge-litert 2.3)
        name = op["op_name"]
        if name not in ("DEQUANTIZE", "DELEGATE") and any(
                dtypes.get(int(i)) == np.float32 for i in op["outputs"]):
            out[name] = out.get(name, 0) + 1
    return out
