"""LiteRT (TFLite) backend for :class:`~denoisezoo.streaming.Streamer`: runs an exported step.

The ``.tflite`` file (written by :func:`denoisezoo.export.export_tflite`) holds the one-frame step
with every state tensor as an explicit input and output, like the ONNX step; LiteRT names them
``args_0 ...`` / ``output_0 ...`` and the JSON sidecar beside it maps them to ``frame``, the state
names, ``out`` and ``<name>_out``. INT8 / int16x8 files carry a scale and zero point per I/O
tensor: :class:`LiteRTStepModel` quantizes and dequantizes at the boundary, so its interface
stays float. Needs the interpreter (``ai-edge-litert``, the ``litert`` extra). Converts nothing.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from denoisezoo.streaming.backend import FrameStepBackend, read_sidecar

__all__ = ["LiteRTStepModel", "LiteRTUnavailableError", "litert_available", "require_interpreter",
           "SIDECAR_FORMAT", "SIGNATURE", "EXTRA_HINT"]

SIDECAR_FORMAT = "denoisezoo-litert-step"
SIGNATURE = "serving_default"
EXTRA_HINT = "install the LiteRT extra: pip install 'denoisezoo[litert]'"


class LiteRTUnavailableError(RuntimeError):
    """A LiteRT package (converter, interpreter or quantizer) is missing; the message says
    exactly what to install."""


def litert_available() -> bool:
    """Whether the interpreter (``ai-edge-litert``, the ``litert`` extra) imports here."""
    try:
        import ai_edge_litert.interpreter  # noqa: F401
    except ImportError:
        return False
    return True


def require_interpreter():
    """The LiteRT ``Interpreter`` class, or :class:`LiteRTUnavailableError` saying what to install."""
    try:
        from ai_edge_litert.interpreter import Interpreter
    except ImportError as exc:
        raise LiteRTUnavailableError(f"the LiteRT interpreter is not installed; {EXTRA_HINT}") from exc
    return Interpreter


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
        Interpreter = require_interpreter()
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
