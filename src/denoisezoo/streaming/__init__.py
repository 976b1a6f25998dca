"""Frame-by-frame inference: streaming sessions over any streamable model, ONNX step export.

- :class:`Streamer`: feed/flush/reset session with any chunk size, latency budget + fallback,
  per-hop timing and :meth:`Streamer.calibrate`.
- :func:`export_onnx` / :class:`OnnxStepModel`: the model's ``step`` on ONNX Runtime, usable by
  :class:`Streamer` like the PyTorch model.
"""

from denoisezoo.streaming.onnx_step import DEFAULT_OPSET, OnnxStepModel, export_onnx, sidecar_path
from denoisezoo.streaming.streamer import FALLBACKS, CalibrationResult, StreamableModel, Streamer

__all__ = [
    "DEFAULT_OPSET",
    "FALLBACKS",
    "CalibrationResult",
    "OnnxStepModel",
    "StreamableModel",
    "Streamer",
    "export_onnx",
    "sidecar_path",
]
