"""Real-time streams per core: one StreamPool (one batched step per hop) vs one Streamer per stream.

For each model (``gtcrn``: the shipped paper-size model, ``denoisezoo.load_model("gtcrn")``;
``rnnoise_16k``) and backend (``torch`` eager; ``onnx``: ONNX Runtime, the step exported with
``export_onnx(..., dynamic_batch=True)`` for the pool and with batch 1 for the baseline; ``c``:
the generated C library, built by ``denoisezoo.export.c.c_model`` with ``-O3 -march=native``,
GTCRN only), on one thread (``torch.set_num_threads(1)``, ORT ``intra_op_num_threads=1``):

- ``pool``: N streams in one :class:`denoisezoo.streaming.StreamPool` (``overload=None``: every
  stream through the model every hop), one ``process`` call per hop (``c``: one
  ``dz_process_many`` call for all N streams, the C library doing STFT, network and overlap-add);
- ``baseline``: N :class:`denoisezoo.streaming.Streamer` objects, one per stream, each fed its hop
  (``c``: N ``DzModel`` s, one ``dz_process`` ctypes call per stream and hop,
  ``CLibrary.process``).

Hop latency = time to produce one hop for all N streams (framing + model + overlap-add), on
two clocks: the thread's CPU time (``time.thread_time``: what a core of its own would take) and
the wall clock. **Streams per core** = the largest N whose p99 hop latency stays under the budget
(the hop duration: 16 ms GTCRN, 10 ms RNNoise), found by doubling N then bisecting (~12 %
resolution) on the CPU-time p99; the wall-clock figure is the largest measured N whose wall p99
met the budget. On a machine shared with other work the wall clock mostly measures the
scheduler (a descheduled thread misses a hop whatever N is), hence the CPU-time headline.
A point is abandoned after 10 hops when its CPU-time median is already 1.5x over the budget.

Compute limit: MACs per stream and hop (:func:`denoisezoo.profile.macs_per_second`) against the
single-thread float32 matmul rate measured in the same run; ``compute-limit streams`` = how many
streams one core would carry if the step ran at that rate.

Files (on unless ``--no-files``): a folder of WAVs through ``denoise_files`` in one process, in
``--jobs`` worker processes (and the same on two short files: the cost of starting them), and
through one StreamPool with every file as a stream: which is faster for ``denoisezoo denoise``
of many files (wall clock).

Timings on this shared machine move with the other work on it (the load average is recorded):
compare rows of one run.

Usage::

    python benchmarks/streams_per_core.py           # benchmarks/results/streams_per_core/*
    python benchmarks/streams_per_core.py --hops 30 --no-files --out /tmp/spc
"""

from __future__ import annotations

import argparse
import datetime as _dt
import json
import os
import shlex
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import soundfile as sf
import torch
from streaming import clip, machine_info  # the sibling benchmark (benchmarks/ is on sys.path)

REPO = Path(__file__).resolve().parents[1]
GOAL_GTCRN = 300  # issue 35: >= 300 GTCRN streams per core


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results" / "streams_per_core")
    p.add_argument("--models", default="gtcrn,rnnoise_16k", help="shipped models (default: %(default)s)")
    p.add_argument("--backends", default="torch,onnx,c",
                   help="default: %(default)s (c: GTCRN models only)")
    p.add_argument("--hops", type=int, default=100, help="timed hops per point (default 100)")
    p.add_argument("--warmup", type=int, default=5, help="hops before timing (default 5)")
    p.add_argument("--max-streams", type=int, default=2048)
    p.add_argument("--no-files", action="store_true", help="skip the many-files comparison")
    p.add_argument("--files", type=int, default=16, help="files in the folder (default 16)")
    p.add_argument("--file-seconds", type=float, default=10.0, help="length of each file")
    p.add_argument("--jobs", type=int, default=2, help="worker processes for the files (default 2)")
    return p


def _summary(cpu_s: list[float], wall_s: list[float], aborted: bool = False) -> dict[str, Any]:
    c, w = np.asarray(cpu_s) * 1e3, np.asarray(wall_s) * 1e3
    return {"hops": int(c.size), "p50_ms": float(np.percentile(c, 50)),
            "p99_ms": float(np.percentile(c, 99)), "mean_ms": float(c.mean()),
            "max_ms": float(c.max()), "wall_p50_ms": float(np.percentile(w, 50)),
            "wall_p99_ms": float(np.percentile(w, 99)), "wall_max_ms": float(w.max()),
            "aborted": aborted}


