"""LiteRT (TFLite) export of a streamable model's ``step`` (run by ``streaming.LiteRTStepModel``).

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
The conversion therefore runs in a separate *converter environment*, in a subprocess, made once
by ``denoisezoo export tflite --install-converter`` (:mod:`denoisezoo.export.litert_env`). If
``litert_torch`` imports in the current process, it is used directly.

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

INT8 (``int8=True``): :mod:`denoisezoo.export.litert_int8`.
"""

from __future__ import annotations

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
from denoisezoo.export.calibration import calibration_feeds
from denoisezoo.export.litert_env import (
    CONVERTER_ENV,
    LITERT_TORCH_REQ,
    SETUP_HINT,
    _litert_torch_here,
    converter_python,
    unavailable_reason,
)
from denoisezoo.export.litert_int8 import quantize_tflite
from denoisezoo.export.onnx import _batch_axis, _StepGraph, export_paths
from denoisezoo.hub import family_of
from denoisezoo.streaming.litert_runtime import (
    SIDECAR_FORMAT,
    SIGNATURE,
    LiteRTStepModel,
    LiteRTUnavailableError,
    require_interpreter,
)

__all__ = [
    "CONVERTER_ENV",
    "ExactConvTranspose",
    "conv_transpose2d_exact",
    "converter_python",
    "export_tflite",
    "quantize_tflite",
    "unavailable_reason",
]

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
    from denoisezoo.hub import save_checkpoint

    with tempfile.TemporaryDirectory(prefix="denoisezoo_litert_") as tmp:
        ckpt = save_checkpoint(model, Path(tmp) / "model.pt")
        env = dict(os.environ, TQDM_DISABLE="1", OMP_NUM_THREADS="1")
        src = Path(__file__).resolve().parents[2]  # the folder holding the denoisezoo package
        if src.name not in ("site-packages", "dist-packages"):  # a source checkout: same code
            env["PYTHONPATH"] = os.pathsep.join([str(src), *filter(None, [env.get("PYTHONPATH")])])
        cmd = [python, "-c", "from denoisezoo.export.litert import _worker_main; "
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
        python: converter interpreter (default: ``litert_env.converter_python()``; not needed
            when ``litert_torch`` imports in this process).
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
        require_interpreter()
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
            feeds = calibration_feeds(model, calibration, max_calibration_frames)
            qpath = Path(tmp) / "int8.tflite"
            record = quantize_tflite(fpath, qpath, feeds, ["frame", *names], activation_bits,
                                     scope=family_of(model).litert_quant_scope)
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
        "family": family_of(model).name,
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
