"""Intrusive speech-quality metrics with explicit sample rates, and a process pool to run them.

Every metric takes ``(clean, est, sample_rate)`` with 1-D float signals (``(N,)`` or ``(N, 1)``).
Inputs are checked (finite, mono, non-empty) and aligned by :func:`align`: a length difference up to
``tolerance`` samples (default one 16 ms hop) is trimmed, a larger one raises ``ValueError``.

A metric that cannot score a clip (PESQ on a clip shorter than 0.25 s or without detectable speech,
STOI with too few speech frames, anything on a silent reference) raises :class:`MetricUnavailable`;
:func:`score_pair` turns that into ``NaN`` plus a reason in its ``"missing"`` field, never 0.

References:
    * PESQ: ITU-T P.862 (narrow-band) / P.862.2 (wide-band), through the ``pesq`` package. PESQ is
      defined at 8 and 16 kHz only: other rates are resampled to 16 kHz (8 kHz kept for ``nb``).
    * STOI (Taal et al. 2011) / ESTOI (Jensen & Taal 2016), through ``pystoi`` (which resamples to
      10 kHz internally, as the reference implementation does).
    * SI-SDR (Le Roux et al. 2019), SNR, segmental SNR (Quackenbush et al. 1988; 30 ms Hann frames,
      75 % overlap, frame SNR clamped to [-10, 35] dB as in Loizou's ``comp_snr``).

This module imports neither torch nor Lightning, so pool workers start quickly.
"""

from __future__ import annotations

import math
import os
import sys
import warnings
from collections.abc import Iterable, Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass
from typing import Any

import numpy as np

__all__ = [
    "INTRUSIVE_METRICS",
    "MetricUnavailable",
    "ScoreJob",
    "align",
    "pesq",
    "stoi",
    "estoi",
    "si_sdr",
    "snr",
    "seg_snr",
    "sign_inverted",
    "score_pair",
    "score_many",
    "validation_metrics",
    "default_tolerance",
]

#: Metric keys produced by :func:`score_pair` (before ``dnsmos_*`` and ``*_imp`` keys).
INTRUSIVE_METRICS: tuple[str, ...] = ("pesq_wb", "stoi", "estoi", "si_sdr", "snr", "seg_snr")

_EPS = 1e-20
PESQ_RATES = (8000, 16000)


class MetricUnavailable(ValueError):
    """A metric cannot score this clip (the message is the reason, e.g. "no utterances detected")."""


def default_tolerance(sample_rate: int) -> int:
    """Length tolerance of :func:`align`: one 16 ms hop at ``sample_rate``."""
    return int(round(0.016 * sample_rate))


def _as_mono(x: Any, name: str) -> np.ndarray:
    a = np.asarray(x)
    if a.ndim == 2 and a.shape[1] == 1:
        a = a[:, 0]
    if a.ndim != 1:
        raise ValueError(f"{name}: expected a mono signal of shape (N,) or (N, 1), found {a.shape}")
    if a.shape[0] == 0:
        raise ValueError(f"{name}: empty signal")
    if not np.issubdtype(a.dtype, np.floating):
        raise ValueError(f"{name}: expected float samples, found dtype {a.dtype}")
    if not np.isfinite(a).all():
        raise ValueError(f"{name}: contains NaN or inf")
    return a.astype(np.float64, copy=False)