def _hops_of(model, seconds: float = 4.0) -> np.ndarray:
    """A speech-like clip at the model's rate cut into hops ``(H, hop)``."""
    g = model.geometry
    x = clip(seconds, g.sample_rate).numpy()
    h = x.size // g.hop_length
    return np.ascontiguousarray(x[: h * g.hop_length].reshape(h, g.hop_length))


def _run_points(step: Callable[[int], None], budget_ms: float, hops: int, warmup: int) -> dict:
    """Time ``step(t)`` (one hop of every stream) ``warmup + hops`` times: thread CPU and wall."""
    cpu, wall = [], []
    for t in range(warmup + hops):
        c0, t0 = time.thread_time(), time.perf_counter()
        step(t)
        dc, dt = time.thread_time() - c0, time.perf_counter() - t0
        if t >= warmup:
            cpu.append(dc)
            wall.append(dt)
            if len(cpu) == 10 and np.median(cpu) * 1e3 > 1.5 * budget_ms:
                return _summary(cpu, wall, aborted=True)
    return _summary(cpu, wall)


def time_pool(model, backend: str, n: int, clip_hops: np.ndarray, budget_ms: float, hops: int,
              warmup: int) -> dict:
    from denoisezoo.streaming import StreamPool

    pool = StreamPool(model, backend=backend, overload=None)
    sids = [pool.open() for _ in range(n)]
    offsets = (np.arange(n) * 37) % clip_hops.shape[0]

    def step(t: int) -> None:
        x = clip_hops[(t + offsets) % clip_hops.shape[0]]
        pool.process(dict(zip(sids, x, strict=True)))

    return _run_points(step, budget_ms, hops, warmup)


def time_streamers(model, n: int, clip_hops: np.ndarray, budget_ms: float, hops: int,
                   warmup: int) -> dict:
    from denoisezoo.streaming import Streamer

    streamers = [Streamer(model) for _ in range(n)]
    offsets = (np.arange(n) * 37) % clip_hops.shape[0]

    def step(t: int) -> None:
        x = clip_hops[(t + offsets) % clip_hops.shape[0]]
        for s, h in zip(streamers, x, strict=True):
            s.feed(h)

    return _run_points(step, budget_ms, hops, warmup)


def time_c_lone(lib, n: int, clip_hops: np.ndarray, budget_ms: float, hops: int,
                warmup: int) -> dict:
    """N C models, one ``dz_process`` call per stream and hop (the C baseline)."""
    handles = [lib.create() for _ in range(n)]
    offsets = (np.arange(n) * 37) % clip_hops.shape[0]
    out = np.empty(lib.hop, np.float32)

    def step(t: int) -> None:
        x = clip_hops[(t + offsets) % clip_hops.shape[0]]
        for h, hop in zip(handles, x, strict=True):
            lib.process(h, hop, out)

    try:
        return _run_points(step, budget_ms, hops, warmup)
    finally:
        for h in handles:
            lib.destroy(h)


