"""Compressed artefacts: what ``denoisezoo compress`` writes and every entry point loads.

Self-describing kinds:

- a denoisezoo checkpoint (``.pt``) of a plain float model (structurally pruned GTCRN with its
  narrower widths in the config, magnitude-pruned weights with exact zeros, QAT-fine-tuned
  weights) whose ``meta["compression"]`` records what was done;
- an ONNX Runtime (possibly INT8) model of the streaming step (``.onnx``) with its JSON sidecar
  (the :func:`~denoisezoo.streaming.export_onnx` sidecar plus a ``compression`` record), loaded
  as an :class:`OnnxModel`;
- a LiteRT (float, int8 or int16x8) step (``.tflite``) with the
  :func:`~denoisezoo.streaming.litert.export_tflite` sidecar, loaded as a :class:`LiteRTModel`
  (needs the ``litert`` extra).

:func:`denoisezoo.hub.load_model` accepts all of them, so ``denoise``, ``evaluate``, the
:class:`~denoisezoo.streaming.Streamer` and ``export onnx`` (``.pt`` / ``.onnx``) do too.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch import nn

from denoisezoo.streaming.litert import LiteRTStepModel
from denoisezoo.streaming.onnx_step import OnnxStepModel

__all__ = ["OnnxModel", "LiteRTModel", "load_onnx_model", "load_litert_model", "save_compressed",
           "compression_record", "from_checkpoint"]


class _StepArtefact:
    """Drop-in model behaviour of an exported step (mixed into a :class:`FrameStepBackend`):
    ``model(spec)``, ``config``, ``checkpoint_meta``, ``compression``, no-op ``eval``/``to``."""

    file_format = "?"

    def _init_artefact(self) -> None:
        cfg = self.meta.get("config")
        self.config = None
        if cfg is not None and self.meta.get("family") == "GTCRN":
            from denoisezoo.gtcrn import GTCRNConfig

            self.config = GTCRNConfig.from_dict(cfg)
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
        >>> from denoisezoo.streaming import export_onnx
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
    extra; :class:`~denoisezoo.streaming.litert.LiteRTUnavailableError` without it)."""

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


def save_compressed(model: nn.Module, path: str | Path, record: dict[str, Any], *,
                    name: str | None = None, source: str | None = None,
                    overwrite: bool = False, meta: dict[str, Any] | None = None) -> Path:
    """Write ``model`` as a denoisezoo checkpoint with ``meta["compression"] = record``."""
    from denoisezoo.hub import save_checkpoint

    path = Path(path)
    if path.exists() and not overwrite:
        raise FileExistsError(f"{path}: exists (use --overwrite to replace it)")
    base = getattr(model, "checkpoint_meta", {}) or {}
    info = {k: base[k] for k in ("training_data", "teacher") if k in base}
    info.update(meta or {})
    nonzero = sum(int((p != 0).sum()) for p in model.parameters() if p.requires_grad)
    return save_checkpoint(model, path, name=name or base.get("name"),
                           meta={**info, "compression": {**record, "source": source},
                                 "nonzero_params": nonzero})


def compression_record(model: Any) -> dict[str, Any] | None:
    """The ``compression`` record of a loaded artefact (``None`` for an uncompressed model)."""
    return (getattr(model, "checkpoint_meta", None) or {}).get("compression")


def from_checkpoint(source: str) -> nn.Module:
    """A trainable model from any checkpoint / artefact :func:`denoisezoo.hub.load_model` reads,
    for fine-tuning a pruned model with ``denoisezoo train``::

        model:
          class_path: denoisezoo.training.EnhancementSystem
          init_args:
            model:
              class_path: denoisezoo.compress.from_checkpoint
              init_args: {source: pruned50.pt}
    """
    from denoisezoo.hub import load_model

    model = load_model(source)
    if not isinstance(model, nn.Module):
        raise TypeError(f"{source}: an exported ONNX / LiteRT step cannot be fine-tuned; "
                        "start from the .pt")
    for p in model.parameters():
        p.requires_grad_(True)
    return model.train()
