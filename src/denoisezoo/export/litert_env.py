"""The LiteRT converter environment: found, or made with one command.

``litert-torch`` cannot be installed beside the main environment's packages (``litert-torch==0.10``
pins ``xdsl==0.28.0``, which pins ``typing-extensions<4.13``, and moves ``pydantic``, ``click`` and
``idna``), so the conversion runs in a separate virtual environment, in a subprocess. It is made
once with::

    denoisezoo export tflite --install-converter

(:func:`setup_converter`: ``python -m venv --system-site-packages`` at :data:`DEFAULT_DIR`, then
``pip install "litert-torch==0.10.*"`` inside it; ``--system-site-packages`` reuses this
environment's torch, pip shadows the pinned packages inside the venv only). Found afterwards
without any setting; ``$DENOISEZOO_LITERT_PYTHON`` or ``--converter-python`` point elsewhere.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from denoisezoo.streaming.litert_runtime import EXTRA_HINT, LiteRTUnavailableError, litert_available

__all__ = ["CONVERTER_ENV", "DEFAULT_DIR", "LITERT_TORCH_REQ", "SETUP_COMMAND", "converter_python",
           "setup_converter", "unavailable_reason"]

CONVERTER_ENV = "DENOISEZOO_LITERT_PYTHON"
LITERT_TORCH_REQ = "litert-torch==0.10.*"
DEFAULT_DIR = Path(os.environ.get("DENOISEZOO_CACHE", "~/.cache/denoisezoo")).expanduser() / \
    "litert-converter"
SETUP_COMMAND = "denoisezoo export tflite --install-converter"
SETUP_HINT = (f"run `{SETUP_COMMAND}` once (makes the litert-torch converter environment in "
              f"{DEFAULT_DIR}; litert-torch cannot be installed beside this environment's packages: "
              f"it pins typing-extensions<4.13 through xdsl==0.28.0), or set {CONVERTER_ENV} to a "
              "python that has litert_torch")


def _litert_torch_here() -> bool:
    try:
        import litert_torch  # noqa: F401
    except ImportError:
        return False
    return True


def _venv_python(directory: Path) -> Path:
    return directory / ("Scripts/python.exe" if os.name == "nt" else "bin/python")


def _executable(p: str | Path) -> bool:
    return os.path.isfile(p) and os.access(p, os.X_OK)


def converter_python(python: str | Path | None = None) -> str | None:
    """The interpreter that runs the conversion in a subprocess: ``python``, else
    ``$DENOISEZOO_LITERT_PYTHON``, else the environment made by :func:`setup_converter` if it
    exists; ``None`` if none (then ``litert_torch`` must import in this process).

    Raises:
        LiteRTUnavailableError: a configured path is not an executable file.
    """
    p = python or os.environ.get(CONVERTER_ENV) or None
    if p is None:
        default = _venv_python(DEFAULT_DIR)
        return str(default) if _executable(default) else None
    p = os.path.expanduser(str(p))
    if not _executable(p):
        raise LiteRTUnavailableError(f"converter python {p!r} ({CONVERTER_ENV}) is not an "
                                     f"executable file; {SETUP_HINT}")
    return p


def unavailable_reason(python: str | Path | None = None) -> str | None:
    """Why :func:`~denoisezoo.export.export_tflite` cannot run here (interpreter or converter
    missing, one line), or ``None`` if it can; for scripts that skip LiteRT work with a reason."""
    if not litert_available():
        return f"the LiteRT interpreter is not installed ({EXTRA_HINT})"
    try:
        py = converter_python(python)
    except LiteRTUnavailableError as exc:
        return str(exc).split(";")[0]
    if py is None and not _litert_torch_here():
        return f"no litert-torch converter: run `{SETUP_COMMAND}` once (or set {CONVERTER_ENV})"
    return None


def _run(cmd: list[str], what: str) -> None:
    res = subprocess.run(cmd, capture_output=True, text=True)
    if res.returncode != 0:
        tail = " | ".join(res.stderr.strip().splitlines()[-3:])
        raise LiteRTUnavailableError(f"{what} failed (exit {res.returncode}): {tail}")


def setup_converter(directory: str | Path | None = None, requirement: str = LITERT_TORCH_REQ,
                    pip_args: tuple[str, ...] = ()) -> Path:
    """Make (or reuse) the converter environment; returns its python.

    Idempotent: an environment whose python already imports ``litert_torch`` is returned as is.

    Args:
        directory: where (default :data:`DEFAULT_DIR`).
        requirement: what pip installs there (default :data:`LITERT_TORCH_REQ`).
        pip_args: extra ``pip install`` arguments (e.g. an index or ``--no-index --find-links``).

    Raises:
        LiteRTUnavailableError: venv creation or the install failed (the message says which).
    """
    d = Path(directory).expanduser() if directory is not None else DEFAULT_DIR
    py = _venv_python(d)
    probe = [str(py), "-c", "import litert_torch"]
    if _executable(py) and subprocess.run(probe, capture_output=True).returncode == 0:
        return py
    d.parent.mkdir(parents=True, exist_ok=True)
    _run([sys.executable, "-m", "venv", "--system-site-packages", str(d)], f"python -m venv {d}")
    _run([str(py), "-m", "pip", "install", "-q", *pip_args, requirement], f"pip install {requirement}")
    _run(probe, f"import litert_torch in {py}")
    return py
