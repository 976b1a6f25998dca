"""ONNX Runtime backend for :class:`~denoisezoo.streaming.Streamer`: runs an exported step.

The step file (written by :func:`denoisezoo.export.export_onnx`) is the one-frame step with every
state tensor as an explicit input and output::

    inputs:  frame (1, F, 2), then the state tensors in the model's state order
             (GTCRN: conv (1, C, L, W), tra (2 n_blocks, 1, C), rnn (n_dual_path, 1, W, C);
             RNNoise: history, ola, ceps, vad_h, noise_h, denoise_h, gains)
    outputs: out (1, F, 2), then the next state tensors named "<name>_out" in the same order

Its JSON sidecar (same stem, ``.json``) records the geometry, names, shapes and batch axes. A step
exported with ``export_onnx(..., dynamic_batch=True)`` (sidecar ``"dynamic_batch": true``) takes
any number of streams ``B`` on those axes: ``frame (B, F, 2)``, so one ``session.run`` advances
``B`` streams by one hop (what :class:`~denoisezoo.streaming.StreamPool` does).
This module runs such files; it converts nothing.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from denoisezoo.streaming.backend import FrameStepBackend, read_sidecar

__all__ = ["OnnxStepModel", "make_session", "SIDECAR_FORMAT"]

SIDECAR_FORMAT = "denoisezoo-onnx-step"


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
    one ``session.run`` per frame and stream; per frame for all streams at once if the step has a
    dynamic batch axis, :attr:`dynamic_batch`) and ``step(frame, state)``. The state is a tuple of
    numpy arrays in the exported order (``state_names``), batch on the axes of the sidecar.

    Args:
        path: the ``.onnx`` file (its JSON sidecar must sit beside it, or pass ``meta``).
        threads: ONNX Runtime intra-op threads (1 for real-time use next to other work).
        meta: sidecar metadata, if not read from disk.

    Example:
        >>> import tempfile, torch
        >>> from denoisezoo.export import export_onnx
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
        self.threads = threads
        self.session = make_session(self.path, threads)
        got = [i.name for i in self.session.get_inputs()]
        if got != ["frame", *self.state_names]:
            raise ValueError(f"{self.path}: graph inputs {got} do not match the sidecar")
        self._out_names = ["out", *[f"{n}_out" for n in self.state_names]]

    def _run(self, frame: np.ndarray, state: Sequence[np.ndarray]) -> list[np.ndarray]:
        feeds = dict(zip(self.state_names, state, strict=True))
        feeds["frame"] = frame
        return self.session.run(self._out_names, feeds)
