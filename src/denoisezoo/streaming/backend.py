"""Shared plumbing of exported-step backends (ONNX Runtime, LiteRT): the JSON sidecar, the state
layout, and the frame loop that makes one-frame runtimes look like a model to the Streamer.

A backend subclasses :class:`FrameStepBackend`, loads its runtime, and implements
``_run(frame (1, F, 2), state) -> [out (1, F, 2), *next_state]`` on numpy arrays; a step exported
with a dynamic batch axis (``dynamic_batch`` in the sidecar) takes ``(B, F, 2)`` and the states of
``B`` streams, so all streams advance in one call per frame.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from denoisezoo.dsp.stft import StftGeometry

__all__ = ["FrameStepBackend", "sidecar_path", "read_sidecar"]


def sidecar_path(model_path: str | Path) -> Path:
    """The JSON sidecar written beside an exported step (``model.onnx`` -> ``model.json``)."""
    return Path(model_path).with_suffix(".json")


def read_sidecar(model_path: Path, meta: dict[str, Any] | None, fmt: str, writer: str) -> dict[str, Any]:
    """Read (or check a given) sidecar of ``model_path`` in format ``fmt``."""
    if meta is None:
        side = sidecar_path(model_path)
        if not side.is_file():
            raise FileNotFoundError(f"{side}: sidecar missing (written by {writer})")
        meta = json.loads(side.read_text())
    if meta.get("format") != fmt:
        raise ValueError(f"{model_path}: sidecar is not a {fmt} file")
    return meta


class FrameStepBackend:
    """Base of step models run one frame per call by an inference runtime."""

    backend = "none"
    threads = 1

    def _init_layout(self, path: str | Path, meta: dict[str, Any]) -> None:
        self.path = Path(path)
        self.meta = meta
        self.name = meta.get("name")
        self.geometry = StftGeometry(**meta["geometry"])
        self.state_names: list[str] = [s["name"] for s in meta["state"]]
        self._shapes = [tuple(s["shape"]) for s in meta["state"]]
        self._axes = [int(s["batch_axis"]) for s in meta["state"]]
        self.dynamic_batch = bool(meta.get("dynamic_batch", False))

    def __reduce__(self):
        """Pickled as (class, path, threads, sidecar): a worker process reopens the file."""
        return type(self), (self.path, self.threads, self.meta)

    @property
    def state_batch_axes(self) -> list[int]:
        """Batch axis of each state tensor (from the sidecar)."""
        return list(self._axes)

    def _run(self, frame: np.ndarray, state: Sequence[np.ndarray]) -> list[np.ndarray]:
        raise NotImplementedError

    def initial_state(self, batch: int = 1, device: Any = None,
                      dtype: Any = None) -> tuple[np.ndarray, ...]:
        """Zero state for ``batch`` streams (``device``/``dtype`` accepted for compatibility)."""
        out = []
        for shape, ax in zip(self._shapes, self._axes, strict=True):
            s = list(shape)
            s[ax] = batch
            out.append(np.zeros(s, np.float32))
        return tuple(out)

    def _split(self, state: Sequence[np.ndarray], b: int) -> list[np.ndarray]:
        return [np.ascontiguousarray(np.take(s, [b], axis=ax))
                for s, ax in zip(state, self._axes, strict=True)]

    def forward_stateful(self, spec: torch.Tensor,
                         state: Sequence[np.ndarray] | None) -> tuple[torch.Tensor, tuple]:
        """``spec (B, F, T, 2)`` -> ``(enhanced (B, F, T, 2), next state)``, frame by frame."""
        x = np.asarray(spec.detach().cpu().numpy() if torch.is_tensor(spec) else spec, np.float32)
        if x.ndim != 4 or x.shape[1] != self.geometry.n_freqs or x.shape[3] != 2:
            raise ValueError(f"expected (B, {self.geometry.n_freqs}, T, 2) spectrum, got {x.shape}")
        bsz, _, t, _ = x.shape
        if state is None:
            state = self.initial_state(bsz)
        if t == 1 and (bsz == 1 or self.dynamic_batch):  # real time: one hop of every stream
            res = self._run(np.ascontiguousarray(x[:, :, 0]), state)
            return torch.from_numpy(res[0][:, :, None]), tuple(res[1:])
        if self.dynamic_batch:  # all streams at once, frame after frame
            out = np.empty_like(x)
            st = tuple(state)
            for i in range(t):
                res = self._run(np.ascontiguousarray(x[:, :, i]), st)
                out[:, :, i] = res[0]
                st = tuple(res[1:])
            return torch.from_numpy(out), st
        out = np.empty_like(x)
        per_b = []
        for b in range(bsz):
            st = self._split(state, b) if bsz > 1 else [np.asarray(s, np.float32) for s in state]
            for i in range(t):
                res = self._run(np.ascontiguousarray(x[b : b + 1, :, i]), st)
                out[b, :, i] = res[0][0]
                st = res[1:]
            per_b.append(st)
        if bsz == 1:
            nxt = tuple(per_b[0])
        else:
            nxt = tuple(np.concatenate([p[k] for p in per_b], axis=ax)
                        for k, ax in enumerate(self._axes))
        return torch.from_numpy(out), nxt

    def step(self, frame: torch.Tensor, state: Sequence[np.ndarray]) -> tuple[torch.Tensor, tuple]:
        """``frame (B, F, 2)`` -> ``(out (B, F, 2), next state)``."""
        out, nxt = self.forward_stateful(frame.unsqueeze(2), state)
        return out.squeeze(2), nxt

    def __repr__(self) -> str:
        return f"{type(self).__name__}({str(self.path)!r}, name={self.name!r})"