def align(clean: Any, est: Any, sample_rate: int,
          tolerance: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Validate and length-align a reference and an estimate.

    Args:
        clean: ``(N,)`` or ``(N, 1)`` float reference.
        est: ``(M,)`` or ``(M, 1)`` float estimate (or the noisy input).
        sample_rate: rate of both signals in Hz.
        tolerance: largest ``|N - M|`` that is trimmed (default :func:`default_tolerance`).

    Returns:
        ``(clean, est)`` as float64 ``(L,)`` arrays with ``L = min(N, M)``.

    Raises:
        ValueError: not mono, empty, non-finite, bad rate, or lengths differ by more than tolerance.
    """
    _check_rate(sample_rate)
    c = _as_mono(clean, "clean")
    e = _as_mono(est, "estimate")
    tol = default_tolerance(sample_rate) if tolerance is None else tolerance
    if abs(c.shape[0] - e.shape[0]) > tol:
        raise ValueError(f"length mismatch: expected {c.shape[0]} samples (clean), found "
                         f"{e.shape[0]} (estimate); more than the {tol}-sample tolerance")
    n = min(c.shape[0], e.shape[0])
    return c[:n], e[:n]


def _check_rate(sample_rate: int) -> None:
    if not isinstance(sample_rate, (int, np.integer)) or isinstance(sample_rate, bool):
        raise ValueError(f"sample_rate: expected an int in Hz, found {sample_rate!r}")
    if sample_rate < 1000:
        raise ValueError(f"sample_rate: expected a rate in Hz (>= 1000), found {sample_rate}")


def _require_signal(clean: np.ndarray) -> None:
    if not np.any(clean):
        raise MetricUnavailable("silent reference (all zeros)")


# --------------------------------------------------------------------------- PESQ
def pesq(clean: Any, est: Any, sample_rate: int, mode: str = "wb") -> float:
    """PESQ MOS-LQO: wide-band P.862.2 (``mode="wb"``) or narrow-band P.862 (``"nb"``).

    Inputs at rates other than 16 kHz (8 kHz for ``nb``) are resampled to 16 kHz first.

    Raises:
        MetricUnavailable: silent reference, clip shorter than 0.25 s, or no utterances detected.
    """
    from pesq import PesqError
    from pesq import pesq as _pesq

    if mode not in ("wb", "nb"):
        raise ValueError(f"mode: expected 'wb' or 'nb', found {mode!r}")
    c, e = align(clean, est, sample_rate)
    _require_signal(c)
    fs = sample_rate
    if fs not in PESQ_RATES or (mode == "wb" and fs != 16000):
        from denoisezoo.dsp.resample import resample  # lazy: dsp imports torch

        c = resample(c.astype(np.float32), fs, 16000).astype(np.float64)
        e = resample(e.astype(np.float32), fs, 16000).astype(np.float64)
        fs = 16000
    if c.shape[0] < fs // 4:
        raise MetricUnavailable(f"too short for PESQ ({c.shape[0] / fs:.3f} s < 0.25 s)")
    try:
        with warnings.catch_warnings(), np.errstate(all="ignore"):
            warnings.simplefilter("ignore", RuntimeWarning)
            value = float(_pesq(fs, c, e, mode))
    except PesqError as exc:
        raise MetricUnavailable(_pesq_reason(exc)) from exc
    if not math.isfinite(value):
        raise MetricUnavailable("PESQ returned a non-finite value")
    return value


def _pesq_reason(exc: BaseException) -> str:
    msg = exc.args[0] if exc.args else ""
    if isinstance(msg, bytes):
        msg = msg.decode(errors="replace")
    return f"PESQ: {str(msg).strip() or type(exc).__name__} ({type(exc).__name__})"


# --------------------------------------------------------------------------- STOI
def _stoi(clean: Any, est: Any, sample_rate: int, extended: bool) -> float:
    from pystoi import stoi as _pystoi

    c, e = align(clean, est, sample_rate)
    _require_signal(c)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        value = float(_pystoi(c, e, sample_rate, extended=extended))
    for w in caught:
        if "Not enough STFT frames" in str(w.message):
            name = "ESTOI" if extended else "STOI"
            raise MetricUnavailable(f"too short for {name} (fewer than 30 speech frames of 25.6 ms)")
    return value


def stoi(clean: Any, est: Any, sample_rate: int) -> float:
    """Short-time objective intelligibility (0..1), via ``pystoi``."""
    return _stoi(clean, est, sample_rate, extended=False)


def estoi(clean: Any, est: Any, sample_rate: int) -> float:
    """Extended STOI (ESTOI), via ``pystoi``."""
    return _stoi(clean, est, sample_rate, extended=True)


# --------------------------------------------------------------------------- SDR family
def si_sdr(clean: Any, est: Any, sample_rate: int) -> float:
    """Scale-invariant SDR in dB (both signals made zero-mean first).

    ``alpha = <s, s_hat> / ||s||^2``; ``SI-SDR = 10 log10(||alpha s||^2 / ||s_hat - alpha s||^2)``.
    """
    c, e = align(clean, est, sample_rate)
    c = c - c.mean()
    e = e - e.mean()
    ref_energy = float(np.dot(c, c))
    if ref_energy <= _EPS:
        raise MetricUnavailable("silent reference (zero energy after removing the mean)")
    alpha = float(np.dot(c, e)) / ref_energy
    target = alpha * c
    noise = e - target
    return 10.0 * math.log10((float(np.dot(target, target)) + _EPS) / (float(np.dot(noise, noise)) + _EPS))


def snr(clean: Any, est: Any, sample_rate: int) -> float:
    """Signal-to-noise ratio ``10 log10(||s||^2 / ||s - s_hat||^2)`` in dB (no scaling, no mean removal)."""
    c, e = align(clean, est, sample_rate)
    sig = float(np.dot(c, c))
    if sig <= _EPS:
        raise MetricUnavailable("silent reference (all zeros)")
    err = c - e
    return 10.0 * math.log10(sig / (float(np.dot(err, err)) + _EPS))


def sign_inverted(snr_db: float, si_sdr_db: float, noisy_snr_db: float | None = None,
                  noisy_si_sdr_db: float | None = None) -> bool:
    """Whether (mean) scores point to a sign-inverted or badly scaled output: SI-SDR, which is
    blind to sign and scale, says "enhanced" while the plain SNR says "worse".

    With the noisy input's scores (a scored dev set): SI-SDR above the noisy input's while SNR is
    below it. Without (a validation batch): SI-SDR above 3 dB while SNR is below 0 dB (an estimate
    of ``-clean`` has an SNR of about -6 dB).
    """
    if noisy_snr_db is None or noisy_si_sdr_db is None:
        return si_sdr_db > 3.0 and snr_db < 0.0
    return si_sdr_db > noisy_si_sdr_db and snr_db < noisy_snr_db


def seg_snr(clean: Any, est: Any, sample_rate: int, frame_ms: float = 30.0,
            min_db: float = -10.0, max_db: float = 35.0) -> float:
    """Segmental SNR in dB: mean over 30 ms Hann frames (75 % overlap) of the frame SNR in [-10, 35] dB."""
    c, e = align(clean, est, sample_rate)
    _require_signal(c)
    win_len = max(2, int(round(frame_ms * sample_rate / 1000)))
    hop = max(1, win_len // 4)
    if c.shape[0] < win_len:
        raise MetricUnavailable(f"too short for segmental SNR ({c.shape[0]} < {win_len} samples)")
    n_frames = 1 + (c.shape[0] - win_len) // hop
    idx = np.arange(win_len)[None, :] + hop * np.arange(n_frames)[:, None]  # T, W
    w = np.hanning(win_len)
    cf = c[idx] * w
    ef = e[idx] * w
    sig = np.sum(cf**2, axis=1)
    err = np.sum((cf - ef) ** 2, axis=1)
    frame_snr = 10.0 * np.log10(sig / (err + _EPS) + _EPS)
    return float(np.mean(np.clip(frame_snr, min_db, max_db)))


# --------------------------------------------------------------------------- one pair
_METRIC_FUNCS = {"stoi": stoi, "estoi": estoi, "si_sdr": si_sdr, "snr": snr, "seg_snr": seg_snr}


def _intrusive(c: np.ndarray, e: np.ndarray, sr: int, pesq_modes: Sequence[str]) -> tuple[dict, dict]:
    values: dict[str, float] = {}
    missing: dict[str, str] = {}
    calls = [(f"pesq_{m}", lambda a, b, s, m=m: pesq(a, b, s, m)) for m in pesq_modes]
    calls += list(_METRIC_FUNCS.items())
    for key, fn in calls:
        try:
            values[key] = fn(c, e, sr)
        except MetricUnavailable as exc:
            values[key] = float("nan")
            missing[key] = str(exc)
    return values, missing


def score_pair(clean: Any, est: Any, sample_rate: int, noisy: Any | None = None,
               pesq_modes: Sequence[str] = ("wb",), dnsmos: bool = False) -> dict[str, Any]:
    """All intrusive metrics of one estimate (and optionally their improvement over ``noisy``).

    Args:
        clean: ``(N,)`` reference.
        est: ``(N,)`` estimate (aligned with :func:`align`).
        sample_rate: rate of all signals in Hz.
        noisy: the unprocessed input; adds ``noisy_<metric>`` and ``<metric>_imp`` keys.
        pesq_modes: ``("wb",)`` by default; ``("wb", "nb")`` adds ``pesq_nb``.
        dnsmos: add non-intrusive DNSMOS P.835 ``dnsmos_sig/bak/ovrl/p808`` of ``est``.

    Returns:
        ``{metric: float, ..., "missing": {metric: reason}}``; a missing metric is ``NaN``.

    Raises:
        ValueError: invalid inputs (see :func:`align`).
    """
    c, e = align(clean, est, sample_rate)
    values, missing = _intrusive(c, e, sample_rate, pesq_modes)
    out: dict[str, Any] = dict(values)
    if noisy is not None:
        c2, n = align(c, noisy, sample_rate)
        nv, nmiss = _intrusive(c2, n, sample_rate, pesq_modes)
        for k, v in nv.items():
            out[f"noisy_{k}"] = v
            out[f"{k}_imp"] = values[k] - v
            if k in nmiss:
                missing[f"noisy_{k}"] = nmiss[k]
    if dnsmos:
        from denoisezoo.evaluation.dnsmos import dnsmos as _dnsmos

        out.update({f"dnsmos_{k}": v for k, v in _dnsmos(e, sample_rate).items()})
    out["missing"] = missing
    return out


# --------------------------------------------------------------------------- many pairs
@dataclass
class ScoreJob:
    """Arguments of one :func:`score_pair` call (arrays are pickled to the worker)."""

    clean: np.ndarray
    est: np.ndarray
    sample_rate: int
    noisy: np.ndarray | None = None
    pesq_modes: tuple[str, ...] = ("wb",)
    dnsmos: bool = False


def _as_job(item: Any) -> ScoreJob:
    if isinstance(item, ScoreJob):
        return item
    if isinstance(item, dict):
        return ScoreJob(**item)
    if isinstance(item, (tuple, list)) and len(item) in (3, 4):
        return ScoreJob(*item)
    raise ValueError("score_many: each pair must be a ScoreJob, a dict of score_pair arguments or "
                     f"a (clean, est, sample_rate[, noisy]) tuple, found {type(item).__name__}")


def _run_job(job: ScoreJob) -> dict[str, Any]:
    try:
        return score_pair(job.clean, job.est, job.sample_rate, job.noisy, job.pesq_modes, job.dnsmos)
    except ValueError as exc:  # invalid input: reported, not raised, so one bad pair keeps the rest
        return {"error": str(exc), "missing": {}}


def _worker_init() -> None:
    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[var] = "1"


def score_many(pairs: Iterable[Any], workers: int = 2, progress: bool = True,
               desc: str = "scoring", executor: ProcessPoolExecutor | None = None) -> list[dict]:
    """Score many pairs (CPU-bound) in a process pool, in input order.

    Args:
        pairs: :class:`ScoreJob` objects, dicts of :func:`score_pair` arguments, or
            ``(clean, est, sample_rate[, noisy])`` tuples.
        workers: processes (``<= 1``: run in this process).
        progress: show a ``tqdm`` bar on stderr.
        desc: progress bar label.
        executor: an existing pool to reuse (``workers`` is then ignored).

    Returns:
        One :func:`score_pair` dict per pair; a pair with invalid input gets ``{"error": reason}``.
    """
    from tqdm import tqdm

    jobs = [_as_job(p) for p in pairs]
    results: list[dict | None] = [None] * len(jobs)
    bar = tqdm(total=len(jobs), desc=desc, unit="pair", disable=not progress or not jobs,
               file=sys.stderr, leave=False)
    try:
        if executor is None and (workers <= 1 or len(jobs) <= 1):
            for i, job in enumerate(jobs):
                results[i] = _run_job(job)
                bar.update(1)
        else:
            own = executor is None
            pool = executor or make_pool(min(workers, len(jobs)))
            try:
                futures = {pool.submit(_run_job, job): i for i, job in enumerate(jobs)}
                for fut in as_completed(futures):
                    results[futures[fut]] = fut.result()
                    bar.update(1)
            finally:
                if own:
                    pool.shutdown(cancel_futures=True)
    finally:
        bar.close()
    return results  # type: ignore[return-value]


def make_pool(workers: int) -> ProcessPoolExecutor:
    """A ``spawn`` process pool for :func:`score_many` (safe after torch started its threads)."""
    import multiprocessing as mp

    return ProcessPoolExecutor(max_workers=max(1, workers), mp_context=mp.get_context("spawn"),
                               initializer=_worker_init)


# --------------------------------------------------------------------------- training validation
def validation_metrics(clean: Any, est: Any, sample_rate: int, workers: int = 1) -> dict[str, float]:
    """Mean PESQ-wb, STOI, ESTOI and SI-SDR of a batch, for a validation step.

    Args:
        clean: ``(B, N)`` tensor or array, reference.
        est: ``(B, N)`` tensor or array, estimate.
        sample_rate: rate in Hz.
        workers: processes for scoring (1: in this process).

    Returns:
        ``{"pesq_wb": mean, "stoi": mean, "estoi": mean, "si_sdr": mean, "pesq_wb_missing": count}``;
        items PESQ cannot score are left out of its mean (``NaN`` if none could be scored).
    """
    c = _to_numpy(clean)
    e = _to_numpy(est)
    if c.ndim != 2 or e.shape != c.shape:
        raise ValueError(f"expected clean and est of the same shape (B, N), found {c.shape} and {e.shape}")
    keys = ("pesq_wb", "stoi", "estoi", "si_sdr")
    jobs = [ScoreJob(c[i], e[i], sample_rate) for i in range(c.shape[0])]
    if workers <= 1:
        rows = [_quick_row(j) for j in jobs]
    else:
        rows = score_many(jobs, workers=workers, progress=False)
    out: dict[str, float] = {}
    for k in keys:
        vals = [r[k] for r in rows if k in r and math.isfinite(r[k])]
        out[k] = float(np.mean(vals)) if vals else float("nan")
    out["pesq_wb_missing"] = float(sum(1 for r in rows if not math.isfinite(r.get("pesq_wb", math.nan))))
    return out


def _quick_row(job: ScoreJob) -> dict[str, float]:
    row: dict[str, float] = {}
    for key, fn in (("pesq_wb", pesq), ("stoi", stoi), ("estoi", estoi), ("si_sdr", si_sdr)):
        try:
            row[key] = fn(job.clean, job.est, job.sample_rate)
        except MetricUnavailable:
            row[key] = float("nan")
    return row


def _to_numpy(x: Any) -> np.ndarray:
    if hasattr(x, "detach"):  # a torch tensor (torch is not imported here)
        x = x.detach().to("cpu").float().numpy()
    return np.asarray(x, dtype=np.float64)
