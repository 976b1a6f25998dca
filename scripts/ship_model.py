"""Export a training checkpoint as a shipped, self-describing model inside the package.

Reads a Lightning checkpoint of ``denoisezoo train``, scores the model on the fixed development set
(``denoisezoo.datasets.devset.build_devset`` from ../shared), and writes
``src/denoisezoo/weights/NAME.pt`` with config, weights and a model card in ``meta`` (training data,
steps, hours, teacher, dev-set scores). Refuses to replace an existing file without --overwrite.

    python scripts/ship_model.py runs/gtcrn_distill/checkpoints/last.ckpt --name gtcrn

``--rescore-int8`` re-quantizes already shipped weights with the current INT8 defaults, scores that step
on the development set and replaces only the card's ``int8`` entry (weights and the float scores stay):

    python scripts/ship_model.py src/denoisezoo/weights/gtcrn.pt --rescore-int8

The model card (``docs/models/NAME.md``) is embedded in the weights (``meta["card"]``, printed by
``denoisezoo models NAME``). After editing a card, ``--update-card`` re-embeds it in place
(weights and scores untouched)::

    python scripts/ship_model.py src/denoisezoo/weights/gtcrn.pt --update-card
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
    ap.add_argument("--name", default=None, help="model name (required unless --rescore-int8)")
    ap.add_argument("--out", type=Path, default=None, help="default: src/denoisezoo/weights/NAME.pt")
    ap.add_argument("--shared", type=Path, default=REPO.parent / "shared")
    ap.add_argument("--devset-dir", type=Path, default=Path.home() / ".cache/denoisezoo/devset")
    ap.add_argument("--extra-hours", type=float, default=0.0,
                    help="training wall hours not recorded in the checkpoint "
                         "(runs started before the counter)")
    ap.add_argument("--prior-steps", type=int, default=0,
                    help="steps the warm-start source (the run's init_from) had already trained; "
                         "added to the checkpoint's own steps in the model card")
    ap.add_argument("--int8", default=None, choices=("none", "static", "dynamic", "mixed"),
                    help="also quantize the step to INT8 with ONNX Runtime (calibrated on 16 training "
                         "mixtures), score it in the same run and record it in the card (default mixed)")
    ap.add_argument("--note", default="", help="free text for the model card")
    ap.add_argument("--overwrite", action="store_true")
    ap.add_argument("--rescore-int8", action="store_true",
                    help="CHECKPOINT is a shipped .pt: redo and rescore only its INT8 step (mode from "
                         "its card, or --int8 if given explicitly), in place")
    ap.add_argument("--update-card", action="store_true",
                    help="CHECKPOINT is a shipped .pt: embed docs/models/NAME.md as its card, in place")
    args = ap.parse_args(argv)
    torch.set_num_threads(1)
    if args.update_card:
        return update_card(args.checkpoint)
    if args.rescore_int8:
        return rescore_int8(args.checkpoint, args.shared, args.devset_dir, args.int8)
    if not args.name:
        ap.error("--name is required")
    args.int8 = args.int8 or "mixed"

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
    own_steps = int(ck["global_step"])  # this run's; the warm-start source's took other hours
    steps = own_steps + args.prior_steps
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
    metrics, noisy = _card_scores(res, args.name), _card_scores(res, "noisy")
    snr = {k: res["summary"][k]["metrics"].get("snr", {}).get("mean") for k in (args.name, "noisy")}
    if None not in snr.values() and sign_inverted(snr[args.name], metrics["si_sdr"], snr["noisy"],
                                                  noisy["si_sdr"]):
        raise SystemExit(f"{args.checkpoint}: SNR {snr[args.name]:.2f} dB below the noisy input's "
                         f"{snr['noisy']:.2f} dB while SI-SDR improves: the output is scaled or "
                         "sign-inverted. For GTCRN run scripts/invert_polarity.py on the checkpoint.")
    int8 = (_int8_card(args.name, args.int8, _card_scores(res, int8_key), q_meta)
            if args.int8 != "none" else None)
    meta = {
        "family": ck["denoisezoo_model"]["family"],
        "global_step": steps,
        "train_hours": round(hours, 2),
        "steps_per_second": round(own_steps / (hours * 3600), 3) if hours else None,
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
        "card": _card_text(args.name),
    }
    save_checkpoint(model, out, name=args.name, meta=meta)
    print(json.dumps({"out": str(out), **meta}, indent=2))
    return 0


def _card_text(name: str) -> str | None:
    """The card ``docs/models/NAME.md``, if written."""
    path = REPO / "docs" / "models" / f"{name}.md"
    return path.read_text() if path.is_file() else None


def update_card(path: Path) -> int:
    """Embed ``docs/models/NAME.md`` in the shipped weights at ``path`` (in place, atomically)."""
    ck = torch.load(path, map_location="cpu", weights_only=True)
    name = ck.get("name") or path.stem
    card = _card_text(name)
    if card is None:
        raise SystemExit(f"docs/models/{name}.md not found")
    ck["meta"]["card"] = card
    tmp = path.with_name(path.name + ".part")
    torch.save(ck, tmp)
    tmp.replace(path)
    print(f"{path}: embedded docs/models/{name}.md ({len(card)} characters)")
    return 0


def _card_scores(res: dict, system: str) -> dict[str, float]:
    """The model card's dev-set means of ``system`` in an ``evaluate_systems`` result."""
    return {k: round(v["mean"], 4) for k, v in res["summary"][system]["metrics"].items()
            if k in ("pesq_wb", "stoi", "estoi", "si_sdr")}


