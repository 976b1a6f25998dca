"""Helpers shared by subcommands: choosing a model, the never-overwrite rule, error reporting.

Every command that runs a model takes the same three mutually exclusive flags, parsed by
:func:`add_model_args` and resolved by :func:`resolve_model`:

- ``--model NAME``: a shipped model (default :data:`DEFAULT_MODEL`; ``denoisezoo models``);
- ``--checkpoint PATH``: a denoisezoo / Lightning checkpoint, a compressed artefact, an exported
  ``.onnx`` / ``.tflite`` step or an official GTCRN ``.tar`` (:func:`denoisezoo.load_model`);
- ``--preset NAME``: a preset with random weights (tests, benchmarks).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from denoisezoo.hub import DEFAULT_MODEL  # the registry names the default

__all__ = ["DEFAULT_MODEL", "ResolvedModel", "add_model_args", "add_overwrite_arg", "resolve_model",
           "model_from_args", "refuse_existing", "error"]


def add_model_args(p: argparse.ArgumentParser) -> None:
    """``--model`` / ``--checkpoint`` / ``--preset`` (one of them, or none for the default)."""
    g = p.add_mutually_exclusive_group()
    g.add_argument("--model", metavar="NAME", default=None,
                   help=f"shipped model name (default: {DEFAULT_MODEL}); see `denoisezoo models`")
    g.add_argument("--checkpoint", metavar="PATH", default=None,
                   help="a denoisezoo/Lightning checkpoint, compressed artefact, exported .onnx / "
                        ".tflite step or official GTCRN .tar")
    g.add_argument("--preset", metavar="NAME", default=None,
                   help="a preset with random weights (e.g. gtcrn_tiny), for tests and benchmarks")


def add_overwrite_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument("--overwrite", action="store_true", help="replace existing output files")


@dataclass(frozen=True)
class ResolvedModel:
    """What the model flags chose: the model, its name and a source string for records."""

    model: Any
    name: str
    source: str


def resolve_model(args: argparse.Namespace, *, torch_only: bool = False) -> ResolvedModel:
    """Load the model the flags name (the one place every command does it).

    Args:
        args: parsed flags of :func:`add_model_args`.
        torch_only: refuse an exported step (for commands that change weights).

    Raises:
        KeyError, FileNotFoundError, ValueError: unknown name, missing or unreadable file.
    """
    from denoisezoo.api import load_model
    from denoisezoo.export.artefacts import OnnxModel

    preset = getattr(args, "preset", None)
    if preset:
        model, name, source = load_model(preset, pretrained=False), preset, f"preset:{preset}"
    elif args.checkpoint:
        model, source = load_model(args.checkpoint), args.checkpoint
        name = (getattr(model, "checkpoint_meta", None) or {}).get("name") or Path(source).stem
    else:
        name = source = args.model or DEFAULT_MODEL
        model = load_model(name)
    if torch_only and not hasattr(model, "state_dict"):
        kind = "ONNX" if isinstance(model, OnnxModel) else "exported"
        raise ValueError(f"{source}: already an {kind} step; start from the float .pt instead")
    return ResolvedModel(model, name, source)


def model_from_args(args: argparse.Namespace) -> Any:
    """The model of :func:`resolve_model`."""
    return resolve_model(args).model


def refuse_existing(paths: Iterable[str | Path], overwrite: bool) -> str | None:
    """The never-overwrite rule for commands: the error message for the first existing path
    (``None`` if none exists or ``overwrite``)."""
    from denoisezoo.audio import refuse_existing as _refuse

    try:
        _refuse(paths, overwrite)
    except FileExistsError as exc:
        return str(exc)
    return None


def error(msg: str) -> int:
    print(f"denoisezoo: error: {msg}", file=sys.stderr)
    return 1
