"""Evaluation outputs: per-file CSV, ``summary.json``, a markdown table, spectrogram plots."""

from __future__ import annotations

import csv
import json
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from denoisezoo.evaluation.runner import NOISY, metric_keys

__all__ = ["write_outputs", "markdown_table", "plot_pair", "select_extremes", "METRIC_LABELS", "gain_cell",
           "scores_cell", "write_json_markdown"]

METRIC_LABELS = {
    "pesq_wb": "PESQ-wb", "pesq_nb": "PESQ-nb", "stoi": "STOI", "estoi": "ESTOI",
    "si_sdr": "SI-SDR (dB)", "snr": "SNR (dB)", "seg_snr": "segSNR (dB)",
    "dnsmos_sig": "DNSMOS SIG", "dnsmos_bak": "DNSMOS BAK", "dnsmos_ovrl": "DNSMOS OVRL",
    "dnsmos_p808": "DNSMOS P.808",
}
_TABLE_METRICS = ("pesq_wb", "pesq_nb", "stoi", "estoi", "si_sdr", "snr", "seg_snr",
                  "dnsmos_sig", "dnsmos_bak", "dnsmos_ovrl")


def _jsonable(x: Any) -> Any:
    if isinstance(x, dict):
        return {str(k): _jsonable(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_jsonable(v) for v in x]
    if isinstance(x, (float, np.floating)):
        return float(x) if math.isfinite(x) else None
    if isinstance(x, np.integer):
        return int(x)
    return x


def write_outputs(result: Mapping[str, Any], out_dir: str | Path, command: str | None = None,
                  title: str = "Evaluation") -> dict[str, Path]:
    """Write ``per_file.csv``, ``summary.json`` (top-level keys: system names) and ``summary.md``.

    Returns:
        ``{"csv": path, "json": path, "md": path}``.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    rows = result["rows"]
    paths = {"csv": out / "per_file.csv", "json": out / "summary.json", "md": out / "summary.md"}
    keys = metric_keys([r for r in rows if r["status"] == "ok"])
    cols = ["system", "id", "status", "reason", "seconds", *keys, "missing", "noisy", "clean"]
    with paths["csv"].open("w", newline="", encoding="utf-8") as fh:
        w = csv.DictWriter(fh, fieldnames=cols, extrasaction="ignore")
        w.writeheader()
        for r in rows:
            rec = {k: r.get(k, "") for k in cols}
            rec["missing"] = "; ".join(f"{k}: {v}" for k, v in (r.get("missing") or {}).items())
            for k in ("seconds", *keys):
                v = rec[k]
                rec[k] = "" if v == "" or (isinstance(v, float) and not math.isfinite(v)) else f"{v:.6g}"
            w.writerow(rec)
    paths["json"].write_text(json.dumps(_jsonable(result["summary"]), indent=2) + "\n", encoding="utf-8")
    paths["md"].write_text(summary_markdown(result["summary"], command, title), encoding="utf-8")
    return paths


def gain_cell(gain: Mapping[str, Any]) -> str:
    """A :func:`~denoisezoo.evaluation.runner.paired_gain` as a table cell: ``+0.096 ± 0.022``."""
    return f"{gain['mean']:+.3f} ± {gain['ci95_half']:.3f}"


def scores_cell(values: Mapping[str, float]) -> str:
    """``{metric: mean}`` as one table cell in the mapping's order, SDR/SNR with 2 decimals and the
    rest with 3: ``1.588 / 0.806 / 9.62``."""
    return " / ".join(f"{v:.{2 if 'sdr' in m or 'snr' in m else 3}f}" for m, v in values.items())


def write_json_markdown(out_dir: str | Path, stem: str, doc: Mapping[str, Any],
                        markdown: Sequence[str]) -> Path:
    """Write ``doc`` to ``out_dir/stem.json`` and the ``markdown`` lines to ``out_dir/stem.md``
    (creating ``out_dir``); returns the JSON path."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    (out / f"{stem}.json").write_text(json.dumps(_jsonable(doc), indent=2) + "\n", encoding="utf-8")
    (out / f"{stem}.md").write_text("\n".join(markdown) + "\n", encoding="utf-8")
    return out / f"{stem}.json"


def _cell(stats: Mapping[str, Any] | None, digits: int) -> str:
    if not stats or stats.get("mean") is None:
        return "–"
    s = f"{stats['mean']:.{digits}f}"
    if stats.get("ci95"):
        s += f" ± {(stats['ci95'][1] - stats['ci95'][0]) / 2:.{digits}f}"
    return s


def _digits(metric: str) -> int:
    return 2 if "sdr" in metric or "snr" in metric or metric.startswith(("pesq", "dnsmos")) else 3


def markdown_table(summary: Mapping[str, Mapping[str, Any]], improvements: bool = True,
                   extra_columns: Mapping[str, Mapping[str, str]] | None = None) -> str:
    """A markdown table: one row per system, ``mean ± 95 % half-interval`` per metric.

    Args:
        summary: ``{system: summarize(...)}``.
        improvements: add ΔPESQ-wb / ΔESTOI / ΔSI-SDR columns (vs the noisy input) when present.
        extra_columns: ``{column: {system: text}}`` appended after the metrics (e.g. params).
    """
    metrics = [m for m in _TABLE_METRICS if any(m in s["metrics"] for s in summary.values())]
    imps = [f"{m}_imp" for m in ("pesq_wb", "estoi", "si_sdr")
            if improvements and any(f"{m}_imp" in s["metrics"] for s in summary.values())]
    extra = dict(extra_columns or {})
    head = (["System"] + [METRIC_LABELS.get(m, m) for m in metrics]
            + ["Δ" + METRIC_LABELS[m[:-4]] for m in imps] + list(extra) + ["RTF", "scored", "skipped"])
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for name, s in summary.items():
        cells = [f"`{name}`"] + [_cell(s["metrics"].get(m), _digits(m)) for m in metrics]
        cells += [_cell(s["metrics"].get(m), _digits(m[:-4])) for m in imps]
        cells += [extra[c].get(name, "") for c in extra]
        cells.append("–" if s.get("rtf") is None else f"{s['rtf']:.3f}")
        cells += [str(s["scored"]), str(s["skipped"])]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def summary_markdown(summary: Mapping[str, Mapping[str, Any]], command: str | None = None,
                     title: str = "Evaluation") -> str:
    """The full ``summary.md``: table, the command, skipped files and missing scores with reasons."""
    parts = [f"# {title}\n"]
    if command:
        parts.append(f"Command:\n\n```\n{command}\n```\n")
    n_files = max((s["files"] for s in summary.values()), default=0)
    parts.append(f"{n_files} file(s); values are means ± half-width of the 95 % confidence "
                 "interval (Student t); Δ = improvement over the unprocessed noisy input; "
                 "RTF = processing time / audio duration.\n")
    parts.append(markdown_table(summary))
    for name, s in summary.items():
        if s["skipped_files"]:
            parts.append(f"\n**{name}: {s['skipped']} file(s) skipped**\n")
            parts += [f"- `{f['id']}`: {f['reason']}" for f in s["skipped_files"][:100]]
            if s["skipped"] > 100:
                parts.append(f"- ... and {s['skipped'] - 100} more (see per_file.csv)")
        for metric, items in s.get("missing", {}).items():
            parts.append(f"\n**{name}: {metric} missing for {len(items)} file(s)** (left out of its mean)\n")
            parts += [f"- `{f['id']}`: {f['reason']}" for f in items[:20]]
    return "\n".join(parts) + "\n"


def select_extremes(rows: Sequence[Mapping[str, Any]], system: str, n: int = 2,
                    keys: Sequence[str] = ("pesq_wb_imp", "si_sdr_imp")) -> tuple[list, list, str]:
    """The ``n`` worst and ``n`` best scored files of ``system`` by the first available key.

    Returns:
        ``(worst_rows, best_rows, key)``; empty lists if no key has values.
    """
    ok = [r for r in rows if r["system"] == system and r["status"] == "ok"]
    for key in keys:
        scored = [r for r in ok if isinstance(r.get(key), float) and math.isfinite(r[key])]
        if scored:
            scored.sort(key=lambda r: r[key])
            n_eff = min(n, len(scored))
            worst = scored[:n_eff]
            best = [r for r in reversed(scored[-n_eff:]) if r not in worst] if len(scored) > 1 else []
            return worst, best, key
    return [], [], ""


def _spectrogram_db(x: np.ndarray, n_fft: int = 512, hop: int = 128) -> np.ndarray:
    if x.shape[0] < n_fft:
        x = np.pad(x, (0, n_fft - x.shape[0]))
    n = 1 + (x.shape[0] - n_fft) // hop
    idx = np.arange(n_fft)[None, :] + hop * np.arange(n)[:, None]  # T, W
    spec = np.abs(np.fft.rfft(x[idx] * np.hanning(n_fft), axis=1)) ** 2  # T, F
    return 10 * np.log10(spec.T + 1e-10)  # F, T


def plot_pair(path: str | Path, noisy: np.ndarray, enhanced: np.ndarray, clean: np.ndarray,
              sample_rate: int, title: str = "") -> Path:
    """Save a PNG with the noisy / enhanced / clean spectrograms stacked (matplotlib, Agg)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(10, 8), dpi=100)
    FigureCanvasAgg(fig)
    specs = [(_spectrogram_db(np.asarray(a, np.float64)), lab) for a, lab in
             ((noisy, "noisy"), (enhanced, "enhanced"), (clean, "clean"))]
    vmax = max(float(s.max()) for s, _ in specs)
    axes = fig.subplots(3, 1, sharex=True)
    for ax, (s, lab) in zip(axes, specs, strict=True):
        dur = len(noisy) / sample_rate
        im = ax.imshow(s, origin="lower", aspect="auto", cmap="magma", vmin=vmax - 80, vmax=vmax,
                       extent=(0, dur, 0, sample_rate / 2000))
        ax.set_ylabel(f"{lab}\nkHz")
    axes[-1].set_xlabel("time (s)")
    fig.colorbar(im, ax=list(axes), label="dB")
    if title:
        fig.suptitle(title, fontsize=10)
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out)
    return out


def ensure_noisy_first(summary: Mapping[str, Any]) -> dict[str, Any]:
    """The summary with the ``noisy`` row first (display order)."""
    return ({NOISY: summary[NOISY]} if NOISY in summary else {}) | {
        k: v for k, v in summary.items() if k != NOISY}
