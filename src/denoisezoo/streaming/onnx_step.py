"""ONNX export of a streamable model's ``step`` and an ONNX Runtime backend for :class:`Streamer`.

The exported graph is the one-frame step with every state tensor as an explicit input and output::

    inputs:  frame (1, F, 2), then the state tensors in the model's state order
             (GTCRN: conv (1, C, L, W), tra (2 n_blocks, 1, C), rnn (n_dual_path, 1, W, C))
    outputs: out (1, F, 2), then the next state tensors named "<name>_out" in the same order
             (GTCRN: out, conv_out, tra_out, rnn_out)

Batch is static (1); :class:`OnnxStepModel` runs several streams one after the other. A JSON
sidecar next to the ``.onnx`` file (same stem, ``.json``) records the geometry, the input and
output names and shapes, the batch axis of each state tensor, the opset and the source model.

Exporter: the TorchScript-based ``torch.onnx.export(..., dynamo=False)``. It turns
``nn.GRU`` into the ONNX ``GRU`` operator and needs no extra package; the dynamo exporter of
torch 2.11 needs ``onnxscript`` and was not used. Default opset 17, the first with
``LayerNormalization`` (lower opsets decompose it into elementary ops). The graph holds only
standard ``ai.onnx`` operators (Conv, ConvTranspose, GRU, Gemm/MatMul, LayerNormalization,
elementwise ops, reshapes); the STFT stays outside the graph, so no ``DFT`` / ``STFT`` ops
(unsupported by several mobile runtimes) are needed.
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

__all__ = ["DEFAULT_OPSET", "export_onnx", "OnnxStepModel", "sidecar_path", "make_session"]

DEFAULT_OPSET = 17
SIDECAR_FORMAT = "denoisezoo-onnx-step"


def sidecar_path(onnx_path: str | Path) -> Path:
    """``model.onnx`` -> ``model.json`` (the metadata file written beside it)."""
    return Path(onnx_path).with_suffix(".json")


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
    path = Path(path)
    if path.suffix != ".onnx":
        raise ValueError(f"{path}: the output file name must end in .onnx")
    side = sidecar_path(path)
    for p in (path, side):
        if p.exists() and not overwrite:
            raise FileExistsError(f"{p}: exists (use --overwrite to replace it)")
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


class OnnxStepModel:
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
        self.path = Path(path)
        if meta is None:
            side = sidecar_path(self.path)
            if not side.is_file():
                raise FileNotFoundError(f"{side}: sidecar missing (written by export_onnx)")
            meta = json.loads(side.read_text())
        if meta.get("format") != SIDECAR_FORMAT:
            raise ValueError(f"{self.path}: sidecar is not a {SIDECAR_FORMAT} file")
        self.meta = meta
        self.name = meta.get("name")
        self.geometry = StftGeometry(**meta["geometry"])
        self.state_names: list[str] = [s["name"] for s in meta["state"]]
        self._shapes = [tuple(s["shape"]) for s in meta["state"]]
        self._axes = [int(s["batch_axis"]) for s in meta["state"]]
        self.session = make_session(self.path, threads)
        got = [i.name for i in self.session.get_inputs()]
        if got != ["frame", *self.state_names]:
            raise ValueError(f"{self.path}: graph inputs {got} do not match the sidecar")
        self._out_names = ["out", *[f"{n}_out" for n in self.state_names]]

    def initial_state(self, batch: int = 1, device: Any = None,
                      dtype: Any = None) -> tuple[np.ndarray, ...]:
        """Zero state for ``batch`` streams (``device``/``dtype`` accepted for compatibility)."""
        out = []
        for shape, ax in zip(self._shapes, self._axes, strict=True):
            s = list(shape)
            s[ax] = batch
            out.append(np.zeros(s, np.float32))
        return tuple(out)

    def _split(self, state: Sequence[np.ndarray], b: int) -> list[np.ndarray]:
        return [np.ascontiguousarray(np.take(s, [b], axis=ax))
                for s, ax in zip(state, self._axes, strict=True)]

    def forward_stateful(self, spec: torch.Tensor,
                         state: Sequence[np.ndarray] | None) -> tuple[torch.Tensor, tuple]:
        """``spec (B, F, T, 2)`` -> ``(enhanced (B, F, T, 2), next state)``, frame by frame."""
        x = np.asarray(spec.detach().cpu().numpy() if torch.is_tensor(spec) else spec, np.float32)
        if x.ndim != 4 or x.shape[1] != self.geometry.n_freqs or x.shape[3] != 2:
            raise ValueError(f"expected (B, {self.geometry.n_freqs}, T, 2) spectrum, got {x.shape}")
        bsz, _, t, _ = x.shape
        if state is None:
            state = self.initial_state(bsz)
        run = self.session.run
        names = self.state_names
        if bsz == 1 and t == 1:  # the real-time case: one stream, one hop
            feeds = dict(zip(names, state, strict=True))
            feeds["frame"] = np.ascontiguousarray(x[:, :, 0])
            res = run(None, feeds)
            return torch.from_numpy(res[0][:, :, None]), tuple(res[1:])
        out = np.empty_like(x)
        per_b = []
        for b in range(bsz):
            st = self._split(state, b) if bsz > 1 else [np.asarray(s, np.float32) for s in state]
            feeds = dict(zip(names, st, strict=True))
            for i in range(t):
                feeds["frame"] = np.ascontiguousarray(x[b : b + 1, :, i])
                res = run(self._out_names, feeds)
                out[b, :, i] = res[0][0]
                feeds = dict(zip(names, res[1:], strict=True))
            per_b.append([feeds[n] for n in names])
        if bsz == 1:
            nxt = tuple(per_b[0])
        else:
            nxt = tuple(np.concatenate([p[k] for p in per_b], axis=ax)
                        for k, ax in enumerate(self._axes))
        return torch.from_numpy(out), nxt

    def step(self, frame: torch.Tensor, state: Sequence[np.ndarray]) -> tuple[torch.Tensor, tuple]:
        """``frame (B, F, 2)`` -> ``(out (B, F, 2), next state)``."""
        out, nxt = self.forward_stateful(frame.unsqueeze(2), state)
        return out.squeeze(2), nxt

    def __repr__(self) -> str:
        return f"OnnxStepModel({str(self.path)!r}, name={self.name!r})"
