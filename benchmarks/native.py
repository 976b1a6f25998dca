"""Native speed: the generated C library (``denoisezoo export c``) beside ONNX Runtime and LiteRT.

For each model (default: the shipped ``gtcrn``, ``gtcrn_half`` and ``gtcrn_48k``), on the same
synthetic clip (default 10 s), one thread everywhere, in the same run, hop by hop with the
states fed back:

- ``onnxruntime step``: one ``session.run`` of the exported step (``OnnxStepModel``; the
  issue's reference, 0.40-0.45 ms here in December);
- ``litert step``: one interpreter call of the float ``.tflite`` step (skipped, with the reason,
  when the ``litert`` extra or its converter is missing, or with ``--no-litert``);
- ``onnxruntime hop`` / ``c backend hop``: the Python ``Streamer`` fed one hop (STFT + step +
  iSTFT in Python) over ``OnnxStepModel`` / ``CStepModel``;
- ``c spectral step``: ``dz_process_spectrum``, the C network alone on one frame (ctypes);
- ``c hop``: ``dz_process``, the whole streamer in C (its FFT, network, mask, overlap-add),
  called through ctypes, and ``c hop (in C)``: the same timed inside ``dz_demo -t`` (no Python).

The C library is built twice: with the Makefile's portable default (``-O3``: SSE2 on x86-64)
and for this CPU (``-O3 -march=native``, what the Python ``c`` backend's cache builds). What gcc
vectorised (``-fopt-info-vec-optimized``) is counted per C function. Timings on these shared
machines move by +-25 % from run to run: every measurement runs ``--repeats`` times,
interleaved, and the least disturbed run (lowest median) is reported; compare rows of one run.

Usage::

    python benchmarks/native.py                 # writes benchmarks/results/native.{json,md}
    python benchmarks/native.py --seconds 3 --models gtcrn --out /tmp/bench --no-litert
"""

from __future__ import annotations

import argparse
import datetime as _dt
import json
import os
import platform
import re
import shlex
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np
import torch

REPO = Path(__file__).resolve().parents[1]
TARGET_MS = 0.10  # issue #32: float GTCRN hop, median
TARGET_RATIO = 4.0  # ... and at least 4x faster than ONNX Runtime in the same run
FLAVOURS = {"portable": "-O3", "native": "-O3 -march=native"}


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--models", default="gtcrn,gtcrn_half,gtcrn_48k",
                   help="comma-separated shipped models (default: %(default)s)")
    p.add_argument("--seconds", type=float, default=10.0, help="clip length (default 10 s)")
    p.add_argument("--warmup", type=int, default=30, help="hops run before timing (default 30)")
    p.add_argument("--repeats", type=int, default=3, help="interleaved runs per measurement")
    p.add_argument("--no-litert", action="store_true", help="skip the LiteRT rows")
    p.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results",
                   help="folder for native.json and native.md")
    return p


def _summary(times_s) -> dict[str, float]:
    t = np.asarray(times_s) * 1e3
    return {"hops": int(t.size), "median_ms": float(np.median(t)),
            "p99_ms": float(np.percentile(t, 99)), "mean_ms": float(t.mean()),
            "max_ms": float(t.max())}


def _timed(fn, items, warmup: int) -> dict[str, float]:
    for i in range(warmup):
        fn(items[i % len(items)])
    times = []
    clock = time.perf_counter
    for it in items:
        t0 = clock()
        fn(it)
        times.append(clock() - t0)
    return _summary(times)


def step_timer(model, frames: list[np.ndarray]):
    """Bare ``_run(frame, state)`` of an exported-step backend, states fed back."""
    state = [model.initial_state(1)]

    def run(f):
        res = model._run(f, state[0])
        state[0] = res[1:]
    return lambda warmup: _timed(run, frames, warmup)


def streamer_timer(model, x: np.ndarray, hop: int):
    """A ``Streamer`` fed one hop per call (STFT + step + iSTFT)."""
    from denoisezoo.streaming import Streamer

    def go(warmup: int) -> dict[str, float]:
        s = Streamer(model)
        for i in range(warmup):
            s.feed(torch.from_numpy(x[i * hop : (i + 1) * hop]))
        s.reset()
        s.reset_stats()
        for i in range(0, len(x) - hop + 1, hop):
            s.feed(torch.from_numpy(x[i : i + hop]))
        return _summary(list(s.frame_times))
    return go


