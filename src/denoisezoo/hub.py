"""Model registry and self-describing checkpoints.

A denoisezoo checkpoint is a ``torch.save`` dict of plain data (loadable with
``weights_only=True``; no pickled classes)::

    {"format": "denoisezoo", "format_version": 1, "family": "gtcrn", "name": "gtcrn",
     "config": {...}, "state_dict": {...}, "meta": {...}}

``meta`` records what a user needs to trust the weights: versions, sample rate, hop, training data,
steps, teacher, metrics, and the model card (``meta["card"]``, the text of ``docs/models/NAME.md``).

This module is the name registry (:data:`FAMILIES`, :data:`PRESETS`, the shipped weights) and
checkpoint I/O only. :func:`load_model` reads PyTorch checkpoints: a shipped model name, a preset
name (``pretrained=False``), a denoisezoo checkpoint, a Lightning checkpoint of our training
modules, an official GTCRN or UL-UNAS ``.tar``. Exported steps (``.onnx``, ``.tflite``) are read by
:func:`denoisezoo.load_model` (:mod:`denoisezoo.export.artefacts`), which takes every source.
"""

from __future__ import annotations

import datetime as _dt
from collections.abc import Callable
from importlib import resources
from pathlib import Path
from typing import Any

import torch
from torch import nn

from denoisezoo.family import Family
from denoisezoo.gtcrn.family import FAMILY as GTCRN_FAMILY
from denoisezoo.gtcrn.official import is_official_checkpoint, model_from_official_state
from denoisezoo.rnnoise_port.family import FAMILY as RNNOISE_FAMILY
from denoisezoo.ulunas.family import FAMILY as ULUNAS_FAMILY
from denoisezoo.ulunas.official import is_official_checkpoint as is_official_ulunas
from denoisezoo.ulunas.official import model_from_official_state as ulunas_from_official_state

__all__ = [
    "DEFAULT_MODEL",
    "FAMILIES",
    "PRESETS",
    "build_model",
    "load_model",
    "save_checkpoint",
    "load_checkpoint_file",
    "shipped_models",
    "model_family",
    "family_of",
    "family_by_name",
    "model_card",
    "CheckpointError",
]

FORMAT = "denoisezoo"
FORMAT_VERSION = 1
EXPORTED_SUFFIXES = (".onnx", ".tflite")
# The default model: the best shipped model of the zoo's size class (<= DEFAULT_MAX_PARAMS learnable
# parameters) on the development set, PESQ-wb and ESTOI both (tests/models/test_shipped.py checks it
# against every card). Larger shipped models (teachers) are outside that class.
DEFAULT_MODEL = "gtcrn_dns3_ft"
DEFAULT_MAX_PARAMS = 48_000


class CheckpointError(ValueError):
    """A file that is not a loadable model checkpoint."""


# The registry: one line per family (each declared once, in its own package's family.py).
FAMILIES: dict[str, Family] = {f.name: f for f in (GTCRN_FAMILY, RNNOISE_FAMILY, ULUNAS_FAMILY)}
PRESETS: dict[str, Callable[[], nn.Module]] = {k: v for f in FAMILIES.values() for k, v in f.presets.items()}
_BY_ANY_NAME: dict[str, Family] = {n: f for f in FAMILIES.values() for n in (f.name, *f.legacy_names)}


def family_by_name(name: str) -> Family:
    """The family registered as ``name`` (older files' class names such as ``"GTCRN"`` too)."""
    try:
        return _BY_ANY_NAME[name]
    except KeyError:
        raise CheckpointError(f"unknown model family {name!r}; registered: "
                              f"{', '.join(FAMILIES)}") from None


def family_of(model: object, strict: bool = True) -> Family | None:
    """The :class:`~denoisezoo.family.Family` of ``model`` (a network, or an exported-step model
    whose ``family`` names one); an unregistered model raises ``TypeError``, or gives ``None``
    with ``strict=False``."""
    for fam in FAMILIES.values():
        if isinstance(model, fam.model_cls):
            return fam
    name = getattr(model, "family", None)
    if isinstance(name, str) and name in _BY_ANY_NAME:
        return _BY_ANY_NAME[name]
    if not strict:
        return None
    raise TypeError(f"{type(model).__name__} is not a registered model family")


def model_family(model: nn.Module, strict: bool = True) -> str | None:
    """Registered family name of ``model`` (``"gtcrn"``, ``"rnnoise"``, ...)."""
    fam = family_of(model, strict)
    return fam.name if fam is not None else None


def build_model(name: str) -> nn.Module:
    """A randomly initialised model from a preset name (see :data:`PRESETS`)."""
    if name not in PRESETS:
        raise KeyError(f"unknown preset {name!r}; available: {', '.join(sorted(PRESETS))}")
    return PRESETS[name]()


def _weights_dir() -> Path:
    return Path(str(resources.files("denoisezoo") / "weights"))


def shipped_models() -> dict[str, Path]:
    """Names of the models whose trained weights ship inside the package."""
    d = _weights_dir()
    return {p.stem: p for p in sorted(d.glob("*.pt"))} if d.is_dir() else {}


def rate_variant(name: str, sample_rate: int) -> str | None:
    """The shipped model of ``name``'s line that runs natively at ``sample_rate``, if any.

    ``gtcrn`` at 48000 Hz -> ``gtcrn_48k`` when that ships; a name already at that rate is
    returned as is; ``None`` when nothing ships for that rate (callers then resample).
    """
    import re

    shipped = shipped_models()
    base = re.sub(r"_\d+k$", "", name)
    candidates = [name, base, f"{base}_{sample_rate // 1000}k"] if sample_rate % 1000 == 0 else [name]
    for cand in candidates:
        if cand in shipped and _shipped_rate(shipped[cand]) == sample_rate:
            return cand
    return None


