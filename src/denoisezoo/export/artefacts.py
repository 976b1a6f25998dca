"""Exported artefacts as drop-in models: what every entry point loads for ``.onnx`` / ``.tflite``.

Self-describing kinds, each a step file plus its JSON sidecar (geometry, state layout, family,
config, and for INT8 files a ``compression`` record):

- an ONNX Runtime (possibly INT8) step (``.onnx``, :func:`~denoisezoo.export.export_onnx` or
  :func:`~denoisezoo.compress.quantize_step`), loaded as an :class:`OnnxModel`;
- a LiteRT (float, int8 or int16x8) step (``.tflite``, :func:`~denoisezoo.export.export_tflite`),
  loaded as a :class:`LiteRTModel` (needs the ``litert`` extra).

:func:`load_artefact` picks by suffix; :func:`denoisezoo.load_model` calls it for those suffixes,
so ``denoise``, ``evaluate``, ``live`` and the :class:`~denoisezoo.streaming.Streamer` take them.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from denoisezoo.hub import CheckpointError, family_by_name
from denoisezoo.streaming.litert_runtime import LiteRTStepModel, LiteRTUnavailableError
from denoisezoo.streaming.onnx_runtime import OnnxStepModel

__all__ = ["OnnxModel", "LiteRTModel", "load_artefact", "load_onnx_model", "load_litert_model"]


class _StepArtefact:
    """Drop-in model behaviour of an exported step (mixed into a :class:`FrameStepBackend`):
    ``model(spec)``, ``config``, ``checkpoint_meta``, ``compression``, no-op ``eval``/``to``."""

    file_format = "?"

    def _init_artefact(self) -> None:
        cfg, fam = self.meta.get("config"), self.meta.get("family")
        self.family = family_by_name(fam).name if fam else None
        self.config = family_by_name(fam).config_from_dict(cfg) if cfg is not None and fam else None
        self.compression: dict[str, Any] | None = self.meta.get("compression")
        self.checkpoint_meta = {"name": self.name, "compression": self.compression,
                                "format": self.file_format}

    def __call__(self, spec: torch.Tensor) -> torch.Tensor:
        """``spec (B, F, T, 2)`` -> enhanced ``(B, F, T, 2)`` from zero state."""
        return self.forward_stateful(spec, None)[0]

    def eval(self):
        return self

    def train(self, mode: bool = True):
        if mode:
            raise TypeError(f"an exported {self.file_format} step cannot be trained")
        return self

    def to(self, *args, **kwargs):
        return self


class OnnxModel(_StepArtefact, OnnxStepModel):
    """An exported (possibly INT8) step as a drop-in model: ``model(spec)`` enhances a whole
    spectrogram frame by frame on ONNX Runtime (what :func:`denoisezoo.api.enhance` calls), plus
    ``config``, ``checkpoint_meta`` and ``compression`` from the sidecar.

    Example:
        >>> import tempfile
        >>> from denoisezoo.gtcrn import gtcrn_tiny
        >>> from denoisezoo.export import export_onnx
        >>> path = Path(tempfile.mkdtemp()) / "tiny.onnx"
        >>> _ = export_onnx(gtcrn_tiny(), path)
        >>> m = load_onnx_model(path)
        >>> m(torch.zeros(1, 257, 3, 2)).shape
        torch.Size([1, 257, 3, 2])
    """

    file_format = "onnx"

    def __init__(self, path: str | Path, threads: int = 1, meta: dict[str, Any] | None = None):
        OnnxStepModel.__init__(self, path, threads, meta)
        self._init_artefact()


class LiteRTModel(_StepArtefact, LiteRTStepModel):
    """An exported LiteRT step (float32, int8 or int16x8) as a drop-in model, like
    :class:`OnnxModel` but run by the LiteRT interpreter (``ai-edge-litert``, the ``litert``
    extra; :class:`~denoisezoo.streaming.LiteRTUnavailableError` without it)."""

    file_format = "tflite"

    def __init__(self, path: str | Path, threads: int = 1, meta: dict[str, Any] | None = None):
        LiteRTStepModel.__init__(self, path, threads, meta)
        self._init_artefact()
        self.checkpoint_meta["precision"] = self.meta.get("precision")


def load_onnx_model(path: str | Path, threads: int = 1) -> OnnxModel:
    """Load an exported / quantized step (``.onnx`` + JSON sidecar)."""
    return OnnxModel(path, threads)


def load_litert_model(path: str | Path, threads: int = 1) -> LiteRTModel:
    """Load an exported LiteRT step (``.tflite`` + JSON sidecar).

    Raises:
        LiteRTUnavailableError: the LiteRT interpreter (``litert`` extra) is not installed.
    """
    return LiteRTModel(path, threads)


def load_artefact(path: str | Path, threads: int = 1) -> OnnxModel | LiteRTModel:
    """An exported step (``.onnx`` or ``.tflite`` with its sidecar) as a drop-in model.

    Raises:
        FileNotFoundError: no such file. CheckpointError: another suffix, or a ``.tflite``
        without the LiteRT interpreter (the message says what to install).
    """
    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"model not found: {p}")
    if p.suffix == ".onnx":
        return OnnxModel(p, threads)
    if p.suffix == ".tflite":
        try:
            return LiteRTModel(p, threads)
        except LiteRTUnavailableError as exc:  # a ValueError, so every CLI reports it cleanly
            raise CheckpointError(f"{p}: {exc}") from exc
    raise CheckpointError(f"{p}: not an exported step (.onnx or .tflite)")
