"""Compression benchmark for GTCRN or the RNNoise port: float vs structured pruning vs INT8.

    DENOISEZOO_THREADS=1 python benchmarks/compression.py [--checkpoint PATH] [--steps 200]

``--checkpoint`` is anything :func:`denoisezoo.load_model` reads (default: the official GTCRN
DNS3 model); an RNNoise port (e.g. ``runs/rnnoise_16k/checkpoints/last.ckpt``) gets the rows its
family supports, the others are skipped with the reason printed and stored (``skipped``): ORT
``mixed`` (equals ``static``: the RNNoise step has no ``Conv``). Structured pruning removes
GT-block channels and GRU units of GTCRN, and input-dense and GRU units of RNNoise. RNNoise
fine-tuning distils with :class:`~denoisezoo.training.losses.RNNoiseLoss` (band gains + VAD)
instead of GTCRN's hybrid loss; its INT8 rows keep the DSP front end float
(its family's ``int8_keep_float``, :mod:`denoisezoo.rnnoise_port.family`).

Quick check (a few dev pairs, no fine-tuning, no pruning; writes to /tmp)::

    DENOISEZOO_THREADS=1 python benchmarks/compression.py --limit 5 --steps 0 --ratios \
        --rtf-seconds 3 --rtf-repeats 1 --workdir /tmp/comp --out /tmp/comp/compression

Rows: the float model; structured pruning at each ratio, one-shot and after a short distillation
fine-tune (teacher = the float model); gradual 50 % magnitude (block) sparsity fine-tuned with
:class:`~denoisezoo.compress.SparsityCallback`; INT8 ONNX Runtime static, dynamic and mixed
(static MatMul + dynamic Conv) PTQ, and static / mixed after quantization-aware fine-tuning
(:class:`~denoisezoo.compress.QATCallback`); LiteRT (TFLite) steps of the float model
(:func:`denoisezoo.export.export_tflite`, one litert-torch conversion): float32,
full-integer int8 (int8 weights, activations and I/O) and int16x8 (int8 weights, int16
activations and I/O), calibrated on the same training mixtures as ORT static PTQ. The LiteRT rows
are skipped, with the reason printed and stored, without the ``litert`` extra or the converter
(``$DENOISEZOO_LITERT_PYTHON``), or with ``--no-litert``.

Columns: learnable / non-zero parameters, MACs per second of audio (profile convention), size of
the artefact file and of the step file (``.onnx`` or ``.tflite``), real-time factor of the step run
frame by frame on one thread by its runtime (ONNX Runtime, or the LiteRT interpreter for the
``litert_*`` rows; the deployment path; all variants timed interleaved, best of repeats), and
PESQ-wb / ESTOI / SI-SDR on the fixed development set (:func:`denoisezoo.datasets.devset.build_devset`).
Fine-tuning and calibration use the TRAINING data of ../shared (never the dev set).

Writes ``benchmarks/results/compression.json`` and ``.md`` (``--out``; the README tables come from
``--out benchmarks/results/compression_gtcrn`` and ``..._rnnoise``).
"""

from __future__ import annotations

import argparse
import copy
import json
import logging
import os
import platform
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import torch

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"
OFFICIAL = SHARED / "reference/gtcrn/checkpoints/stream_onnx_models__model_trained_on_dns3.tar"


