"""ONNX export of a streamable model's ``step`` (run by :class:`~denoisezoo.streaming.OnnxStepModel`).

The exported graph is the one-frame step with every state tensor as an explicit input and output::

    inputs:  frame (1, F, 2), then the state tensors in the model's state order
             (GTCRN: conv (1, C, L, W), tra (2 n_blocks, 1, C), rnn (n_dual_path, 1, W, C);
             RNNoise: history, ola, ceps, vad_h, noise_h, denoise_h, gains)
    outputs: out (1, F, 2), then the next state tensors named "<name>_out" in the same order
             (GTCRN: out, conv_out, tra_out, rnn_out); per-frame VAD is not exported

By default the batch is static (1); :class:`~denoisezoo.streaming.OnnxStepModel` runs several
streams one after the other. With ``dynamic_batch=True`` the frame, the output and every state
tensor get a symbolic ``batch`` dimension on their batch axis, so one ``session.run`` advances any
number of independent streams (:class:`~denoisezoo.streaming.StreamPool`); shapes in the sidecar
are still given at batch 1. A JSON sidecar next to the ``.onnx`` file (same stem, ``.json``)
records the geometry, the input and output names and shapes, the batch axis of each input, output
and state tensor, ``dynamic_batch``, the opset and the source model.

Exporter: the TorchScript-based ``torch.onnx.export(..., dynamo=False)``. It turns
``nn.GRU`` into the ONNX ``GRU`` operator and needs no extra package; the dynamo exporter of
torch 2.11 needs ``onnxscript`` and was not used. Default opset 17, the first with
``LayerNormalization`` (lower opsets decompose it into elementary ops). The graph holds only
standard ``ai.onnx`` operators (Conv, ConvTranspose, GRU, Gemm/MatMul, LayerNormalization,
elementwise ops, reshapes); the STFT stays outside the graph, so no ``DFT`` / ``STFT`` ops
(unsupported by several mobile runtimes) are needed. The RNNoise step adds Gather /
GatherElements, ArgMax, ReduceMax/Min/Sum, Round, Log and comparisons (pitch search, features);
its frame DFTs are MatMuls with constant bases (``rnnoise_port.features.RealDFT``).
"""

from __future__ import annotations

import json
import warnings
from contextlib import contextmanager, nullcontext
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.onnx import symbolic_helper

from denoisezoo.audio import refuse_existing
from denoisezoo.dsp.stft import StftGeometry
from denoisezoo.hub import family_of
from denoisezoo.streaming.backend import sidecar_path
from denoisezoo.streaming.onnx_runtime import SIDECAR_FORMAT, OnnxStepModel
from denoisezoo.streaming.pool import batch_axis_of

__all__ = ["DEFAULT_OPSET", "export_onnx", "export_paths"]

DEFAULT_OPSET = 17


def export_paths(path: str | Path, suffix: str, overwrite: bool) -> tuple[Path, Path]:
    """Check an export target: ``(model path, sidecar path)``; refuses an existing file of either
    without ``overwrite`` and a name that does not end in ``suffix``."""
    path = Path(path)
    if path.suffix != suffix:
        raise ValueError(f"{path}: the output file name must end in {suffix}")
    side = sidecar_path(path)
    refuse_existing([path, side], overwrite)
    return path, side


class _StepGraph(nn.Module):
    """``(frame, *state) -> (out, *next_state)``: the model's ``step`` with flat tensors."""

    def __init__(self, model: nn.Module, state_type: type):
        super().__init__()
        self.model = model
        self.state_type = state_type

    def forward(self, frame: torch.Tensor, *state: torch.Tensor):
        out, nxt = self.model.step(frame, self.state_type(*state))
        return (out, *nxt)


_batch_axis = batch_axis_of  # axis along which two states of batch 1 and 2 differ


@symbolic_helper.parse_args("v", "i", "i", "i")
def _unfold_any_length(g, x, dim: int, size: int, step: int):
    """``aten::unfold`` whose input length is only known at run time (the TorchScript exporter's
    own needs it static, and a dynamic batch axis hides it): windows gathered by index."""
    rank = symbolic_helper._get_tensor_rank(x)
    dim = dim + rank if dim < 0 else dim

    def const(v):
        return g.op("Constant", value_t=torch.tensor(v, dtype=torch.int64))

    length = g.op("Gather", g.op("Shape", x), const(dim), axis_i=0)
    count = g.op("Add", g.op("Div", g.op("Sub", length, const(size)), const(step)), const(1))
    starts = g.op("Mul", g.op("Range", const(0), count, const(1)), const(step))  # n windows
    index = g.op("Add", g.op("Unsqueeze", starts, const([1])),
                 g.op("Unsqueeze", const(list(range(size))), const([0])))  # n, size
    out = g.op("Gather", x, index, axis_i=dim)  # x[:dim], n, size, x[dim + 1:]
    perm = list(range(rank + 1))
    perm.append(perm.pop(dim + 1))  # the window last, as torch.unfold
    return out if perm == sorted(perm) else g.op("Transpose", out, perm_i=perm)


