"""Model compression: structured and unstructured pruning, INT8 quantization (PTQ and QAT).

- :mod:`~denoisezoo.compress.structured`: :func:`prune_structured` (smaller dense GTCRN).
- :mod:`~denoisezoo.compress.sparse`: :func:`prune_unstructured`, :class:`SparsityCallback`
  (gradual magnitude / block sparsity during ``denoisezoo train``).
- :mod:`~denoisezoo.compress.quantize`: :func:`quantize_step` (ONNX Runtime INT8 step, static
  QDQ with real calibration frames + states, or dynamic).
- :mod:`~denoisezoo.compress.qat`: :func:`prepare_qat`, :func:`strip_qat`, :class:`QATCallback`.
- :mod:`~denoisezoo.compress.checkpoint`: :func:`save_compressed`, :func:`compression_record`,
  :func:`from_checkpoint` (fine-tune a compressed checkpoint).

Compression builds on :mod:`denoisezoo.export` (the INT8 step is an exported ONNX step).

Names are imported lazily (Lightning and ONNX Runtime load only when used).
"""

from __future__ import annotations

import importlib

__all__ = [
    "prune_structured", "unit_importance", "unit_groups", "KINDS",
    "prune_unstructured", "SparsityCallback", "cubic_sparsity", "magnitude_masks", "sparsity",
    "quantize_step", "fold_batchnorm",
    "prepare_qat", "strip_qat", "QATCallback",
    "save_compressed", "compression_record", "from_checkpoint",
]

_WHERE = {
    **dict.fromkeys(["prune_structured", "unit_importance", "unit_groups", "KINDS"], "structured"),
    **dict.fromkeys(["prune_unstructured", "SparsityCallback", "cubic_sparsity", "magnitude_masks",
                     "sparsity"], "sparse"),
    **dict.fromkeys(["quantize_step", "fold_batchnorm"], "quantize"),
    **dict.fromkeys(["prepare_qat", "strip_qat", "QATCallback"], "qat"),
    **dict.fromkeys(["save_compressed", "compression_record", "from_checkpoint"], "checkpoint"),
}


def __getattr__(name: str):
    if name in _WHERE:
        return getattr(importlib.import_module(f"denoisezoo.compress.{_WHERE[name]}"), name)
    raise AttributeError(f"module 'denoisezoo.compress' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(__all__)
