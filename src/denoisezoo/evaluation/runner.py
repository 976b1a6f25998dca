"""Score several denoising systems on the same noisy/clean pairs.

A *system* is any callable ``(noisy (N,) float32, sample_rate) -> enhanced (N,)``; the unprocessed
input is always scored too, under the key ``"noisy"``, so every system's improvement is measured on
the same files. Enhancement runs in this process (timed, for a real-time factor); scoring runs in a
``spawn`` process pool, chunk by chunk, so memory stays bounded and timing is not disturbed by the
pool.

Example:
    >>> import numpy as np
    >>> from denoisezoo.evaluation.data import LoadedPair
    >>> t = np.arange(16000) / 16000
    >>> clean = (0.3 * np.sin(2 * np.pi * 220 * t) * (t < 0.9)).astype(np.float32)
    >>> noise = np.random.default_rng(0).standard_normal(16000).astype(np.float32) * 0.03
    >>> pair = LoadedPair("a", clean + noise, clean, 16000)
    >>> res = evaluate_systems({"half": lambda x, sr: 0.5 * x}, [pair], workers=1, progress=False)
    >>> sorted(res["summary"])
    ['half', 'noisy']
    >>> s = res["summary"]
    >>> round(s["half"]["metrics"]["si_sdr"]["mean"] - s["noisy"]["metrics"]["si_sdr"]["mean"], 6)
    0.0
"""

from __future__ import annotations

import math
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import as_completed
from pathlib import Path
from typing import Any

import numpy as np

from denoisezoo.audio import AudioError
from denoisezoo.evaluation.data import LoadedPair, Pair, find_pairs, load_pair
from denoisezoo.evaluation.metrics import INTRUSIVE_METRICS, ScoreJob, _run_job, make_pool

__all__ = ["System", "NOISY", "evaluate_systems", "summarize", "metric_keys", "mean_ci95", "paired_gain",
           "ok_rows_by_system"]

System = Callable[[np.ndarray, int], np.ndarray]
NOISY = "noisy"
#: Metrics whose difference to the noisy input is reported as ``<metric>_imp``.
IMPROVED = INTRUSIVE_METRICS + ("pesq_nb",)


def _identity(x: np.ndarray, sample_rate: int) -> np.ndarray:
    return x


