"""``denoisezoo evaluate --model NAME|--checkpoint PATH --data SPEC -o DIR``."""

from __future__ import annotations

import argparse
import shlex
import sys
from pathlib import Path

from denoisezoo.cli.common import DEFAULT_MODEL, add_model_args, error, model_from_args

__all__ = ["add_parser", "run"]


def add_parser(sub) -> None:
    p = sub.add_parser(
        "evaluate", help="score a model against the noisy input on noisy/clean pairs",
        description="Score a model and the unprocessed noisy input (PESQ-wb, STOI, ESTOI, SI-SDR, "
                    "SNR, segmental SNR; optional DNSMOS) on noisy/clean pairs. SPEC: a "
                    "VoiceBank-DEMAND folder (noisy_testset_wav/, clean_testset_wav/), a DNS test "
                    "folder (noisy/, clean/ matched by fileid_N), a noisy/ + clean/ folder with the "
                    "same names, or a CSV manifest with noisy,clean columns.")
    add_model_args(p)
    p.add_argument("--name", default=None,
                   help="row name of the model (default: the model name or checkpoint file stem)")
    p.add_argument("--data", required=True, metavar="SPEC", help="data folder or CSV manifest")
    p.add_argument("-o", "--output", required=True, metavar="DIR",
                   help="output folder (per_file.csv, summary.json, summary.md)")
    p.add_argument("--plots", nargs="?", const="", default=None, metavar="DIR",
                   help="spectrogram PNGs of the worst and best files by PESQ improvement "
                        "(default folder: DIR/plots)")
    p.add_argument("--n-plots", type=int, default=2, metavar="N",
                   help="number of worst and of best files to plot (default 2)")
    p.add_argument("--workers", type=int, default=2, metavar="N", help="scoring processes (default 2)")
    p.add_argument("--limit", type=int, default=None, metavar="N", help="only the first N pairs")
    p.add_argument("--dnsmos", action="store_true",
                   help="add non-intrusive DNSMOS P.835 SIG/BAK/OVRL (needs the 'dnsmos' extra)")
    p.add_argument("--pesq-nb", action="store_true", help="also report narrow-band PESQ (P.862)")
    p.add_argument("--threads", type=int, default=None, metavar="N",
                   help="torch threads for enhancement (default: torch's choice)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")


def run(args: argparse.Namespace) -> int:
    import numpy as np

    from denoisezoo.evaluation.data import find_pairs, load_pair
    from denoisezoo.evaluation.report import plot_pair, select_extremes, write_outputs
    from denoisezoo.evaluation.runner import NOISY, evaluate_systems

    if args.limit is not None and args.limit < 1:
        return error(f"--limit: expected a positive number, found {args.limit}")
    try:
        pairs = find_pairs(args.data, limit=args.limit)
    except ValueError as exc:
        return error(str(exc))
    if args.dnsmos:
        from denoisezoo.evaluation.dnsmos import dnsmos_available

        why = dnsmos_available()
        if why:
            return error(why)
    try:
        model = model_from_args(args)
    except (KeyError, FileNotFoundError, ValueError) as exc:
        return error(str(exc).strip("'\""))
    default_name = Path(args.checkpoint).stem if args.checkpoint else (args.model or args.preset
                                                                     or DEFAULT_MODEL)
    name = args.name or default_name
    if name == NOISY:
        return error(f"--name: {NOISY!r} is the baseline row; choose another name")
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)

    from denoisezoo.api import enhance_array

    def system(audio: np.ndarray, sample_rate: int) -> np.ndarray:
        return enhance_array(model, audio, sample_rate)

    result = evaluate_systems({name: system}, pairs, workers=args.workers,
                              progress=not args.no_progress, dnsmos=args.dnsmos,
                              pesq_modes=("wb", "nb") if args.pesq_nb else ("wb",))
    # the command line as typed (``denoisezoo evaluate ...`` or ``python -m denoisezoo evaluate ...``)
    command = ("denoisezoo " + " ".join(shlex.quote(a) for a in sys.argv[1:])
               if sys.argv[1:2] == ["evaluate"] else None)
    paths = write_outputs(result, args.output, command=command, title=f"Evaluation of `{name}`")
    summary = result["summary"]
    if args.plots is not None and summary[name]["scored"]:
        plot_dir = Path(args.plots) if args.plots else Path(args.output) / "plots"
        worst, best, key = select_extremes(result["rows"], name, n=max(1, args.n_plots))
        by_id = {p.id: p for p in pairs}
        for tag, rows in (("worst", worst), ("best", best)):
            for i, r in enumerate(rows, start=1):
                lp = load_pair(by_id[r["id"]])
                enh = system(lp.noisy, lp.sample_rate)
                title = (f"{tag} #{i} by {key}: {r['id']}  ({key} = {r[key]:+.2f}; "
                         f"PESQ-wb {r.get('pesq_wb', float('nan')):.2f}, SI-SDR {r['si_sdr']:.1f} dB)")
                out = plot_pair(plot_dir / f"{tag}{i}_{_safe(r['id'])}.png", lp.noisy, enh, lp.clean,
                                lp.sample_rate, title)
                print(f"plot: {out}")
    print(paths["md"].read_text(encoding="utf-8").split("\n\n**")[0].rstrip())
    print(f"\nwrote {paths['csv']}, {paths['json']}, {paths['md']}")
    skipped = summary[name]["skipped"]
    if skipped:
        print(f"denoisezoo: warning: {skipped} of {summary[name]['files']} file(s) skipped "
              f"(reasons in {paths['md']})", file=sys.stderr)
    if summary[name]["scored"] == 0:
        return error(f"nothing could be scored ({skipped} file(s) skipped; see {paths['md']})")
    return 0


def _safe(s: str) -> str:
    return "".join(ch if ch.isalnum() or ch in "-_." else "_" for ch in s)[:80]
