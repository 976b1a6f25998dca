"""LiteRT (TFLite) export of a streamable model's ``step`` and a LiteRT backend for :class:`Streamer`.

The ``.tflite`` file holds the same one-frame step as the ONNX export, with every state tensor as
an explicit input and output (batch 1)::

    inputs:  frame (1, F, 2), then the state tensors in the model's state order
             (GTCRN: conv (1, C, L, W), tra (2 n_blocks, 1, C), rnn (n_dual_path, 1, W, C))
    outputs: out (1, F, 2), then the next state tensors in the same order

LiteRT names them ``args_0 ...`` / ``output_0 ...``; the JSON sidecar beside the file (same stem,
``.json``, as for ONNX) maps them to ``frame``, ``conv`` ... ``out``, ``conv_out`` ..., and records
the geometry, the state batch axes, the converter versions and the check against PyTorch.

Conversion route and environments
---------------------------------
``litert-torch`` (formerly ``ai-edge-torch``) converts the PyTorch module itself (``torch.export``
-> MLIR -> flatbuffer, no TensorFlow). It cannot be installed beside the main environment's
packages: ``litert-torch==0.10.0`` needs ``litert-converter==0.5.*`` and
``ai-edge-litert[model-utils]``, both of which pin ``xdsl==0.28.0``, which pins
``typing-extensions<4.13`` (so pip would downgrade ``typing-extensions`` 4.15 -> 4.12.2 and
``pydantic`` 2.13 -> 2.11); its ``transformers`` dependency also moves ``click`` and ``idna``.
The conversion therefore runs in a separate *converter environment*, in a subprocess::

    python -m venv --system-site-packages ~/.cache/denoisezoo/litert-converter
    ~/.cache/denoisezoo/litert-converter/bin/pip install "litert-torch==0.10.*"
    export DENOISEZOO_LITERT_PYTHON=~/.cache/denoisezoo/litert-converter/bin/python

(``--system-site-packages`` reuses this environment's torch; pip shadows the pinned packages
inside the venv only.) If ``litert_torch`` imports in the current process, it is used directly.

Everything else runs in this environment with the ``litert`` extra
(``pip install denoisezoo[litert]``: ``ai-edge-litert``, the interpreter, and
``ai-edge-quantizer``), which adds packages without changing any installed one.
``onnx2tf`` (the ONNX -> TFLite route) is no alternative here: its last Python 3.11 release
(1.29.24) pins numpy 1.26.4, onnx 1.19.1, onnxruntime 1.23.0, protobuf 4.25.5 and tensorflow 2.19.

Graph rewrite for the converter
-------------------------------
litert-torch 0.10 lowers a transposed convolution only without padding (GTCRN's stride-2
decoder convs fail with "failed to legalize operation 'mhlo.convolution'", its dilated depthwise
ones with "invalid tensor dimension size"). While tracing, :class:`ExactConvTranspose` replaces
each ``conv_transpose2d`` call with the same arithmetic in supported form: stride 1 -> ``conv2d``
with the kernel flipped and its in/out axes swapped; strided -> unpadded transposed conv, then
the padding cropped. The model itself is untouched (one network).

INT8
----
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
(:data:`QUANT_SCOPES`: input dense, GRUs, output dense, int8 weights), the DSP stays float and
the I/O is float except the GRU states and gains. Relative spectral error vs PyTorch: rnnoise_tiny
0.021 (int8) / 0.0042 (int16x8) on held-out speech-like audio; a 16 kHz checkpoint in training
(runs/rnnoise_16k, 200 calibration frames of 4 dev speech + noise mixes at 5 dB, 4 other mixes
held out) 0.029 / 0.0043. The file hardly shrinks (the DSP's DFT matrices stay float32).
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import subprocess
import sys
import tempfile
import time
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.overrides import TorchFunctionMode

from denoisezoo.dsp.stft import StftGeometry
from denoisezoo.streaming.backend import FrameStepBackend, export_paths, read_sidecar
from denoisezoo.streaming.onnx_step import _batch_axis, _StepGraph

__all__ = [
    "CONVERTER_ENV",
    "ExactConvTranspose",
    "LiteRTStepModel",
    "LiteRTUnavailableError",
    "QUANT_SCOPES",
    "conv_transpose2d_exact",
    "converter_python",
    "export_tflite",
    "litert_available",
    "quantize_tflite",
    "unavailable_reason",
]

CONVERTER_ENV = "DENOISEZOO_LITERT_PYTHON"
SIDECAR_FORMAT = "denoisezoo-litert-step"
SIGNATURE = "serving_default"
LITERT_TORCH_REQ = "litert-torch==0.10.*"
SETUP_HINT = (
    "create the converter environment once (litert-torch cannot be installed beside this "
    "environment's packages: it pins typing-extensions<4.13 through xdsl==0.28.0):\n"
    "  python -m venv --system-site-packages ~/.cache/denoisezoo/litert-converter\n"
    f"  ~/.cache/denoisezoo/litert-converter/bin/pip install \"{LITERT_TORCH_REQ}\"\n"
    f"then set {CONVERTER_ENV}=~/.cache/denoisezoo/litert-converter/bin/python "
    "(or pass --converter-python)"
)
EXTRA_HINT = "install the LiteRT extra: pip install 'denoisezoo[litert]'"


class LiteRTUnavailableError(RuntimeError):
    """A LiteRT package (converter, interpreter or quantizer) is missing; the message says
    exactly what to install."""


# ------------------------------------------------------------------------ environment probes
def litert_available() -> bool:
    """Whether the interpreter (``ai-edge-litert``, the ``litert`` extra) imports here."""
    try:
        import ai_edge_litert.interpreter  # noqa: F401
    except ImportError:
        return False
    return True


def _litert_torch_here() -> bool:
    try:
        import litert_torch  # noqa: F401
    except ImportError:
        return False
    return True


def converter_python(python: str | Path | None = None) -> str | None:
    """The interpreter that runs the conversion in a subprocess: ``python``, else
    ``$DENOISEZOO_LITERT_PYTHON``; ``None`` if neither is set (then ``litert_torch`` must import
    in this process).

    Raises:
        LiteRTUnavailableError: the configured path is not an executable file.
    """
    p = python or os.environ.get(CONVERTER_ENV) or None
    if p is None:
        return None
    p = os.path.expanduser(str(p))
    if not (os.path.isfile(p) and os.access(p, os.X_OK)):
        raise LiteRTUnavailableError(f"converter python {p!r} ({CONVERTER_ENV}) is not an "
                                     f"executable file; {SETUP_HINT}")
    return p


def unavailable_reason(python: str | Path | None = None) -> str | None:
    """Why :func:`export_tflite` cannot run here (interpreter or converter missing, one line), or
    ``None`` if it can; for scripts that skip LiteRT work with a stated reason."""
    if not litert_available():
        return f"the LiteRT interpreter is not installed ({EXTRA_HINT})"
    try:
        py = converter_python(python)
    except LiteRTUnavailableError as exc:
        return str(exc).split(";")[0]
    if py is None and not _litert_torch_here():
        return (f"no litert-torch converter: set {CONVERTER_ENV} to the converter venv's python "
                "(see denoisezoo.streaming.litert)")
    return None


def _require_interpreter():
    try:
        from ai_edge_litert.interpreter import Interpreter
    except ImportError as exc:
        raise LiteRTUnavailableError(f"the LiteRT interpreter is not installed; {EXTRA_HINT}") from exc
    return Interpreter


# ------------------------------------------------------------------------ conversion rewrite
def _pair(v: int | Sequence[int]) -> tuple[int, int]:
    return (int(v), int(v)) if isinstance(v, int) else (int(v[0]), int(v[1]))


def conv_transpose2d_exact(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None = None,
                           stride=1, padding=0, output_padding=0, groups: int = 1,
                           dilation=1) -> torch.Tensor:
    """``F.conv_transpose2d`` in a form litert-torch lowers (same arithmetic).

    Stride 1 and ``padding <= dilation * (kernel - 1)``: ``conv2d`` with the kernel flipped and
    its in/out axes swapped per group, padding ``dilation * (kernel - 1) - padding``.
    Otherwise: the transposed conv without padding, then ``padding`` cropped from both ends
    (``output_padding`` given back at the end).

    ``x (B, Cin, H, W)``, ``weight (Cin, Cout / groups, kh, kw)`` -> ``(B, Cout, H', W')``.
    """
    stride, padding, output_padding, dilation = (_pair(v) for v in
                                                 (stride, padding, output_padding, dilation))
    cin, cout_g, kh, kw = weight.shape
    pad = (dilation[0] * (kh - 1) - padding[0], dilation[1] * (kw - 1) - padding[1])
    if stride == (1, 1) and output_padding == (0, 0) and min(pad) >= 0:
        w = weight.reshape(groups, cin // groups, cout_g, kh, kw).transpose(1, 2)
        w = w.reshape(groups * cout_g, cin // groups, kh, kw).flip(2, 3)  # Cout, Cin/g, kh, kw
        return F.conv2d(x, w, bias, 1, pad, dilation, groups)
    y = F.conv_transpose2d(x, weight, bias, stride, 0, 0, groups, dilation)
    h, w_ = y.shape[2], y.shape[3]
    return y[:, :, padding[0] : h - padding[0] + output_padding[0],
             padding[1] : w_ - padding[1] + output_padding[1]]


class ExactConvTranspose(TorchFunctionMode):
    """While active, every ``F.conv_transpose2d`` call runs :func:`conv_transpose2d_exact`.

    Example:
        >>> conv = nn.ConvTranspose2d(4, 4, (1, 5), (1, 2), (0, 2), groups=2)
        >>> x = torch.randn(1, 4, 3, 9)
        >>> with ExactConvTranspose():
        ...     y = conv(x)
        >>> bool(torch.allclose(y, conv(x), atol=1e-6))
        True
    """

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if func is F.conv_transpose2d or func is torch.conv_transpose2d:
            return conv_transpose2d_exact(*args, **kwargs)
        return func(*args, **kwargs)


def _convert_float(model: nn.Module, path: Path) -> dict[str, str]:
    """Convert ``model.step`` with litert-torch in this process; returns converter versions."""
    import litert_torch

    model = model.eval()
    state = model.initial_state(1, None, torch.float32)
    graph = _StepGraph(model, type(state)).eval()
    frame = torch.zeros(1, model.geometry.n_freqs, 2)
    with warnings.catch_warnings(), torch.no_grad(), ExactConvTranspose():
        warnings.simplefilter("ignore")  # GRU flat-weight / pytree deprecation warnings
        edge = litert_torch.convert(graph, (frame, *state))
    edge.export(str(path))
    return {"converter": "litert-torch", "litert_torch": str(litert_torch.__version__),
            "torch": str(torch.__version__)}


def _worker_main(argv: Sequence[str] | None = None) -> int:
    """Subprocess entry: ``<checkpoint> <out.tflite>``; prints the versions as JSON."""
    argv = list(sys.argv[1:] if argv is None else argv)
    os.environ.setdefault("TQDM_DISABLE", "1")
    torch.set_num_threads(1)
    from denoisezoo.hub import load_checkpoint_file, model_from_checkpoint

    model = model_from_checkpoint(load_checkpoint_file(argv[0]), argv[0])
    info = _convert_float(model, Path(argv[1]))
    print("DENOISEZOO_RESULT " + json.dumps(info), flush=True)
    return 0


def _convert_subprocess(model: nn.Module, path: Path, python: str, timeout: float) -> dict:
    import denoisezoo
    from denoisezoo.hub import save_checkpoint

    with tempfile.TemporaryDirectory(prefix="denoisezoo_litert_") as tmp:
        ckpt = save_checkpoint(model, Path(tmp) / "model.pt")
        env = dict(os.environ, TQDM_DISABLE="1", OMP_NUM_THREADS="1")
        src = Path(denoisezoo.__file__).resolve().parents[1]
        if src.name not in ("site-packages", "dist-packages"):  # a source checkout: same code
            env["PYTHONPATH"] = os.pathsep.join([str(src), *filter(None, [env.get("PYTHONPATH")])])
        cmd = [python, "-c", "from denoisezoo.streaming.litert import _worker_main; "
               "raise SystemExit(_worker_main())", str(ckpt), str(path)]
        try:
            res = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=timeout)
        except subprocess.TimeoutExpired as exc:
            raise RuntimeError(f"LiteRT conversion timed out after {timeout:g} s") from exc
    lines = [ln for ln in res.stdout.splitlines() if ln.startswith("DENOISEZOO_RESULT ")]
    if res.returncode != 0 or not lines:
        tail = "\n".join(res.stderr.strip().splitlines()[-12:])
        if "No module named 'litert_torch'" in res.stderr:
            raise LiteRTUnavailableError(f"{python} has no litert_torch; {SETUP_HINT}")
        raise RuntimeError(f"LiteRT conversion failed in {python} (exit {res.returncode}):\n{tail}")
    return json.loads(lines[-1].split(" ", 1)[1])


# ------------------------------------------------------------------------ INT8
def _tflite_feeds(feeds: Sequence[dict[str, np.ndarray]], names: Sequence[str],
                  tfl_names: Sequence[str]) -> list[dict[str, np.ndarray]]:
    return [{t: np.asarray(f[n], np.float32) for n, t in zip(names, tfl_names, strict=True)}
            for f in feeds]


# Op scopes (regex on the op's output tensor names, which litert-torch derives from the module
# path) that are quantized per model family; families not listed are quantized throughout. The
# RNNoise port's step is mostly feature DSP (pitch search, band energies, the log floor's max-plus
# with -inf kernels, DCT, inverse DFT) that LiteRT has no integer form for: quantizing it all makes
# the interpreter abort in ADD (the -inf constants) and the quantizer fail on a constant
# CONCATENATION input ("Ranks of scales (4) and zps (4) must be the same as the tensor rank (3)":
# ai-edge-quantizer 0.6 expands a per-tensor scale of shape (1,) to rank + 1). Only its network
# (input dense, the three GRUs, output dense) is quantized, as in RNNoise itself (float DSP,
# 8-bit weights).
QUANT_SCOPES: dict[str, str] = {  # by model family (denoisezoo.hub.model_family)
    "rnnoise": r"KerasGRU_|Linear_(input_dense|vad_output|denoise_output)",
}


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
            :func:`denoisezoo.compress.calibration_feeds`.
        names: input names in graph order (``["frame", *state names]``).
        activation_bits: 8 or 16.
        threads: calibration threads.
        scope: quantize only the ops whose output tensor name matches this regex (the others
            stay float, with quantize / dequantize at the boundary, I/O float if the boundary
            ops are float); ``None``: every op the quantizer supports (full-integer I/O). See
            :data:`QUANT_SCOPES`.

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
    Interpreter = _require_interpreter()
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
    Interpreter = _require_interpreter()
    it = Interpreter(model_path=str(path))
    dtypes = {d["index"]: d["dtype"] for d in it.get_tensor_details()}
    out: dict[str, int] = {}
    for op in it._get_ops_details():  # noqa: SLF001 (no public op listing in ai-edge-litert 2.3)
        name = op["op_name"]
        if name not in ("DEQUANTIZE", "DELEGATE") and any(
                dtypes.get(int(i)) == np.float32 for i in op["outputs"]):
            out[name] = out.get(name, 0) + 1
    return out


# ------------------------------------------------------------------------ export
def export_tflite(model: nn.Module, path: str | Path, int8: bool = False,
                  calibration: Sequence[np.ndarray] | None = None, *, name: str | None = None,
                  overwrite: bool = False, check_frames: int = 0, max_calibration_frames: int = 200,
                  activation_bits: int = 8, python: str | Path | None = None,
                  timeout: float = 1800.0, float_tflite: str | Path | None = None) -> dict[str, Any]:
    """Export ``model.step`` to LiteRT (batch 1, states as explicit inputs/outputs).

    Args:
        model: a streamable model with ``geometry``, ``initial_state`` and ``step`` returning a
            NamedTuple state (e.g. :class:`denoisezoo.gtcrn.GTCRN`), registered in
            :mod:`denoisezoo.hub` when converted in a subprocess.
        path: output ``.tflite``; the JSON sidecar goes to :func:`sidecar_path` ``(path)``.
        int8: full-integer quantization with int8 weights (see the module docstring); needs
            ``calibration``.
        calibration: waveforms at the model rate (1-D float arrays), run through the float model
            to record real frames and states; at most ``max_calibration_frames`` are used.
        activation_bits: with ``int8``: 8 (int8 activations and I/O, precision ``"int8"``) or 16
            (int16 activations and I/O, precision ``"int16x8"``).
        name: model name recorded in the sidecar.
        overwrite: replace existing files (else ``FileExistsError``).
        check_frames: if > 0, compare the LiteRT interpreter with eager PyTorch: on that many
            random frames (float), or on the first 3 s of the first calibration clip (INT8, at
            least ``check_frames`` frames when the clip is long enough); stored in the sidecar as
            ``check_max_abs_diff`` (and ``check_rel_err``).
        python: converter interpreter (default ``$DENOISEZOO_LITERT_PYTHON``; not needed when
            ``litert_torch`` imports in this process).
        timeout: seconds allowed for the conversion subprocess.
        float_tflite: a float32 ``.tflite`` already exported from this same model (sidecar beside
            it): reused instead of converting again (e.g. to write int8 and int16x8 files from one
            conversion). It must match ``model`` within 1e-4 on 8 random frames (else
            ``ValueError``); no converter is needed then.

    Returns:
        The sidecar metadata (also written to disk).

    Raises:
        LiteRTUnavailableError: no converter / interpreter / quantizer; the message says what to
            install.
    """
    path, side = export_paths(path, ".tflite", overwrite)
    if int8 and not calibration:
        raise ValueError("INT8 export needs calibration audio (--calibration DIR)")
    if activation_bits not in (8, 16):
        raise ValueError(f"activation_bits must be 8 or 16, got {activation_bits}")
    if not isinstance(model, nn.Module):
        raise TypeError(f"LiteRT export converts a PyTorch model, got {type(model).__name__}")
    model = model.eval()
    state1 = model.initial_state(1, None, torch.float32)
    state2 = model.initial_state(2, None, torch.float32)
    if not hasattr(state1, "_fields"):
        raise TypeError("the model state must be a NamedTuple of tensors")
    if float_tflite is None:
        py = converter_python(python)
        if py is None and not _litert_torch_here():
            raise LiteRTUnavailableError(f"converting to LiteRT needs {LITERT_TORCH_REQ}; "
                                         f"{SETUP_HINT}")
    if check_frames > 0 or int8 or float_tflite is not None:
        _require_interpreter()
    names = list(state1._fields)
    g: StftGeometry = model.geometry
    path.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="denoisezoo_tfl_") as tmp:
        fpath = Path(tmp) / "float.tflite"
        t0 = time.perf_counter()
        if float_tflite is not None:
            info = _reuse_float(model, Path(float_tflite), fpath)
        elif py is None:
            info = _convert_float(model, fpath)
        else:
            info = _convert_subprocess(model, fpath, py, timeout)
        info["convert_seconds"] = round(time.perf_counter() - t0, 1)
        record = None
        feeds: list[dict[str, np.ndarray]] = []
        if int8:
            from denoisezoo.compress.quantize import calibration_feeds
            from denoisezoo.hub import model_family

            feeds = calibration_feeds(model, calibration, max_calibration_frames)
            qpath = Path(tmp) / "int8.tflite"
            record = quantize_tflite(fpath, qpath, feeds, ["frame", *names], activation_bits,
                                     scope=QUANT_SCOPES.get(model_family(model, strict=False)))
            record["calibration_clips"] = len(calibration)
            fpath = qpath
        part = path.with_name(path.name + ".part")
        part.write_bytes(fpath.read_bytes())
        part.replace(path)
    frame_shape = [1, g.n_freqs, 2]
    meta: dict[str, Any] = {
        "format": SIDECAR_FORMAT,
        "format_version": 1,
        "name": name or getattr(model, "checkpoint_meta", {}).get("name") or type(model).__name__,
        "family": type(model).__name__,
        "config": model.config.to_dict() if hasattr(getattr(model, "config", None), "to_dict")
        else None,
        "geometry": {"sample_rate": g.sample_rate, "n_fft": g.n_fft, "hop_length": g.hop_length,
                     "window": g.window},
        "signature": SIGNATURE,
        **info,
        "precision": ("int8" if activation_bits == 8 else "int16x8") if int8 else "float32",
        "size_bytes": path.stat().st_size,
        "inputs": [{"name": "frame", "tflite": "args_0", "shape": frame_shape}]
        + [{"name": n, "tflite": f"args_{i + 1}", "shape": list(t.shape)}
           for i, (n, t) in enumerate(zip(names, state1, strict=True))],
        "outputs": [{"name": "out", "tflite": "output_0", "shape": frame_shape}]
        + [{"name": f"{n}_out", "tflite": f"output_{i + 1}", "shape": list(t.shape)}
           for i, (n, t) in enumerate(zip(names, state1, strict=True))],
        "state": [{"name": n, "shape": list(t.shape), "batch_axis": _batch_axis(t, u)}
                  for n, t, u in zip(names, state1, state2, strict=True)],
    }
    if record is not None:
        meta["compression"] = record
    if check_frames > 0:
        try:
            _check_export(model, path, meta, int8, calibration, check_frames)
        except BaseException:
            path.unlink(missing_ok=True)  # no model without its sidecar
            raise
    side.write_text(json.dumps(meta, indent=2) + "\n")
    return meta


def _check_export(model: nn.Module, path: Path, meta: dict[str, Any], int8: bool,
                  calibration: Sequence[np.ndarray] | None, check_frames: int) -> None:
    """Run the written model in the interpreter against PyTorch; adds ``check_*`` to ``meta``."""
    g: StftGeometry = model.geometry
    lite = LiteRTStepModel(path, meta=meta)
    if int8:
        from denoisezoo.dsp.stft import stft

        n = max(3 * g.sample_rate, check_frames * g.hop_length)
        spec = stft(torch.as_tensor(calibration[0][:n], dtype=torch.float32)[None], g)
    else:
        gen = torch.Generator().manual_seed(0)
        spec = torch.randn(1, g.n_freqs, check_frames, 2, generator=gen)
    with torch.inference_mode():
        ref = model.forward_stateful(spec, None)[0]
    got = lite.forward_stateful(spec, None)[0]
    meta["check_frames"] = int(spec.shape[2])
    meta["check_input"] = "calibration audio" if int8 else "random frames"
    meta["check_max_abs_diff"] = float((ref - got).abs().max())
    meta["check_rel_err"] = float((ref - got).norm() / ref.norm().clamp_min(1e-12))


def _reuse_float(model: nn.Module, src: Path, dst: Path) -> dict[str, Any]:
    """Copy a float export of ``model`` to ``dst`` after checking it on 8 random frames; returns
    its converter versions."""
    lite = LiteRTStepModel(src)
    if lite.meta.get("precision") != "float32":
        raise ValueError(f"{src}: float_tflite must be a float32 export, this one is "
                         f"{lite.meta.get('precision')}")
    spec = torch.randn(1, lite.geometry.n_freqs, 8, 2, generator=torch.Generator().manual_seed(0))
    with torch.inference_mode():
        ref = model.forward_stateful(spec, None)[0]
    diff = float((lite.forward_stateful(spec, None)[0] - ref).abs().max())
    if not diff <= 1e-4:
        raise ValueError(f"{src}: not a float export of this model (differs by {diff:.2e} on 8 "
                         "random frames)")
    dst.write_bytes(src.read_bytes())
    keys = ("converter", "litert_torch", "torch")
    return {**{k: lite.meta[k] for k in keys if k in lite.meta}, "converted_from": str(src)}


# ------------------------------------------------------------------------ runtime backend
class LiteRTStepModel(FrameStepBackend):
    """An exported step run by the LiteRT interpreter, usable wherever a streamable model is.

    Same interface as :class:`~denoisezoo.streaming.OnnxStepModel`: ``geometry``,
    ``initial_state(batch)``, ``forward_stateful(spec, state)`` (one interpreter call per frame
    and stream) and ``step(frame, state)``. The state is a tuple of float32 numpy arrays in the
    exported order (``state_names``); INT8 models are quantized / dequantized at the boundary
    with each I/O tensor's scale and zero point.

    Args:
        path: the ``.tflite`` file (its JSON sidecar must sit beside it, or pass ``meta``).
        threads: interpreter threads (1 for real-time use next to other work).
        meta: sidecar metadata, if not read from disk.
    """

    backend = "litert"

    def __init__(self, path: str | Path, threads: int = 1, meta: dict[str, Any] | None = None):
        Interpreter = _require_interpreter()
        meta = read_sidecar(Path(path), meta, SIDECAR_FORMAT, "export_tflite")
        self._init_layout(path, meta)
        self.interpreter = Interpreter(model_path=str(self.path), num_threads=threads)
        self.interpreter.allocate_tensors()
        runner = self.interpreter.get_signature_runner(meta.get("signature", SIGNATURE))
        ins, outs = runner.get_input_details(), runner.get_output_details()
        want_in = [t["tflite"] for t in meta["inputs"]]
        want_out = [t["tflite"] for t in meta["outputs"]]
        if sorted(ins) != sorted(want_in) or sorted(outs) != sorted(want_out):
            raise ValueError(f"{self.path}: tensors {sorted(ins)} -> {sorted(outs)} do not match "
                             "the sidecar")
        for t in meta["inputs"]:
            got = tuple(int(v) for v in ins[t["tflite"]]["shape"])
            if got != tuple(t["shape"]):
                raise ValueError(f"{self.path}: input {t['name']} has shape {got}, sidecar says "
                                 f"{tuple(t['shape'])}")
        self._in = [self._io(ins[n]) for n in want_in]  # (index, dtype, scale, zero point)
        self._out = [self._io(outs[n]) for n in want_out]
        self.quantized = any(d[1] != np.float32 for d in self._in + self._out)

    @staticmethod
    def _io(d: dict) -> tuple[int, type, float, int]:
        scale, zero = d.get("quantization", (0.0, 0))
        return int(d["index"]), d["dtype"], float(scale), int(zero)

    @staticmethod
    def _quant(x: np.ndarray, io: tuple[int, type, float, int]) -> np.ndarray:
        _, dtype, scale, zero = io
        if dtype == np.float32:
            return np.ascontiguousarray(x, np.float32)
        lim = np.iinfo(dtype)
        return np.clip(np.rint(x / scale) + zero, lim.min, lim.max).astype(dtype)

    @staticmethod
    def _dequant(x: np.ndarray, io: tuple[int, type, float, int]) -> np.ndarray:
        _, dtype, scale, zero = io
        return x if dtype == np.float32 else (x.astype(np.float32) - zero) * np.float32(scale)

    def _run(self, frame: np.ndarray, state: Sequence[np.ndarray]) -> list[np.ndarray]:
        """One interpreter call: ``frame (1, F, 2)`` + states -> ``[out, *next states]``."""
        it = self.interpreter
        for d, x in zip(self._in, (frame, *state), strict=True):
            it.set_tensor(d[0], self._quant(x, d))
        it.invoke()
        return [self._dequant(it.get_tensor(d[0]), d) for d in self._out]