@contextmanager
def _dynamic_length_unfold(opset: int):
    """Export ``unfold`` with :func:`_unfold_any_length` for the duration of one export."""
    torch.onnx.register_custom_op_symbolic("aten::unfold", _unfold_any_length, opset)
    try:
        yield
    finally:
        torch.onnx.unregister_custom_op_symbolic("aten::unfold", opset)


def export_onnx(model: nn.Module, path: str | Path, opset: int = DEFAULT_OPSET,
                name: str | None = None, overwrite: bool = False,
                check_frames: int = 0, dynamic_batch: bool = False) -> dict[str, Any]:
    """Export ``model.step`` to ONNX (states as explicit inputs/outputs; batch 1, or any).

    Args:
        model: a streamable model with ``geometry``, ``initial_state`` and ``step`` returning a
            NamedTuple state (e.g. :class:`denoisezoo.gtcrn.GTCRN`).
        path: output ``.onnx`` file; the JSON sidecar goes to :func:`sidecar_path` ``(path)``.
        opset: ONNX opset version.
        name: model name recorded in the sidecar.
        overwrite: replace existing files (else ``FileExistsError``).
        check_frames: if > 0, run that many random frames through ONNX Runtime and eager
            PyTorch and record the max abs difference in the sidecar (``check_max_abs_diff``;
            with ``dynamic_batch``, over one stream and over 3 streams in one run).
        dynamic_batch: give the frame, the output and each state tensor a symbolic batch
            dimension (its batch axis), so one ``session.run`` advances many streams.

    Returns:
        The sidecar metadata (also written to disk).
    """
    path, side = export_paths(path, ".onnx", overwrite)
    model = model.eval()
    g: StftGeometry = model.geometry
    state1 = model.initial_state(1, None, torch.float32)
    state2 = model.initial_state(2, None, torch.float32)
    if not hasattr(state1, "_fields"):
        raise TypeError("the model state must be a NamedTuple of tensors")
    names = list(state1._fields)
    axes = [_batch_axis(t, u) for t, u in zip(state1, state2, strict=True)]
    frame = torch.zeros(1, g.n_freqs, 2)
    input_names = ["frame", *names]
    output_names = ["out", *[f"{n}_out" for n in names]]
    graph = _StepGraph(model, type(state1)).eval()
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".part")
    dynamic = None
    if dynamic_batch:
        dynamic = {n: {ax: "batch"} for n, ax in zip(input_names, [0, *axes], strict=True)}
        dynamic.update({n: {ax: "batch"} for n, ax in zip(output_names, [0, *axes], strict=True)})
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")  # TorchScript exporter deprecation / GRU batch warnings
        with _dynamic_length_unfold(opset) if dynamic_batch else nullcontext():
            torch.onnx.export(graph, (frame, *state1), str(tmp), input_names=input_names,
                              output_names=output_names, opset_version=opset, dynamo=False,
                              do_constant_folding=True, dynamic_axes=dynamic)
    cfg = getattr(model, "config", None)
    meta: dict[str, Any] = {
        "format": SIDECAR_FORMAT,
        "format_version": 1,
        "name": name or getattr(model, "checkpoint_meta", {}).get("name") or type(model).__name__,
        "family": family_of(model).name,
        "config": cfg.to_dict() if hasattr(cfg, "to_dict") else None,
        "geometry": {"sample_rate": g.sample_rate, "n_fft": g.n_fft, "hop_length": g.hop_length,
                     "window": g.window},
        "opset": opset,
        "exporter": "torch.onnx.export(dynamo=False) (TorchScript)",
        "torch": torch.__version__,
        "dynamic_batch": dynamic_batch,
        "inputs": [{"name": "frame", "shape": list(frame.shape), "batch_axis": 0}]
        + [{"name": n, "shape": list(t.shape), "batch_axis": ax}
           for n, t, ax in zip(names, state1, axes, strict=True)],
        "outputs": [{"name": "out", "shape": list(frame.shape), "batch_axis": 0}]
        + [{"name": f"{n}_out", "shape": list(t.shape), "batch_axis": ax}
           for n, t, ax in zip(names, state1, axes, strict=True)],
        "state": [{"name": n, "shape": list(t.shape), "batch_axis": ax}
                  for n, t, ax in zip(names, state1, axes, strict=True)],
    }
    tmp.replace(path)
    if check_frames > 0:
        meta["check_frames"] = check_frames
        meta["check_max_abs_diff"] = _check(model, OnnxStepModel(path, meta=meta), check_frames)
    side.write_text(json.dumps(meta, indent=2) + "\n")
    return meta


def _check(model: nn.Module, onnx_model: OnnxStepModel, frames: int, seed: int = 0) -> float:
    gen = torch.Generator().manual_seed(seed)
    diff = 0.0
    for batch in (1, 3) if onnx_model.dynamic_batch else (1,):
        spec = torch.randn(batch, model.geometry.n_freqs, frames, 2, generator=gen)
        with torch.inference_mode():
            ref = model.forward_stateful(spec, None)[0]
        got = onnx_model.forward_stateful(spec, None)[0]
        diff = max(diff, float((ref - got).abs().max()))
    return diff
