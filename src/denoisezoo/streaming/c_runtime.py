"""The ``c`` backend: a built ``libdenoisezoo.so`` (``denoisezoo export c``) run through ctypes.

- :class:`CLibrary`: the library's API (``dz_create``, ``dz_process``, ...) on numpy arrays;
  :meth:`CLibrary.denoise` runs a whole signal hop by hop through the C streamer (its own
  STFT, network, mask, attenuation limit and overlap-add).
- :meth:`CLibrary.process_many`: one hop of many streams (one ``DzModel`` each) in one
  ``dz_process_many`` call, what :class:`~denoisezoo.streaming.StreamPool` (``backend="c"``) runs.
- :class:`CStepModel`: the same library as a streamable model for
  :class:`~denoisezoo.streaming.Streamer`: the Streamer does the STFT in Python and each frame
  goes through ``dz_process_spectrum`` (the network of the C library). Its state is one C model
  per stream, advanced in place by :meth:`CStepModel.forward_stateful` (a state is used once:
  pass on the returned one, as the Streamer does).

This module runs a built library; exporting and building are :mod:`denoisezoo.export.c`.
"""

from __future__ import annotations

import ctypes
import json
import weakref
from pathlib import Path
from typing import Any

import numpy as np
import torch

from denoisezoo.dsp.stft import StftGeometry

__all__ = ["CLibrary", "CStepModel", "CState", "SIDECAR_FORMAT"]

SIDECAR_FORMAT = "denoisezoo-c"
_SIDECAR = "denoisezoo.json"
_F32P = ctypes.POINTER(ctypes.c_float)


def _ptr(a: np.ndarray, offset: int = 0):
    return ctypes.cast(a.ctypes.data + 4 * offset, _F32P)