def _args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--checkpoint", default=str(OFFICIAL), help="float model (default: official DNS3)")
    p.add_argument("--shared", default=str(SHARED))
    p.add_argument("--devset", default=str(Path.home() / ".cache/denoisezoo/devset"))
    p.add_argument("--limit", type=int, default=None, help="dev pairs scored (default all)")
    p.add_argument("--steps", type=int, default=200, help="fine-tuning steps per variant")
    p.add_argument("--batch", type=int, default=4)
    p.add_argument("--segment", type=float, default=2.0)
    p.add_argument("--lr", type=float, default=5e-4)
    p.add_argument("--ratios", type=float, nargs="*", default=[0.25, 0.5, 0.75],
                   help="structured pruning ratios (none: no pruning rows)")
    p.add_argument("--criterion", default="taylor", choices=("l1", "l2", "taylor"))
    p.add_argument("--workdir", default=str(REPO / "runs/compression"))
    p.add_argument("--out", default=str(REPO / "benchmarks/results/compression"))
    p.add_argument("--rtf-seconds", type=float, default=10.0)
    p.add_argument("--rtf-repeats", type=int, default=3)
    p.add_argument("--workers", type=int, default=1, help="scoring processes")
    p.add_argument("--no-litert", action="store_true", help="skip the LiteRT rows")
    from denoisezoo.compress.quantize import WEIGHT_TYPES

    p.add_argument("--weight-types", nargs="+", default=["uint8"], choices=WEIGHT_TYPES,
                   help="ORT INT8 PTQ weight encodings, one row each (default uint8; int8 rows "
                   "depend on the CPU: VNNI or not, recorded)")
    p.add_argument("--skip", nargs="*", default=[], choices=("ptq", "sparse", "qat"),
                   help="skip these row groups (e.g. a long structured-pruning run alone)")
    p.add_argument("--litert-calibration-frames", type=int, default=2000,
                   help="calibration frames for LiteRT int8 / int16x8 (default 2000, as ORT)")
    return p.parse_args(argv)


def _datamodule(shared: Path, batch: int, segment: float, length: int, sample_rate: int,
                seed: int = 0):
    from denoisezoo.datasets import shared_datamodule

    return shared_datamodule(shared, sample_rate, segment_seconds=segment, batch_size=batch,
                             num_workers=0, train_length=max(length, 64), val_length=batch,
                             val_segment_seconds=segment, seed=seed, synthetic_noise_prob=0.35,
                             rir_prob=0.2)


def _family(model) -> tuple[str, str]:
    """``(family key, display name)`` of a loaded torch model."""
    from denoisezoo.hub import model_family

    fam = model_family(model)
    return fam, {"gtcrn": "GTCRN", "rnnoise": "RNNoise port"}.get(fam, fam)


def _loss(model) -> tuple[object | None, str]:
    """The fine-tuning loss of ``model``'s family (``None``: the systems' default hybrid loss) and
    its description."""
    if _family(model)[0] == "rnnoise":
        from denoisezoo.training.losses import RNNoiseLoss

        cfg = model.config
        return (RNNoiseLoss(sample_rate=cfg.sample_rate, frame_ms=cfg.frame_ms,
                            band_edges_hz=cfg.band_edges_hz), "RNNoise band-gain + VAD loss")
    return None, "hybrid"


