"""torch.hub entry points: ``torch.hub.load(REPO_OR_DIR, NAME)`` returns a shipped denoisezoo model.

Every model whose weights ship inside the package (``denoisezoo models``) is an entry point of the
same name, with its weights; ``pretrained=False`` gives the preset of that name with random
weights. Example, from a checkout::

    model = torch.hub.load(".", "gtcrn", source="local")
"""

import sys
from pathlib import Path

dependencies = ["torch", "torchaudio", "numpy", "soundfile", "soxr"]

_SRC = Path(__file__).resolve().parent / "src"
if (_SRC / "denoisezoo").is_dir() and str(_SRC) not in sys.path:  # a checkout, not installed
    sys.path.insert(0, str(_SRC))

from denoisezoo.hub import PRESETS, load_model, shipped_models  # noqa: E402


def _entry(name: str):
    def entry(pretrained: bool = True):
        return load_model(name, pretrained=pretrained and name in shipped_models())

    entry.__name__ = name
    entry.__doc__ = f"denoisezoo model {name!r} (shipped weights; pretrained=False: random weights)."
    return entry


for _name in sorted(shipped_models()):
    if _name.isidentifier():
        globals()[_name] = _entry(_name)
for _name in sorted(PRESETS):  # presets without shipped weights (random init) too
    if _name.isidentifier() and _name not in globals():
        globals()[_name] = _entry(_name)
