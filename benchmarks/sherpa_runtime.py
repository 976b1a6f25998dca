"""sherpa-onnx running our models, beside our own runtimes, in one run.

For each model: export it with ``denoisezoo export onnx --format sherpa-onnx``, run sherpa-onnx's
own speech denoiser (its STFT, one ``session.run`` per 16 ms frame, C++, one thread) on a clip, and
in the same process our ``Streamer`` hop by hop over the exported ONNX step and over PyTorch eager,
on the same clip. Reports the real-time factor of each (median of ``--repeats`` runs), the
equivalent ms per hop (RTF x hop duration: a mean, not a p50) and the SNR of sherpa-onnx's output
against ours (the equality check). Writes ``sherpa_onnx.json`` and ``sherpa_onnx.md``.

    python benchmarks/sherpa_runtime.py                       # gtcrn_dns3_ft and gtcrn_half, 10 s
    python benchmarks/sherpa_runtime.py --models gtcrn --seconds 5 --out /tmp/sh
"""

from __future__ import annotations

import argparse
import datetime
import json
import platform
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import soundfile as sf
import torch

REPO = Path(__file__).resolve().parents[1]
EXAMPLE = REPO / "examples" / "noisy_example.wav"


def _clip(seconds: float) -> tuple[np.ndarray, int]:
    x, sr = sf.read(EXAMPLE, dtype="float32")
    reps = int(np.ceil(seconds * sr / len(x)))
    return np.tile(x, reps)[: int(seconds * sr)], sr


def _time(fn, repeats: int) -> tuple[float, object]:
    times, out = [], None
    for _ in range(repeats):
        t = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times), out


def _stream(model, x: np.ndarray) -> np.ndarray:
    from denoisezoo.streaming import Streamer

    s = Streamer(model)
    hop = model.geometry.hop_length
    outs = [s.feed(torch.from_numpy(x[i : i + hop])) for i in range(0, len(x), hop)]
    outs.append(s.flush())
    return torch.cat(outs).numpy()[s.delay : s.delay + len(x)]


def measure(name: str, x: np.ndarray, sr: int, repeats: int, tmp: Path) -> dict:
    import sherpa_onnx as so

    import denoisezoo
    from denoisezoo.export import export_onnx
    from denoisezoo.export.sherpa import export_sherpa_onnx
    from denoisezoo.streaming import OnnxStepModel

    model = denoisezoo.load_model(name)
    g = model.geometry
    sherpa_path, step_path = tmp / f"{name}_sherpa.onnx", tmp / f"{name}_step.onnx"
    export_sherpa_onnx(model, sherpa_path, check_frames=0)
    export_onnx(model, step_path)
    cfg = so.OfflineSpeechDenoiserConfig(model=so.OfflineSpeechDenoiserModelConfig(
        gtcrn=so.OfflineSpeechDenoiserGtcrnModelConfig(model=str(sherpa_path)), num_threads=1))
    denoiser = so.OfflineSpeechDenoiser(cfg)
    dur = len(x) / sr
    t_sherpa, y_sherpa = _time(lambda: np.asarray(denoiser(x, sr).samples, np.float32), repeats)
    ort = OnnxStepModel(step_path, threads=1)
    t_ort, _ = _time(lambda: _stream(ort, x), repeats)
    with torch.inference_mode():
        t_eager, _ = _time(lambda: _stream(model, x), repeats)
    ref = denoisezoo.enhance_array(model, x, sr)
    n = min(len(ref), len(y_sherpa))
    snr = float(10 * np.log10(np.sum(ref[:n] ** 2) / np.sum((ref[:n] - y_sherpa[:n]) ** 2)))
    hop_ms = 1000 * g.hop_length / g.sample_rate
    rows = {"sherpa-onnx (C++, its STFT)": t_sherpa, "denoisezoo Streamer + ONNX Runtime step": t_ort,
            "denoisezoo Streamer + PyTorch eager": t_eager}
    return {"model": name, "seconds": dur, "hop_ms": hop_ms, "sherpa_vs_ours_snr_db": snr,
            "runtimes": {k: {"rtf": v / dur, "ms_per_hop": v / dur * hop_ms} for k, v in rows.items()}}


def markdown(results: list[dict], command: str) -> str:
    out = ["# sherpa-onnx running denoisezoo models, beside our runtimes", "",
           f"Command: `{command}`  ",
           f"Date: {datetime.date.today().isoformat()}; {platform.machine()}, one thread, the bundled "
           "example tiled to the clip length. RTF = processing time / audio duration (median of the "
           "repeats); ms per hop = RTF x hop (a mean over the clip, STFT and iSTFT included). "
           "Equality: SNR of sherpa-onnx's output against our offline output.", "",
           "| model | runtime | RTF | ms per 16 ms hop | sherpa-onnx vs ours |",
           "|---|---|---:|---:|---:|"]
    for r in results:
        for i, (k, v) in enumerate(r["runtimes"].items()):
            eq = f"{r['sherpa_vs_ours_snr_db']:.1f} dB" if i == 0 else ""
            out.append(f"| `{r['model']}` | {k} | {v['rtf']:.4f} | {v['ms_per_hop']:.3f} | {eq} |")
    return "\n".join(out) + "\n"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--models", nargs="+", default=["gtcrn_dns3_ft", "gtcrn_half"])
    ap.add_argument("--seconds", type=float, default=10.0)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--out", type=Path, default=REPO / "benchmarks/results/sherpa_onnx")
    args = ap.parse_args(argv)
    torch.set_num_threads(1)
    x, sr = _clip(args.seconds)
    with tempfile.TemporaryDirectory() as tmp:
        results = [measure(n, x, sr, args.repeats, Path(tmp)) for n in args.models]
    command = "python benchmarks/sherpa_runtime.py" + (" " + " ".join(argv) if argv else "")
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "sherpa_onnx.json").write_text(json.dumps({"command": command, "results": results},
                                                          indent=2) + "\n")
    md = markdown(results, command)
    (args.out / "sherpa_onnx.md").write_text(md)
    print(md)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
