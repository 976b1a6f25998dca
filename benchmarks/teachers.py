"""Distillation teachers: single models, output ensembles and bidirectional (non-causal) ensembles,
scored on the same pairs in one run.

Each candidate is a :class:`denoisezoo.training.TeacherEnsemble` (a single model is a one-member
ensemble), enhanced exactly as :class:`~denoisezoo.training.DistillationSystem` uses it in training
(``enhance_waveform``). Writes ``teachers.json`` and ``teachers.md``: per candidate, PESQ-wb / ESTOI /
SI-SDR and the gain over the first candidate with a paired 95 % interval over the files.

    python benchmarks/teachers.py                         # dev set from ../shared
    python benchmarks/teachers.py --data ../shared/reference/gtcrn/dns3_pairs --out /tmp/t
"""

from __future__ import annotations

import argparse
import datetime as _dt
import shlex
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
METRICS = ("pesq_wb", "estoi", "si_sdr")
EP87 = "reference/gtcrn/checkpoints/model_trained_on_dns3.tar"


def candidates(shared: Path) -> dict[str, tuple[list[str], bool]]:
    """``{name: (sources, bidirectional)}``; the first is the reference of the gains."""
    ep87 = str(shared / EP87)
    return {
        "gtcrn_dns3_ft": (["gtcrn_dns3_ft"], False),
        "gtcrn_dns3_ft, bidirectional": (["gtcrn_dns3_ft"], True),
        "gtcrn_dns3_ft + official ep87": (["gtcrn_dns3_ft", ep87], False),
        "gtcrn_dns3_ft + official ep87, bidirectional": (["gtcrn_dns3_ft", ep87], True),
        "gtcrn_dns3_ft + official ep87 + gtcrn, bidirectional": (["gtcrn_dns3_ft", ep87, "gtcrn"], True),
    }


def main(argv: list[str] | None = None) -> int:
    from denoisezoo.datasets.devset import add_data_arguments, data_spec

    argv = sys.argv[1:] if argv is None else argv
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_data_arguments(ap, REPO.parent / "shared")
    ap.add_argument("--out", type=Path, default=REPO / "benchmarks/results/teachers")
    ap.add_argument("--no-progress", action="store_true")
    args = ap.parse_args(argv)
    if not (args.shared / EP87).is_file():
        raise SystemExit(f"teachers: {args.shared / EP87} not found (the official checkpoint, see "
                         "../shared/README.md); pass --shared")

    import numpy as np
    import torch

    from denoisezoo.evaluation import evaluate_systems
    from denoisezoo.evaluation.report import gain_cell, scores_cell, write_json_markdown
    from denoisezoo.evaluation.runner import ok_rows_by_system, paired_gain
    from denoisezoo.training import TeacherEnsemble

    torch.set_num_threads(1)
    spec, data_name = data_spec(args)

    def system(sources: list[str], bidirectional: bool):
        teacher = TeacherEnsemble(sources, bidirectional).eval()
        rate = teacher.geometry.sample_rate

        def run(x: np.ndarray, sr: int) -> np.ndarray:
            if sr != rate:
                raise ValueError(f"teacher runs at {rate} Hz, pair at {sr} Hz")
            return teacher.enhance_waveform(torch.from_numpy(x).float()[None])[0].numpy()
        return run

    cands = candidates(args.shared)
    systems = {name: system(*c) for name, c in cands.items()}
    result = evaluate_systems(systems, spec, workers=args.workers, progress=not args.no_progress,
                              limit=args.limit, include_noisy=False)
    by_sys = ok_rows_by_system(result["rows"])
    ref = next(iter(cands))
    table = []
    for name, (sources, bidir) in cands.items():
        rows, base = by_sys.get(name, {}), by_sys.get(ref, {})
        ids = sorted(set(rows) & set(base))
        entry: dict = {"teacher": name, "sources": sources, "bidirectional": bidir, "files": len(ids)}
        for m in METRICS:
            v, b = [float(rows[i][m]) for i in ids], [float(base[i][m]) for i in ids]
            entry[m] = {"mean": sum(v) / len(v), "gain": paired_gain(v, b)}
        table.append(entry)

    command = "python benchmarks/teachers.py" + "".join(f" {shlex.quote(a)}" for a in argv)
    doc = {"meta": {"command": command, "data": data_name, "reference": ref,
                    "date": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")},
           "teachers": table}
    md = ["# Distillation teachers\n",
          f"Data: {data_name}. Gain = candidate − `{ref}`, mean over the files with the half-width of "
          "its paired 95 % interval. Bidirectional: each member also runs on the time-reversed input "
          "(non-causal; for offline distillation only).\n", f"```\n{command}\n```\n",
          "| teacher | passes | PESQ-wb / ESTOI / SI-SDR | gain PESQ-wb | gain ESTOI | gain SI-SDR (dB) |",
          "|---|---:|---|---|---|---|"]
    for e in table:
        scores = scores_cell({m: e[m]["mean"] for m in METRICS})
        gains = [gain_cell(e[m]["gain"]) for m in METRICS]
        passes = len(e["sources"]) * (2 if e["bidirectional"] else 1)
        md.append(f"| {e['teacher']} | {passes} | {scores} | " + " | ".join(gains) + " |")
    write_json_markdown(args.out, "teachers", doc, md)
    print("\n".join(md))
    return 0


if __name__ == "__main__":
    sys.exit(main())
