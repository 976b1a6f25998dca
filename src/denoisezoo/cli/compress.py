"""``denoisezoo compress prune|quantize``: write compressed artefacts.

- ``prune (--checkpoint IN | --model NAME | --preset NAME) --ratio R [--structured | --unstructured]
  -o OUT.pt``: a denoisezoo checkpoint with a ``compression`` record in its metadata.
- ``quantize (--checkpoint IN | --model NAME | --preset NAME) --calibration DIR -o OUT.onnx``: an
  ONNX Runtime INT8 step + JSON sidecar.

Both refuse to replace an existing output without ``--overwrite``. The artefacts load with
``--checkpoint`` in ``denoise``, ``evaluate`` and ``export onnx``.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from denoisezoo.cli.common import add_model_args, add_overwrite_arg, error, refuse_existing, resolve_model

__all__ = ["add_parser", "run"]


def _source_args(p: argparse.ArgumentParser) -> None:
    add_model_args(p)
    add_overwrite_arg(p)


def add_parser(sub) -> None:
    p = sub.add_parser("compress", help="prune or INT8-quantize a model",
                       description="Compress a model: structured / unstructured pruning (.pt) or "
                                   "INT8 quantization of the streaming step for ONNX Runtime "
                                   "(.onnx + .json sidecar).")
    cmd = p.add_subparsers(dest="action", metavar="ACTION", required=True)

    pr = cmd.add_parser("prune", help="structured (smaller dense model) or magnitude pruning",
                        description="Prune a model. --structured (default) removes units (GTCRN: "
                                    "GT-block hidden channels and GRU hidden units; RNNoise: "
                                    "input dense and GRU units) and writes a smaller dense "
                                    "model of the same kind; --unstructured zeroes the smallest GRU / linear "
                                    "weights (or blocks, --block). Fine-tune the result with "
                                    "`denoisezoo train` (model class_path "
                                    "denoisezoo.compress.from_checkpoint).")
    _source_args(pr)
    pr.add_argument("--ratio", type=float, required=True,
                    help="fraction removed: of the prunable units (structured) or weights")
    how = pr.add_mutually_exclusive_group()
    how.add_argument("--structured", dest="structured", action="store_true", default=True,
                     help="structured pruning (default)")
    how.add_argument("--unstructured", dest="structured", action="store_false",
                     help="magnitude pruning of GRU and linear weights")
    pr.add_argument("--criterion", choices=("l1", "l2", "taylor"), default="l2",
                    help="structured: unit importance (taylor needs --pairs)")
    pr.add_argument("--scope", choices=("layer", "global"), default="layer",
                    help="same ratio in every layer, or one global ranking")
    pr.add_argument("--kinds", default=None,
                    help="comma-separated unit kinds (structured GTCRN: gt,tra,intra,inter; "
                         "structured RNNoise: dense,vad,noise,denoise; "
                         "unstructured: gru,linear,conv)")
    pr.add_argument("--block", type=int, nargs=2, default=(1, 1), metavar=("ROWS", "COLS"),
                    help="unstructured: block size (default 1 1)")
    pr.add_argument("--pairs", metavar="SPEC", default=None,
                    help="noisy/clean pairs (evaluation data SPEC) for the taylor criterion")
    pr.add_argument("--max-pairs", type=int, default=16, help="pairs used by the taylor criterion")
    pr.add_argument("-o", "--output", required=True, metavar="OUT.pt", help="output checkpoint")

    q = cmd.add_parser("quantize", help="INT8 ONNX Runtime model of the streaming step",
                       description="Post-training INT8 quantization of the one-frame step with "
                                   "ONNX Runtime: static QDQ (per-channel INT8 weights, UINT8 "
                                   "activations calibrated on frames + states of the float model "
                                   "run over --calibration audio) or dynamic. GRUs, the ERB "
                                   "input/mask matrices, the first and last conv and the states "
                                   "stay float.")
    _source_args(q)
    q.add_argument("--calibration", metavar="DIR", default=None,
                   help="audio files / folder / manifest of noisy speech (static mode)")
    q.add_argument("--mode", choices=("static", "dynamic", "mixed"), default="static",
                   help="static QDQ (calibrated), dynamic, or mixed (static MatMul + dynamic Conv)")
    q.add_argument("--method", choices=("minmax", "percentile", "entropy"), default="minmax",
                   help="activation range calibration (static)")
    q.add_argument("--max-files", type=int, default=32, help="calibration files read")
    q.add_argument("--max-frames", type=int, default=2000, help="calibration frames used")
    q.add_argument("--keep-float", action="append", default=None, metavar="PATTERN",
                   help="ONNX node-name pattern kept float (repeatable; replaces the model "
                   "family's defaults)")
    q.add_argument("--per-tensor", action="store_true", help="per-tensor weight scales")
    q.add_argument("--weights", choices=("uint8", "int8", "int8_7bit"), default="uint8",
                   help="weight encoding: uint8 with zero point (default; same output on every "
                   "CPU), int8 (exact only with VNNI or ARM dot-product kernels: x86 CPUs without "
                   "VNNI saturate its products), int8_7bit (exact everywhere, coarser)")
    q.add_argument("-o", "--output", required=True, metavar="OUT.onnx", help="output .onnx file")


def _load(args: argparse.Namespace):
    chosen = resolve_model(args, torch_only=True)
    return chosen.model, chosen.source


def _taylor_batches(spec: str, limit: int, sample_rate: int):
    import torch

    from denoisezoo.evaluation.data import find_pairs, load_pair

    out = []
    for pair in find_pairs(spec, limit=limit):
        lp = load_pair(pair)
        if lp.sample_rate != sample_rate:
            raise ValueError(f"{pair.noisy}: {lp.sample_rate} Hz, the model needs {sample_rate} Hz")
        out.append((torch.from_numpy(lp.noisy)[None], torch.from_numpy(lp.clean)[None]))
    return out


def _prune(args: argparse.Namespace) -> int:
    from denoisezoo.compress.checkpoint import save_compressed
    from denoisezoo.profile import count_parameters, macs_per_second

    out = Path(args.output)
    msg = refuse_existing([out], args.overwrite)
    if msg:
        return error(msg)
    if not 0.0 <= args.ratio < 1.0:
        return error(f"--ratio: expected a value in [0, 1), found {args.ratio}")
    try:
        model, source = _load(args)
    except (KeyError, FileNotFoundError, ValueError) as exc:
        return error(str(exc).strip("'\""))
    p0, m0 = count_parameters(model), macs_per_second(model)
    kinds = tuple(k for k in args.kinds.split(",") if k) if args.kinds else None
    try:
        if args.structured:
            from denoisezoo.compress.structured import prune_structured

            batches = None
            if args.criterion == "taylor":
                if not args.pairs:
                    return error("--criterion taylor needs --pairs SPEC (noisy/clean pairs)")
                batches = _taylor_batches(args.pairs, args.max_pairs, model.geometry.sample_rate)
            pruned, record = prune_structured(model, args.ratio, criterion=args.criterion,
                                              scope=args.scope, kinds=kinds,
                                              batches=batches)
        else:
            from denoisezoo.compress.sparse import prune_unstructured

            pruned = model
            record = prune_unstructured(model, args.ratio, block=tuple(args.block),
                                        scope=args.scope, kinds=kinds or ("gru", "linear"))
    except (TypeError, ValueError) as exc:
        return error(str(exc))
    save_compressed(pruned, out, record, source=source, overwrite=args.overwrite)
    p1, m1 = count_parameters(pruned), macs_per_second(pruned)
    nz = sum(int((p != 0).sum()) for p in pruned.parameters())
    print(f"{out}: {record['method']} pruning, ratio {args.ratio}")
    print(f"params {p0} -> {p1} ({p1 / p0:.1%}), non-zero {nz}; "
          f"MACs/s {m0 / 1e6:.2f} M -> {m1 / 1e6:.2f} M")
    if "sparsity" in record:
        print(f"sparsity of the pruned weights: {record['sparsity']:.1%}")
    return 0


def _quantize(args: argparse.Namespace) -> int:
    from denoisezoo.compress.quantize import quantize_step
    from denoisezoo.export.calibration import load_calibration_audio
    from denoisezoo.streaming import sidecar_path

    out = Path(args.output)
    if out.suffix != ".onnx":
        return error(f"{out}: the output file name must end in .onnx")
    msg = refuse_existing([out, sidecar_path(out)], args.overwrite)
    if msg:
        return error(msg)
    if args.mode in ("static", "mixed") and not args.calibration:
        return error("static quantization needs --calibration DIR (or use --mode dynamic)")
    try:
        model, source = _load(args)
    except (KeyError, FileNotFoundError, ValueError) as exc:
        return error(str(exc).strip("'\""))
    try:
        cal = (load_calibration_audio(args.calibration, model.geometry.sample_rate, args.max_files)
               if args.calibration else None)
    except (ValueError, OSError) as exc:
        return error(str(exc))
    import logging

    logging.getLogger().setLevel(logging.ERROR)  # ONNX Runtime's "consider pre-processing" notes
    name = (getattr(model, "checkpoint_meta", {}) or {}).get("name")
    try:
        meta = quantize_step(model, out, cal, mode=args.mode,
                             keep_float=args.keep_float or None,
                             per_channel=not args.per_tensor, calibrate_method=args.method,
                             max_frames=args.max_frames, weights=args.weights,
                             overwrite=args.overwrite, name=f"{name or 'model'}_int8",
                             source=source)
    except (FileExistsError, ValueError, TypeError) as exc:
        return error(str(exc))
    rec = meta["compression"]
    print(f"{out}: INT8 {args.mode}, {len(rec['quantized_nodes'])} quantized nodes, "
          f"{len(rec['float_nodes'])} kept float (+ GRUs), {rec['calibration_frames']} "
          f"calibration frames; size {out.stat().st_size} bytes")
    if "check_rel_err" in meta:
        print(f"check: vs float over {meta['check_frames']} frames: relative error "
              f"{meta['check_rel_err']:.2e}, max abs diff {meta['check_max_abs_diff']:.2e}")
    print(f"{sidecar_path(out)}: sidecar")
    return 0


def run(args: argparse.Namespace) -> int:
    return _prune(args) if args.action == "prune" else _quantize(args)
