"""The ``denoisezoo`` command line: a thin dispatcher over subcommand modules.

Each subcommand module exposes ``add_parser(subparsers)`` and ``run(args) -> int``.
"""

from __future__ import annotations

import argparse
import importlib
import sys

__all__ = ["main", "build_parser"]

# subcommand name -> module (imported lazily so `denoisezoo --help` stays fast)
SUBCOMMANDS = {
    "denoise": "denoisezoo.cli.denoise",
    "models": "denoisezoo.cli.models",
    "evaluate": "denoisezoo.cli.evaluate",
    "export": "denoisezoo.cli.export",
    "train": "denoisezoo.cli.train",
    "live": "denoisezoo.cli.live",
    "compress": "denoisezoo.cli.compress",
}


def _available() -> dict[str, object]:
    return {name: importlib.import_module(modname) for name, modname in SUBCOMMANDS.items()}


def build_parser() -> tuple[argparse.ArgumentParser, dict[str, object]]:
    from denoisezoo import __version__

    parser = argparse.ArgumentParser(prog="denoisezoo", description="Real-time speech denoising zoo.")
    parser.add_argument("--version", action="version", version=f"denoisezoo {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    mods = _available()
    for mod in mods.values():
        mod.add_parser(sub)
    return parser, mods


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv and argv[0] == "train":  # LightningCLI parses its own arguments
        from denoisezoo.cli import train

        return train.main(argv[1:])
    parser, mods = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 2
    try:
        return int(mods[args.command].run(args) or 0)
    except BrokenPipeError:  # output piped into `head` & co.: stop quietly, as Unix tools do
        import os

        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