def c_timers(lib, x: np.ndarray, frames: list[np.ndarray]):
    """``dz_process`` (whole streamer) and ``dz_process_spectrum`` (network) through ctypes."""
    from denoisezoo.streaming.c_runtime import _ptr

    hops = [np.ascontiguousarray(x[i : i + lib.hop]) for i in range(0, len(x) - lib.hop + 1, lib.hop)]
    out = np.empty(lib.hop, np.float32)
    spec_out = np.empty((lib.n_freqs, 2), np.float32)
    h_hop, h_spec = lib.create(), lib.create()
    proc, spec = lib.lib.dz_process, lib.lib.dz_process_spectrum
    out_p, spec_p = _ptr(out), _ptr(spec_out)
    hop_ptrs = [_ptr(a) for a in hops]
    frame_ptrs = [_ptr(f) for f in frames]  # (1, F, 2) contiguous
    keep = [hops, frames, out, spec_out]  # ctypes pointers do not keep their arrays alive

    def hop(warmup: int):
        assert keep
        return _timed(lambda p: proc(h_hop, p, out_p), hop_ptrs, warmup)

    def spectral(warmup: int):
        assert keep
        return _timed(lambda p: spec(h_spec, p, spec_p), frame_ptrs, warmup)
    return hop, spectral


def demo_timer(folder: Path, x: np.ndarray, tmp: Path):
    """``dz_demo -t``: dz_process timed inside C (clock_gettime around each call)."""
    raw = tmp / "clip.f32"
    x.astype(np.float32).tofile(raw)

    def go(warmup: int) -> dict[str, float]:
        res = subprocess.run([str(folder / "dz_demo"), "-t", str(raw), str(tmp / "out.f32")],
                             capture_output=True, text=True, check=True)
        m = re.search(r"(\d+) hops: median ([\d.]+) ms, p99 ([\d.]+) ms", res.stderr)
        return {"hops": int(m.group(1)), "median_ms": float(m.group(2)), "p99_ms": float(m.group(3))}
    return go


def vectorised(folder: Path, opt: str) -> dict[str, Any]:
    """What gcc vectorised in the library sources with ``opt``: loops and basic blocks per
    function (``-fopt-info-vec-optimized``)."""
    from denoisezoo.export.c import compiler

    cc = compiler()
    per: dict[str, dict[str, int]] = defaultdict(lambda: {"loops": 0, "blocks": 0, "max_bytes": 0})
    for src in ("dz_layers.c", "dz_model.c", "dz_fft.c"):
        text = (folder / src).read_text().splitlines()
        starts = [(i + 1, m.group(1)) for i, line in enumerate(text)
                  if (m := re.match(r"^(?:static )?(?:inline )?[A-Za-z_][\w \*]*?\b(\w+)\(", line))]
        res = subprocess.run([*cc.split(), "-std=c99", *opt.split(), "-fno-trapping-math",
                              "-fopt-info-vec-optimized",
                              "-c", src, "-o", os.devnull], cwd=folder, capture_output=True, text=True)
        for m in re.finditer(rf"{re.escape(src)}:(\d+):\d+: optimized: (loop|basic block).*?"
                             r"(?:(\d+) byte vectors|$)", res.stderr, re.M):
            line = int(m.group(1))
            fn = max((s for s in starts if s[0] <= line), default=(0, "?"))[1]
            rec = per[f"{src}:{fn}"]
            rec["loops" if m.group(2) == "loop" else "blocks"] += 1
            rec["max_bytes"] = max(rec["max_bytes"], int(m.group(3) or 0))
    return dict(sorted(per.items()))


def machine_info() -> dict[str, Any]:
    cpu = platform.processor() or ""
    for line in Path("/proc/cpuinfo").read_text().splitlines() if Path("/proc/cpuinfo").is_file() else []:
        if line.startswith("model name"):
            cpu = line.split(":", 1)[1].strip()
            break
    import onnxruntime

    from denoisezoo.export.c import compiler

    cc = compiler() or "?"
    ver = subprocess.run([*cc.split(), "--version"], capture_output=True, text=True).stdout.splitlines()
    return {"cpu": cpu, "cpus": os.cpu_count(), "python": platform.python_version(),
            "torch": torch.__version__, "onnxruntime": onnxruntime.__version__,
            "compiler": ver[0] if ver else cc, "threads": 1}


