"""``denoisezoo denoise IN [IN...] -o OUT``: files or whole folders, ``--jobs`` worker processes.

A corpus is one command: ``denoisezoo denoise corpus/ -o clean/ --jobs 4 --skip-existing`` runs
four worker processes with a progress bar over files, and run again after an interruption it
skips the outputs already written (outputs appear only when complete). Without ``--jobs`` the
files run one after the other in this process, the fastest on a busy machine; worker processes,
not a :class:`~denoisezoo.streaming.StreamPool`, run them in parallel (the measurements are in
:func:`denoisezoo.api.denoise_files`).
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from denoisezoo.audio import AUDIO_EXTENSIONS
from denoisezoo.cli.common import add_model_args, error, model_from_args, refuse_existing

__all__ = ["add_parser", "run", "plan_outputs"]


def add_parser(sub) -> None:
    p = sub.add_parser("denoise", help="denoise audio files",
                       description="Denoise audio files (any rate/channels/format soundfile reads).")
    p.add_argument("inputs", nargs="+", metavar="IN", help="audio files or folders")
    p.add_argument("-o", "--output", required=True, metavar="OUT",
                   help="output file (one input) or folder (several inputs / a folder input)")
    add_model_args(p)
    p.add_argument("--overwrite", action="store_true", help="replace existing outputs")
    p.add_argument("--skip-existing", action="store_true",
                   help="skip inputs whose output (and VAD CSV, if asked) exists: resume a folder")
    p.add_argument("--jobs", type=int, default=1, metavar="N",
                   help="worker processes (default 1; 0: one per CPU)")
    p.add_argument("--atten-lim-db", type=float, default=None, metavar="DB",
                   help="suppress no time-frequency bin by more than DB dB (0: output = input)")
    p.add_argument("--mix", type=float, default=1.0, metavar="WET",
                   help="dry/wet mix: fraction of denoised signal in the output (default 1.0)")
    p.add_argument("--block-seconds", type=float, default=10.0,
                   help="processing block length (memory bound for long files)")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    p.add_argument("--vad-csv", metavar="CSV", default=None,
                   help="also write the model's per-frame voice activity: a CSV file (one input) or "
                        "a folder of <output name>.csv (several inputs)")
    p.add_argument("--vad-threshold", type=float, default=0.5,
                   help="voice-activity decision threshold for the CSV 'speech' column (default 0.5)")
    p.add_argument("--streaming", action="store_true",
                   help="run the streaming engine one hop at a time, as live audio (same output)")
    p.add_argument("--backend", choices=("torch", "c"), default="torch",
                   help="run a PyTorch GTCRN as it is (torch), or as its generated C library (c: "
                        "`denoisezoo export c`, built once into ~/.cache/denoisezoo/c)")


def _collect(inputs: list[str]) -> list[tuple[Path, Path]]:
    """(source, relative output path) pairs; folders are searched recursively for audio files."""
    pairs = []
    for s in inputs:
        p = Path(s)
        if p.is_dir():
            files = sorted(f for f in p.rglob("*") if f.is_file() and f.suffix.lower() in AUDIO_EXTENSIONS)
            if not files:
                raise ValueError(f"{p}: folder holds no audio files")
            pairs += [(f, f.relative_to(p)) for f in files]
        else:
            pairs.append((p, Path(p.name)))
    return pairs


def plan_outputs(inputs: list[str], output: str) -> list[tuple[Path, Path]]:
    """Map inputs to output paths: a file for one file input, else files inside the OUT folder."""
    pairs = _collect(inputs)
    out = Path(output)
    single = len(inputs) == 1 and not Path(inputs[0]).is_dir()
    if single and not out.is_dir() and out.suffix.lower() in AUDIO_EXTENSIONS:
        return [(pairs[0][0], out)]
    if out.exists() and not out.is_dir():
        raise ValueError(f"{out}: several inputs need a folder as output, and this is a file")
    plan = [(src, out / rel) for src, rel in pairs]
    seen: dict[Path, Path] = {}
    for src, dst in plan:
        if dst in seen:
            raise ValueError(f"{seen[dst]} and {src} would both be written to {dst}")
        seen[dst] = src
    return plan


def run(args: argparse.Namespace) -> int:
    from denoisezoo.api import denoise_files

    if args.atten_lim_db is not None and args.atten_lim_db < 0:
        return error(f"--atten-lim-db must be >= 0, got {args.atten_lim_db}")
    if not 0.0 <= args.mix <= 1.0:
        return error(f"--mix must be in [0, 1], got {args.mix}")
    if not 0.0 <= args.vad_threshold <= 1.0:
        return error(f"--vad-threshold must be in [0, 1], got {args.vad_threshold}")
    if args.jobs < 0:
        return error(f"--jobs must be >= 0, got {args.jobs}")
    if args.skip_existing and args.overwrite:
        return error("--skip-existing and --overwrite exclude each other")
    try:
        plan = plan_outputs(args.inputs, args.output)
    except ValueError as exc:
        return error(str(exc))
    missing = [str(s) for s, _ in plan if not s.exists()]
    if missing:
        more = f" (and {len(missing) - 1} more)" if len(missing) > 1 else ""
        return error(f"{missing[0]}: no such file{more}")
    vad_paths = _vad_paths(plan, args.vad_csv, args.output) or [None] * len(plan)
    if args.skip_existing:
        plan, vad_paths = _skip_done(plan, vad_paths)
        if not plan:
            return 0
    msg = refuse_existing([d for _, d in plan] + [v for v in vad_paths if v], args.overwrite)
    if msg:
        return error(msg)
    try:
        model = model_from_args(args)
        if args.backend == "c":
            from denoisezoo.export.c import c_model

            model = c_model(model)
    except (KeyError, FileNotFoundError, ValueError, TypeError, RuntimeError) as exc:
        return error(str(exc).strip("'\""))
    failures = 0
    progress = None if not args.no_progress else False
    jobs = args.jobs or os.cpu_count() or 1
    done = denoise_files(plan, model, jobs=jobs, overwrite=args.overwrite,
                         block_seconds=args.block_seconds, progress=progress,
                         streaming=args.streaming, atten_lim_db=args.atten_lim_db, wet=args.mix,
                         vad_csv=list(vad_paths), vad_threshold=args.vad_threshold)
    for src, dst, rep in _iter_progress(done, len(plan), args.no_progress):
        if isinstance(rep, Exception):
            failures += 1
            error(str(rep))
            continue
        _report_input(src, rep)
        if rep["clipped_samples"]:
            print(f"denoisezoo: warning: {dst}: {rep['clipped_samples']} samples clipped to [-1, 1]",
                  file=sys.stderr)
        print(f"{src} -> {dst}")
    if failures:
        return error(f"{failures} of {len(plan)} file(s) failed; nothing was written for them")
    return 0


def _report_input(src: Path, rep: dict) -> None:
    """Warn about a clipped input and note a rate the model does not run at (stderr)."""
    n = rep["input_clipped_samples"]
    if n:
        share = 100.0 * n / (rep["frames"] * rep["channels"])
        print(f"denoisezoo: warning: {src}: the input is clipped ({n} samples on flat tops at full "
              f"scale, {share:.2g} %); denoising cannot restore clipped peaks, record at a lower gain",
              file=sys.stderr)
    if rep["sample_rate"] != rep["model_sample_rate"]:
        lost = (f"; nothing above {rep['sample_rate'] / 2000:g} kHz is restored"
                if rep["sample_rate"] < rep["model_sample_rate"] else "")
        print(f"denoisezoo: note: {src}: {rep['sample_rate']} Hz input, resampled to the model's "
              f"{rep['model_sample_rate']} Hz and back{lost}", file=sys.stderr)


def _vad_paths(plan: list[tuple[Path, Path]], vad_csv: str | None, output: str) -> list[Path]:
    """One CSV path per planned output: ``vad_csv`` itself for one file, else ``vad_csv/<rel>.csv``
    (the output's path relative to OUT, suffix replaced)."""
    if vad_csv is None:
        return []
    v = Path(vad_csv)
    if len(plan) == 1 and v.suffix.lower() == ".csv" and not v.is_dir():
        return [v]
    out = Path(output)
    return [v / (dst.relative_to(out) if out in dst.parents else Path(dst.name)).with_suffix(".csv")
            for _, dst in plan]


def _skip_done(plan: list[tuple[Path, Path]], vad_paths: list[Path | None]):
    """Drop the inputs whose outputs all exist (``--skip-existing``); says how many on stderr."""
    keep = [i for i, ((_, dst), v) in enumerate(zip(plan, vad_paths, strict=True))
            if not (dst.exists() and (v is None or v.exists()))]
    if len(keep) < len(plan):
        print(f"denoisezoo: skipping {len(plan) - len(keep)} of {len(plan)} input(s) whose output "
              "exists (--skip-existing)", file=sys.stderr)
    return [plan[i] for i in keep], [vad_paths[i] for i in keep]


def _iter_progress(results, total: int, disabled: bool):
    """``results`` with a progress bar over files (3 files or more, on a terminal)."""
    if disabled or total < 3 or not sys.stderr.isatty():
        return results
    from tqdm import tqdm

    return tqdm(results, total=total, desc="files", unit="file")
