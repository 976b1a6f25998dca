"""Helpers shared by subcommands: model selection arguments and error reporting."""

from __future__ import annotations

import argparse
import sys

from torch import nn

__all__ = ["add_model_args", "model_from_args", "error"]

DEFAULT_MODEL = "gtcrn"


def add_model_args(p: argparse.ArgumentParser) -> None:
    g = p.add_mutually_exclusive_group()
    g.add_argument("--model", metavar="NAME", default=None,
                   help=f"shipped model name (default: {DEFAULT_MODEL}); see `denoisezoo models`")
    g.add_argument("--checkpoint", metavar="PATH", default=None,
                   help="a denoisezoo/Lightning checkpoint, compressed artefact or official GTCRN .tar")


def model_from_args(args: argparse.Namespace) -> nn.Module:
    from denoisezoo.hub import load_model

    if args.checkpoint:
        return load_model(args.checkpoint)
    return load_model(args.model or DEFAULT_MODEL)


def error(msg: str) -> int:
    print(f"denoisezoo: error: {msg}", file=sys.stderr)
    return 1