def bench_model(name: str, args, tmp: Path) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    from denoisezoo.export import export_onnx
    from denoisezoo.export.c import build, check_signal, export_c
    from denoisezoo.export.c.export import check_library
    from denoisezoo.hub import load_model
    from denoisezoo.streaming import CLibrary, CStepModel, OnnxStepModel

    model = load_model(name).eval()
    g = model.geometry
    x = check_signal(args.seconds, g.sample_rate)
    with torch.inference_mode():
        from denoisezoo.dsp.stft import stft

        spec = stft(torch.from_numpy(x), g)  # F, T, 2
    frames = [np.ascontiguousarray(spec[None, :, i].numpy()) for i in range(spec.shape[1])]
    onnx_path = tmp / "onnx" / f"{name}.onnx"  # each step beside its own sidecar (name.json)
    export_onnx(model, onnx_path, name=name)
    ort = OnnxStepModel(onnx_path, threads=1)
    timers: dict[str, Any] = {"onnxruntime step": step_timer(ort, frames),
                              "onnxruntime hop": streamer_timer(ort, x, g.hop_length)}
    extra: dict[str, Any] = {"onnx_bytes": onnx_path.stat().st_size}
    if not args.no_litert:
        try:
            from denoisezoo.export import export_tflite
            from denoisezoo.streaming import LiteRTStepModel

            tfl = tmp / "tflite" / f"{name}.tflite"
            export_tflite(model, tfl, name=name)
            timers["litert step"] = step_timer(LiteRTStepModel(tfl, threads=1), frames)
            extra["tflite_bytes"] = tfl.stat().st_size
        except Exception as exc:  # noqa: BLE001 - reported, not fatal
            extra["litert_skipped"] = f"{type(exc).__name__}: {str(exc).splitlines()[0][:200]}"
    vec = {}
    for flavour, opt in FLAVOURS.items():
        folder = tmp / f"{name}_c_{flavour}"
        meta = export_c(model, folder, name=name)
        build(folder, opt=opt)
        extra["c_weight_bytes"] = meta["weights"]["bytes"]
        extra[f"check_{flavour}"] = check_library(model, folder, x[: 2 * g.sample_rate])
        lib = CLibrary(folder)
        hop_t, spec_t = c_timers(lib, x, frames)
        timers[f"c spectral step ({flavour})"] = spec_t
        timers[f"c hop ({flavour})"] = hop_t
        timers[f"c hop in C ({flavour})"] = demo_timer(folder, x, tmp)
        if flavour == "native":
            timers["c backend hop (native)"] = streamer_timer(CStepModel(folder), x, g.hop_length)
        extra[f"so_bytes_{flavour}"] = (folder / "libdenoisezoo.so").stat().st_size
        vec[flavour] = vectorised(folder, opt)
    runs: dict[str, list[dict[str, float]]] = defaultdict(list)
    for _ in range(args.repeats):  # interleaved: every runtime sees the same disturbances
        for key, fn in timers.items():
            runs[key].append(fn(args.warmup))
    rows = []
    for key, rs in runs.items():
        best = min(rs, key=lambda r: r["median_ms"])
        rows.append({"model": name, "runtime": key, **best,
                     "runs_median_ms": [round(r["median_ms"], 4) for r in rs]})
    extra["vectorised"] = vec
    return rows, extra


