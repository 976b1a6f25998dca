"""Shared fixtures: the ../shared data folder, small audio files, seeded torch."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from denoisezoo.dsp.signals import speechlike as _speechlike

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"


def pytest_addoption(parser):
    parser.addoption("--device", default="cpu", help="torch device for model tests (cpu, cuda)")


@pytest.fixture(scope="session")
def device(request) -> torch.device:
    return torch.device(request.config.getoption("--device"))


@pytest.fixture(autouse=True, scope="session")
def _one_thread():
    # frame-sized work is many times slower with 2 threads on a shared 2-core machine
    torch.set_num_threads(1)


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)
    np.random.seed(0)


@pytest.fixture(scope="session")
def shared() -> Path:
    """The ../shared data folder beside the repository; skips when it is absent."""
    if not (SHARED / "README.md").is_file():
        pytest.skip(f"../shared data folder not found at {SHARED} (needed for data/golden tests)")
    return SHARED


def randomised(factory, seed: int = 0):
    """A model from ``factory`` with random weights and non-trivial BatchNorm statistics (fresh
    BatchNorm layers are identities, which would hide bugs), in eval mode."""
    torch.manual_seed(seed)
    model = factory().eval()
    for m in model.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.uniform_(-0.2, 0.2)
            m.running_var.uniform_(0.5, 1.5)
    return model


def shared_file(rel: str) -> Path:
    p = SHARED / rel
    if not p.is_file():
        pytest.skip(f"{rel} not found under ../shared ({SHARED})")
    return p


def speechlike(n: int, sr: int = 16000, seed: int = 0) -> np.ndarray:
    """:func:`denoisezoo.dsp.signals.speechlike` under the tests' argument names."""
    return _speechlike(n, sr, seed)


@pytest.fixture
def wav_file(tmp_path):
    """Factory: write a test WAV and return its path."""

    def make(name="in.wav", seconds=1.0, sr=16000, channels=1, subtype="PCM_16", seed=0):
        n = int(seconds * sr)
        data = np.stack([speechlike(n, sr, seed + c) for c in range(channels)], axis=1)
        p = tmp_path / name
        p.parent.mkdir(parents=True, exist_ok=True)
        sf.write(p, data if channels > 1 else data[:, 0], sr, subtype=subtype)
        return p

    return make
