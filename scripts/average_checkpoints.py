"""Average the weights of several Lightning checkpoints of one run (see denoisezoo.training.averaging).

    python scripts/average_checkpoints.py runs/gtcrn_distill_9000.ckpt runs/gtcrn_distill_10000.ckpt \
        -o runs/gtcrn_distill_avg.ckpt
"""

from __future__ import annotations

import argparse
from pathlib import Path


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("checkpoints", type=Path, nargs="+")
    ap.add_argument("-o", "--out", type=Path, required=True)
    ap.add_argument("--weights", type=float, nargs="+", default=None, help="one per checkpoint")
    ap.add_argument("--overwrite", action="store_true")
    args = ap.parse_args(argv)
    from denoisezoo.training.averaging import average_checkpoints

    out = average_checkpoints(args.checkpoints, args.out, args.weights, args.overwrite)
    print(f"wrote {out} (mean of {len(args.checkpoints)})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
