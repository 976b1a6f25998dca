"""Load the authors' UL-UNAS checkpoint (Xiaobin-Rong/ul-unas, MIT) into :class:`ULUNAS`.

The authors' file ``model_trained_on_dns3.tar`` is a ``torch.save`` archive of
``{"epoch", "optimizer", "scheduler", "model"}``; ``model`` is the state dict of their module
tree. Ours holds the same tensors under other names (values untouched):

- blocks keep their places (``encoder.en_convs.i``, ``decoder.de_convs.i``); inside a block
  the authors' ``nn.Sequential`` indices become named units: the point-wise conv
  unit (``pconv.0-2`` / ``pconv1.0-2``) -> ``pw1.{conv,bn,act}``, the time-frequency conv
  (``ops.1-3`` / ``dconv.1-3``) -> ``tf.{conv,bn,act}``, the second point-wise conv
  (``pconv2.0-1``) -> ``pw2.{conv,bn}``, the attention (``ops.4`` / ``dconv.4`` /
  ``pconv2.2``) -> ``tfa``;
- activations: ``affine_weight`` / ``affine_bias`` / ``slope_weight`` -> ``scale`` / ``shift`` /
  ``slope``;
- the frozen ERB matrices are buffers: ``erb.erb_fc.weight`` -> ``erb.analysis``,
  ``erb.ierb_fc.weight`` -> ``erb.synthesis``;
- the dual-path RNNs keep their names (``dpgrnn.k.*``).

The authors' network reads periodic-Hann spectra; :class:`~denoisezoo.ulunas.model.WindowConverter`
bridges it to the project's sqrt-Hann framing exactly, so no weight changes.
"""

from __future__ import annotations

import re
from pathlib import Path

import torch

from denoisezoo.ulunas.config import ULUNASConfig
from denoisezoo.ulunas.model import ULUNAS

__all__ = ["load_official_checkpoint", "convert_official_state_dict", "is_official_checkpoint",
           "model_from_official_state"]

_UNITS = {
    "ops.1": "tf.conv", "ops.2": "tf.bn", "ops.3": "tf.act", "ops.4": "tfa",
    "pconv.0": "pw1.conv", "pconv.1": "pw1.bn", "pconv.2": "pw1.act",
    "pconv1.0": "pw1.conv", "pconv1.1": "pw1.bn", "pconv1.2": "pw1.act",
    "dconv.1": "tf.conv", "dconv.2": "tf.bn", "dconv.3": "tf.act", "dconv.4": "tfa",
    "pconv2.0": "pw2.conv", "pconv2.1": "pw2.bn", "pconv2.2": "tfa",
}
_LEAVES = {"affine_weight": "scale", "affine_bias": "shift", "slope_weight": "slope"}
_BLOCK = re.compile(r"^((?:encoder\.en|decoder\.de)_convs\.\d+)\.(\w+\.\d+)\.(.*)$")
_MARKER = "encoder.en_convs.0.ops.1.weight"  # the first block's conv: UL-UNAS, not GTCRN


def _rename(key: str) -> str:
    if key == "erb.erb_fc.weight":
        return "erb.analysis"
    if key == "erb.ierb_fc.weight":
        return "erb.synthesis"
    m = _BLOCK.match(key)
    if not m:
        return key
    block, unit, rest = m.groups()
    if unit not in _UNITS:
        return key  # left as is: load_state_dict reports it
    return f"{block}.{_UNITS[unit]}.{_LEAVES.get(rest, rest)}"


def convert_official_state_dict(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Map the authors' parameter names to ours (values untouched)."""
    return {_rename(k): v for k, v in state.items()}


def is_official_checkpoint(obj: object) -> bool:
    """True for a loaded object that looks like the authors' UL-UNAS archive (a ``model`` state
    dict with the ERB matrices and the first block's ``ops.1`` conv, which GTCRN files lack)."""
    return (
        isinstance(obj, dict)
        and isinstance(obj.get("model"), dict)
        and "erb.erb_fc.weight" in obj["model"]
        and _MARKER in obj["model"]
        and any(".ta_gru." in k for k in obj["model"])
    )


def model_from_official_state(state: dict[str, torch.Tensor]) -> ULUNAS:
    """The paper-size :class:`ULUNAS` with the authors' state dict loaded (eval mode)."""
    model = ULUNAS(ULUNASConfig())
    missing, unexpected = model.load_state_dict(convert_official_state_dict(state), strict=False)
    if missing or unexpected:
        raise ValueError(f"official checkpoint does not match ULUNAS: missing={missing}, "
                         f"unexpected={unexpected}")
    return model.eval()


def load_official_checkpoint(path: str | Path, map_location: str = "cpu") -> ULUNAS:
    """Build the paper-size :class:`ULUNAS` and load the authors' checkpoint file into it.

    Args:
        path: e.g. ``model_trained_on_dns3.tar`` from the authors' repository.

    Returns:
        The model in eval mode.

    Raises:
        FileNotFoundError: if ``path`` does not exist.
        ValueError: if the file is not a UL-UNAS checkpoint or does not match the model.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"official UL-UNAS checkpoint not found: {path}")
    try:
        # tensors and plain containers only (the optimizer and scheduler dicts included)
        obj = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as exc:  # noqa: BLE001 - report any unpickling failure the same way
        raise ValueError(f"{path} is not a readable torch checkpoint: {exc}") from exc
    if not is_official_checkpoint(obj):
        raise ValueError(f"{path} is not an official UL-UNAS checkpoint (no 'model' with "
                         f"{_MARKER})")
    return model_from_official_state(obj["model"])
