"""Load the official GTCRN checkpoints (Xiaobin-Rong/gtcrn, MIT) into :class:`GTCRN`.

The official files are ``torch.save`` archives of ``{"epoch", "optimizer", "model"}``. Our module tree
keeps the official names except for two renames: the frozen ERB matrices are buffers
(``erb.erb_fc.weight`` -> ``erb.analysis``, ``erb.ierb_fc.weight`` -> ``erb.synthesis``) and the
dual-path blocks live in one list (``dpgrnn1.`` -> ``dpgrnn.0.``). No second copy of the model.
"""

from __future__ import annotations

import re
from pathlib import Path

import torch

from denoisezoo.gtcrn.config import GTCRNConfig
from denoisezoo.gtcrn.model import GTCRN

__all__ = ["load_official_checkpoint", "convert_official_state_dict", "is_official_checkpoint"]

def _rename(key: str) -> str:
    if key == "erb.erb_fc.weight":
        return "erb.analysis"
    if key == "erb.ierb_fc.weight":
        return "erb.synthesis"
    m = re.match(r"^dpgrnn(\d+)\.(.*)$", key)
    if m:
        return f"dpgrnn.{int(m.group(1)) - 1}.{m.group(2)}"
    return key


def convert_official_state_dict(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Map official parameter names to ours (values untouched)."""
    return {_rename(k): v for k, v in state.items()}


def is_official_checkpoint(obj: object) -> bool:
    """True for a loaded object that looks like an official GTCRN archive (its ERB and its
    dual-path GRNN blocks: UL-UNAS archives share the ERB key but not ``dpgrnn1``)."""
    return (
        isinstance(obj, dict)
        and isinstance(obj.get("model"), dict)
        and "erb.erb_fc.weight" in obj["model"]
        and any(k.startswith("dpgrnn1.") for k in obj["model"])
    )


def load_official_checkpoint(path: str | Path, map_location: str = "cpu") -> GTCRN:
    """Build the paper-size :class:`GTCRN` and load an official checkpoint file into it.

    Args:
        path: e.g. ``model_trained_on_dns3.tar`` from the official repository.

    Returns:
        The model in eval mode.

    Raises:
        FileNotFoundError: if ``path`` does not exist.
        ValueError: if the file is not an official GTCRN checkpoint or does not match the model.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"official GTCRN checkpoint not found: {path}")
    try:
        # the archive pickles only tensors and plain containers (plus the optimizer dict)
        obj = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as exc:  # noqa: BLE001 - report any unpickling failure the same way
        raise ValueError(f"{path} is not a readable torch checkpoint: {exc}") from exc
    if not is_official_checkpoint(obj):
        raise ValueError(f"{path} is not an official GTCRN checkpoint (no 'model' with erb.erb_fc)")
    return model_from_official_state(obj["model"])


def model_from_official_state(state: dict[str, torch.Tensor]) -> GTCRN:
    model = GTCRN(GTCRNConfig())
    converted = convert_official_state_dict(state)
    missing, unexpected = model.load_state_dict(converted, strict=False)
    if missing or unexpected:
        raise ValueError(f"official checkpoint does not match GTCRN: missing={missing}, "
                         f"unexpected={unexpected}")
    return model.eval()