def streams_per_core(measure: Callable[[int], dict], budget_ms: float, n_max: int,
                     label: str) -> tuple[int, dict[int, dict]]:
    """Largest N with CPU p99 <= budget (doubling, then bisection to ~12 %) and every point."""
    points: dict[int, dict] = {}

    def ok(n: int) -> bool:
        r = points[n] = measure(n)
        print(f"  {label} N={n}: CPU p50 {r['p50_ms']:.2f} ms, p99 {r['p99_ms']:.2f} ms; wall "
              f"p99 {r['wall_p99_ms']:.2f} ms" + (" (abandoned)" if r["aborted"] else ""),
              file=sys.stderr, flush=True)
        return not r["aborted"] and r["p99_ms"] <= budget_ms

    lo, n = 0, 1
    while n <= n_max and ok(n):
        lo, n = n, n * 2
    hi = min(n, n_max + 1)
    while hi - lo > max(1, lo // 8):
        mid = (lo + hi) // 2
        if ok(mid):
            lo = mid
        else:
            hi = mid
    return lo, dict(sorted(points.items()))


def matmul_peak(seconds: float = 1.0, n: int = 512) -> float:
    """Single-thread float32 matmul rate in MAC/s (a ``n x n`` by ``n x n`` product)."""
    a, b = torch.randn(n, n), torch.randn(n, n)
    for _ in range(3):
        a @ b
    reps, t0 = 0, time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        a @ b
        reps += 1
    return reps * n**3 / (time.perf_counter() - t0)


def ort_op_shares(path: Path, n: int, model, top: int = 8) -> dict[str, float]:
    """Share of ONNX Runtime kernel time per operator type in the batched step of ``n`` streams."""
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.intra_op_num_threads = so.inter_op_num_threads = 1
    so.enable_profiling = True
    so.profile_file_prefix = str(path.with_suffix(""))
    so.log_severity_level = 3
    sess = ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])
    state = [np.ascontiguousarray(t.numpy()) for t in model.initial_state(n)]
    feeds = {"frame": np.random.default_rng(0).standard_normal(
        (n, model.geometry.n_freqs, 2)).astype(np.float32) * 0.3}
    feeds.update(zip([i.name for i in sess.get_inputs()][1:], state, strict=True))
    for _ in range(10):
        sess.run(None, feeds)
    trace = json.loads(Path(sess.end_profiling()).read_text())
    per: dict[str, float] = {}
    for e in trace:
        if e.get("cat") == "Node" and e["name"].endswith("_kernel_time"):
            op = e["args"]["op_name"]
            per[op] = per.get(op, 0.0) + e["dur"]
    total = sum(per.values()) or 1.0
    ranked = sorted(per.items(), key=lambda kv: -kv[1])
    return {k: v / total for k, v in ranked[:top]}


def bench_model(name: str, backends: list[str], args, tmp: Path, peak: float) -> dict[str, Any]:
    import denoisezoo
    from denoisezoo.export import export_onnx
    from denoisezoo.profile import macs_per_second
    from denoisezoo.streaming import OnnxStepModel

    model = denoisezoo.load_model(name).eval()
    g = model.geometry
    hop_ms = 1000.0 * g.hop_length / g.sample_rate
    budget = hop_ms
    macs_s = macs_per_second(model)
    clip_hops = _hops_of(model)
    out: dict[str, Any] = {"model": name, "hop_ms": hop_ms, "budget_ms": budget,
                           "macs_per_second": macs_s, "macs_per_hop": macs_s * hop_ms / 1000,
                           "compute_limit_streams": peak / macs_s, "rows": []}
    for backend in backends:
        if backend == "torch":
            pool_model = base_model = model
        elif backend == "c":
            if not name.startswith("gtcrn"):
                print(f"{name} c: no C export for this family, skipped", file=sys.stderr)
                continue
            from denoisezoo.export.c import c_model

            pool_model = c_model(model, name=name)  # a CStepModel, built once into the cache
            base_model = pool_model.library
        else:
            export_onnx(model, tmp / f"{name}_dyn.onnx", dynamic_batch=True, overwrite=True)
            export_onnx(model, tmp / f"{name}_b1.onnx", overwrite=True)
            pool_model = OnnxStepModel(tmp / f"{name}_dyn.onnx", threads=1)
            base_model = OnnxStepModel(tmp / f"{name}_b1.onnx", threads=1)
        for engine in ("pool", "baseline"):
            label = f"{name} {backend} {engine}"
            print(f"{label} ...", file=sys.stderr, flush=True)
            if engine == "pool":
                def measure(n, m=pool_model, b=backend):
                    return time_pool(m, b, n, clip_hops, budget, args.hops, args.warmup)
            elif backend == "c":
                def measure(n, lib=base_model):
                    return time_c_lone(lib, n, clip_hops, budget, args.hops, args.warmup)
            else:
                def measure(n, m=base_model):
                    return time_streamers(m, n, clip_hops, budget, args.hops, args.warmup)
            best, points = streams_per_core(measure, budget, args.max_streams, label)
            wall_best = max([n for n, r in points.items()
                             if not r["aborted"] and r["wall_p99_ms"] <= budget], default=0)
            at = points.get(best)
            achieved = (best * macs_s * hop_ms / 1000 / (at["p50_ms"] / 1000)) if at else 0.0
            if backend == "onnx" and engine == "pool" and best:
                out["onnx_op_shares"] = ort_op_shares(tmp / f"{name}_dyn.onnx", best, model)
            out["rows"].append({
                "backend": backend, "engine": engine, "streams_per_core": best,
                "streams_per_core_wall": wall_best, "at_best": at, "achieved_macs_per_s": achieved,
                "share_of_matmul_peak": achieved / peak,
                "points": {str(k): v for k, v in points.items()}})
    return out


