"""ONNX export of a streamable model's ``step`` (run by :class:`~denoisezoo.streaming.OnnxStepModel`).

The exported graph is the one-frame step with every state tensor as an explicit input and output::

    inputs:  frame (1, F, 2), then the state tensors in the model's state order
             (GTCRN: conv (1, C, L, W), tra (2 n_blocks, 1, C), rnn (n_dual_path, 1, W, C);
             RNNoise: history, ola, ceps, vad_h, noise_h, denoise_h, gains)
    outputs: out (1, F, 2), then the next state tensors named "<name>_out" in the same order
             (GTCRN: out, conv_out, tra_out, rnn_out); per-frame VAD is not exported

Batch is static (1); :class:`~denoisezoo.streaming.OnnxStepModel` runs several streams one after
the other. A JSON
sidecar next to the ``.onnx`` file (same stem, ``.json``) records the geometry, the input and
output names and shapes, the batch axis of each state tensor, the opset and the source model.

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
from pathlib import Path
from typing import Any

import torch
from torch import nn

from denoisezoo.audio import refuse_existing
from denoisezoo.dsp.stft import StftGeometry
from denoisezoo.hub import family_of
from denoisezoo.streaming.backend import sidecar_path
from denoisezoo.streaming.onnx_runtime import SIDECAR_FORMAT, OnnxStepModel

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


def _batch_axis(a: torch.Tensor, b: torch.Tensor) -> int:
    """Axis along which two states of batch 1 and 2 differ."""
    axes = [i for i, (x, y) in enumerate(zip(a.shape, b.shape, strict=True)) if x != y]
    if len(axes) != 1:
        raise ValueError(f"cannot find the batch axis of a state tensor ({a.shape} vs {b.shape})")
    return axes[0]


def export_onnx(model: nn.Module, path: str | Path, opset: int = DEFAULT_OPSET,
                name: str | None = None, overwrite: bool = False,
                check_frames: int = 0) -> dict[str, Any]:
    """Export ``model.step`` to ONNX (batch 1, states as explicit inputs/outputs).

    Args:
        model: a streamable model with ``geometry``, ``initial_state`` and ``step`` returning a
            NamedTuple state (e.g. :class:`denoisezoo.gtcrn.GTCRN`).
        path: output ``.onnx`` file; the JSON sidecar goes to :func:`sidecar_path` ``(path)``.
        opset: ONNX opset version.
        name: model name recorded in the sidecar.
        overwrite: replace existing files (else ``FileExistsError``).
        check_frames: if > 0, run that many random frames through ONNX Runtime and eager
            PyTorch and record the max abs difference in the sidecar (``check_max_abs_diff``).

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
    frame = torch.zeros(1, g.n_freqs, 2)
    input_names = ["frame", *names]
    output_names = ["out", *[f"{n}_out" for n in names]]
    graph = _StepGraph(model, type(state1)).eval()
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".part")
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")  # TorchScript exporter deprecation / GRU batch warnings
        torch.onnx.export(graph, (frame, *state1), str(tmp), input_names=input_names,
                          output_names=output_names, opset_version=opset, dynamo=False,
                          do_constant_folding=True)
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
        "inputs": [{"name": "frame", "shape": list(frame.shape)}]
        + [{"name": n, "shape": list(t.shape)} for n, t in zip(names, state1, strict=True)],
        "outputs": [{"name": "out", "shape": list(frame.shape)}]
        + [{"name": f"{n}_out", "shape": list(t.shape)} for n, t in zip(names, state1, strict=True)],
        "state": [{"name": n, "shape": list(t.shape), "batch_axis": _batch_axis(t, u)}
                  for n, t, u in zip(names, state1, state2, strict=True)],
    }
    tmp.replace(path)
    if check_frames > 0:
        meta["check_frames"] = check_frames
        meta["check_max_abs_diff"] = _check(model, OnnxStepModel(path, meta=meta), check_frames)
    side.write_text(json.dumps(meta, indent=2) + "\n")
    return meta


def _check(model: nn.Module, onnx_model: OnnxStepModel, frames: int, seed: int = 0) -> float:
    gen = torch.Generator().manual_seed(seed)
    spec = torch.randn(1, model.geometry.n_freqs, frames, 2, generator=gen)
    with torch.inference_mode():
        ref = model.forward_stateful(spec, None)[0]
    got = onnx_model.forward_stateful(spec, None)[0]
    return float((ref - got).abs().max())
