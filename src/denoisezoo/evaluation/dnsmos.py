"""Non-intrusive DNSMOS P.835 (SIG / BAK / OVRL) and P.808 through the ``speechmos`` package.

``speechmos`` ships the Microsoft DNSMOS ONNX models inside its wheel, so scoring runs offline. It
declares no dependencies: install the ``dnsmos`` extra (``pip install denoisezoo[dnsmos]``), which
adds ``speechmos``, ``librosa`` and ``requests``. Sessions are created here with one thread each
(``speechmos`` would otherwise use every core) and cached per process.

DNSMOS is defined at 16 kHz on 9.01 s windows (shorter clips are tiled by repetition, as in the
reference script). Input at other rates is resampled; peaks above 1.0 are scaled down to 1.0
(the models expect [-1, 1]).
"""

from __future__ import annotations

import functools
import os
from typing import Any

import numpy as np

__all__ = ["dnsmos", "dnsmos_available", "DNSMOS_KEYS"]

DNSMOS_KEYS = ("sig", "bak", "ovrl", "p808")
_SR = 16000


def dnsmos_available() -> str | None:
    """``None`` if DNSMOS can run here, else the reason it cannot (a one-line message)."""
    try:
        _scorer()
    except ImportError as exc:
        return (f"DNSMOS needs the 'dnsmos' extra (speechmos, librosa, onnxruntime, requests): {exc}")
    except Exception as exc:  # noqa: BLE001 -- e.g. a broken ONNX file
        return f"DNSMOS cannot load its models: {exc}"
    return None


@functools.lru_cache(maxsize=1)
def _scorer() -> Any:
    import onnxruntime as ort
    import speechmos.dnsmos as sm

    base = os.path.dirname(os.path.abspath(sm.__file__))
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    opts.inter_op_num_threads = 1
    scorer = sm.DNSMOS.__new__(sm.DNSMOS)  # same scoring code, our single-threaded sessions
    scorer.primary_model_path = os.path.join(base, "dnsmos_models", "sig_bak_ovr.onnx")
    scorer.onnx_sess = ort.InferenceSession(scorer.primary_model_path, opts,
                                            providers=["CPUExecutionProvider"])
    scorer.p808_onnx_sess = ort.InferenceSession(os.path.join(base, "dnsmos_models", "model_v8.onnx"),
                                                 opts, providers=["CPUExecutionProvider"])
    return scorer


def dnsmos(audio: Any, sample_rate: int) -> dict[str, float]:
    """DNSMOS of one mono clip.

    Args:
        audio: ``(N,)`` float signal.
        sample_rate: its rate in Hz (resampled to 16 kHz if different).

    Returns:
        ``{"sig": ..., "bak": ..., "ovrl": ..., "p808": ...}`` (MOS scale 1..5).
    """
    a = np.asarray(audio, dtype=np.float32)
    if a.ndim == 2 and a.shape[1] == 1:
        a = a[:, 0]
    if a.ndim != 1 or a.shape[0] == 0:
        raise ValueError(f"DNSMOS: expected a non-empty mono (N,) signal, found shape {a.shape}")
    if not np.isfinite(a).all():
        raise ValueError("DNSMOS: signal contains NaN or inf")
    if sample_rate != _SR:
        from denoisezoo.dsp.resample import resample

        a = resample(a, sample_rate, _SR)
    peak = float(np.max(np.abs(a)))
    if peak > 1.0:
        a = a / peak
    r = _scorer()(a, _SR, False)
    return {"sig": float(r["sig_mos"]), "bak": float(r["bak_mos"]), "ovrl": float(r["ovrl_mos"]),
            "p808": float(r["p808_mos"])}