def files_benchmark(args, tmp: Path) -> dict[str, Any]:
    """A folder of WAVs: one process, ``--jobs`` workers, one StreamPool of all files."""
    import denoisezoo
    from denoisezoo.api import denoise_files
    from denoisezoo.streaming import StreamPool

    model = denoisezoo.load_model("gtcrn").eval()
    g = model.geometry
    n, sr = int(args.file_seconds * g.sample_rate), g.sample_rate
    folder = tmp / "corpus"
    folder.mkdir()
    base = clip(args.file_seconds + args.files * 0.25, sr).numpy()
    srcs = []
    for i in range(args.files):
        p = folder / f"f{i:03d}.wav"
        sf.write(p, base[int(i * 0.25 * sr) :][:n], sr, subtype="FLOAT")
        srcs.append(p)
    audio_s = args.files * args.file_seconds
    res: dict[str, Any] = {"files": args.files, "file_seconds": args.file_seconds,
                           "audio_seconds": audio_s, "model": "gtcrn", "rows": []}
    outs = {}
    short = []
    for i in range(args.jobs):
        p = folder / f"short{i}.wav"
        sf.write(p, base[: g.hop_length * 4], sr, subtype="FLOAT")
        short.append(p)
    runs = (("one process (denoise_files, jobs=1)", 1, srcs),
            (f"{args.jobs} worker processes (denoise_files, jobs={args.jobs})", args.jobs, srcs),
            (f"  of which starting them: the same on {args.jobs} files of 4 hops", args.jobs, short))
    for label, jobs, files in runs:
        dst = tmp / f"out_{len(res['rows'])}"
        print(f"files: {label.strip()} ...", file=sys.stderr, flush=True)
        t0 = time.perf_counter()
        done = list(denoise_files([(s, dst / s.name) for s in files], model, jobs=jobs,
                                  progress=False))
        wall = time.perf_counter() - t0
        assert all(isinstance(r, dict) for _, _, r in done)
        outs.setdefault(jobs, dst)
        res["rows"].append({"engine": label, "wall_s": wall,
                            "rtf": wall / audio_s if files is srcs else None})
    print("files: one StreamPool ...", file=sys.stderr, flush=True)
    t0 = time.perf_counter()
    pool = StreamPool(model, overload=None)
    sids = [pool.open() for _ in srcs]
    data = np.stack([sf.read(s, dtype="float32")[0] for s in srcs])  # F, n
    hop = pool.hop_size
    n_hops = -(-(n + pool.delay) // hop)
    padded = np.zeros((len(srcs), n_hops * hop), np.float32)
    padded[:, :n] = data
    ys = np.empty_like(padded)
    for t in range(n_hops):
        o = pool.process(dict(zip(sids, padded[:, t * hop : (t + 1) * hop], strict=True)))
        ys[:, t * hop : (t + 1) * hop] = np.stack([o[s] for s in sids])
    dst = tmp / "out_pool"
    dst.mkdir()
    for s, y in zip(srcs, ys, strict=True):
        sf.write(dst / s.name, y[pool.delay : pool.delay + n], sr, subtype="FLOAT")
    wall = time.perf_counter() - t0
    diff = max(float(np.abs(sf.read(dst / s.name, dtype="float32")[0]
                            - sf.read(outs[1] / s.name, dtype="float32")[0]).max()) for s in srcs)
    res["rows"].append({"engine": "one StreamPool, every file a stream (hop by hop)", "wall_s": wall,
                        "rtf": wall / audio_s, "max_abs_diff_vs_one_process": diff})
    fastest = min((r for r in res["rows"] if r["rtf"] is not None), key=lambda r: r["wall_s"])
    res["fastest"] = fastest["engine"]
    return res


def plot(report: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    models = report["models"]
    fig, axes = plt.subplots(1, len(models), figsize=(6.5 * len(models), 4.8), squeeze=False)
    for ax, m in zip(axes[0], models, strict=True):
        for r in m["rows"]:
            ns = sorted(int(k) for k in r["points"])
            p99 = [r["points"][str(k)]["p99_ms"] for k in ns]
            wall = [r["points"][str(k)]["wall_p99_ms"] for k in ns]
            style = "-" if r["engine"] == "pool" else ":"
            line, = ax.plot(ns, p99, style, marker="o", ms=3,
                            label=f"{r['backend']} {r['engine']}: {r['streams_per_core']} streams")
            ax.plot(ns, wall, style, color=line.get_color(), alpha=0.3, lw=1)
        ax.axhline(m["budget_ms"], color="k", lw=0.8)
        ax.text(1, m["budget_ms"] * 1.05, f"budget {m['budget_ms']:g} ms", fontsize=8)
        ax.set_xscale("log", base=2)
        ax.set_yscale("log")
        ax.set_xlabel("streams N")
        ax.set_ylabel("p99 hop latency, ms (CPU time; faint: wall clock)")
        ax.set_title(f"{m['model']}: one hop of N streams, one thread")
        ax.grid(alpha=0.3, which="both")
        ax.legend(fontsize=7, loc="upper left")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def to_markdown(report: dict[str, Any]) -> str:
    m = report["machine"]
    lines = [
        "# Real-time streams per core",
        "",
        f"Command: `{report['command']}`  ",
        f"Date: {report['date']}; machine: {m['cpu']}, {m['cpus']} vCPU (shared with other work), "
        f"torch {m['torch']}, onnxruntime {m['onnxruntime']}; one thread; load average "
        f"before/after: {report['load_before']} / {report['load_after']}; run time "
        f"{report['run_seconds']:.0f} s.",
        "",
        "Streams per core = the largest N whose p99 hop latency (one hop of all N streams: framing, "
        "model, overlap-add) stays under the budget (the hop), on one thread, measured as the "
        "thread's CPU time (what a core of its own would take; the wall clock of this shared "
        "machine is given beside it). `pool` = one "
        "`StreamPool`, one batched model step per hop; `baseline` = one `Streamer` per stream. "
        "Backend `c`: the generated C library (`-O3 -march=native`); its pool makes one "
        "`dz_process_many` call per hop for all streams (STFT, network and overlap-add in C), its "
        "baseline one `dz_process` ctypes call per stream and hop. "
        f"{report['hops']} timed hops per point. Compute limit = single-thread float32 matmul "
        f"rate measured in this run ({report['matmul_peak_macs'] / 1e9:.1f} GMAC/s) / the "
        "model's MACs per second of audio.",
        "",
        "| model | backend | engine | streams per core (CPU p99) | CPU p50 / p99 at that N (ms) "
        "| wall p50 / p99 there (ms) | streams per core (wall p99, this machine) | achieved MAC/s "
        "| share of matmul rate | compute-limit streams |",
        "|---|---|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for mm in report["models"]:
        for r in mm["rows"]:
            at = r["at_best"]
            lat = f"{at['p50_ms']:.2f} / {at['p99_ms']:.2f}" if at else "-"
            wall = f"{at['wall_p50_ms']:.2f} / {at['wall_p99_ms']:.2f}" if at else "-"
            lines.append(
                f"| {mm['model']} | {r['backend']} | {r['engine']} | **{r['streams_per_core']}** | "
                f"{lat} | {wall} | {r['streams_per_core_wall']} | "
                f"{r['achieved_macs_per_s'] / 1e9:.2f} G | "
                f"{100 * r['share_of_matmul_peak']:.1f} % | {mm['compute_limit_streams']:.0f} |")
    lines += ["", "Models: " + "; ".join(
        f"{mm['model']} {mm['macs_per_second'] / 1e6:.1f} M MAC/s of audio = "
        f"{mm['macs_per_hop'] / 1e6:.2f} M MAC per {mm['hop_ms']:g} ms hop" for mm in report["models"])
        + ".", ""]
    lines += ["Verdicts:", ""] + [f"- {v}" for v in report["verdicts"]] + [""]
    for mm in report["models"]:
        if mm.get("onnx_op_shares"):
            cells = ", ".join(f"{k} {100 * v:.0f} %" for k, v in mm["onnx_op_shares"].items())
            lines += [f"Where the batched ONNX Runtime step of {mm['model']} spends its kernel time "
                      f"(at the pool's N): {cells}.", ""]
    f = report.get("files")
    if f:
        lines += [f"## Many files ({f['files']} files x {f['file_seconds']:g} s = "
                  f"{f['audio_seconds']:g} s of audio, {f['model']}, torch)", "",
                  "| engine | wall s | RTF (wall / audio) |", "|---|---:|---:|"]
        lines += [f"| {r['engine']} | {r['wall_s']:.2f} | "
                  + (f"{r['rtf']:.4f} |" if r["rtf"] is not None else " |") for r in f["rows"]]
        lines += ["", f"Fastest: {f['fastest']}. The pool's outputs equal the one-process outputs "
                  f"within {f['rows'][-1]['max_abs_diff_vs_one_process']:.1e}. Worker wall "
                  "times include starting the processes (spawn: a fresh interpreter importing "
                  "torch each).", ""]
    lines += ["Latency vs N (CPU time; wall clock faint): `streams_per_core.png`; every point in "
              "`streams_per_core.json`.", ""]
    return "\n".join(lines)


def verdicts(report: dict[str, Any]) -> list[str]:
    out = []
    for mm in report["models"]:
        rows = {(r["backend"], r["engine"]): r for r in mm["rows"]}
        for backend in dict.fromkeys(r["backend"] for r in mm["rows"]):
            p, b = rows.get((backend, "pool")), rows.get((backend, "baseline"))
            if not (p and b):
                continue
            gain = p["streams_per_core"] / max(b["streams_per_core"], 1)
            base = "one dz_process call per stream" if backend == "c" else "one Streamer per stream"
            line = (f"{mm['model']} {backend}: pool {p['streams_per_core']} vs {base} "
                    f"{b['streams_per_core']} real-time streams per core ({gain:.1f}x; by "
                    f"the wall clock of this shared machine {p['streams_per_core_wall']} vs "
                    f"{b['streams_per_core_wall']}); "
                    f"compute limit ~{mm['compute_limit_streams']:.0f} streams, the pool runs at "
                    f"{100 * p['share_of_matmul_peak']:.1f} % of the matmul rate")
            if mm["model"] == "gtcrn":
                line += (f"; goal >= {GOAL_GTCRN}: "
                         + ("MET" if p["streams_per_core"] >= GOAL_GTCRN else "NOT MET"))
            out.append(line + ".")
    return out


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    torch.set_num_threads(1)
    torch.manual_seed(0)
    t_start = time.perf_counter()
    load_before = [round(v, 2) for v in os.getloadavg()]
    peak = matmul_peak()
    report: dict[str, Any] = {
        "command": "python benchmarks/streams_per_core.py" + "".join(
            f" {shlex.quote(a)}" for a in (sys.argv[1:] if argv is None else argv)),
        "date": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "machine": machine_info(), "load_before": load_before, "hops": args.hops,
        "warmup": args.warmup, "matmul_peak_macs": peak, "models": []}
    with tempfile.TemporaryDirectory() as tmp:
        for name in [m for m in args.models.split(",") if m]:
            report["models"].append(bench_model(name, [b for b in args.backends.split(",") if b],
                                                args, Path(tmp), peak))
        if not args.no_files:
            report["files"] = files_benchmark(args, Path(tmp))
    report["load_after"] = [round(v, 2) for v in os.getloadavg()]
    report["run_seconds"] = time.perf_counter() - t_start
    report["verdicts"] = verdicts(report)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "streams_per_core.json").write_text(json.dumps(report, indent=2) + "\n")
    (args.out / "streams_per_core.md").write_text(to_markdown(report))
    plot(report, args.out / "streams_per_core.png")
    print(to_markdown(report))
    return 0


if __name__ == "__main__":
    sys.exit(main())