class CLibrary:
    """A built ``libdenoisezoo.so`` and its sidecar (``denoisezoo.json`` beside it).

    Args:
        path: the ``.so`` file, or the exported folder holding it.
    """

    def __init__(self, path: str | Path):
        path = Path(path).resolve()  # dlopen searches the library path for a bare file name
        if path.is_dir():
            path = path / "libdenoisezoo.so"
        if not path.is_file():
            raise FileNotFoundError(f"{path}: no built library (run `make` in its folder)")
        side = path.parent / _SIDECAR
        if not side.is_file():
            raise FileNotFoundError(f"{side}: sidecar missing (written by denoisezoo export c)")
        self.meta: dict[str, Any] = json.loads(side.read_text())
        if self.meta.get("format") != SIDECAR_FORMAT:
            raise ValueError(f"{side}: not a denoisezoo C export sidecar")
        self.path = path
        lib = self.lib = ctypes.CDLL(str(path))
        lib.dz_create.restype = ctypes.c_void_p
        lib.dz_create.argtypes = []
        for fn in ("dz_destroy", "dz_reset"):
            getattr(lib, fn).restype = None
            getattr(lib, fn).argtypes = [ctypes.c_void_p]
        for fn in ("dz_sample_rate", "dz_hop_size", "dz_fft_size", "dz_n_freqs"):
            getattr(lib, fn).restype = ctypes.c_int
            getattr(lib, fn).argtypes = []
        for fn in ("dz_process", "dz_process_spectrum"):
            getattr(lib, fn).restype = ctypes.c_float
            getattr(lib, fn).argtypes = [ctypes.c_void_p, _F32P, _F32P]
        lib.dz_set_atten_lim_db.restype = None
        lib.dz_set_atten_lim_db.argtypes = [ctypes.c_void_p, ctypes.c_float]
        lib.dz_bypass.restype = None
        lib.dz_bypass.argtypes = [ctypes.c_void_p, _F32P, _F32P]
        lib.dz_process_many.restype = ctypes.c_int
        lib.dz_process_many.argtypes = [ctypes.c_void_p, ctypes.c_int, _F32P, _F32P, _F32P]
        lib.dz_bypass_many.restype = ctypes.c_int
        lib.dz_bypass_many.argtypes = [ctypes.c_void_p, ctypes.c_int, _F32P, _F32P]
        self.sample_rate = lib.dz_sample_rate()
        self.hop = lib.dz_hop_size()
        self.n_fft = lib.dz_fft_size()
        self.n_freqs = lib.dz_n_freqs()
        g = self.meta["geometry"]
        if (g["sample_rate"], g["n_fft"], g["hop_length"]) != (self.sample_rate, self.n_fft, self.hop):
            raise ValueError(f"{path}: the library and its sidecar disagree on the geometry")
        self.geometry = StftGeometry(**g)
        self.name = self.meta.get("name")

    @property
    def delay(self) -> int:
        """Output delay of :meth:`process` in samples (``n_fft - hop``)."""
        return self.n_fft - self.hop

    def create(self) -> int:
        """A new C model (free it with :meth:`destroy`)."""
        h = self.lib.dz_create()
        if not h:
            raise MemoryError("dz_create failed")
        return h

    def destroy(self, handle: int) -> None:
        self.lib.dz_destroy(handle)

    def reset(self, handle: int) -> None:
        self.lib.dz_reset(handle)

    def set_atten_lim_db(self, handle: int, db: float) -> None:
        """Attenuation limit in dB (``0``: no limit, the C API's convention)."""
        self.lib.dz_set_atten_lim_db(handle, float(db))

    def process(self, handle: int, hop: np.ndarray,
                out: np.ndarray | None = None) -> tuple[np.ndarray, float]:
        """One hop (``hop_size`` float32 samples) -> (denoised hop, speech probability)."""
        x = np.ascontiguousarray(hop, np.float32)
        if x.shape != (self.hop,):
            raise ValueError(f"expected ({self.hop},) samples, got {x.shape}")
        y = np.empty(self.hop, np.float32) if out is None else out
        p = self.lib.dz_process(handle, _ptr(x), _ptr(y))
        return y, float(p)

    def handles(self, handles) -> np.ndarray:
        """The ``DzModel *`` array :meth:`process_many` takes, from handles of :meth:`create`."""
        return np.ascontiguousarray(np.asarray(handles, np.uintp).reshape(-1))

    def _many_args(self, handles: np.ndarray, hops: np.ndarray, out: np.ndarray | None):
        h = np.ascontiguousarray(handles, np.uintp)
        n = h.shape[0]
        x = np.ascontiguousarray(hops, np.float32)
        if x.shape != (n, self.hop):
            raise ValueError(f"expected ({n}, {self.hop}) samples for {n} streams, got {x.shape}")
        y = np.empty((n, self.hop), np.float32) if out is None else out
        if y.shape != (n, self.hop) or y.dtype != np.float32 or not y.flags.c_contiguous:
            raise ValueError(f"out must be a C-contiguous float32 ({n}, {self.hop}) array")
        if n and (not h.all()):
            raise ValueError("a NULL DzModel handle")
        return h, n, x, y

    def process_many(self, handles: np.ndarray, hops: np.ndarray, out: np.ndarray | None = None,
                     vad: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        """One hop of ``n`` streams in one ``dz_process_many`` call: ``handles (n,)`` (uintp,
        :meth:`handles`), ``hops (n, hop_size)`` float32 -> ``(out (n, hop_size), speech
        probability (n,))``; stream ``i`` advances exactly as ``process(handles[i], hops[i])``."""
        h, n, x, y = self._many_args(handles, hops, out)
        p = np.empty(n, np.float32) if vad is None else vad
        if p.shape != (n,) or p.dtype != np.float32 or not p.flags.c_contiguous:
            raise ValueError(f"vad must be a C-contiguous float32 ({n},) array")
        if self.lib.dz_process_many(h.ctypes.data, n, _ptr(x), _ptr(y), _ptr(p)) != 0:
            raise RuntimeError("dz_process_many refused its arguments")
        return y, p

    def bypass_many(self, handles: np.ndarray, hops: np.ndarray,
                    out: np.ndarray | None = None) -> np.ndarray:
        """A hop the network skips, for ``n`` streams in one ``dz_bypass_many`` call: each input
        goes on through its model's STFT history and overlap-add (the delayed input once settled);
        the network states do not move."""
        h, n, x, y = self._many_args(handles, hops, out)
        if self.lib.dz_bypass_many(h.ctypes.data, n, _ptr(x), _ptr(y)) != 0:
            raise RuntimeError("dz_bypass_many refused its arguments")
        return y

    def denoise(self, x: np.ndarray, atten_lim_db: float = 0.0) -> tuple[np.ndarray, np.ndarray]:
        """A whole ``(N,)`` signal through a fresh C model, completed with zeros: ``(delay + N
        output samples, one speech probability per hop)``, aligned as the Streamer's output."""
        x = np.asarray(x, np.float32).reshape(-1)
        n_hops = -(-(x.shape[0] + self.delay) // self.hop)
        buf = np.zeros(n_hops * self.hop, np.float32)
        buf[: x.shape[0]] = x
        out = np.empty_like(buf)
        probs = np.empty(n_hops, np.float32)
        h = self.create()
        try:
            if atten_lim_db:
                self.set_atten_lim_db(h, atten_lim_db)
            proc = self.lib.dz_process
            for i in range(n_hops):
                probs[i] = proc(h, _ptr(buf, i * self.hop), _ptr(out, i * self.hop))
        finally:
            self.destroy(h)
        return out[: self.delay + x.shape[0]], probs

    def __repr__(self) -> str:
        return f"CLibrary({str(self.path)!r}, name={self.name!r})"


class CState:
    """The streaming state of a :class:`CStepModel`: one C model per stream (freed with it)."""

    def __init__(self, lib: CLibrary, batch: int):
        self.handles = [lib.create() for _ in range(batch)]
        self._finalizer = weakref.finalize(self, CState._free, lib, list(self.handles))

    @staticmethod
    def _free(lib: CLibrary, handles: list[int]) -> None:
        for h in handles:
            lib.destroy(h)

    def __len__(self) -> int:
        return len(self.handles)


class CStepModel:
    """A built C library as a streamable model (``backend = "c"``), usable by the Streamer.

    Args:
        path: ``libdenoisezoo.so`` or the folder holding it (:func:`denoisezoo.export.c.c_model`
            builds one on demand from a PyTorch model).

    Example:
        >>> import tempfile
        >>> from denoisezoo.export.c import cached_library, compiler
        >>> from denoisezoo.gtcrn import gtcrn_tiny
        >>> from denoisezoo.streaming import Streamer
        >>> if compiler():  # c_model(model) does this with the user's cache
        ...     s = Streamer(CStepModel(cached_library(gtcrn_tiny(), root=tempfile.mkdtemp())))
        ...     y = torch.cat([s.feed(torch.randn(700)), s.flush()])
        ...     assert y.shape[0] == s.delay + 700 and s.backend == "c"
    """

    backend = "c"

    def __init__(self, path: str | Path):
        self.library = CLibrary(path)
        self.path = self.library.path
        self.meta = self.library.meta
        self.geometry = self.library.geometry
        self.name = self.library.name
        self.checkpoint_meta = {"name": self.name, "format": "c"}
        self._f = self.library.n_freqs

    def __reduce__(self):
        return type(self), (self.path,)

    def initial_state(self, batch: int = 1, device: Any = None, dtype: Any = None) -> CState:
        """Fresh C models for ``batch`` streams (``device``/``dtype`` accepted for compatibility)."""
        return CState(self.library, batch)

    def _run(self, spec: torch.Tensor, state: CState | None):
        x = np.asarray(spec.detach().cpu().numpy() if torch.is_tensor(spec) else spec, np.float32)
        if x.ndim != 4 or x.shape[1] != self._f or x.shape[3] != 2:
            raise ValueError(f"expected (B, {self._f}, T, 2) spectrum, got {x.shape}")
        b, _, t, _ = x.shape
        if state is None:
            state = self.initial_state(b)
        if len(state) != b:
            raise ValueError(f"state holds {len(state)} streams, spectrum {b}")
        xt = np.ascontiguousarray(x.transpose(0, 2, 1, 3))  # B, T, F, 2
        yt = np.empty_like(xt)
        vad = np.empty((b, t), np.float32)
        step, n = self.library.lib.dz_process_spectrum, 2 * self._f
        for i, h in enumerate(state.handles):
            for j in range(t):
                off = (i * t + j) * n
                vad[i, j] = step(h, _ptr(xt, off), _ptr(yt, off))
        return torch.from_numpy(np.ascontiguousarray(yt.transpose(0, 2, 1, 3))), torch.from_numpy(vad), state

    def forward_stateful(self, spec: torch.Tensor, state: CState | None) -> tuple[torch.Tensor, CState]:
        """``spec (B, F, T, 2)`` -> ``(enhanced (B, F, T, 2), state)``, frame by frame in C."""
        out, _, state = self._run(spec, state)
        return out, state

    def forward_with_vad(self, spec: torch.Tensor, state: CState | None = None):
        """Like :meth:`forward_stateful`, also returning the C library's speech presence
        ``(B, T)`` (GTCRN's kept-power estimate, :func:`denoisezoo.dsp.vad.speech_presence`)."""
        return self._run(spec, state)

    def step(self, frame: torch.Tensor, state: CState) -> tuple[torch.Tensor, CState]:
        """``frame (B, F, 2)`` -> ``(out (B, F, 2), state)``."""
        out, state = self.forward_stateful(frame.unsqueeze(2), state)
        return out.squeeze(2), state

    def __call__(self, spec: torch.Tensor) -> torch.Tensor:
        return self.forward_stateful(spec, None)[0]

    def eval(self):
        return self

    def __repr__(self) -> str:
        return f"CStepModel({str(self.path)!r}, name={self.name!r})"