def evaluate_systems(systems: Mapping[str, System], pairs: Sequence[Pair | LoadedPair] | str | Path,
                     *, workers: int = 2, progress: bool = True, dnsmos: bool = False,
                     pesq_modes: Sequence[str] = ("wb",), include_noisy: bool = True,
                     chunk: int = 16, limit: int | None = None) -> dict[str, Any]:
    """Enhance every pair with every system and score it against the clean reference.

    Args:
        systems: ``{name: callable(noisy (N,), sample_rate) -> (N,)}``. ``"noisy"`` is reserved.
        pairs: :class:`Pair` (loaded here; bad ones are skipped with a reason) or
            :class:`LoadedPair` objects, or a data SPEC for :func:`~denoisezoo.evaluation.data.find_pairs`.
        workers: scoring processes (``<= 1``: score in this process).
        progress: show a progress bar on stderr.
        dnsmos: add non-intrusive DNSMOS P.835 scores (needs the ``dnsmos`` extra).
        pesq_modes: ``("wb",)``, or ``("wb", "nb")`` for narrow-band PESQ too.
        include_noisy: also score the unprocessed input as the ``"noisy"`` system.
        chunk: pairs enhanced before each scoring round.
        limit: only the first ``limit`` pairs.

    Returns:
        ``{"systems": [names], "rows": [per-file dicts], "summary": {name: summary}}``; see
        :func:`summarize` for the summary format. A row has ``system, id, noisy, clean, seconds,
        status ("ok" | "skipped"), reason``, the metric values and ``<metric>_imp`` improvements.
    """
    if include_noisy and NOISY in systems:
        raise ValueError(f"system name {NOISY!r} is reserved for the unprocessed input")
    if isinstance(pairs, (str, Path)):
        pairs = find_pairs(pairs)
    pairs = list(pairs)[:limit] if limit is not None else list(pairs)
    funcs: dict[str, System] = ({NOISY: _identity} if include_noisy else {}) | dict(systems)
    if not funcs:
        raise ValueError("no systems to evaluate")
    timing = {name: [0.0, 0.0] for name in funcs}  # processing seconds, audio seconds
    rows: list[dict[str, Any]] = []
    pool = make_pool(min(workers, max(1, len(pairs) * len(funcs)))) if workers > 1 else None
    from tqdm import tqdm

    bar = tqdm(total=len(pairs), desc="evaluating", unit="file", disable=not progress,
               file=sys.stderr, leave=False)
    try:
        for start in range(0, len(pairs), max(1, chunk)):
            jobs: list[ScoreJob] = []
            pending: list[dict[str, Any]] = []
            for item in pairs[start:start + chunk]:
                _enhance_pair(item, funcs, timing, rows, jobs, pending, dnsmos, tuple(pesq_modes))
            results = _score(jobs, pool)
            for row, res in zip(pending, results, strict=True):
                _fill_row(row, res)
            bar.update(len(pairs[start:start + chunk]))
    finally:
        bar.close()
        if pool is not None:
            pool.shutdown(cancel_futures=True)
    if include_noisy:
        _add_improvements(rows)
    rtf = {n: (t[0] / t[1] if t[1] > 0 else None) for n, t in timing.items()}
    summary = {name: summarize([r for r in rows if r["system"] == name], len(pairs),
                               rtf=None if name == NOISY else rtf[name]) for name in funcs}
    return {"systems": list(funcs), "rows": rows, "summary": summary}


def _enhance_pair(item: Pair | LoadedPair, funcs: Mapping[str, System], timing: dict,
                  rows: list, jobs: list, pending: list, dnsmos: bool,
                  pesq_modes: tuple[str, ...]) -> None:
    noisy_path = str(getattr(item, "noisy", "")) if isinstance(item, Pair) else ""
    clean_path = str(item.clean) if isinstance(item, Pair) and item.clean else ""
    base = {"id": item.id, "noisy": noisy_path, "clean": clean_path}
    try:
        lp = item if isinstance(item, LoadedPair) else load_pair(item)
    except AudioError as exc:
        for name in funcs:
            rows.append({"system": name, **base, "seconds": math.nan, "status": "skipped",
                         "reason": str(exc)})
        return
    for name, fn in funcs.items():
        row = {"system": name, **base, "seconds": lp.seconds, "status": "ok", "reason": ""}
        rows.append(row)
        t0 = time.perf_counter()
        try:
            est = np.asarray(fn(lp.noisy, lp.sample_rate), dtype=np.float32)
        except Exception as exc:  # noqa: BLE001 -- one failing file must not stop the evaluation
            row.update(status="skipped", reason=f"{name} failed: {type(exc).__name__}: {exc}")
            continue
        timing[name][0] += time.perf_counter() - t0
        timing[name][1] += lp.seconds
        jobs.append(ScoreJob(lp.clean, est, lp.sample_rate, None, pesq_modes, dnsmos))
        pending.append(row)


def _score(jobs: list[ScoreJob], pool) -> list[dict[str, Any]]:
    if pool is None or len(jobs) <= 1:
        return [_run_job(j) for j in jobs]
    futures = {pool.submit(_run_job, j): i for i, j in enumerate(jobs)}
    out: list[dict[str, Any]] = [{}] * len(jobs)
    for fut in as_completed(futures):
        out[futures[fut]] = fut.result()
    return out


def _fill_row(row: dict[str, Any], res: dict[str, Any]) -> None:
    if "error" in res:
        row.update(status="skipped", reason=f"cannot score: {res['error']}")
        return
    row.update(res)  # metric values and "missing": {metric: reason}