def to_markdown(report: dict[str, Any]) -> str:
    m = report["machine"]
    lines = ["# Native speed: the C library beside ONNX Runtime and LiteRT", "",
             f"Command: `{report['command']}`  ",
             f"Date: {report['date']}; machine: {m['cpu']}, {m['cpus']} vCPU, {m['compiler']}, "
             f"Python {m['python']}, torch {m['torch']}, onnxruntime {m['onnxruntime']}; one thread; "
             f"load average before/after: {report['load_before']} / {report['load_after']}.  ",
             f"Clip: {report['seconds']:g} s synthetic speech-like signal at each model's rate; "
             f"{report['repeats']} interleaved runs per row, the one with the lowest median shown "
             "(every run's median in the JSON).", "",
             "Milliseconds per 16 ms hop. `step` = the network on one STFT frame, states fed back "
             "(ORT: one `session.run`); `hop` = the whole streamer (STFT + network + iSTFT): "
             "`c hop` is `dz_process` through ctypes, `c hop in C` the same timed inside `dz_demo`, "
             "`onnxruntime hop` / `c backend hop` the Python `Streamer` over the ORT step / the C "
             "network. `x ORT` = ONNX Runtime step median / this median.", "",
             "| model | runtime | median ms | p99 ms | x ORT step |", "|---|---|---:|---:|---:|"]
    for name, rows in report["rows"].items():
        ort = next(r["median_ms"] for r in rows if r["runtime"] == "onnxruntime step")
        for r in rows:
            lines.append(f"| {name} | {r['runtime']} | {r['median_ms']:.3f} | {r['p99_ms']:.3f} | "
                         f"{ort / r['median_ms']:.1f} |")
    lines += ["", "Sizes and checks:", ""]
    for name, e in report["extra"].items():
        lite = (f", .tflite {e['tflite_bytes'] / 1024:.0f} KB" if "tflite_bytes" in e
                else f"; LiteRT skipped ({e.get('litert_skipped', 'disabled')})")
        lines.append(f"- {name}: C weight tables {e['c_weight_bytes'] / 1024:.1f} KB (float32), "
                     f"libdenoisezoo.so {e['so_bytes_portable'] / 1024:.0f} KB (portable) / "
                     f"{e['so_bytes_native'] / 1024:.0f} KB (native), .onnx "
                     f"{e['onnx_bytes'] / 1024:.0f} KB{lite}; C vs PyTorch Streamer max abs diff "
                     f"{e['check_portable']['max_abs_diff']:.1e} (portable), "
                     f"{e['check_native']['max_abs_diff']:.1e} (native)")
    lines += ["", "Target (issue #32 item 4): float GTCRN hop <= 0.10 ms median and >= 4x faster "
              "than ONNX Runtime in the same run:", ""]
    lines += [f"- {v}" for v in report["verdicts"]]
    first = next(iter(report["extra"].values()))["vectorised"]
    lines += ["", f"What gcc vectorised ({next(iter(report['extra']))}; loops / basic blocks, widest "
              "vector in bytes):", "", "| function | portable (-O3) | native (-O3 -march=native) |",
              "|---|---|---|"]
    for fn in sorted(set(first["portable"]) | set(first["native"])):
        cell = [f"{d['loops']} / {d['blocks']} ({d['max_bytes']} B)" if (d := first[f].get(fn)) else "-"
                for f in ("portable", "native")]
        lines.append(f"| `{fn}` | {cell[0]} | {cell[1]} |")
    return "\n".join(lines) + "\n"


def verdicts(report: dict[str, Any]) -> list[str]:
    out = []
    for name, rows in report["rows"].items():
        by = {r["runtime"]: r for r in rows}
        ort = by["onnxruntime step"]["median_ms"]
        for flavour in FLAVOURS:
            c = by[f"c hop ({flavour})"]["median_ms"]
            ok = c <= TARGET_MS and ort / c >= TARGET_RATIO
            out.append(f"{name}, {flavour} build: C hop {c:.3f} ms median, {ort / c:.1f}x faster than "
                       f"the ORT step ({ort:.3f} ms): {'MET' if ok else 'NOT MET'}")
    return out


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    torch.set_num_threads(1)
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    report: dict[str, Any] = {
        "command": " ".join(["python benchmarks/native.py",
                             *(shlex.quote(a) for a in (sys.argv[1:] if argv is None else argv))]),
        "date": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "machine": machine_info(), "seconds": args.seconds, "repeats": args.repeats,
        "load_before": [round(v, 2) for v in os.getloadavg()], "rows": {}, "extra": {}}
    with tempfile.TemporaryDirectory() as d:
        for name in [m for m in args.models.split(",") if m]:
            print(f"{name} ...", flush=True)
            rows, extra = bench_model(name, args, Path(d))
            report["rows"][name], report["extra"][name] = rows, extra
            for r in rows:
                print(f"  {r['runtime']:28s} median {r['median_ms']:.3f} ms  p99 {r['p99_ms']:.3f} ms",
                      flush=True)
    report["load_after"] = [round(v, 2) for v in os.getloadavg()]
    report["verdicts"] = verdicts(report)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "native.json").write_text(json.dumps(report, indent=2) + "\n")
    (args.out / "native.md").write_text(to_markdown(report))
    print("\n".join(report["verdicts"]))
    print(f"wrote {args.out / 'native.json'} and {args.out / 'native.md'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
