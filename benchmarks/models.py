"""The zoo's static figures: per shipped model and preset, the family, rate, hop, algorithmic latency,
learnable parameters, MACs per second of audio and file size, read from the models themselves.

Runs ``denoisezoo models --json --presets`` (counts by :mod:`denoisezoo.profile`, ptflops-like
convention; RNNoise MACs include its DSP front end) and writes ``models.json`` and ``models.md``
(default ``benchmarks/results/``). The README model table takes params, MMAC/s and latency from here;
its quality columns come from ``benchmarks/results/leaderboard_with_half/``. Nothing is timed: the
figures do not depend on the machine.

    python benchmarks/models.py
    python benchmarks/models.py --out /tmp/models
"""

from __future__ import annotations

import argparse
import datetime
import json
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def zoo() -> list[dict]:
    """The rows of ``denoisezoo models --json --presets`` (the CLI is the stable interface)."""
    cmd = [sys.executable, "-m", "denoisezoo", "models", "--json", "--presets"]
    return json.loads(subprocess.run(cmd, check=True, capture_output=True, text=True).stdout)


def markdown(rows: list[dict], command: str, date: str) -> str:
    out = [
        "# Models: static figures",
        "",
        f"Command: `{command}`  ",
        f"Date: {date}. Counted from the models (`denoisezoo models --json --presets`, "
        "`denoisezoo.profile`); independent of the machine. MMAC/s = million multiply-accumulates per "
        "second of audio at the model's rate; RNNoise counts include its DSP front end. Dev-set scores: "
        "the model card's (`scripts/ship_model.py`), the same as in `leaderboard_with_half/`.",
        "",
        "| name | kind | family | rate | latency | learnable params | MMAC/s | file KB "
        "| dev PESQ-wb / ESTOI / SI-SDR |",
        "|---|---|---|---:|---:|---:|---:|---:|---|",
    ]
    for r in rows:
        s = r.get("dev_scores") or {}
        scores = (f"{s['pesq_wb']:.2f} / {s['estoi']:.3f} / {s['si_sdr']:.2f}"
                  if {"pesq_wb", "estoi", "si_sdr"} <= s.keys() else "")
        out.append(f"| `{r['name']}` | {r['kind']} | {r.get('family', '')} | {r['sample_rate'] // 1000} kHz "
                   f"| {r['latency_ms']:.0f} ms | {r['params']:,} | {r['macs_per_s'] / 1e6:.1f} "
                   f"| {r.get('file_kb', '') or ''} | {scores} |")
    return "\n".join(out) + "\n"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", type=Path, default=REPO / "benchmarks/results", help="output folder")
    args = ap.parse_args(argv)
    rows = zoo()
    date = datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")
    command = "python benchmarks/models.py"
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "models.json").write_text(json.dumps({"command": command, "date": date, "models": rows},
                                                     indent=2, default=str) + "\n")
    (args.out / "models.md").write_text(markdown(rows, command, date))
    print(f"wrote {args.out / 'models.md'} ({len(rows)} rows)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
