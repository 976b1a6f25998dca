"""Per-hop speed of the reference systems beside our models, one thread, in one run.

- The RNNoise C library (``pyrnnoise``: ``rnnoise_process_frame`` on 10 ms at 48 kHz) beside our
  ``rnnoise_16k`` and ``rnnoise_48k`` steps (10 ms hops) on PyTorch eager and ONNX Runtime.
- The UL-UNAS authors' streaming ONNX (``../shared/reference/ul-unas/onnx/ulunas_stream_simple.onnx``,
  one ``session.run`` per 16 ms frame, caches fed back) beside our ``ulunas`` step on eager and on
  its exported ONNX step.

Every row times the model call alone per hop (no STFT, no resampling), frames of a 10 s
speech-like clip, states fed back; ``--repeats`` interleaved runs, the one with the lowest median
kept. Writes ``references.json`` and ``references.md`` (default ``benchmarks/results/references/``).

    python benchmarks/references.py
"""

from __future__ import annotations

import argparse
import ctypes
import datetime
import json
import platform
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from streaming import clip  # the sibling benchmark's clip (benchmarks/ is on sys.path)

REPO = Path(__file__).resolve().parents[1]
ULUNAS_ONNX = "reference/ul-unas/onnx/ulunas_stream_simple.onnx"


def _summary(times: list[float]) -> dict[str, float]:
    a = np.asarray(times) * 1e3
    return {"p50_ms": float(np.median(a)), "p99_ms": float(np.percentile(a, 99)), "hops": len(a)}


def _best(runs: list[dict[str, float]]) -> dict[str, float]:
    return min(runs, key=lambda r: r["p50_ms"])


