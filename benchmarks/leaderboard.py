"""Leaderboard: every shipped denoisezoo model and real baselines, scored on the same pairs.

Rows: ``noisy`` (the unprocessed input); each model in ``denoisezoo.hub.shipped_models()``; the
official GTCRN checkpoints (``../shared/reference/gtcrn/checkpoints``, through our loader) when
present; the RNNoise C library through ``pyrnnoise`` (48 kHz, 10 ms frames, its 20 ms output delay
removed before scoring); ``noisereduce`` spectral gating (offline, non-causal) when installed; and
any ``--extra NAME=CHECKPOINT``.

Data: ``--data SPEC`` (see ``denoisezoo evaluate``), or by default the fixed development set that
``denoisezoo.datasets.devset.build_devset`` makes from ``../shared``.

Speed: the real-time factor (processing time / audio duration) of each system is measured in the
same run, offline (whole clip per call), with one thread.

Usage::

    python benchmarks/leaderboard.py                      # dev set from ../shared
    python benchmarks/leaderboard.py --data DIR_OR_CSV --limit 20 --out /tmp/lb
"""

from __future__ import annotations

import argparse
import datetime as _dt
import json
import os
import platform
import shlex
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
DEFAULT_SHARED = REPO.parent / "shared"
OFFICIAL_GTCRN = {
    # name -> file in <shared>/reference/gtcrn/checkpoints (see shared/README.md: epoch 96 vs 87)
    "gtcrn_official_dns3": "stream_onnx_models__model_trained_on_dns3.tar",
    "gtcrn_official_dns3_ep87": "model_trained_on_dns3.tar",
}
RNNOISE_DELAY_48K = 960  # pyrnnoise output lags its input by 20 ms (FIELD_NOTES)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", metavar="SPEC", default=None,
                   help="data folder / CSV manifest (default: the dev set built from --shared)")
    p.add_argument("--shared", type=Path, default=DEFAULT_SHARED, help="the shared data folder")
    p.add_argument("--devset-dir", type=Path, default=Path.home() / ".cache" / "denoisezoo" / "devset",
                   help="where the dev set is built (never inside the repo)")
    p.add_argument("--n", type=int, default=100, help="dev set size (default 100)")
    p.add_argument("--seed", type=int, default=1234, help="dev set seed (default 1234)")
    p.add_argument("--extra", action="append", default=[], metavar="NAME=CHECKPOINT",
                   help="add a checkpoint as a row (repeatable)")
    p.add_argument("--no-official", action="store_true", help="skip the official GTCRN checkpoints")
    p.add_argument("--no-rnnoise", action="store_true", help="skip RNNoise (pyrnnoise)")
    p.add_argument("--no-noisereduce", action="store_true", help="skip noisereduce")
    p.add_argument("--dnsmos", action="store_true", help="add DNSMOS P.835 (speechmos)")
    p.add_argument("--limit", type=int, default=None, help="only the first N pairs")
    p.add_argument("--workers", type=int, default=2, help="scoring processes (default 2)")
    p.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results",
                   help="output folder for leaderboard.json / .md (default benchmarks/results)")
    p.add_argument("--no-progress", action="store_true")
    return p


# ------------------------------------------------------------------------------------ systems
def torch_system(model) -> Callable:
    from denoisezoo.api import enhance_array

    def run(audio, sample_rate: int):
        return enhance_array(model, audio, sample_rate)

    return run


