"""Evaluation: intrusive metrics (PESQ, STOI/ESTOI, SI-SDR, SNR, segSNR), optional DNSMOS,
system-vs-noisy comparisons on noisy/clean pairs, and their reports.

Modules: :mod:`~denoisezoo.evaluation.metrics` (metric functions, ``score_pair``, ``score_many``,
``validation_metrics``), :mod:`~denoisezoo.evaluation.dnsmos`, :mod:`~denoisezoo.evaluation.data`
(data SPECs), :mod:`~denoisezoo.evaluation.runner` (``evaluate_systems``),
:mod:`~denoisezoo.evaluation.report` (CSV / JSON / markdown / plots).

Names are imported lazily so that scoring worker processes start without torch.
"""

from __future__ import annotations

import importlib

__all__ = [
    "align", "pesq", "stoi", "estoi", "si_sdr", "snr", "seg_snr", "sign_inverted", "score_pair",
    "score_many", "validation_metrics", "MetricUnavailable", "ScoreJob",
    "dnsmos_available",
    "Pair", "LoadedPair", "find_pairs", "load_pair",
    "evaluate_systems", "summarize",
    "write_outputs", "markdown_table", "plot_pair",
]

_WHERE = {
    **dict.fromkeys(["align", "pesq", "stoi", "estoi", "si_sdr", "snr", "seg_snr", "sign_inverted",
                     "score_pair", "score_many", "validation_metrics", "MetricUnavailable",
                     "ScoreJob"], "metrics"),
    **dict.fromkeys(["dnsmos_available"], "dnsmos"),
    **dict.fromkeys(["Pair", "LoadedPair", "find_pairs", "load_pair"], "data"),
    **dict.fromkeys(["evaluate_systems", "summarize"], "runner"),
    **dict.fromkeys(["write_outputs", "markdown_table", "plot_pair"], "report"),
}


def __getattr__(name: str):
    if name in _WHERE:
        mod = importlib.import_module(f"denoisezoo.evaluation.{_WHERE[name]}")
        return getattr(mod, name)
    raise AttributeError(f"module 'denoisezoo.evaluation' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(__all__)
