"""Calibration data for INT8 steps (ONNX Runtime and LiteRT): real frames with the real states.

:func:`load_calibration_audio` reads mono clips at the model's rate from files / folders;
:func:`calibration_feeds` runs the float model over them frame by frame and records every frame
together with the recurrent / cache state the model had when it reached it (the inputs of the
exported step, ``{"frame", <state names>}``).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np
import torch
from torch import nn

from denoisezoo.audio import read_audio
from denoisezoo.datasets.corpus import list_audio_files
from denoisezoo.dsp.resample import resample
from denoisezoo.dsp.stft import stft

__all__ = ["load_calibration_audio", "calibration_feeds"]


def load_calibration_audio(source: str | Path | Sequence[str | Path], sample_rate: int,
                           max_files: int = 32, max_seconds: float = 6.0) -> list[np.ndarray]:
    """Mono waveforms at ``sample_rate`` from audio files / folders / manifests (first channel,
    at most ``max_seconds`` each, at most ``max_files``, in sorted order)."""
    entries = [source] if isinstance(source, (str, Path)) else list(source)
    files = list_audio_files(entries)[:max_files]
    if not files:
        raise ValueError(f"no audio files found in {entries}")
    out = []
    for f in files:
        x, sr = read_audio(f)
        x = resample(x[:, :1], sr, sample_rate)[:, 0] if sr != sample_rate else x[:, 0]
        out.append(np.ascontiguousarray(x[: int(max_seconds * sample_rate)], np.float32))
    return out


@torch.no_grad()
def calibration_feeds(model: nn.Module, audio: Iterable[np.ndarray], max_frames: int = 2000,
                      seed: int = 0) -> list[dict[str, np.ndarray]]:
    """ONNX feeds ``{"frame", <state names>}`` from running the float model over ``audio``.

    Every frame of every clip is processed in order (so states are the real ones); at most
    ``max_frames`` feeds are kept, drawn uniformly without replacement.
    """
    model = model.eval()
    g = model.geometry
    feeds: list[dict[str, np.ndarray]] = []
    for wav in audio:
        spec = stft(torch.as_tensor(wav, dtype=torch.float32)[None], g)  # 1, F, T, 2
        state = model.initial_state(1)
        names = state._fields
        for t in range(spec.shape[2]):
            frame = spec[:, :, t]
            feeds.append({"frame": frame.numpy().copy(),
                          **{n: s.numpy().copy() for n, s in zip(names, state, strict=True)}})
            _, state = model.step(frame, state)
    if not feeds:
        raise ValueError("calibration audio gave no frames")
    if len(feeds) > max_frames:
        rng = np.random.default_rng(seed)
        idx = np.sort(rng.choice(len(feeds), max_frames, replace=False))
        feeds = [feeds[i] for i in idx]
    return feeds
