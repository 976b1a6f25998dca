"""``denoisezoo live``: full-duplex microphone -> denoiser -> speakers, with visible latency."""

from __future__ import annotations

import argparse

from denoisezoo.cli.common import add_model_args, error, model_from_args

__all__ = ["add_parser", "run"]


def add_parser(sub) -> None:
    p = sub.add_parser(
        "live", help="denoise the microphone live (full duplex, PortAudio)",
        description="Denoise an audio input device into an output device in real time. Prints the "
                    "total latency and the model's calibration at start, shows levels, real-time "
                    "factor, deadline misses and under/overruns while running. Keys: b or Enter "
                    "toggles bypass, q or Ctrl-C stops with a summary. Needs PortAudio "
                    "(libportaudio2).")
    add_model_args(p)
    p.add_argument("--input-device", metavar="ID", default=None,
                   help="input device index or part of its name (default: the system default)")
    p.add_argument("--output-device", metavar="ID", default=None,
                   help="output device index or part of its name (default: the system default)")
    p.add_argument("--samplerate", metavar="HZ", type=int, default=None,
                   help="device sample rate (default: the input device's default rate); the model "
                        "rate is reached by resampling inside the stream")
    p.add_argument("--blocksize", metavar="N", type=int, default=None,
                   help="frames per audio callback (default: one model hop at the device rate)")
    p.add_argument("--budget-ms", metavar="MS", type=float, default=None,
                   help="compute budget per model hop; later hops fall back (default: half of the "
                        "shorter of a hop and a block)")
    p.add_argument("--backend", choices=("auto", "torch", "onnx"), default="auto",
                   help="run the model's step in ONNX Runtime (exported at start) or PyTorch; "
                        "auto: ONNX if the export works (much cheaper per hop), else PyTorch")
    p.add_argument("--fallback", choices=("mask", "passthrough"), default="mask",
                   help="what a hop over budget outputs (default: the last mask)")
    p.add_argument("--worker", action="store_true",
                   help="run the model in a worker thread, wait at most until each hop's deadline")
    p.add_argument("--bypass", action="store_true",
                   help="start bypassed (input passed through at the same latency); b toggles")
    p.add_argument("--resample", action="store_true",
                   help="keep --model and resample, even when a shipped variant of it runs at the "
                        "device rate (default: use that variant, e.g. gtcrn_48k at 48 kHz)")
    p.add_argument("--list-devices", action="store_true", help="list audio devices and exit")
    p.add_argument("--atten-lim-db", type=float, default=None, metavar="DB",
                   help="suppress no time-frequency bin by more than DB dB")
    p.add_argument("--mix", type=float, default=1.0, metavar="WET",
                   help="dry/wet mix: fraction of denoised signal (default 1.0)")
    p.add_argument("--record", metavar="DIR", default=None,
                   help="save the raw and the denoised stream as WAV files in DIR")
    p.add_argument("--duration", metavar="S", type=float, default=None,
                   help="stop after S seconds (default: run until q or Ctrl-C)")
    p.add_argument("--calibrate-seconds", metavar="S", type=float, default=1.0,
                   help="seconds of noise timed before starting (default: 1)")


def _pick_native_model(sd, args: argparse.Namespace) -> None:
    """Swap ``--model`` for the shipped variant at the device rate (e.g. ``gtcrn`` ->
    ``gtcrn_48k`` on a 48 kHz device), so the audio is not resampled."""
    from denoisezoo.cli.common import DEFAULT_MODEL
    from denoisezoo.hub import rate_variant
    from denoisezoo.live.devices import DeviceError, resolve_device

    rate = args.samplerate
    if rate is None:
        try:
            rate = round(resolve_device(sd, args.input_device, "input").default_samplerate)
        except DeviceError:
            return  # reported with the device listing when the session opens the device
    name = args.model or DEFAULT_MODEL
    native = rate_variant(name, int(rate))
    if native is not None and native != name:
        print(f"device runs at {rate} Hz: using {native} (native {rate} Hz model, no resampling; "
              f"--resample keeps {name})")
        args.model = native


def run(args: argparse.Namespace) -> int:
    from denoisezoo.live.devices import DeviceError, PortAudioMissing, format_devices, import_sounddevice

    try:
        sd = import_sounddevice()
    except PortAudioMissing as exc:
        return error(str(exc))
    if args.list_devices:
        print(format_devices(sd))
        return 0
    for flag, value in (("--samplerate", args.samplerate), ("--blocksize", args.blocksize),
                        ("--budget-ms", args.budget_ms), ("--duration", args.duration)):
        if value is not None and not value > 0:
            return error(f"{flag} must be positive, got {value}")
    if not args.calibrate_seconds > 0:
        return error(f"--calibrate-seconds must be positive, got {args.calibrate_seconds}")
    if not args.checkpoint and not args.preset and not args.resample:
        _pick_native_model(sd, args)
    try:
        model = model_from_args(args)
    except (KeyError, FileNotFoundError, ValueError) as exc:
        return error(str(exc).strip("'\""))
    from denoisezoo.live.session import LiveOptions, format_summary, run_live, to_backend

    try:
        model = to_backend(model, args.backend)
    except ValueError as exc:
        return error(str(exc))

    opts = LiveOptions(input_device=args.input_device, output_device=args.output_device,
                       samplerate=args.samplerate, blocksize=args.blocksize,
                       budget_ms=args.budget_ms, bypass=args.bypass, record_dir=args.record,
                       duration=args.duration, fallback=args.fallback, worker=args.worker,
                       calibrate_seconds=args.calibrate_seconds, atten_lim_db=args.atten_lim_db,
                       wet=args.mix)
    try:
        summary = run_live(model, opts)
    except (DeviceError, FileExistsError, OSError) as exc:
        return error(str(exc))
    except KeyboardInterrupt:  # before the stream started (Ctrl-C while loading / calibrating)
        return error("interrupted before the audio stream started")
    print(format_summary(summary))
    return 1 if summary.get("error") else 0