def rnnoise_system() -> Callable:
    """RNNoise (C library via ``pyrnnoise``) at 48 kHz, output advanced by its 20 ms delay."""
    import ctypes

    import numpy as np
    from pyrnnoise.rnnoise import FRAME_SIZE, SAMPLE_RATE, create, destroy, lib

    from denoisezoo.dsp.resample import resample

    ptr_t = ctypes.POINTER(ctypes.c_float)

    def run(audio, sample_rate: int):
        x = resample(np.asarray(audio, np.float32), sample_rate, SAMPLE_RATE)
        n = x.shape[0]
        total = n + RNNOISE_DELAY_48K
        frames = -(-total // FRAME_SIZE)
        buf = np.zeros(frames * FRAME_SIZE, np.float32)
        buf[:n] = x * 32768.0  # RNNoise works on 16-bit scaled floats
        state = create()
        try:
            for i in range(frames):
                fr = buf[i * FRAME_SIZE:(i + 1) * FRAME_SIZE]  # a contiguous view, processed in place
                p = fr.ctypes.data_as(ptr_t)
                lib.rnnoise_process_frame(state, p, p)
        finally:
            destroy(state)
        y = buf[RNNOISE_DELAY_48K:RNNOISE_DELAY_48K + n] / 32768.0
        y = resample(np.ascontiguousarray(y, np.float32), SAMPLE_RATE, sample_rate)
        m = len(audio)
        return y[:m] if y.shape[0] >= m else np.pad(y, (0, m - y.shape[0]))

    return run


def noisereduce_system() -> Callable:
    import noisereduce

    def run(audio, sample_rate: int):
        return noisereduce.reduce_noise(y=audio, sr=sample_rate, n_jobs=1)

    return run


def collect_systems(args: argparse.Namespace) -> tuple[dict[str, Callable], dict[str, dict]]:
    """``({name: system}, {name: {"kind", "params", "source"}})`` in display order."""
    from denoisezoo import load_model
    from denoisezoo.hub import shipped_models

    systems: dict[str, Callable] = {}
    info: dict[str, dict] = {}

    def add_model(name: str, source: str, kind: str) -> None:
        model = load_model(source)
        systems[name] = torch_system(model)
        info[name] = {"kind": kind, "source": source,
                      "params": sum(p.numel() for p in model.parameters())}

    for name, path in shipped_models().items():
        add_model(name, str(path), "denoisezoo shipped, causal")
    if not args.no_official:
        for name, fname in OFFICIAL_GTCRN.items():
            path = args.shared / "reference" / "gtcrn" / "checkpoints" / fname
            if path.is_file():
                add_model(name, str(path), "official GTCRN weights (our loader), causal")
            else:
                print(f"leaderboard: {path} not found; {name} left out", file=sys.stderr)
    for spec in args.extra:
        name, sep, ckpt = spec.partition("=")
        if not sep or not name or not ckpt:
            raise SystemExit(f"leaderboard: --extra expects NAME=CHECKPOINT, found {spec!r}")
        add_model(name, ckpt, "extra checkpoint")
    baselines = [
        ("rnnoise", args.no_rnnoise, rnnoise_system, "pyrnnoise",
         "RNNoise C library (pyrnnoise), causal, 48 kHz"),
        ("noisereduce", args.no_noisereduce, noisereduce_system, "noisereduce",
         "noisereduce spectral gating, offline non-causal"),
    ]
    for name, skip, factory, package, kind in baselines:
        if skip:
            continue
        try:
            systems[name] = factory()
            info[name] = {"kind": kind, "source": package, "params": None}
        except ImportError as exc:
            print(f"leaderboard: {package} not installed ({exc}); {name} left out", file=sys.stderr)
    return systems, info


def resolve_data(args: argparse.Namespace) -> tuple[str, dict[str, Any]]:
    if args.data:
        return args.data, {"spec": args.data}
    if not args.shared.is_dir():
        raise SystemExit(f"leaderboard: no --data and no shared folder at {args.shared}")
    from denoisezoo.datasets.devset import build_devset

    path = build_devset(args.shared, args.devset_dir, n=args.n, seed=args.seed)
    return str(path), {"spec": "devset", "built_by": "denoisezoo.datasets.devset.build_devset",
                       "n": args.n, "seed": args.seed}


def _versions() -> dict[str, str]:
    from importlib.metadata import PackageNotFoundError, version

    out = {}
    for pkg in ("denoisezoo", "torch", "pesq", "pystoi", "pyrnnoise", "noisereduce", "speechmos"):
        try:
            out[pkg] = version(pkg)
        except PackageNotFoundError:
            pass
    return out


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    args = build_parser().parse_args(argv)
    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ.setdefault(var, "1")
    import torch

    torch.set_num_threads(1)
    from denoisezoo.evaluation.data import find_pairs
    from denoisezoo.evaluation.report import _jsonable, markdown_table
    from denoisezoo.evaluation.runner import NOISY, evaluate_systems

    spec, data_info = resolve_data(args)
    pairs = find_pairs(spec, limit=args.limit)
    systems, info = collect_systems(args)
    if args.dnsmos:
        from denoisezoo.evaluation.dnsmos import dnsmos_available

        why = dnsmos_available()
        if why:
            raise SystemExit(f"leaderboard: {why}")
    result = evaluate_systems(systems, pairs, workers=args.workers, progress=not args.no_progress,
                              dnsmos=args.dnsmos)
    summary = result["summary"]
    command = "python benchmarks/leaderboard.py" + "".join(f" {shlex.quote(a)}" for a in argv)
    data_info.update(files=len(pairs), scored=summary[NOISY]["scored"],
                     audio_seconds=summary[NOISY]["audio_seconds"])
    meta = {
        "command": command,
        "date": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "data": data_info,
        "machine": f"{platform.machine()}, {os.cpu_count()} CPU(s), Python {platform.python_version()}",
        "versions": _versions(),
        "rtf": "processing time / audio duration, offline (whole clip per call), one thread",
    }
    info[NOISY] = {"kind": "unprocessed input", "source": "", "params": None}
    doc = {"meta": meta, "systems": {n: {**info.get(n, {}), **s} for n, s in summary.items()}}
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "leaderboard.json").write_text(json.dumps(_jsonable(doc), indent=2) + "\n",
                                                encoding="utf-8")
    extra = {
        "params": {n: (f"{i['params'] / 1000:.1f} K" if i.get("params") else "") for n, i in info.items()},
        "kind": {n: i.get("kind", "") for n, i in info.items()},
    }
    md = [
        "# denoisezoo leaderboard\n",
        f"Data: {data_info['spec']} ({len(pairs)} pairs, {data_info['audio_seconds'] / 60:.1f} min). "
        f"Values: mean ± half-width of the 95 % confidence interval; Δ = improvement over the noisy "
        f"input; RTF: {meta['rtf']}, measured in this run on {meta['machine']}.\n",
        "Command:\n",
        f"```\n{command}\n```\n",
        markdown_table(summary, extra_columns=extra),
    ]
    for n, s in summary.items():
        if s["skipped"]:
            md.append(f"- `{n}`: {s['skipped']} file(s) skipped, e.g. "
                      f"{s['skipped_files'][0]['id']}: {s['skipped_files'][0]['reason']}")
        for metric, items in s["missing"].items():
            md.append(f"- `{n}`: {metric} missing for {len(items)} file(s), e.g. {items[0]['reason']}")
    (args.out / "leaderboard.md").write_text("\n".join(md) + "\n", encoding="utf-8")
    print("\n".join(md))
    print(f"wrote {args.out / 'leaderboard.json'} and {args.out / 'leaderboard.md'}")
    return 0 if summary[NOISY]["scored"] else 1


if __name__ == "__main__":
    sys.exit(main())
