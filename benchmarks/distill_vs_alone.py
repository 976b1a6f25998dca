"""Distilled vs trained alone: the same student at equal training steps, scored on the same pairs.

Takes two folders of Lightning checkpoints named ``step{N}.ckpt`` (the ``snapshots/`` folder that the
``configs/experiments/gtcrn_distill.yaml`` / ``configs/gtcrn_alone.yaml`` runs write, or any copy of their
``last.ckpt`` per step), scores every step present in both on the development set (or ``--data``)
in one run, and writes ``distill_vs_alone.json`` and ``.md``: per step, both models' PESQ-wb / ESTOI /
SI-SDR and the distillation gain with a paired 95 % interval over the files.

    python benchmarks/distill_vs_alone.py --distilled runs/gtcrn_distill/snapshots \\
        --alone runs/gtcrn_alone/snapshots --steps 1500 3000
"""

from __future__ import annotations

import argparse
import datetime as _dt
import re
import shlex
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
METRICS = ("pesq_wb", "estoi", "si_sdr")
_STEP = re.compile(r"^step(\d+)\.ckpt$")


def step_files(folder: Path) -> dict[int, Path]:
    """``{step: path}`` of the ``step{N}.ckpt`` files in ``folder``."""
    if not folder.is_dir():
        raise SystemExit(f"distill_vs_alone: {folder} is not a folder")
    return {int(m.group(1)): p for p in folder.iterdir() if (m := _STEP.match(p.name))}


def main(argv: list[str] | None = None) -> int:
    from denoisezoo.datasets.devset import add_data_arguments, data_spec

    argv = sys.argv[1:] if argv is None else argv
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--distilled", type=Path, required=True, help="folder of step{N}.ckpt")
    ap.add_argument("--alone", type=Path, required=True, help="folder of step{N}.ckpt")
    ap.add_argument("--steps", type=int, nargs="+", default=None,
                    help="steps to compare (default: every step present in both folders)")
    ap.add_argument("--offset-distilled", type=int, default=0,
                    help="steps the distilled run had before its own counter (warm start)")
    add_data_arguments(ap, REPO.parent / "shared")
    ap.add_argument("--out", type=Path, default=REPO / "benchmarks/results")
    ap.add_argument("--no-progress", action="store_true")
    args = ap.parse_args(argv)

    import torch

    from denoisezoo import load_model
    from denoisezoo.api import enhance_array
    from denoisezoo.evaluation import evaluate_systems
    from denoisezoo.evaluation.report import gain_cell, scores_cell, write_json_markdown
    from denoisezoo.evaluation.runner import ok_rows_by_system, paired_gain

    torch.set_num_threads(1)
    dist = {s + args.offset_distilled: p for s, p in step_files(args.distilled).items()}
    alone = step_files(args.alone)
    common = sorted(set(dist) & set(alone))
    steps = sorted(args.steps) if args.steps else common
    missing = [s for s in steps if s not in common]
    if missing or not steps:
        raise SystemExit(f"distill_vs_alone: steps {missing or steps} not in both folders "
                         f"(common: {common})")
    spec, data_name = data_spec(args)

    def system(path: Path):
        model = load_model(path)
        return lambda x, sr: enhance_array(model, x, sr)

    systems = {}
    for s in steps:
        systems[f"distilled@{s}"] = system(dist[s])
        systems[f"alone@{s}"] = system(alone[s])
    result = evaluate_systems(systems, spec, workers=args.workers,
                              progress=not args.no_progress, limit=args.limit)
    by_sys = ok_rows_by_system(result["rows"])

    table = []
    for s in steps:
        d, a = by_sys.get(f"distilled@{s}", {}), by_sys.get(f"alone@{s}", {})
        ids = sorted(set(d) & set(a))
        entry: dict = {"step": s, "files": len(ids), "distilled_ckpt": str(dist[s]),
                       "alone_ckpt": str(alone[s])}
        for m in METRICS:
            ok = [i for i in ids if d[i].get(m) is not None and a[i].get(m) is not None]
            dv, av = [float(d[i][m]) for i in ok], [float(a[i][m]) for i in ok]
            entry[m] = {"distilled": sum(dv) / len(dv), "alone": sum(av) / len(av),
                        "gain": paired_gain(dv, av)}
        table.append(entry)

    command = "python benchmarks/distill_vs_alone.py" + "".join(f" {shlex.quote(a)}" for a in argv)
    doc = {"meta": {"command": command, "data": data_name,
                    "date": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")},
           "steps": table}
    md = ["# Distilled vs trained alone (equal steps)\n",
          f"Data: {data_name}. Gain = distilled − alone, mean over the files with the half-width of its "
          "paired 95 % interval.\n", f"```\n{command}\n```\n",
          "| steps | distilled PESQ-wb / ESTOI / SI-SDR | alone PESQ-wb / ESTOI / SI-SDR "
          "| gain PESQ-wb | gain ESTOI | gain SI-SDR (dB) |",
          "|---:|---|---|---|---|---|"]
    for e in table:
        both = [scores_cell({m: e[m][k] for m in METRICS}) for k in ("distilled", "alone")]
        gains = [gain_cell(e[m]["gain"]) for m in METRICS]
        md.append(f"| {e['step']:,} | {both[0]} | {both[1]} | " + " | ".join(gains) + " |")
    write_json_markdown(args.out, "distill_vs_alone", doc, md)
    print("\n".join(md))
    return 0


if __name__ == "__main__":
    sys.exit(main())