def _int8_card(name: str, mode: str, metrics: dict, q_meta: dict) -> dict:
    rec = q_meta.get("compression", {})
    return {"runtime": "onnxruntime", "mode": mode, "metrics": metrics,
            "weights": rec.get("weights"),
            "check_rel_err": q_meta.get("check_rel_err"),
            "command": f"denoisezoo compress quantize --model {name} --mode {mode} "
                       "--calibration NOISY_WAVS -o model_int8.onnx"}


def rescore_int8(path: Path, shared: Path, devset_dir: Path, mode: str | None) -> int:
    """Redo the INT8 step of shipped weights at ``path`` and replace the card's ``int8`` entry."""
    import datetime
    import tempfile

    from denoisezoo.api import enhance_array
    from denoisezoo.datasets.devset import build_devset
    from denoisezoo.evaluation import evaluate_systems
    from denoisezoo.hub import load_model

    ck = torch.load(path, map_location="cpu", weights_only=False)
    if "meta" not in ck or "state_dict" not in ck:
        raise SystemExit(f"{path}: not a shipped denoisezoo checkpoint")
    name = ck["name"]
    old = ck["meta"].get("int8") or {}
    mode = mode or old.get("mode") or "mixed"
    if mode == "none":
        raise SystemExit("--rescore-int8 needs an INT8 mode")
    model = load_model(path)
    q_path = Path(tempfile.mkdtemp()) / f"{name}_int8.onnx"
    q_meta = _quantize(model, q_path, mode, shared)
    q_model = load_model(q_path)
    dev = build_devset(shared, devset_dir)
    res = evaluate_systems({"int8": lambda x, sr: enhance_array(q_model, x, sr)}, dev, workers=2,
                           progress=False)
    card = _int8_card(name, mode, _card_scores(res, "int8"), q_meta)
    card["rescored"] = datetime.date.today().isoformat()
    card["previous"] = {k: old.get(k) for k in ("mode", "metrics") if k in old}
    ck["meta"]["int8"] = card
    tmp = path.with_name(path.name + ".part")
    torch.save(ck, tmp)
    tmp.replace(path)
    print(json.dumps({"out": str(path), "float": ck["meta"].get("metrics"), "int8": card}, indent=2))
    return 0


def _quantize(model, out: Path, mode: str, shared: Path) -> dict:
    """INT8 ONNX Runtime step of ``model``, calibrated on 16 training mixtures at its rate."""
    from denoisezoo.compress import quantize_step
    from denoisezoo.datasets import calibration_pairs

    calibration = [noisy for noisy, _ in calibration_pairs(shared, model.geometry.sample_rate)]
    return quantize_step(model, out, calibration, mode=mode, overwrite=True, name=out.stem)


if __name__ == "__main__":
    raise SystemExit(main())