def _finetune(student, teacher, dm, steps: int, lr: float, callbacks=()) -> dict:
    """Distil ``student`` from ``teacher`` (same family and geometry) with the family's loss."""
    import lightning as L

    from denoisezoo.training import DistillationSystem

    loss, loss_name = _loss(student)
    system = DistillationSystem(student, teacher=teacher, alpha=0.8, lr=lr, loss=loss,
                                warmup_steps=max(1, steps // 10), decay_steps=steps,
                                val_metrics=False, name="compressed")
    trainer = L.Trainer(max_steps=steps, accelerator="cpu", devices=1, logger=False,
                        enable_checkpointing=False, enable_progress_bar=False,
                        enable_model_summary=False, limit_val_batches=0,
                        callbacks=list(callbacks), num_sanity_val_steps=0)
    t0 = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        trainer.fit(system, datamodule=dm)
    student.eval()
    return {"steps": int(trainer.global_step), "seconds": round(time.perf_counter() - t0, 1),
            "batch": dm.batch_size, "segment_s": dm.hparams.segment_seconds, "lr": lr,
            "loss": f"0.8 * {loss_name}(student, float teacher) + 0.2 * {loss_name}(student, "
                    "clean)"}


def _rtf(step_paths: dict[str, Path], wav: np.ndarray, sr: int, repeats: int) -> dict[str, float]:
    """Real-time factor of each exported step (``.onnx`` or ``.tflite``, one thread), frame by
    frame, interleaved across variants; best of ``repeats``."""
    from denoisezoo import load_model
    from denoisezoo.dsp.stft import stft

    models = {k: load_model(p) for k, p in step_paths.items()}  # one thread by default
    spec = None
    best = {k: float("inf") for k in models}
    for _ in range(repeats):
        for k, m in models.items():  # interleaved, so machine load hits all variants alike
            if spec is None:
                spec = stft(torch.from_numpy(wav)[None], m.geometry)
            state = m.initial_state(1)
            t0 = time.perf_counter()
            for t in range(spec.shape[2]):
                _, state = m.step(spec[:, :, t], state)
            best[k] = min(best[k], (time.perf_counter() - t0) / (len(wav) / sr))
    return best


def _onnx_weight_bytes(path: Path) -> int:
    import onnx
    from onnx import numpy_helper

    return sum(numpy_helper.to_array(i).nbytes for i in onnx.load(str(path)).graph.initializer)


def main(argv=None) -> int:
    args = _args(argv)
    threads = int(os.environ.get("DENOISEZOO_THREADS", "1"))
    torch.set_num_threads(threads)
    logging.getLogger().setLevel(logging.ERROR)
    from denoisezoo import load_model
    from denoisezoo.compress import (
        QATCallback,
        SparsityCallback,
        prune_structured,
        quantize_step,
        save_compressed,
        sparsity,
        strip_qat,
    )
    from denoisezoo.datasets import calibration_pairs
    from denoisezoo.datasets.devset import build_devset
    from denoisezoo.evaluation.data import find_pairs
    from denoisezoo.evaluation.runner import evaluate_systems
    from denoisezoo.export import export_onnx, export_tflite, unavailable_reason
    from denoisezoo.hub import save_checkpoint
    from denoisezoo.profile import count_parameters, macs_per_second

    shared, work = Path(args.shared), Path(args.workdir)
    work.mkdir(parents=True, exist_ok=True)
    t_start = time.time()
    float_model = load_model(args.checkpoint).eval()
    if not isinstance(float_model, torch.nn.Module):
        raise SystemExit(f"{args.checkpoint}: an exported step; the benchmark needs a torch model")
    family, family_name = _family(float_model)
    rnnoise = family == "rnnoise"
    sr = float_model.geometry.sample_rate
    devset = build_devset(shared, Path(args.devset))
    pairs = find_pairs(devset, limit=args.limit)
    dm = _datamodule(shared, args.batch, args.segment, args.steps * args.batch, sr)
    cal_items = calibration_pairs(shared, sr, seconds=args.segment)  # training mixtures, not dev
    calibration = [n for n, _ in cal_items]
    taylor_batches = [(torch.from_numpy(n)[None], torch.from_numpy(c)[None]) for n, c in cal_items[:8]]
    teacher = copy.deepcopy(float_model).eval()

    rows: dict[str, dict] = {}
    models: dict[str, object] = {}  # torch models (evaluated offline) or loaded steps
    skipped: dict[str, str] = {}  # rows (or row groups) not run for this family, and why

    def skip(what: str, why: str) -> None:
        skipped[what] = why
        print(f"{what} skipped: {why}", flush=True)

    def add_torch(name: str, model, note: str, record: dict | None = None, ft: dict | None = None):
        model = model.eval()
        pt = work / f"{name}.pt"
        if record is None:
            save_checkpoint(model, pt, name=name)
        else:
            save_compressed(model, pt, record, name=name, source=args.checkpoint, overwrite=True,
                            meta={"finetune": ft} if ft else None)
        onnx_path = work / f"{name}.onnx"
        export_onnx(model, onnx_path, name=name, overwrite=True)
        rows[name] = {"variant": name, "note": note, "params": count_parameters(model),
                      "nonzero_params": sum(int((p != 0).sum()) for p in model.parameters()),
                      "macs_per_s": macs_per_second(model), "file_bytes": pt.stat().st_size,
                      "runtime": "onnxruntime", "step": str(onnx_path),
                      "step_bytes": onnx_path.stat().st_size,
                      "step_weight_bytes": _onnx_weight_bytes(onnx_path),
                      "finetune": ft, "compression": record}
        models[name] = model
        print(f"[{time.time() - t_start:7.0f}s] {name}: {rows[name]['params']} params", flush=True)

    def add_step(name: str, path: Path, meta: dict, ref: str, note: str, ft: dict | None = None):
        """A row for an exported step (``.onnx`` on ONNX Runtime or ``.tflite`` on LiteRT)."""
        base = rows[ref]
        onnx = path.suffix == ".onnx"
        rows[name] = {"variant": name, "note": note, "params": base["params"],
                      "nonzero_params": base["nonzero_params"], "macs_per_s": base["macs_per_s"],
                      "file_bytes": path.stat().st_size + path.with_suffix(".json").stat().st_size,
                      "runtime": "onnxruntime" if onnx else "litert", "step": str(path),
                      "step_bytes": path.stat().st_size,
                      "step_weight_bytes": _onnx_weight_bytes(path) if onnx else None,
                      "precision": meta.get("precision"), "finetune": ft,
                      "compression": meta.get("compression"),
                      "check_rel_err": meta.get("check_rel_err"),
                      "check_max_abs_diff": meta.get("check_max_abs_diff")}
        models[name] = load_model(path)
        print(f"[{time.time() - t_start:7.0f}s] {name}: rel err vs float "
              f"{meta.get('check_rel_err', float('nan')):.3g}", flush=True)

    add_torch("float", float_model, f"float reference ({Path(args.checkpoint).name})")

    # --- INT8 post-training quantization of the float model
    no_conv = ("mixed = static MatMul/Gemm + dynamic Conv, and the RNNoise step graph has no "
               "Conv: it would be the static model")
    for mode in ("static", "dynamic", "mixed") if "ptq" not in args.skip else ():
        if rnnoise and mode == "mixed":
            skip("int8_mixed_ptq", no_conv)
            continue
        for wt in args.weight_types:
            tag = f"int8_{mode}_ptq" + ("" if wt == "uint8" else f"_{wt}_weights")
            p = work / f"{tag}.onnx"
            meta = quantize_step(float_model, p, calibration, mode=mode, overwrite=True,
                                 weights=wt, name=tag, source=args.checkpoint)
            add_step(tag, p, meta, "float",
                     f"ONNX Runtime INT8 {mode} PTQ"
                     + ("" if mode == "dynamic" else ", calibrated on 16 training mixtures")
                     + f", weights {meta['compression']['weights']}")

    # --- LiteRT: float32 step, then full-integer int8 and int16x8 from that one conversion
    litert_skipped = "--no-litert" if args.no_litert else unavailable_reason()
    litert_error = None
    if litert_skipped:
        print(f"LiteRT rows skipped: {litert_skipped}", flush=True)
    else:
        fl = work / "litert_float.tflite"
        try:
            meta = export_tflite(float_model, fl, name="litert_float", overwrite=True,
                                 check_frames=300)
            add_step("litert_float", fl, meta, "float",
                     f"LiteRT float32 step (litert-torch {meta['litert_torch']}; max abs diff vs "
                     f"PyTorch {meta['check_max_abs_diff']:.1e} on 300 random frames)")
        except Exception as exc:  # noqa: BLE001 - reported; the other rows still run
            litert_error = f"{type(exc).__name__}: {str(exc).strip().splitlines()[0][:300]}"
            print(f"LiteRT rows failed: {litert_error}", flush=True)
        for bits, prec in (() if litert_error else ((8, "int8"), (16, "int16x8"))):
            p = work / f"litert_{prec}_ptq.tflite"
            try:  # each precision on its own: a quantizer failure leaves the other row
                meta = export_tflite(float_model, p, int8=True, calibration=calibration,
                                     activation_bits=bits, float_tflite=fl, check_frames=100,
                                     max_calibration_frames=args.litert_calibration_frames,
                                     name=f"litert_{prec}_ptq", overwrite=True)
            except Exception as exc:  # noqa: BLE001 - reported; the other rows still run
                err = f"{type(exc).__name__}: {str(exc).strip().splitlines()[0][:300]}"
                skip(f"litert_{prec}_ptq", f"LiteRT {prec} quantization failed ({err})")
                continue
            rec = meta["compression"]
            act = "int8 activations and I/O" if bits == 8 else "int16 activations and I/O"
            kind = "full-integer"
            if rnnoise:  # the family's litert_quant_scope: the network only, the DSP front end in float
                act, kind = act.replace(" and I/O", " in the network, DSP in float"), "network"
            float_ops = ", ".join(f"{k} x{v}" for k, v in rec["float_ops"].items()) or "none"
            add_step(f"litert_{prec}_ptq", p, meta, "float",
                     f"LiteRT {kind} {prec} PTQ: int8 weights per channel, {act}, "
                     f"calibrated on {rec['calibration_frames']} frames of 16 training "
                     f"mixtures ({rec['calibration_seconds']:g} s); ops left in float: "
                     f"{float_ops}; relative error vs PyTorch {meta['check_rel_err']:.3f} "
                     f"on {meta['check_frames']} calibration frames")

    # --- structured pruning, one-shot then distillation fine-tune
    for r in args.ratios:
        tag = f"struct{round(r * 100)}"
        pruned, rec = prune_structured(float_model, r, criterion=args.criterion, scope="layer",
                                       batches=taylor_batches if args.criterion == "taylor" else None)
        add_torch(f"{tag}_oneshot", copy.deepcopy(pruned), f"structured {r:.0%} of units, "
                  f"{args.criterion}, no fine-tuning", rec)
        if args.steps > 0:
            ft = _finetune(pruned, teacher, dm, args.steps, args.lr)
            add_torch(f"{tag}_ft", pruned, f"structured {r:.0%} + {ft['steps']} distillation "
                      f"steps", rec, ft)

    if args.steps > 0 and "sparse" not in args.skip:
        # --- gradual 50 % block sparsity (GRU + linear weights) during fine-tuning
        student = copy.deepcopy(float_model).train()
        cb = SparsityCallback(final_sparsity=0.5, begin_step=0, end_step=int(0.7 * args.steps),
                              frequency=max(1, args.steps // 20), block=(4, 4))
        ft = _finetune(student, teacher, dm, args.steps, args.lr, [cb])
        rec = {"method": "block_sparse", "ratio": 0.5, "block": [4, 4], "schedule": "cubic",
               "kinds": ["gru", "linear"], "sparsity": sparsity(student)}
        add_torch("sparse50_ft", student, f"gradual 4x4 block sparsity of GRU/linear weights "
                  f"({rec['sparsity']:.0%} reached) during {ft['steps']} steps", rec, ft)

    if args.steps > 0 and "qat" not in args.skip:
        # --- QAT, then the same INT8 ONNX Runtime path
        student = copy.deepcopy(float_model).train()
        ft = _finetune(student, teacher, dm, args.steps, args.lr / 5, [QATCallback()])
        strip_qat(student)
        save_compressed(student, work / "qat_float.pt", {"method": "qat", "finetune": ft},
                        name="qat_float", source=args.checkpoint, overwrite=True)
        for mode in ("static", "mixed"):
            if rnnoise and mode == "mixed":
                skip("int8_mixed_qat", no_conv)
                continue
            p = work / f"int8_{mode}_qat.onnx"
            meta = quantize_step(student.eval(), p, calibration, mode=mode, overwrite=True,
                                 name=f"int8_{mode}_qat", source=args.checkpoint,
                                 extra_record={"qat": ft})
            add_step(f"int8_{mode}_qat", p, meta, "float", f"QAT ({ft['steps']} steps) + ONNX "
                     f"Runtime INT8 {mode}", ft)

    # --- real-time factor of every ONNX step on one thread (interleaved)
    wav = np.concatenate([p.noisy for p in _load_pairs(pairs[:6])])[: int(args.rtf_seconds * sr)]
    rtf = _rtf({k: Path(r["step"]) for k, r in rows.items()}, wav, sr, args.rtf_repeats)
    for k, v in rtf.items():
        rows[k]["rtf_step_1thread"] = v

    # --- quality on the development set
    from denoisezoo.api import enhance_array

    def system(m):
        return lambda audio, rate: enhance_array(m, audio, rate)

    print(f"[{time.time() - t_start:7.0f}s] scoring {len(pairs)} dev pairs x {len(models)} systems",
          flush=True)
    res = evaluate_systems({k: system(m) for k, m in models.items()}, pairs, workers=args.workers,
                           progress=False)
    summary = res["summary"]
    for k in rows:
        s = summary[k]
        for key in ("pesq_wb", "stoi", "estoi", "si_sdr"):
            rows[k][key] = s["metrics"][key]["mean"] if key in s.get("metrics", {}) else None
    noisy = {key: summary["noisy"]["metrics"][key]["mean"]
             for key in ("pesq_wb", "stoi", "estoi", "si_sdr")}
    f_pesq = rows["float"]["pesq_wb"]
    for r in rows.values():
        r["delta_pesq"] = None if r["pesq_wb"] is None else r["pesq_wb"] - f_pesq
    out = {
        "benchmark": "compression",
        "family": family, "family_name": family_name,
        "float_checkpoint": str(args.checkpoint),
        "devset": str(devset), "pairs": len(pairs), "noisy": noisy,
        "machine": {"cpu_count": os.cpu_count(), "platform": platform.platform(),
                    "python": sys.version.split()[0], "torch": torch.__version__,
                    "torch_threads": threads, "load_avg_at_end": os.getloadavg(),
                    "cpu_vnni": _cpu_has_vnni()},
        "targets": {"int8_delta_pesq": -0.05, "struct50_ft_delta_pesq": -0.10},
        "litert_skipped": litert_skipped, "litert_error": litert_error, "skipped": skipped,
        "rows": list(rows.values()),
        "seconds": round(time.time() - t_start, 1),
    }
    outp = Path(args.out)
    outp.parent.mkdir(parents=True, exist_ok=True)
    outp.with_suffix(".json").write_text(json.dumps(out, indent=2, default=str) + "\n")
    outp.with_suffix(".md").write_text(_markdown(out))
    print(_markdown(out))
    return 0


def _cpu_has_vnni() -> bool | None:
    """Whether this CPU has VNNI (full 8-bit INT8 weights are exact only there); None if unknown."""
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        return None
    return "avx512_vnni" in flags or "avx_vnni" in flags


def _load_pairs(pairs):
    from denoisezoo.evaluation.data import load_pair

    return [load_pair(p) for p in pairs]


def _markdown(out: dict) -> str:
    def f(v, fmt):
        return "n/a" if v is None else format(v, fmt)

    lines = [
        f"{out.get('family_name', 'GTCRN')} compression of `{out['float_checkpoint']}` on the "
        f"development set ({out['pairs']} pairs; noisy PESQ-wb "
        f"{out['noisy']['pesq_wb']:.2f}, ESTOI {out['noisy']['estoi']:.3f}, SI-SDR "
        f"{out['noisy']['si_sdr']:.2f} dB). RTF: the step on its runtime (ONNX Runtime, or the "
        f"LiteRT interpreter for `litert_*`), frame by frame, 1 thread, best of repeats, on a "
        f"shared 2-vCPU machine under load (load average at the end "
        f"{out['machine']['load_avg_at_end'][0]:.1f}); compare rows as ratios. CPU with VNNI: "
        f"{ {True: 'yes', False: 'no', None: 'unknown'}[out['machine'].get('cpu_vnni')] } (ORT "
        f"INT8 rows: uint8 weights unless the name says otherwise; int8 weights are exact only "
        f"with VNNI).",
        "",
        "| variant | runtime | params | non-zero | MMAC/s | file KB | step KB (weights KB) | RTF | "
        "PESQ-wb | dPESQ | STOI | ESTOI | SI-SDR |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    notes = [f"Skipped {what}: {why}." for what, why in (out.get("skipped") or {}).items()]
    if out.get("litert_skipped") or out.get("litert_error"):
        why = out.get("litert_skipped") or f"failed ({out['litert_error']})"
        notes.insert(0, f"LiteRT rows: {why}.")
    for note in reversed(notes):
        lines[1:1] = ["", note]
    for r in out["rows"]:
        w = r.get("step_weight_bytes")
        step = f"{r['step_bytes'] / 1024:.0f}" + (f" ({w / 1024:.0f})" if w is not None else "")
        lines.append(
            f"| {r['variant']} | {r['runtime']} | {r['params']} | {r['nonzero_params']} | "
            f"{r['macs_per_s'] / 1e6:.1f} | {r['file_bytes'] / 1024:.0f} | {step} | "
            f"{f(r.get('rtf_step_1thread'), '.4f')} | "
            f"{f(r['pesq_wb'], '.3f')} | {f(r['delta_pesq'], '+.3f')} | {f(r.get('stoi'), '.3f')} | "
            f"{f(r['estoi'], '.3f')} | "
            f"{f(r['si_sdr'], '.2f')} |")
    if out.get("family", "gtcrn") == "gtcrn":
        lines += ["", "ONNX Runtime rows: RTF is dominated by the per-call overhead of one "
                  "`session.run` per 16 ms frame; on this shared machine differences under about "
                  "+-25 % between rows are run-to-run noise (FIELD_NOTES). ORT INT8 files are not "
                  "smaller: the frozen float ERB matrices (96 KB), the float GRUs and the QDQ scale "
                  "/ zero-point tensors outweigh the INT8 conv / linear weights."]
    else:
        lines += ["", "ONNX Runtime rows: RTF is dominated by the per-call overhead of one "
                  "`session.run` per frame; on this shared machine differences under about +-25 % "
                  "between rows are run-to-run noise. INT8 (ORT): the learned MatMuls (dense "
                  "layers, the Keras GRUs' input and recurrent products) are INT8; the DSP front "
                  "end (frame DFTs, band / DCT matrices, pitch correlations) stays float; its "
                  "constant matrices (DFT bases, pitch lag indices) are ONNX Constant nodes, not "
                  "initializers: outside the weights column, yet most of the step file. QAT "
                  "fake-quantizes the dense layers only (not the GRU products that ORT "
                  "quantizes). LiteRT int8 / int16x8 quantize the network (input dense layer, "
                  "the three GRUs, output dense layer: int8 weights, int8 / int16 activations); "
                  "the DSP front end stays float (LiteRT's integer kernels do not fit it: see "
                  "denoisezoo.export.litert)."]
    lite = [r for r in out["rows"] if r["runtime"] == "litert"]
    if lite:
        lines += ["", "LiteRT step files (`.tflite`, no sidecar): " + ", ".join(
            f"{r['precision']} {r['step_bytes'] / 1024:.0f} KB" for r in lite)
            + "; weights are not broken out (the float32 file also holds the GRUs unrolled into "
              "elementwise ops)."]
    lines += ["", "Variants:", ""]
    lines += [f"- `{r['variant']}`: {r['note']}" for r in out["rows"]]
    lines.append("")
    return "\n".join(lines)

if __name__ == "__main__":
    sys.exit(main())