def _add_improvements(rows: list[dict[str, Any]]) -> None:
    base = {r["id"]: r for r in rows if r["system"] == NOISY and r["status"] == "ok"}
    for r in rows:
        ref = base.get(r["id"])
        if r["system"] == NOISY or r["status"] != "ok" or ref is None:
            continue
        for k in IMPROVED:
            if k in r and k in ref:
                r[f"{k}_imp"] = r[k] - ref[k]


def metric_keys(rows: Sequence[Mapping[str, Any]]) -> list[str]:
    """Metric columns present in ``rows``, in a stable display order."""
    present = {k for r in rows for k, v in r.items() if isinstance(v, float)} - {"seconds"}
    order = list(IMPROVED) + ["dnsmos_sig", "dnsmos_bak", "dnsmos_ovrl", "dnsmos_p808"]
    order += [f"{k}_imp" for k in IMPROVED]
    return [k for k in order if k in present] + sorted(present - set(order))


def mean_ci95(values: Sequence[float]) -> dict[str, Any]:
    """Mean and Student-t 95 % confidence interval of the mean (``ci95`` is None for n < 2)."""
    v = np.asarray([x for x in values if math.isfinite(x)], dtype=np.float64)
    n = int(v.size)
    if n == 0:
        return {"mean": None, "ci95": None, "n": 0}
    mean = float(v.mean())
    if n < 2:
        return {"mean": mean, "ci95": None, "n": n}
    from scipy.stats import t as student_t

    half = float(student_t.ppf(0.975, n - 1) * v.std(ddof=1) / math.sqrt(n))
    return {"mean": mean, "ci95": [mean - half, mean + half], "n": n}


def ok_rows_by_system(rows: Sequence[Mapping[str, Any]]) -> dict[str, dict[str, Mapping[str, Any]]]:
    """The scored rows of an :func:`evaluate_systems` result as ``{system: {pair id: row}}``
    (skipped pairs left out), for pairing two systems file by file."""
    out: dict[str, dict[str, Mapping[str, Any]]] = {}
    for row in rows:
        if row.get("status") == "ok":
            out.setdefault(row["system"], {})[row["id"]] = row
    return out


def paired_gain(a: Sequence[float], b: Sequence[float]) -> dict[str, Any]:
    """Mean of the per-file differences ``a - b`` with the half-width of its paired 95 % interval
    (``ci95_half`` NaN for fewer than 2 pairs)."""
    s = mean_ci95([x - y for x, y in zip(a, b, strict=True)])
    half = (s["ci95"][1] - s["ci95"][0]) / 2 if s["ci95"] else math.nan
    return {"mean": s["mean"], "ci95_half": half, "n": s["n"]}


def summarize(rows: Sequence[Mapping[str, Any]], total: int | None = None,
              rtf: float | None = None) -> dict[str, Any]:
    """Summary of one system's rows.

    Returns:
        ``{"files", "scored", "skipped", "skipped_files": [{id, reason}], "metrics": {metric:
        {mean, ci95: [lo, hi], n, missing}}, "missing": {metric: [{id, reason}]}, "rtf",
        "audio_seconds"}``.
    """
    ok = [r for r in rows if r["status"] == "ok"]
    skipped = [{"id": r["id"], "reason": r["reason"]} for r in rows if r["status"] != "ok"]
    metrics: dict[str, Any] = {}
    missing: dict[str, list] = {}
    for k in metric_keys(ok):
        stats = mean_ci95([r[k] for r in ok if k in r])
        stats["missing"] = len(ok) - stats["n"]
        metrics[k] = stats
    for r in ok:
        for k, why in (r.get("missing") or {}).items():
            missing.setdefault(k, []).append({"id": r["id"], "reason": why})
    return {
        "files": total if total is not None else len(rows),
        "scored": len(ok),
        "skipped": len(skipped),
        "skipped_files": skipped,
        "metrics": metrics,
        "missing": missing,
        "rtf": rtf,
        "audio_seconds": float(sum(r["seconds"] for r in ok)),
    }
