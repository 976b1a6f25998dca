"""ONNX export of a streamable model's ``step`` and an ONNX Runtime backend for :class:`Streamer`.

The exported graph is the one-frame step with every state tensor as an explicit input and output::

    inputs:  frame (1, F, 2), then the state tensors in the model's state order
             (GTCRN: conv (1, C, L, W), tra (2 n_blocks, 1, C), rnn (n_dual_path, 1, W, C);
             RNNoise: history, ola, ceps, vad_h, noise_h, denoise_h, gains)
    outputs: out (1, F, 2), then the next state tensors named "<name>_out" in the same order
             (GTCRN: out, conv_out, tra_out, rnn_out); per-frame VAD is not exported

Batch is static (1); :class:`OnnxStepModel` runs several streams one after the other. A JSON
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
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from denoisezoo.dsp.stft import StftGeometry
from denoisezoo.streaming.backend import FrameStepBackend, export_paths, read_sidecar, sidecar_path

__all__ = ["DEFAULT_OPSET", "export_onnx", "OnnxStepModel", "sidecar_path", "make_session"]

DEFAULT_OPSET = 17
SIDECAR_FORMAT = "denoisezoo-onnx-step"


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
        "family": type(model).__name__,
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


def make_session(path: str | Path, threads: int = 1):
    """An ONNX Runtime CPU session tuned for one small step per call (``threads`` intra-op)."""
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.intra_op_num_threads = threads
    so.inter_op_num_threads = 1
    so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    so.add_session_config_entry("session.intra_op.allow_spinning", "0")
    so.log_severity_level = 3
    return ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])


class OnnxStepModel(FrameStepBackend):
    """An exported step run by ONNX Runtime, usable wherever a streamable model is.

    Same interface as the PyTorch model for :class:`~denoisezoo.streaming.Streamer`:
    ``geometry``, ``initial_state(batch)``, ``forward_stateful(spec, state)`` (loops over frames,
    one ``session.run`` per frame and stream) and ``step(frame, state)``. The state is a tuple of
    numpy arrays in the exported order (``state_names``), batch on the axes of the sidecar.

    Args:
        path: the ``.onnx`` file (its JSON sidecar must sit beside it, or pass ``meta``).
        threads: ONNX Runtime intra-op threads (1 for real-time use next to other work).
        meta: sidecar metadata, if not read from disk.

    Example:
        >>> import tempfile
        >>> from denoisezoo.gtcrn import gtcrn_tiny
        >>> from denoisezoo.streaming import Streamer
        >>> path = Path(tempfile.mkdtemp()) / "tiny.onnx"
        >>> meta = export_onnx(gtcrn_tiny(), path)
        >>> [t["name"] for t in meta["inputs"]], [t["name"] for t in meta["outputs"]]
        (['frame', 'conv', 'tra', 'rnn'], ['out', 'conv_out', 'tra_out', 'rnn_out'])
        >>> s = Streamer(OnnxStepModel(path))
        >>> y = torch.cat([s.feed(torch.randn(700)), s.flush()])
        >>> y.shape[0] == s.delay + 700, s.backend
        (True, 'onnxruntime')
    """

    backend = "onnxruntime"

    def __init__(self, path: str | Path, threads: int = 1, meta: dict[str, Any] | None = None):
        self._init_layout(path, read_sidecar(Path(path), meta, SIDECAR_FORMAT, "export_onnx"))
        self.session = make_session(self.path, threads)
        got = [i.name for i in self.session.get_inputs()]
        if got != ["frame", *self.state_names]:
            raise ValueError(f"{self.path}: graph inputs {got} do not match the sidecar")
        self._out_names = ["out", *[f"{n}_out" for n in self.state_names]]

    def _run(self, frame: np.ndarray, state: Sequence[np.ndarray]) -> list[np.ndarray]:
        feeds = dict(zip(self.state_names, state, strict=True))
        feeds["frame"] = frame
        return self.session.run(self._out_names, feeds)
