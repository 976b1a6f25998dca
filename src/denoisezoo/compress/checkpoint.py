"""Compressed checkpoints: a pruned / sparse / QAT model saved with what was done to it.

A compressed model is a plain denoisezoo checkpoint (``.pt``) of a float model (structurally
pruned GTCRN with its narrower widths in the config, magnitude-pruned weights with exact zeros,
QAT-fine-tuned weights) whose ``meta["compression"]`` records the method; every entry point loads
it like any checkpoint. INT8 steps (``.onnx`` / ``.tflite``) are exported artefacts instead
(:mod:`denoisezoo.export.artefacts`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from torch import nn

from denoisezoo.audio import refuse_existing
from denoisezoo.hub import load_model, save_checkpoint

__all__ = ["save_compressed", "compression_record", "from_checkpoint"]


def save_compressed(model: nn.Module, path: str | Path, record: dict[str, Any], *,
                    name: str | None = None, source: str | None = None,
                    overwrite: bool = False, meta: dict[str, Any] | None = None) -> Path:
    """Write ``model`` as a denoisezoo checkpoint with ``meta["compression"] = record``."""
    path = Path(path)
    refuse_existing([path], overwrite)
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
    for fine-tuning a pruned model with ``denoisezoo train`` (PyTorch checkpoints only)::

        model:
          class_path: denoisezoo.training.EnhancementSystem
          init_args:
            model:
              class_path: denoisezoo.compress.from_checkpoint
              init_args: {source: pruned50.pt}
    """
    if Path(str(source)).suffix in (".onnx", ".tflite"):
        raise TypeError(f"{source}: an exported ONNX / LiteRT step cannot be fine-tuned; "
                        "start from the .pt")
    model = load_model(source)
    for p in model.parameters():
        p.requires_grad_(True)
    return model.train()
