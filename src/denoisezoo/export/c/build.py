"""Compiling an exported C folder: the system compiler, ``make``, and the build cache.

:func:`build` runs the folder's ``Makefile`` (or, without ``make``, the same compiler commands
for the shared library). :func:`cached_library` exports a model into
``$DENOISEZOO_CACHE/c/<key>`` (default ``~/.cache/denoisezoo/c``) and builds it once; the key
hashes the model's weights and config, the C templates, the compiler and the flags, so a second
call with the same model costs one hash.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import torch

__all__ = ["CACHE_OPT", "CompilerMissingError", "DEFAULT_OPT", "build", "cache_root", "cached_library",
           "compiler", "compiler_missing_reason"]

# -O3 lets gcc vectorise the short bin loops (the -O2 cost model of gcc 12 rarely does); the
# Makefile's default. The cache builds for the machine it runs on.
DEFAULT_OPT = "-O3"
CACHE_OPT = "-O3 -march=native"
LIB_NAME = "libdenoisezoo.so"


class CompilerMissingError(RuntimeError):
    """No C compiler on this machine."""


def compiler() -> str | None:
    """The C compiler to use: ``$CC``, else ``cc``, ``gcc`` or ``clang`` on the ``PATH``."""
    cc = os.environ.get("CC")
    if cc and shutil.which(cc.split()[0]):
        return cc
    for name in ("cc", "gcc", "clang"):
        if shutil.which(name):
            return name
    return None


def compiler_missing_reason() -> str | None:
    """Why nothing can be compiled here (``None`` if a compiler was found)."""
    if compiler() is None:
        return "no C compiler found (set $CC or install gcc, e.g. `apt-get install gcc make`)"
    return None


def _compiler_id(cc: str) -> str:
    try:
        out = subprocess.run([*cc.split(), "--version"], capture_output=True, text=True, timeout=30)
        return out.stdout.splitlines()[0] if out.stdout else cc
    except (OSError, subprocess.SubprocessError):
        return cc


def build(folder: str | Path, opt: str = DEFAULT_OPT, targets: tuple[str, ...] = ("all",),
          extra_cflags: str = "", cc: str | None = None) -> Path:
    """Build ``folder`` (written by :func:`denoisezoo.export.c.export_c`) and return the path
    of its ``libdenoisezoo.so``.

    Args:
        folder: the exported folder.
        opt: optimisation flags (the Makefile's ``CFLAGS_OPT``).
        targets: make targets (``all``: shared and static library and ``dz_demo``).
        extra_cflags: appended to the warning flags (e.g. ``-Werror`` or ``-fopt-info-vec``).
        cc: another compiler, e.g. the cross compiler ``aarch64-linux-gnu-gcc`` (its ``ar`` is
            the one with the same prefix).

    Raises:
        CompilerMissingError: no C compiler; RuntimeError: the build failed (its log attached).
    """
    folder = Path(folder)
    cc = cc or compiler()
    if cc is None or not shutil.which(cc.split()[0]):
        raise CompilerMissingError(compiler_missing_reason() or f"{cc}: not found")
    warn = f"-Wall -Wextra {extra_cflags}".strip()
    if shutil.which("make"):
        prefix = cc.split()[0][: -len("gcc")] if cc.split()[0].endswith("-gcc") else ""
        ar = [f"AR={prefix}ar"] if prefix else []
        cmds = [["make", "-C", str(folder), f"CC={cc}", *ar, f"CFLAGS_OPT={opt}",
                 f"CFLAGS_WARN={warn}", *targets]]
    else:  # the Makefile's shared-library rule, by hand
        src = ["dz_model.c", "dz_layers.c", "dz_fft.c", "dz_weights.c"]
        cmds = [[*cc.split(), "-std=c99", *opt.split(), *warn.split(), "-fno-trapping-math", "-fPIC",
                 "-fvisibility=hidden",
                 "-shared", "-o", LIB_NAME, *src, "-lm"]]
    for cmd in cmds:
        res = subprocess.run(cmd, cwd=folder, capture_output=True, text=True)
        if res.returncode != 0:
            raise RuntimeError(f"building {folder} failed ({' '.join(cmd)}):\n{res.stdout}{res.stderr}")
    return folder / LIB_NAME


def cache_root() -> Path:
    """``$DENOISEZOO_CACHE/c`` (default ``~/.cache/denoisezoo/c``)."""
    return Path(os.environ.get("DENOISEZOO_CACHE", "~/.cache/denoisezoo")).expanduser() / "c"


def _cache_key(model: torch.nn.Module, name: str | None, opt: str, cc: str) -> str:
    from denoisezoo.export.c.export import GENERATOR_VERSION, TEMPLATES

    h = hashlib.sha256()
    h.update(f"{GENERATOR_VERSION}\n{name}\n{opt}\n{_compiler_id(cc)}\n".encode())
    cfg = getattr(model, "config", None)
    h.update(json.dumps(cfg.to_dict() if hasattr(cfg, "to_dict") else None, sort_keys=True).encode())
    for name, t in model.state_dict().items():
        h.update(name.encode())
        h.update(t.detach().to(torch.float32).cpu().contiguous().numpy().tobytes())
    for f in sorted(TEMPLATES.iterdir()):
        if f.is_file():
            h.update(f.name.encode())
            h.update(f.read_bytes())
    return h.hexdigest()[:20]


def cached_library(model: torch.nn.Module, name: str | None = None, opt: str = CACHE_OPT,
                   root: str | Path | None = None) -> Path:
    """The built ``libdenoisezoo.so`` of ``model`` from the cache (``root``, default
    :func:`cache_root`), exported and built on the first call; concurrent callers may both
    build, one folder wins."""
    from denoisezoo.export.c.export import export_c

    cc = compiler()
    if cc is None:
        raise CompilerMissingError(compiler_missing_reason())
    root = Path(root) if root is not None else cache_root()
    final = root / _cache_key(model, name, opt, cc)
    lib = final / LIB_NAME
    if lib.is_file():
        return lib
    root.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".build-", dir=root))
    try:
        export_c(model, tmp, name=name, overwrite=True)
        build(tmp, opt=opt, targets=(LIB_NAME,))
        try:
            tmp.rename(final)
        except OSError:  # another process finished first
            if not lib.is_file():
                raise
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return lib
