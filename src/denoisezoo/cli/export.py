"""``denoisezoo export onnx (--model NAME | --checkpoint PATH | --preset NAME) -o model.onnx``."""

from __future__ import annotations

import argparse

from denoisezoo.cli.common import add_model_args, error, model_from_args

__all__ = ["add_parser", "run"]


def add_parser(sub) -> None:
    p = sub.add_parser("export", help="export a model for deployment (ONNX step)",
                       description="Export a model for deployment.")
    fmt = p.add_subparsers(dest="format", metavar="FORMAT", required=True)
    o = fmt.add_parser(
        "onnx", help="the one-frame step with explicit state inputs/outputs",
        description="Export the model's one-frame step to ONNX (batch 1): inputs frame (1, F, 2) "
                    "and the state tensors, outputs out and the next states (`<name>_out`). A "
                    "JSON sidecar with geometry, tensor names/shapes and opset is written beside "
                    "the .onnx file, and the export is checked against PyTorch on random frames.")
    add_model_args(o)
    o.add_argument("--preset", metavar="NAME", default=None,
                   help="a preset with random weights (e.g. gtcrn_tiny), for tests and benchmarks")
    o.add_argument("-o", "--output", required=True, metavar="OUT.onnx", help="output .onnx file")
    from denoisezoo.streaming.onnx_step import DEFAULT_OPSET

    o.add_argument("--opset", type=int, default=DEFAULT_OPSET,
                   help=f"ONNX opset version (default {DEFAULT_OPSET})")
    o.add_argument("--check-frames", type=int, default=200,
                   help="random frames compared between ONNX Runtime and PyTorch (0: no check)")
    o.add_argument("--overwrite", action="store_true", help="replace existing .onnx/.json files")


def run(args: argparse.Namespace) -> int:
    from denoisezoo.streaming.onnx_step import export_onnx, sidecar_path

    if args.preset and (args.model or args.checkpoint):
        return error("--preset cannot be combined with --model or --checkpoint")
    try:
        if args.preset:
            from denoisezoo.hub import load_model

            model = load_model(args.preset, pretrained=False)
            name = args.preset
        else:
            model = model_from_args(args)
            name = getattr(model, "checkpoint_meta", {}).get("name") or args.model
    except (KeyError, FileNotFoundError, ValueError) as exc:
        return error(str(exc).strip("'\""))
    try:
        meta = export_onnx(model, args.output, opset=args.opset, name=name,
                           overwrite=args.overwrite, check_frames=args.check_frames)
    except (FileExistsError, ValueError, TypeError) as exc:
        return error(str(exc))
    shapes = ", ".join(f"{t['name']} {tuple(t['shape'])}" for t in meta["inputs"])
    print(f"{args.output}: opset {meta['opset']}, inputs {shapes}")
    print(f"{sidecar_path(args.output)}: sidecar (geometry, tensor names and shapes)")
    if "check_max_abs_diff" in meta:
        diff = meta["check_max_abs_diff"]
        print(f"check: ONNX Runtime vs PyTorch over {meta['check_frames']} frames, "
              f"max abs diff {diff:.2e}")
        if not diff <= 1e-4:
            return error(f"ONNX output differs from PyTorch by {diff:.2e} (> 1e-4)")
    return 0
