"""torch.hub: every shipped model loads with its weights from a local checkout (hubconf.py)."""

from pathlib import Path

import pytest
import torch

from denoisezoo import load_model
from denoisezoo.hub import PRESETS, shipped_models

REPO = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("name", sorted(shipped_models()))
def test_torch_hub_load_returns_the_shipped_weights(name):
    model = torch.hub.load(str(REPO), name, source="local", trust_repo=True, verbose=False)
    ref = load_model(name)
    assert type(model) is type(ref) and model.config == ref.config
    for (k, a), (_, b) in zip(model.state_dict().items(), ref.state_dict().items(), strict=True):
        assert torch.equal(a, b), k


def test_torch_hub_lists_every_shipped_model_and_preset():
    import importlib.util

    hub_dir = str(REPO)  # torch.hub.list reads GitHub only: import hubconf.py as torch.hub does
    spec = importlib.util.spec_from_file_location("hubconf", REPO / "hubconf.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    names = {n for n in dir(mod) if callable(getattr(mod, n)) and not n.startswith("_")}
    assert set(shipped_models()) | set(PRESETS) <= names
    tiny = torch.hub.load(hub_dir, "gtcrn_tiny", source="local", trust_repo=True, verbose=False,
                          pretrained=False)
    assert tiny.config == PRESETS["gtcrn_tiny"]().config
