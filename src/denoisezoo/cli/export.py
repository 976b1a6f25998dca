"""``denoisezoo export onnx (--model NAME | --checkpoint PATH | --preset NAME) -o model.onnx``,
``denoisezoo export tflite ... [--int8 --calibration DIR] -o model.tflite`` and
``denoisezoo export c ... -o DIR`` (a C99 folder: ``make`` builds ``DIR/libdenoisezoo.so``) and
``denoisezoo export ladspa ... -o DIR`` (the same C, ``make`` builds a LADSPA plugin)."""

from __future__ import annotations

import argparse

from denoisezoo.cli.common import add_model_args, add_overwrite_arg, error, refuse_existing, resolve_model

__all__ = ["add_parser", "run"]


def add_parser(sub) -> None:
    p = sub.add_parser("export", help="export a model for deployment (ONNX / LiteRT step)",
                       description="Export a model for deployment.")
    fmt = p.add_subparsers(dest="format", metavar="FORMAT", required=True)
    o = fmt.add_parser(
        "onnx", help="the one-frame step with explicit state inputs/outputs",
        description="Export the model's one-frame step to ONNX (batch 1): inputs frame (1, F, 2) "
                    "and the state tensors, outputs out and the next states (`<name>_out`). A "
                    "JSON sidecar with geometry, tensor names/shapes and opset is written beside "
                    "the .onnx file, and the export is checked against PyTorch on random frames.")
    add_model_args(o)
    o.add_argument("-o", "--output", required=True, metavar="OUT.onnx", help="output .onnx file")
    from denoisezoo.export.onnx import DEFAULT_OPSET

    o.add_argument("--opset", type=int, default=DEFAULT_OPSET,
                   help=f"ONNX opset version (default {DEFAULT_OPSET})")
    o.add_argument("--check-frames", type=int, default=200,
                   help="random frames compared between ONNX Runtime and PyTorch (0: no check)")
    o.add_argument("--format", dest="onnx_format", choices=("denoisezoo", "sherpa-onnx"),
                   default="denoisezoo",
                   help="denoisezoo: our step (frame (1, F, 2) + states, JSON sidecar; default); "
                        "sherpa-onnx: the file sherpa-onnx's speech denoiser loads (GTCRN models: "
                        "x (1, F, 1, 2) + conv/tra/inter caches, its metadata)")
    add_overwrite_arg(o)
    _add_tflite_parser(fmt)
    _add_c_parser(fmt)


def _add_c_parser(fmt) -> None:
    c = fmt.add_parser(
        "c", help="the whole streamer as plain C99 (weights as const arrays, a Makefile)",
        description="Write a self-contained C99 folder: the streamer (STFT, network, mask, "
                    "overlap-add) in dz_model.c, the weights with BatchNorm folded in dz_weights.c, "
                    "the API in denoisezoo.h and a Makefile whose default target builds "
                    "libdenoisezoo.so, libdenoisezoo.a and the dz_demo command (libc and libm "
                    "only). GTCRN family. Unless --no-build, the folder is built with the system "
                    "compiler and checked against the PyTorch Streamer.")
    lad = fmt.add_parser(
        "ladspa", help="a LADSPA plugin of the same C (mono, the model's rate)",
        description="Write the C folder of `export c` with a Makefile whose default target is the "
                    "LADSPA plugin denoisezoo_ladspa.so (needs ladspa.h, Debian ladspa-sdk): mono "
                    "in/out at the model's rate only, controls for the attenuation limit (dB, 100 "
                    "= unlimited) and dry/wet, a `latency` output port. Built unless --no-build.")
    for p in (c, lad):
        add_model_args(p)
        p.add_argument("-o", "--output", required=True, metavar="DIR", help="output folder")
        p.add_argument("--no-build", action="store_true", help="only write the files")
        add_overwrite_arg(p)
    c.add_argument("--check-seconds", type=float, default=2.0,
                   help="seconds of test signal compared with the PyTorch Streamer after the build "
                        "(default 2; 0: no check)")