def time_pyrnnoise(x48: np.ndarray) -> dict[str, float]:
    from pyrnnoise.rnnoise import FRAME_SIZE, create, destroy, lib

    ptr = ctypes.POINTER(ctypes.c_float)
    buf = (x48 * 32768.0).astype(np.float32)
    state, times = create(), []
    try:
        for i in range(len(buf) // FRAME_SIZE):
            fr = buf[i * FRAME_SIZE : (i + 1) * FRAME_SIZE]
            p = fr.ctypes.data_as(ptr)
            t = time.perf_counter()
            lib.rnnoise_process_frame(state, p, p)
            times.append(time.perf_counter() - t)
    finally:
        destroy(state)
    return _summary(times)


def time_torch_step(model, spec: torch.Tensor) -> dict[str, float]:
    state, times = model.initial_state(1), []
    with torch.inference_mode():
        for t in range(spec.shape[2]):
            f = spec[:, :, t]
            t0 = time.perf_counter()
            _, state = model.step(f, state)
            times.append(time.perf_counter() - t0)
    return _summary(times)


def time_onnx_session(sess, frame_name: str, state: dict[str, np.ndarray], spec: np.ndarray,
                      out_names: list[str], frame_shape: tuple[int, ...]) -> dict[str, float]:
    times = []
    names = list(state)
    for t in range(spec.shape[2]):
        feeds = {frame_name: np.ascontiguousarray(spec[:, :, t].reshape(frame_shape)), **state}
        t0 = time.perf_counter()
        res = sess.run(out_names, feeds)
        times.append(time.perf_counter() - t0)
        state = dict(zip(names, res[1:], strict=True))
    return _summary(times)


def exported_step_timer(model, spec: torch.Tensor, tmp: Path, name: str):
    """Export ``model``'s step once; a timer of its ONNX Runtime session over ``spec``."""
    from denoisezoo.export import export_onnx
    from denoisezoo.streaming import make_session

    path = tmp / f"{name}.onnx"
    meta = export_onnx(model, path)
    sess = make_session(path, threads=1)
    state = {s["name"]: np.zeros(s["shape"], np.float32) for s in meta["state"]}
    outs = [o["name"] for o in meta["outputs"]]
    frames = spec.numpy()
    return lambda: time_onnx_session(sess, "frame", dict(state), frames, outs, (1, spec.shape[1], 2))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seconds", type=float, default=10.0)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--shared", type=Path, default=REPO.parent / "shared")
    ap.add_argument("--out", type=Path, default=REPO / "benchmarks/results/references")
    args = ap.parse_args(argv)
    torch.set_num_threads(1)
    import denoisezoo
    from denoisezoo.dsp.stft import stft
    from denoisezoo.streaming import make_session

    rows: list[dict] = []
    with tempfile.TemporaryDirectory() as tmp_:
        tmp = Path(tmp_)
        jobs = []  # (group, system, hop_ms, timer)
        x48 = clip(args.seconds, 48000).numpy()
        jobs.append(("RNNoise", "RNNoise C library (pyrnnoise), 48 kHz", 10.0,
                     lambda: time_pyrnnoise(x48)))
        for name in ("rnnoise_16k", "rnnoise_48k"):
            m = denoisezoo.load_model(name)
            spec = stft(clip(args.seconds, m.geometry.sample_rate)[None], m.geometry)
            jobs.append(("RNNoise", f"`{name}` PyTorch eager step", 10.0,
                         lambda m=m, spec=spec: time_torch_step(m, spec)))
            jobs.append(("RNNoise", f"`{name}` ONNX Runtime step", 10.0,
                         exported_step_timer(m, spec, tmp, name)))
        ul = denoisezoo.load_model("ulunas")
        spec = stft(clip(args.seconds)[None], ul.geometry)
        jobs.append(("UL-UNAS", "`ulunas` PyTorch eager step", 16.0, lambda: time_torch_step(ul, spec)))
        jobs.append(("UL-UNAS", "`ulunas` ONNX Runtime step (ours)", 16.0,
                     exported_step_timer(ul, spec, tmp, "ulunas")))
        authors = args.shared / ULUNAS_ONNX
        if authors.is_file():
            sess = make_session(authors, threads=1)
            st = {i.name: np.zeros(i.shape, np.float32) for i in sess.get_inputs()[1:]}
            outs = [o.name for o in sess.get_outputs()]
            jobs.append(("UL-UNAS", "authors' streaming ONNX (ONNX Runtime)", 16.0,
                         lambda: time_onnx_session(sess, "mix", dict(st), spec.numpy(), outs,
                                                   (1, spec.shape[1], 1, 2))))
        runs: dict[int, list] = {i: [] for i in range(len(jobs))}
        for _ in range(args.repeats):  # interleaved: every system sees the same machine state
            for i, (*_, timer) in enumerate(jobs):
                runs[i].append(timer())
        for i, (group, system, hop_ms, _) in enumerate(jobs):
            r = _best(runs[i])
            rows.append({"group": group, "system": system, "hop_ms": hop_ms, **r,
                         "rtf": r["p50_ms"] / hop_ms, "runs_p50_ms": [x["p50_ms"] for x in runs[i]]})
    command = "python benchmarks/references.py" + (" " + " ".join(argv) if argv else "")
    lines = ["# Reference systems beside our models: per-hop speed", "",
             f"Command: `{command}`  ",
             f"Date: {datetime.datetime.now(datetime.timezone.utc).isoformat(timespec='seconds')}; "
             f"{platform.machine()}, one thread, {args.repeats} interleaved runs (lowest median "
             "kept; every run's median in the JSON). The model call alone per hop, states fed back; "
             "no STFT or resampling. The 2 cores were shared with other jobs: compare as ratios.", "",
             "| group | system | hop | p50 ms | p99 ms | p50 / hop |", "|---|---|---:|---:|---:|---:|"]
    for r in rows:
        lines.append(f"| {r['group']} | {r['system']} | {r['hop_ms']:g} ms | {r['p50_ms']:.3f} | "
                     f"{r['p99_ms']:.3f} | {r['rtf']:.3f} |")
    md = "\n".join(lines) + "\n"
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "references.json").write_text(json.dumps({"command": command, "rows": rows},
                                                         indent=2) + "\n")
    (args.out / "references.md").write_text(md)
    print(md)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
