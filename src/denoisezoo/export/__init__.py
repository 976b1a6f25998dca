"""Conversion: a model's streaming step into the files other runtimes load, and those files back.

- :mod:`~denoisezoo.export.onnx`: :func:`export_onnx` (the step for ONNX Runtime).
- :mod:`~denoisezoo.export.litert`: :func:`export_tflite` (LiteRT, float or INT8 via
  :mod:`~denoisezoo.export.litert_int8`); its converter environment
  (:mod:`~denoisezoo.export.litert_env`, made by ``denoisezoo export tflite --install-converter``).
- :mod:`~denoisezoo.export.c`: :func:`~denoisezoo.export.c.export_c`, the whole streamer as a
  C99 folder (``denoisezoo export c``), built into a cache for the ``c`` backend.
- :mod:`~denoisezoo.export.calibration`: real frames + states for INT8 calibration.
- :mod:`~denoisezoo.export.artefacts`: :func:`load_artefact`, :class:`OnnxModel`,
  :class:`LiteRTModel` (an exported step as a drop-in model).

The runtimes that *run* those files are in :mod:`denoisezoo.streaming`; this package converts.
Every exported step takes ``(frame, *states)`` and returns ``(out, *next_states)``.
"""

from denoisezoo.export.artefacts import (
    LiteRTModel,
    OnnxModel,
    load_artefact,
    load_litert_model,
    load_onnx_model,
)
from denoisezoo.export.calibration import calibration_feeds, load_calibration_audio
from denoisezoo.export.litert import export_tflite
from denoisezoo.export.litert_env import CONVERTER_ENV, converter_python, setup_converter, unavailable_reason
from denoisezoo.export.onnx import DEFAULT_OPSET, export_onnx, export_paths

__all__ = [
    "CONVERTER_ENV",
    "DEFAULT_OPSET",
    "LiteRTModel",
    "OnnxModel",
    "calibration_feeds",
    "converter_python",
    "export_onnx",
    "export_paths",
    "export_tflite",
    "load_artefact",
    "load_calibration_audio",
    "load_litert_model",
    "load_onnx_model",
    "setup_converter",
    "unavailable_reason",
]