def _run_c(args: argparse.Namespace, model, name: str | None) -> int:
    from denoisezoo.export.c import (
        LADSPA_PLUGIN,
        CompilerMissingError,
        build,
        check_library,
        export_c,
        export_ladspa,
    )

    plugin = args.format == "ladspa"
    try:
        meta = (export_ladspa if plugin else export_c)(model, args.output, name=name,
                                                      overwrite=args.overwrite)
    except (FileExistsError, ValueError, TypeError) as exc:
        return error(str(exc))
    w = meta["weights"]
    print(f"{args.output}: C99 sources of {meta['name']} ({w['values']:,} weights, "
          f"{w['bytes'] / 1024:.1f} KB as float32), {meta['geometry']['sample_rate']} Hz, hop "
          f"{meta['geometry']['hop_length']}, delay {meta['delay']} samples")
    if args.no_build:
        return 0
    try:
        lib = build(args.output, targets=("ladspa",) if plugin else ("all",))
    except CompilerMissingError as exc:
        print(f"not built: {exc}")
        return 0
    except RuntimeError as exc:
        hint = " (install the LADSPA SDK header, e.g. apt-get install ladspa-sdk)" if (
            plugin and "ladspa.h" in str(exc)) else ""
        return error(f"{exc}{hint}")
    if plugin:
        lad = meta["ladspa"]
        print(f"{args.output}/{LADSPA_PLUGIN}: LADSPA plugin, label {lad['label']}, ID {lad['id']}, "
              f"latency {lad['latency']} samples, {meta['geometry']['sample_rate']} Hz mono only")
        return 0
    print(f"{lib}: built (also libdenoisezoo.a and dz_demo)")
    if args.check_seconds > 0:
        res = check_library(model, lib, seconds=args.check_seconds)
        print(f"check: C library vs PyTorch Streamer over {args.check_seconds:g} s, max abs diff "
              f"{res['max_abs_diff']:.2e}")
        if not res["max_abs_diff"] <= 1e-4:
            return error(f"the C library differs from PyTorch by {res['max_abs_diff']:.2e} (> 1e-4)")
    return 0


def _add_tflite_parser(fmt) -> None:
    from denoisezoo.export.litert_env import CONVERTER_ENV, DEFAULT_DIR

    t = fmt.add_parser(
        "tflite", help="the one-frame step for LiteRT (TFLite), float or full-integer INT8",
        description="Export the model's one-frame step to LiteRT (batch 1, inputs frame + states, "
                    "outputs out + next states; JSON sidecar beside the .tflite). Conversion uses "
                    f"litert-torch in a converter environment (${CONVERTER_ENV}); the interpreter "
                    "and INT8 quantizer come with `pip install denoisezoo[litert]`. The export is "
                    "checked against PyTorch in the LiteRT interpreter.")
    add_model_args(t)
    t.add_argument("-o", "--output", metavar="OUT.tflite", help="output .tflite file")
    t.add_argument("--install-converter", action="store_true",
                   help=f"first make the litert-torch converter environment in {DEFAULT_DIR} if it is "
                        "missing (a venv reusing this torch, about 1 GB of packages from the package "
                        "index); alone, only that")
    t.add_argument("--int8", action="store_true",
                   help="full-integer quantization with int8 weights, calibrated (see --activations)")
    t.add_argument("--activations", type=int, choices=(8, 16), default=8,
                   help="with --int8: activation and I/O width, 8 (int8) or 16 (int16x8, far "
                        "more accurate for GTCRN); default 8")
    t.add_argument("--calibration", metavar="DIR", action="append", default=None,
                   help="calibration audio (folder, file or manifest; repeatable), needed by --int8")
    t.add_argument("--calibration-frames", type=int, default=200,
                   help="calibration frames (frame + state) used by --int8 (default 200)")
    t.add_argument("--check-frames", type=int, default=200,
                   help="frames compared between the LiteRT interpreter and PyTorch (0: no check)")
    t.add_argument("--converter-python", metavar="PATH", default=None,
                   help=f"python of the litert-torch converter environment (default ${CONVERTER_ENV})")
    add_overwrite_arg(t)


def run(args: argparse.Namespace) -> int:
    from denoisezoo.export.onnx import export_onnx
    from denoisezoo.streaming import OnnxStepModel, sidecar_path

    if args.format == "tflite" and args.install_converter:
        rc = _install_converter(args.converter_python)
        if rc or not args.output:
            return rc
    if not args.output:
        return error("-o/--output is required")
    try:
        chosen = resolve_model(args)
    except (KeyError, FileNotFoundError, ValueError) as exc:
        return error(str(exc).strip("'\""))
    model, name = chosen.model, chosen.name
    if args.format in ("c", "ladspa"):
        return _run_c(args, model, name)
    if args.format == "tflite":
        return _run_tflite(args, model, name)
    if args.onnx_format == "sherpa-onnx":
        return _run_sherpa(args, model, name)
    if isinstance(model, OnnxStepModel):  # already an ONNX step (e.g. an INT8 compress artefact)
        return _copy_onnx(model, args.output, args.overwrite)
    try:
        meta = export_onnx(model, args.output, opset=args.opset, name=name,
                           overwrite=args.overwrite, check_frames=args.check_frames)
    except (FileExistsError, ValueError, TypeError) as exc:
        return error(str(exc))
    shapes = ", ".join(f"{t['name']} {tuple(t['shape'])}" for t in meta["inputs"])
    print(f"{args.output}: opset {meta['opset']}, inputs {shapes}")
    print(f"{sidecar_path(args.output)}: sidecar (geometry, tensor names and shapes)")
    return _report_onnx_check(meta)


