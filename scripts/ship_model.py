"""Export a training checkpoint as a shipped, self-describing model inside the package.

Reads a Lightning checkpoint of ``denoisezoo train``, scores the model on the fixed development set
(``denoisezoo.datasets.devset.build_devset`` from ../shared), and writes
``src/denoisezoo/weights/NAME.pt`` with config, weights and a model card in ``meta`` (training data,
steps, hours, teacher, dev-set scores). Refuses to replace an existing file without --overwrite.

    python scripts/ship_model.py runs/gtcrn_distill/checkpoints/last.ckpt --name gtcrn
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("checkpoint", type=Path)
    ap.add_argument("--name", required=True)
    ap.add_argument("--out", type=Path, default=None, help="default: src/denoisezoo/weights/NAME.pt")
    ap.add_argument("--shared", type=Path, default=REPO.parent / "shared")
    ap.add_argument("--devset-dir", type=Path, default=Path.home() / ".cache/denoisezoo/devset")
    ap.add_argument("--extra-hours", type=float, default=0.0,
                    help="training wall hours not recorded in the checkpoint "
                         "(runs started before the counter)")
    ap.add_argument("--prior-steps", type=int, default=0,
                    help="steps the warm-start source (the run's init_from) had already trained; "
                         "added to the checkpoint's own steps in the model card")
    ap.add_argument("--int8", default="mixed", choices=("none", "static", "dynamic", "mixed"),
                    help="also quantize the step to INT8 with ONNX Runtime (calibrated on 16 training "
                         "mixtures), score it in the same run and record it in the card (default mixed)")
    ap.add_argument("--note", default="", help="free text for the model card")
    ap.add_argument("--overwrite", action="store_true")
    args = ap.parse_args(argv)
    torch.set_num_threads(1)

    from denoisezoo.api import enhance_array
    from denoisezoo.datasets.devset import build_devset
    from denoisezoo.evaluation import evaluate_systems, sign_inverted
    from denoisezoo.hub import load_model, save_checkpoint

    out = args.out or REPO / "src/denoisezoo/weights" / f"{args.name}.pt"
    if out.exists() and not args.overwrite:
        raise SystemExit(f"{out} exists (use --overwrite)")
    ck = torch.load(args.checkpoint, map_location="cpu", weights_only=False)
    model = load_model(args.checkpoint)
    hp = ck.get("hyper_parameters", {})
    counters = ck.get("denoisezoo_counters", {})
    hours = counters.get("train_seconds", 0.0) / 3600 + args.extra_hours
    steps = int(ck["global_step"]) + args.prior_steps
    dev = build_devset(args.shared, args.devset_dir)
    systems = {args.name: lambda x, sr: enhance_array(model, x, sr)}
    int8_key = f"{args.name}_int8"
    if args.int8 != "none":
        import tempfile

        q_path = Path(tempfile.mkdtemp()) / f"{int8_key}.onnx"
        q_meta = _quantize(model, q_path, args.int8, args.shared)
        q_model = load_model(q_path)
        systems[int8_key] = lambda x, sr: enhance_array(q_model, x, sr)
    res = evaluate_systems(systems, dev, workers=2, progress=False)
    def scores(system: str) -> dict[str, float]:
        return {k: round(v["mean"], 4) for k, v in res["summary"][system]["metrics"].items()
                if k in ("pesq_wb", "stoi", "estoi", "si_sdr")}

    metrics, noisy = scores(args.name), scores("noisy")
    snr = {k: res["summary"][k]["metrics"].get("snr", {}).get("mean") for k in (args.name, "noisy")}
    if None not in snr.values() and sign_inverted(snr[args.name], metrics["si_sdr"], snr["noisy"],
                                                  noisy["si_sdr"]):
        raise SystemExit(f"{args.checkpoint}: SNR {snr[args.name]:.2f} dB below the noisy input's "
                         f"{snr['noisy']:.2f} dB while SI-SDR improves: the output is scaled or "
                         "sign-inverted. For GTCRN run scripts/invert_polarity.py on the checkpoint.")
    int8 = None
    if args.int8 != "none":
        int8 = {"runtime": "onnxruntime", "mode": args.int8, "metrics": scores(int8_key),
                "check_rel_err": q_meta.get("check_rel_err"),
                "command": f"denoisezoo compress quantize --model {args.name} --mode {args.int8} "
                           "--calibration NOISY_WAVS -o model_int8.onnx"}
    meta = {
        "family": ck["denoisezoo_model"]["family"],
        "global_step": steps,
        "train_hours": round(hours, 2),
        "steps_per_second": round(steps / (hours * 3600), 3) if hours else None,
        "teacher": ck["denoisezoo_model"].get("teacher"),
        "alpha": hp.get("alpha"),
        "training_data": hp.get("training_data", ""),
        "recipe": {k: hp.get(k) for k in ("lr", "warmup_steps", "decay_steps", "grad_clip") if k in hp},
        "metrics": metrics,
        "metrics_noisy": noisy,
        "metrics_data": f"denoisezoo devset v1 ({res['summary'][args.name]['scored']} pairs, dev speech "
                        "+ dev noise of ../shared; see denoisezoo.datasets.devset)",
        "source_checkpoint": args.checkpoint.name,
        "warm_start": ({"from": hp["init_from"], "steps": args.prior_steps}
                       if hp.get("init_from") else None),
        "note": args.note,
        "int8": int8,
    }
    save_checkpoint(model, out, name=args.name, meta=meta)
    print(json.dumps({"out": str(out), **meta}, indent=2))
    return 0


def _quantize(model, out: Path, mode: str, shared: Path) -> dict:
    """INT8 ONNX Runtime step of ``model``, calibrated on 16 training mixtures at its rate."""
    from denoisezoo.compress import quantize_step
    from denoisezoo.datasets import shared_datamodule

    dm = shared_datamodule(shared, model.geometry.sample_rate, segment_seconds=2.0, batch_size=1,
                           num_workers=0, train_length=16, val_length=1, seed=0)
    calibration = [dm.train_set[i][0].numpy() for i in range(16)]
    return quantize_step(model, out, calibration, mode=mode, overwrite=True, name=out.stem)


if __name__ == "__main__":
    raise SystemExit(main())
