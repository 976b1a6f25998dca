"""``denoisezoo models``: the zoo, read from the shipped self-describing checkpoints and presets."""

from __future__ import annotations

import argparse
import json
import sys

__all__ = ["add_parser", "run", "zoo_table"]


def add_parser(sub) -> None:
    p = sub.add_parser("models", help="list shipped models and presets, or print a model card",
                       description="List shipped models (with their recorded metadata) and presets; "
                                   "with NAME, print that model's card (docs/models/NAME.md, "
                                   "embedded in its weights).")
    p.add_argument("name", nargs="?", default=None, metavar="NAME", help="a shipped model")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.add_argument("--presets", action="store_true", help="also list untrained presets")


def zoo_table(include_presets: bool = False) -> list[dict]:
    """One row per shipped model (and optionally per preset), measured from the model itself."""
    from denoisezoo.hub import PRESETS, build_model, family_of, load_model, shipped_models
    from denoisezoo.profile import count_parameters, macs_per_second

    rows = []
    for name, path in shipped_models().items():
        model = load_model(name)
        meta = getattr(model, "checkpoint_meta", {})
        g = model.geometry
        rows.append({
            "name": name, "kind": "shipped", "family": family_of(model).name,
            "sample_rate": g.sample_rate, "latency_ms": g.latency_ms,
            "params": count_parameters(model), "macs_per_s": macs_per_second(model),
            "file_kb": round(path.stat().st_size / 1024, 1),
            "int8": _int8_summary(meta),
            "dev_scores": meta.get("metrics", {}), "steps": meta.get("global_step"),
            "teacher": meta.get("teacher"),
        })
    if include_presets:
        for name in sorted(PRESETS):
            model = build_model(name)
            g = model.geometry
            rows.append({"name": name, "kind": "preset",
                         "family": family_of(model).name, "sample_rate": g.sample_rate,
                         "latency_ms": g.latency_ms, "params": count_parameters(model),
                         "macs_per_s": macs_per_second(model)})
    return rows


def _int8_summary(meta: dict) -> str | None:
    """The INT8 line of a model card (``meta["int8"]``, written by scripts/ship_model.py when the
    INT8 step was measured on the development set), e.g. ``"ORT mixed, PESQ -0.01"``."""
    rec = meta.get("int8")
    if not isinstance(rec, dict):
        return None
    q, f = rec.get("metrics", {}).get("pesq_wb"), meta.get("metrics", {}).get("pesq_wb")
    runtime = {"onnxruntime": "ORT", "litert": "LiteRT"}.get(rec.get("runtime"), rec.get("runtime"))
    cost = f", PESQ {q - f:+.2f}" if q is not None and f is not None else ""
    return f"{runtime} {rec.get('mode', '')}{cost}".strip()


def _card(name: str) -> int:
    from denoisezoo.cli.common import error
    from denoisezoo.hub import model_card

    try:
        card = model_card(name)
    except KeyError as exc:
        return error(str(exc).strip("'\""))
    if not card:
        return error(f"{name}: its weights carry no model card")
    print(card.rstrip())
    return 0


def run(args: argparse.Namespace) -> int:
    if args.name:
        return _card(args.name)
    rows = zoo_table(args.presets)
    if args.json:
        print(json.dumps(rows, indent=2, default=str))
        return 0
    if not rows:
        print("no shipped models yet (use --presets to list the untrained presets)")
        return 0
    from rich.console import Console
    from rich.table import Table

    t = Table(title="denoisezoo models")
    cols = ("name", "kind", "rate", "latency", "params", "MMAC/s", "file", "INT8", "dev PESQ/ESTOI/SI-SDR")
    for col in cols:
        t.add_column(col)
    for r in rows:
        s = r.get("dev_scores") or {}
        scores = (f"{s['pesq_wb']:.2f} / {s['estoi']:.3f} / {s['si_sdr']:.1f}"
                  if {"pesq_wb", "estoi", "si_sdr"} <= s.keys() else "-")
        t.add_row(r["name"], r["kind"], f"{r['sample_rate'] // 1000} kHz", f"{r['latency_ms']:.0f} ms",
                  f"{r['params']:,}", f"{r['macs_per_s'] / 1e6:.1f}",
                  f"{r['file_kb']} KB" if "file_kb" in r else "-", r.get("int8") or "no", scores)
    # piped output is not cut to 80 columns
    Console(width=None if sys.stdout.isatty() else 200).print(t)
    return 0
