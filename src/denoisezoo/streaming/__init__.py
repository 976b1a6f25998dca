"""Running models frame by frame: streaming sessions over any streamable model or exported step.

- :class:`Streamer`: feed/flush/reset session with any chunk size, latency budget + fallback,
  per-hop timing and :meth:`Streamer.calibrate`.
- :class:`StreamPool`: many independent streams of one model advanced by one batched step per
  hop (servers), with a hop budget, p50/p99 latency and an overload policy.
- Runtimes for exported steps, usable by :class:`Streamer` like the PyTorch model:
  :class:`OnnxStepModel` (ONNX Runtime), :class:`LiteRTStepModel` (LiteRT), both on
  :class:`~denoisezoo.streaming.backend.FrameStepBackend`, and :class:`CStepModel` (a library
  built by ``denoisezoo export c``, through ctypes; :class:`CLibrary` is its C API).

Nothing here converts a model: exporting is :mod:`denoisezoo.export`.
"""

from denoisezoo.streaming.backend import FrameStepBackend, read_sidecar, sidecar_path
from denoisezoo.streaming.c_runtime import CLibrary, CStepModel
from denoisezoo.streaming.litert_runtime import LiteRTStepModel, LiteRTUnavailableError, litert_available
from denoisezoo.streaming.onnx_runtime import OnnxStepModel, make_session
from denoisezoo.streaming.pool import POOL_BACKENDS, StreamPool
from denoisezoo.streaming.streamer import FALLBACKS, CalibrationResult, StreamableModel, Streamer

__all__ = [
    "FALLBACKS",
    "CLibrary",
    "CStepModel",
    "CalibrationResult",
    "FrameStepBackend",
    "LiteRTStepModel",
    "LiteRTUnavailableError",
    "OnnxStepModel",
    "POOL_BACKENDS",
    "StreamPool",
    "StreamableModel",
    "Streamer",
    "litert_available",
    "make_session",
    "read_sidecar",
    "sidecar_path",
]