def _report_onnx_check(meta: dict) -> int:
    """Print the export's ONNX Runtime vs PyTorch check; an error above 1e-4."""
    if "check_max_abs_diff" in meta:
        diff = meta["check_max_abs_diff"]
        print(f"check: ONNX Runtime vs PyTorch over {meta['check_frames']} frames, "
              f"max abs diff {diff:.2e}")
        if not diff <= 1e-4:
            return error(f"ONNX output differs from PyTorch by {diff:.2e} (> 1e-4)")
    return 0


def _run_sherpa(args: argparse.Namespace, model, name: str | None) -> int:
    from denoisezoo.export.sherpa import export_sherpa_onnx

    if not hasattr(model, "state_dict"):
        return error(f"{args.checkpoint}: already an exported step; start from the .pt")
    try:
        meta = export_sherpa_onnx(model, args.output, name=name, overwrite=args.overwrite,
                                  opset=args.opset, check_frames=args.check_frames)
    except (FileExistsError, ValueError, TypeError) as exc:
        return error(str(exc))
    print(f"{args.output}: sherpa-onnx GTCRN speech denoiser, {meta['sample_rate']} Hz, n_fft "
          f"{meta['n_fft']}, hop {meta['hop_length']}, window {meta['window_type']}")
    return _report_onnx_check(meta)


def _install_converter(python: str | None) -> int:
    from denoisezoo.export.litert_env import setup_converter
    from denoisezoo.streaming import LiteRTUnavailableError

    if python:
        return error("--install-converter makes its own environment; drop --converter-python")
    print("checking the litert-torch converter environment (made once: a few minutes) ...", flush=True)
    try:
        py = setup_converter()
    except LiteRTUnavailableError as exc:
        return error(str(exc))
    print(f"converter ready: {py}")
    return 0


def _run_tflite(args: argparse.Namespace, model, name: str | None) -> int:
    from denoisezoo.export.calibration import load_calibration_audio
    from denoisezoo.export.litert import export_tflite
    from denoisezoo.streaming import LiteRTUnavailableError, sidecar_path

    calibration = None
    if args.int8:
        if not args.calibration:
            return error("--int8 needs calibration audio (--calibration DIR)")
        try:
            calibration = load_calibration_audio(args.calibration, model.geometry.sample_rate)
        except ValueError as exc:
            return error(str(exc))
    try:
        meta = export_tflite(model, args.output, int8=args.int8, calibration=calibration, name=name,
                             overwrite=args.overwrite, check_frames=args.check_frames,
                             max_calibration_frames=args.calibration_frames,
                             activation_bits=args.activations, python=args.converter_python)
    except LiteRTUnavailableError as exc:
        return error(str(exc))
    except (FileExistsError, ValueError, TypeError, RuntimeError) as exc:
        return error(str(exc))
    shapes = ", ".join(f"{t['name']} {tuple(t['shape'])}" for t in meta["inputs"])
    print(f"{args.output}: LiteRT {meta['precision']}, {meta['size_bytes']} bytes, inputs {shapes} "
          f"(litert-torch {meta['litert_torch']}, {meta['convert_seconds']:g} s)")
    print(f"{sidecar_path(args.output)}: sidecar (geometry, tensor names and shapes)")
    if "check_max_abs_diff" in meta:
        diff, rel = meta["check_max_abs_diff"], meta["check_rel_err"]
        print(f"check: LiteRT vs PyTorch over {meta['check_frames']} frames of "
              f"{meta['check_input']}, max abs diff {diff:.2e}, relative error {rel:.2e}")
        if not args.int8 and not diff <= 1e-4:
            return error(f"LiteRT output differs from PyTorch by {diff:.2e} (> 1e-4)")
    return 0


def _copy_onnx(model, output: str, overwrite: bool) -> int:
    """Copy an ONNX step artefact and its sidecar (nothing to convert)."""
    import shutil
    from pathlib import Path

    from denoisezoo.streaming import sidecar_path

    out = Path(output)
    if out.suffix != ".onnx":
        return error(f"{out}: the output file name must end in .onnx")
    msg = refuse_existing([out, sidecar_path(out)], overwrite)
    if msg:
        return error(msg)
    out.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(model.path, out)
    shutil.copyfile(sidecar_path(model.path), sidecar_path(out))
    print(f"{out}: copied {model.path} (already an ONNX step; no re-export)")
    return 0