def _shipped_rate(path: Path) -> int | None:
    try:
        cfg = load_checkpoint_file(path)["config"]
    except Exception:  # an unreadable file is reported when loaded, not here
        return None
    return int(cfg.get("sample_rate", 0)) or None


def save_checkpoint(model: nn.Module, path: str | Path, name: str | None = None,
                    meta: dict[str, Any] | None = None) -> Path:
    """Write a self-describing checkpoint of ``model``."""
    family = family_of(model).name
    cfg = model.config
    obj = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "family": family,
        "name": name or family,
        "config": cfg.to_dict(),
        "state_dict": {k: v.detach().cpu().clone() for k, v in model.state_dict().items()},
        "meta": {
            "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
            "torch": str(torch.__version__),
            "sample_rate": cfg.sample_rate,
            "hop_length": cfg.hop_length,
            "n_fft": cfg.n_fft,
            "params": sum(p.numel() for p in model.parameters() if p.requires_grad),
            **(meta or {}),
        },
    }
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".part")
    torch.save(obj, tmp)
    tmp.replace(path)
    return path


def load_checkpoint_file(path: str | Path) -> dict[str, Any]:
    """Read a checkpoint file into a plain dict (no code execution)."""
    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"checkpoint not found: {p}")
    try:
        return torch.load(p, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001
        raise CheckpointError(f"{p}: not a readable checkpoint ({str(exc).splitlines()[0][:160]})") from exc


def model_from_checkpoint(obj: dict[str, Any], source: str = "<dict>") -> nn.Module:
    """Build the model a loaded checkpoint dict describes (ours, Lightning's or official)."""
    if isinstance(obj, dict) and obj.get("format") == FORMAT:
        try:
            fam = family_by_name(obj["family"])
        except CheckpointError as exc:
            raise CheckpointError(f"{source}: {exc}") from None
        model = fam.build(fam.config_from_dict(obj["config"]))
        model.load_state_dict(obj["state_dict"])
        model.checkpoint_meta = {"name": obj.get("name"), **obj.get("meta", {})}
        return model.eval()
    if is_official_ulunas(obj):  # asked first: GTCRN's test (ERB keys only) matches it too
        model = ulunas_from_official_state(obj["model"])
        model.checkpoint_meta = {"name": "ulunas_official", "epoch": obj.get("epoch")}
        return model
    if is_official_checkpoint(obj):
        model = model_from_official_state(obj["model"])
        model.checkpoint_meta = {"name": "gtcrn_official", "epoch": obj.get("epoch")}
        return model
    if isinstance(obj, dict) and "denoisezoo_model" in obj.get("hyper_parameters", {}) | obj:
        # Lightning checkpoint written by denoisezoo.training (model description stored by the module)
        desc = obj.get("denoisezoo_model") or obj["hyper_parameters"]["denoisezoo_model"]
        fam = family_by_name(desc["family"])
        model = fam.build(fam.config_from_dict(desc["config"]))
        prefix = desc.get("prefix", "model.")
        sd = {k[len(prefix):]: v for k, v in obj["state_dict"].items() if k.startswith(prefix)}
        model.load_state_dict(sd)
        model.checkpoint_meta = {"name": desc.get("name", desc["family"]),
                                 "global_step": obj.get("global_step")}
        return model.eval()
    raise CheckpointError(f"{source}: not a denoisezoo, Lightning or official GTCRN / UL-UNAS "
                          "checkpoint")


def load_model(name_or_path: str | Path, pretrained: bool = True) -> nn.Module:
    """Load a PyTorch model by shipped name, preset name or checkpoint path.

    Args:
        name_or_path: ``"gtcrn"`` (shipped weights), a preset such as ``"gtcrn_tiny"`` with
            ``pretrained=False``, or a path to a denoisezoo / Lightning checkpoint or an official
            GTCRN ``.tar``. (Exported ``.onnx`` / ``.tflite`` steps: :func:`denoisezoo.load_model`.)
        pretrained: if False, build the named preset with random weights.

    Returns:
        The model in eval mode.

    Raises:
        CheckpointError: unreadable file, or an exported step (not a PyTorch checkpoint).
        KeyError: an unknown name.
    """
    s = str(name_or_path)
    p = Path(s)
    if p.suffix in EXPORTED_SUFFIXES:
        raise CheckpointError(f"{p}: an exported step, not a PyTorch checkpoint; load it with "
                              "denoisezoo.load_model")
    if p.suffix in (".pt", ".tar", ".ckpt", ".pth") or p.exists():
        return model_from_checkpoint(load_checkpoint_file(p), s)
    if not pretrained:
        return build_model(s).eval()
    shipped = shipped_models()
    if s in shipped:
        return model_from_checkpoint(load_checkpoint_file(shipped[s]), s)
    avail = ", ".join(sorted(shipped)) or "none yet"
    hint = " (a preset: pass pretrained=False for random weights)" if s in PRESETS else ""
    raise KeyError(f"no trained model named {s!r}{hint}; shipped models: {avail}")


def model_card(name: str) -> str | None:
    """The model card (markdown) embedded in the shipped weights of ``name``, if any."""
    shipped = shipped_models()
    if name not in shipped:
        raise KeyError(f"no shipped model named {name!r}; shipped models: {', '.join(sorted(shipped))}")
    return load_checkpoint_file(shipped[name]).get("meta", {}).get("card")
