"""LiteRT (TFLite) export of the streaming step: conversion rewrite, CLI, interpreter equality.

The rewrite and error-path tests always run. The conversion tests need the ``litert`` extra
(``ai-edge-litert`` + ``ai-edge-quantizer``) in this environment and a litert-torch converter
(``denoisezoo export tflite --install-converter`` once,
``$DENOISEZOO_LITERT_PYTHON``, or ``litert_torch`` importable); they skip otherwise, or fail
when ``DENOISEZOO_REQUIRE_LITERT=1`` (set it in CI). One float conversion of gtcrn_tiny takes
60-100 s here, so it is done once per module.
"""

from __future__ import annotations

import json
import os

import numpy as np
import pytest
import torch
from conftest import speechlike
from torch import nn

from denoisezoo.cli import main
from denoisezoo.export import litert, litert_env
from denoisezoo.export.litert import ExactConvTranspose, conv_transpose2d_exact, export_tflite
from denoisezoo.gtcrn import gtcrn_tiny
from denoisezoo.rnnoise_port.family import FAMILY as RNNOISE_FAMILY
from denoisezoo.streaming import LiteRTStepModel, LiteRTUnavailableError, Streamer

# relative spectral error vs PyTorch on held-out speech-like audio, gtcrn_tiny (seed 1234),
# 120 calibration frames; measured 0.160 (int8) and 0.014 (int16x8): bounds with ~1.6-2x margin
INT8_REL_BOUND = 0.25
INT16X8_REL_BOUND = 0.03


def _no_converter(monkeypatch, tmp_path) -> None:
    """As on a machine without the converter: no env var, no default venv, no litert_torch here."""
    monkeypatch.delenv(litert_env.CONVERTER_ENV, raising=False)
    monkeypatch.setattr(litert_env, "DEFAULT_DIR", tmp_path / "no-converter")
    for mod in (litert, litert_env):
        monkeypatch.setattr(mod, "_litert_torch_here", lambda: False)


# ---------------------------------------------------------------------------- always run


@pytest.mark.parametrize(
    "args, kwargs",
    [
        ((8, 8, (1, 5), (1, 2), (0, 2)), {"groups": 2}),  # GTCRN decoder stem (strided, grouped)
        ((8, 2, (1, 5), (1, 2), (0, 2)), {}),  # last decoder conv
        ((8, 8, (3, 3), 1, (4, 1)), {"dilation": (2, 1), "groups": 8}),  # causal depthwise
        ((6, 4, (3, 3), 1, (4, 1)), {"dilation": (2, 1), "groups": 2}),  # grouped, stride 1
        ((8, 4, 1), {}),  # pointwise
        ((4, 3, (3, 3), (2, 2), (1, 1)), {"output_padding": (1, 0)}),  # output padding
    ],
)
def test_conv_transpose_rewrite_is_exact(args, kwargs):
    conv = nn.ConvTranspose2d(*args, **kwargs)
    x = torch.randn(2, conv.in_channels, 7, 11)
    with torch.no_grad():
        ref = conv(x)
        got = conv_transpose2d_exact(x, conv.weight, conv.bias, conv.stride, conv.padding,
                                     conv.output_padding, conv.groups, conv.dilation)
        with ExactConvTranspose():
            got_mode = conv(x)
    assert got.shape == ref.shape
    assert (got - ref).abs().max() < 1e-5
    assert torch.equal(got, got_mode)


def test_rewrite_keeps_gtcrn_step():
    model = gtcrn_tiny().eval()
    spec = torch.randn(1, 257, 12, 2)
    with torch.no_grad():
        ref, ref_state = model.forward_stateful(spec, None)
        with ExactConvTranspose():
            got, got_state = model.forward_stateful(spec, None)
    assert (ref - got).abs().max() < 1e-5
    for a, b in zip(ref_state, got_state, strict=True):
        assert (a - b).abs().max() < 1e-5


def test_export_without_converter_says_what_to_install(tmp_path, monkeypatch, capsys):
    _no_converter(monkeypatch, tmp_path)
    out = tmp_path / "m.tflite"
    with pytest.raises(LiteRTUnavailableError, match="litert-torch==0.10"):
        export_tflite(gtcrn_tiny(), out)
    assert main(["export", "tflite", "--preset", "gtcrn_tiny", "-o", str(out)]) == 1
    err = capsys.readouterr().err
    assert "--install-converter" in err and litert.CONVERTER_ENV in err and "typing-extensions" in err
    assert not out.exists()


def test_unavailable_reason_names_the_missing_piece(tmp_path, monkeypatch):
    monkeypatch.setattr(litert_env, "litert_available", lambda: False)
    assert "pip install 'denoisezoo[litert]'" in litert.unavailable_reason()
    monkeypatch.setattr(litert_env, "litert_available", lambda: True)
    _no_converter(monkeypatch, tmp_path)
    assert "--install-converter" in litert.unavailable_reason()
    assert "not an executable" in litert.unavailable_reason(tmp_path / "python")
    monkeypatch.setattr(litert_env, "_litert_torch_here", lambda: True)
    assert litert.unavailable_reason() is None
    # a converter environment at the default place is found without any setting
    fake = litert_env._venv_python(litert_env.DEFAULT_DIR)
    fake.parent.mkdir(parents=True)
    fake.write_text("#!/bin/sh\n")
    fake.chmod(0o755)
    monkeypatch.setattr(litert_env, "_litert_torch_here", lambda: False)
    assert litert_env.converter_python() == str(fake) and litert.unavailable_reason() is None


def test_setup_converter_makes_a_venv_and_installs_the_converter(tmp_path, monkeypatch):
    """The one setup command: venv with this torch visible, then pip install inside it, then a
    check; run against a local stand-in package (no network), then idempotent."""
    import subprocess as sp
    import zipfile

    pkg = tmp_path / "litert_torch-0.10.0-py3-none-any.whl"  # a stand-in wheel, built by hand
    info = "litert_torch-0.10.0.dist-info"
    with zipfile.ZipFile(pkg, "w") as z:
        z.writestr("litert_torch/__init__.py", "__version__ = 'stub'\n")
        z.writestr(f"{info}/METADATA", "Metadata-Version: 2.1\nName: litert-torch\nVersion: 0.10.0\n")
        z.writestr(f"{info}/WHEEL", "Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: true\n"
                                    "Tag: py3-none-any\n")
        z.writestr(f"{info}/RECORD", "")
    calls = []
    real_run = sp.run
    monkeypatch.setattr(litert_env.subprocess, "run",
                        lambda cmd, **kw: calls.append(cmd) or real_run(cmd, **kw))
    env = tmp_path / "conv"
    py = litert_env.setup_converter(env, requirement=str(pkg),
                                    pip_args=("--no-index",))
    assert py == litert_env._venv_python(env) and py.is_file()
    assert calls[0][1:3] == ["-m", "venv"] and "--system-site-packages" in calls[0]
    assert calls[1][0] == str(py) and calls[1][1:4] == ["-m", "pip", "install"]
    n = len(calls)
    assert litert_env.setup_converter(env, requirement="never-installed") == py  # reused
    assert len(calls) == n + 1  # only the probe ran
    out = real_run([str(py), "-c", "import torch, litert_torch; print(litert_torch.__version__)"],
                   capture_output=True, text=True)
    assert out.stdout.strip() == "stub"  # this environment's torch is visible in the venv


def test_export_rejects_bad_converter_path_and_names(tmp_path):
    with pytest.raises(LiteRTUnavailableError, match="not an executable"):
        export_tflite(gtcrn_tiny(), tmp_path / "m.tflite", python=tmp_path / "nope" / "python")
    with pytest.raises(ValueError, match=".tflite"):
        export_tflite(gtcrn_tiny(), tmp_path / "m.onnx")
    with pytest.raises(ValueError, match="calibration"):
        export_tflite(gtcrn_tiny(), tmp_path / "m.tflite", int8=True)
    with pytest.raises(TypeError, match="PyTorch model"):
        export_tflite(object(), tmp_path / "m.tflite")


# ---------------------------------------------------------------------------- conversion


def _need_litert() -> None:
    """Skip without the extra / converter, or fail if ``DENOISEZOO_REQUIRE_LITERT=1`` (CI)."""
    missing = pytest.fail if os.environ.get("DENOISEZOO_REQUIRE_LITERT") == "1" else pytest.skip
    why = litert.unavailable_reason()
    if why:
        missing(why)


@pytest.fixture(scope="module")
def tiny_float(tmp_path_factory):
    """gtcrn_tiny (seeded weights) exported through the CLI: (model, .tflite path, sidecar)."""
    _need_litert()
    from denoisezoo.hub import save_checkpoint

    torch.manual_seed(1234)
    model = gtcrn_tiny().eval()
    d = tmp_path_factory.mktemp("litert")
    ckpt = save_checkpoint(model, d / "tiny.pt", name="tiny_test")
    out = d / "tiny.tflite"
    rc = main(["export", "tflite", "--checkpoint", str(ckpt), "-o", str(out),
               "--check-frames", "300"])
    assert rc == 0
    meta = json.loads(out.with_suffix(".json").read_text())
    return model, out, meta


@pytest.mark.slow
def test_float_tflite_equals_eager(tiny_float):
    model, path, meta = tiny_float
    assert meta["precision"] == "float32" and meta["name"] == "tiny_test"
    assert [t["name"] for t in meta["inputs"]] == ["frame", "conv", "tra", "rnn"]
    assert meta["check_frames"] == 300 and meta["check_max_abs_diff"] < 1e-4
    lite = LiteRTStepModel(path)
    assert not lite.quantized and lite.backend == "litert"
    spec = torch.randn(1, 257, 400, 2, generator=torch.Generator().manual_seed(5))
    with torch.inference_mode():
        ref, ref_state = model.forward_stateful(spec, None)
    got, got_state = lite.forward_stateful(spec, None)
    assert (ref - got).abs().max() < 1e-4
    for a, b in zip(ref_state, got_state, strict=True):
        assert np.abs(a.numpy() - b).max() < 1e-4
    # continuing from a state == one call over all frames
    a, st = lite.forward_stateful(spec[:, :, :150], None)
    b, st = lite.forward_stateful(spec[:, :, 150:], st)
    assert torch.equal(torch.cat([a, b], dim=2), got)


@pytest.mark.slow
def test_litert_batch_and_streamer(tiny_float):
    model, path, _ = tiny_float
    lite = LiteRTStepModel(path)
    spec = torch.randn(2, 257, 30, 2, generator=torch.Generator().manual_seed(6))
    with torch.inference_mode():
        ref = model.forward_stateful(spec, None)[0]
    got, state = lite.forward_stateful(spec, None)
    assert (ref - got).abs().max() < 1e-4
    assert state[0].shape[0] == 2 and state[1].shape[1] == 2  # per-stream states, batch axes
    x = torch.from_numpy(speechlike(16000 * 2 // 3))
    outs = {}
    for key, m in (("torch", model), ("litert", lite)):
        s = Streamer(m)
        outs[key] = torch.cat([s.feed(x[:1000]), s.feed(x[1000:]), s.flush()])
        assert s.backend == key
    assert outs["litert"].shape == outs["torch"].shape
    assert (outs["litert"] - outs["torch"]).abs().max() < 1e-4


def _int8_export(tiny_float, tmp_path, monkeypatch, bits: int):
    """``export_tflite(int8=True)`` on gtcrn_tiny, reusing the fixture's float conversion
    (``float_tflite``: no converter needed)."""
    model, path, _ = tiny_float
    _no_converter(monkeypatch, tmp_path)
    audio = [speechlike(16000 * 3, seed=s) for s in (1, 2)]
    q = tmp_path / f"tiny_w8a{bits}.tflite"
    meta = export_tflite(model, q, int8=True, calibration=audio, max_calibration_frames=120,
                         activation_bits=bits, check_frames=100, float_tflite=path)
    assert meta["converted_from"] == str(path) and meta["litert_torch"]
    return model, q, meta


@pytest.mark.slow
def test_float_tflite_reuse_refuses_another_model(tiny_float, tmp_path):
    _, path, _ = tiny_float
    other = gtcrn_tiny().eval()  # different random weights
    audio = [speechlike(16000, seed=1)]
    with pytest.raises(ValueError, match="not a float export of this model"):
        export_tflite(other, tmp_path / "q.tflite", int8=True, calibration=audio,
                      float_tflite=path)
    assert not (tmp_path / "q.tflite").exists()


@pytest.mark.slow
def test_failed_check_leaves_no_model_file(tiny_float, tmp_path, monkeypatch):
    model, path, _ = tiny_float

    def boom(*args, **kwargs):
        raise RuntimeError("interpreter refused the model")

    monkeypatch.setattr(litert, "_check_export", boom)
    out = tmp_path / "copy.tflite"
    with pytest.raises(RuntimeError, match="refused"):
        export_tflite(model, out, float_tflite=path, check_frames=10)
    assert not out.exists() and not out.with_suffix(".json").exists()


@pytest.mark.slow
@pytest.mark.parametrize("bits, bound", [(8, INT8_REL_BOUND), (16, INT16X8_REL_BOUND)])
def test_quantized_tflite_within_bound(tiny_float, tmp_path, monkeypatch, bits, bound):
    from denoisezoo.dsp.stft import stft

    model, q, meta = _int8_export(tiny_float, tmp_path, monkeypatch, bits)
    assert meta["precision"] == ("int8" if bits == 8 else "int16x8")
    assert meta["compression"]["calibration_frames"] == 120
    assert meta["check_input"] == "calibration audio" and meta["check_rel_err"] < bound
    # integer everywhere but the ops ai-edge-quantizer leaves float (listed, a known few)
    assert set(meta["compression"]["float_ops"]) <= {"REVERSE_V2", "SQUARED_DIFFERENCE"}
    assert meta["compression"]["float_ops"].get("REVERSE_V2") == 2  # 1 intra GRU pair in tiny
    if bits == 16:  # int16 ADD / SUB rescale in general form (see _general_int16_add_sub)
        from ai_edge_litert import schema_py_generated as schema
        from ai_edge_litert.tools import flatbuffer_utils as fbu

        assert meta["compression"]["int16_add_sub_general_scale"] > 0
        fb = fbu.read_model(str(q))
        codes = [fbu.get_builtin_code_from_operator_code(c) for c in fb.operatorCodes]
        add_sub = [op for op in fb.subgraphs[0].operators if codes[op.opcodeIndex] in
                   (schema.BuiltinOperator.ADD, schema.BuiltinOperator.SUB)]
        assert len(add_sub) == meta["compression"]["int16_add_sub_general_scale"]
        assert not any(op.builtinOptions.potScaleInt16 for op in add_sub)
    lite = LiteRTStepModel(q)  # sidecar from disk
    assert lite.quantized
    want = np.int8 if bits == 8 else np.int16
    assert all(d[1] == want for d in lite._in + lite._out)  # full-integer I/O
    # held-out audio (not used for calibration)
    spec = stft(torch.from_numpy(speechlike(16000 * 2, seed=3))[None], model.geometry)
    with torch.inference_mode():
        ref = model.forward_stateful(spec, None)[0]
    got = lite.forward_stateful(spec, None)[0]
    rel = float((ref - got).norm() / ref.norm())
    assert rel < bound, rel
    # the bound is meaningful: the model output is far from its input
    assert float((ref - spec).norm() / ref.norm()) > 2 * bound


# ---------------------------------------------------------------------------- load_model(.tflite)


def test_load_tflite_without_interpreter_says_what_to_install(tmp_path, monkeypatch, wav_file,
                                                               capsys):
    import sys

    from denoisezoo import load_model
    from denoisezoo.hub import CheckpointError

    for mod in ("ai_edge_litert", "ai_edge_litert.interpreter"):
        monkeypatch.setitem(sys.modules, mod, None)  # import raises ImportError, as if absent
    path = tmp_path / "m.tflite"
    path.write_bytes(b"TFL3")
    with pytest.raises(CheckpointError, match=r"pip install 'denoisezoo\[litert\]'"):
        load_model(path)
    with pytest.raises(FileNotFoundError):
        load_model(tmp_path / "missing.tflite")
    src = wav_file(seconds=0.5)
    rc = main(["denoise", str(src), "-o", str(tmp_path / "o.wav"), "--checkpoint", str(path),
               "--no-progress"])
    assert rc == 1
    err = capsys.readouterr().err
    assert "m.tflite" in err and "LiteRT interpreter is not installed" in err
    assert not (tmp_path / "o.wav").exists()


@pytest.mark.slow
def test_load_model_tflite_is_a_drop_in_model(tiny_float):
    from denoisezoo import load_model
    from denoisezoo.export import LiteRTModel

    model, path, _ = tiny_float
    lite = load_model(path)
    assert isinstance(lite, LiteRTModel) and lite.eval() is lite
    assert lite.config == model.config and lite.geometry == model.geometry
    assert lite.checkpoint_meta["name"] == "tiny_test"
    assert lite.checkpoint_meta["format"] == "tflite"
    assert lite.checkpoint_meta["precision"] == "float32"
    with pytest.raises(TypeError, match="cannot be trained"):
        lite.train()
    spec = torch.randn(1, 257, 40, 2, generator=torch.Generator().manual_seed(7))
    with torch.inference_mode():
        ref = model(spec)
    assert (lite(spec) - ref).abs().max() < 1e-4
    x = torch.from_numpy(speechlike(5000, seed=4))
    s, e = Streamer(lite), Streamer(model)
    got = torch.cat([s.feed(x[:333]), s.feed(x[333:]), s.flush()])
    want = torch.cat([e.feed(x), e.flush()])
    assert s.backend == "litert" and got.shape == want.shape
    assert (got - want).abs().max() < 1e-4


@pytest.mark.slow
@pytest.mark.parametrize("streaming", [False, True])
def test_cli_denoise_with_tflite_equals_eager(tiny_float, tmp_path, wav_file, streaming):
    import soundfile as sf

    _, path, _ = tiny_float
    ckpt = path.with_name("tiny.pt")  # the fixture's checkpoint of the same weights
    src = wav_file(seconds=1.3, subtype="FLOAT", seed=2)
    outs = {}
    for key, c in (("pt", ckpt), ("tflite", path)):
        dst = tmp_path / f"{key}.wav"
        args = ["denoise", str(src), "-o", str(dst), "--checkpoint", str(c), "--no-progress"]
        assert main(args + (["--streaming"] if streaming else [])) == 0
        outs[key], sr = sf.read(dst, dtype="float32")
        assert sr == 16000
    x = sf.read(src, dtype="float32")[0]
    assert outs["tflite"].shape == outs["pt"].shape == x.shape
    assert np.abs(outs["tflite"] - outs["pt"]).max() < 1e-4
    assert np.abs(outs["pt"] - x).max() > 1e-2  # the model changes the signal


@pytest.mark.slow
def test_cli_evaluate_with_tflite(tiny_float, tmp_path):
    import soundfile as sf

    _, path, _ = tiny_float
    data = tmp_path / "data"
    for sub, seed in (("clean", 0), ("noisy", 0)):
        (data / sub).mkdir(parents=True)
        x = speechlike(16000, seed=seed)
        if sub == "noisy":
            x = x + 0.05 * np.random.default_rng(9).standard_normal(x.size).astype(np.float32)
        sf.write(data / sub / "a.wav", x, 16000, subtype="FLOAT")
    summaries = {}
    for key, c in (("pt", path.with_name("tiny.pt")), ("tflite", path)):
        out = tmp_path / key
        rc = main(["evaluate", "--checkpoint", str(c), "--data", str(data), "-o", str(out),
                   "--name", "m", "--workers", "1", "--no-progress"])
        assert rc == 0
        summaries[key] = json.loads((out / "summary.json").read_text())["m"]
    for key in ("pesq_wb", "estoi", "si_sdr"):
        a, b = (summaries[k]["metrics"][key]["mean"] for k in ("pt", "tflite"))
        assert summaries["tflite"]["scored"] == 1 and abs(a - b) < 1e-3, (key, a, b)


@pytest.mark.slow
def test_rnnoise_step_converts_and_streams(tmp_path):
    """The RNNoise port's step (pitch search, band features, GRUs) converts to LiteRT float32 and
    streams like the eager model (it used integer arg_max, a runtime iota and pow: all rejected)."""
    _need_litert()
    from denoisezoo.hub import save_checkpoint
    from denoisezoo.rnnoise_port import rnnoise_tiny

    torch.manual_seed(7)
    model = rnnoise_tiny().eval()
    ckpt = save_checkpoint(model, tmp_path / "rn.pt", name="rn_test")
    out = tmp_path / "rn.tflite"
    assert main(["export", "tflite", "--checkpoint", str(ckpt), "-o", str(out),
                 "--check-frames", "200"]) == 0
    meta = json.loads(out.with_suffix(".json").read_text())
    assert meta["check_max_abs_diff"] < 1e-4
    lite = LiteRTStepModel(out)
    x = torch.from_numpy(speechlike(16000))
    outs = {}
    for key, m in (("torch", model), ("litert", lite)):
        s = Streamer(m)
        outs[key] = torch.cat([s.feed(x[:777]), s.feed(x[777:]), s.flush()])
    assert outs["litert"].shape == outs["torch"].shape
    assert outs["torch"].abs().max() > 1e-3  # not silence
    assert (outs["litert"] - outs["torch"]).abs().max() < 1e-4


# relative spectral error vs PyTorch on held-out speech-like audio, rnnoise_tiny (seed 7),
# 120 calibration frames, network ops only (QUANT_SCOPES): measured 0.021 (int8) and 0.0042
# (int16x8); bounds with ~2x margin
RN_INT8_REL_BOUND = 0.04
RN_INT16X8_REL_BOUND = 0.01


@pytest.mark.slow
def test_rnnoise_quantized_tflite_within_bound(tmp_path, monkeypatch):
    """INT8 / INT16x8 of the RNNoise port's step: its network (dense, GRUs, output dense) runs in
    integer, the feature DSP stays float (ai-edge-quantizer failed on it with "Ranks of scales
    (4) and zps (4) must be the same as the tensor rank (3)", and int8 ADD with its -inf max-plus
    kernels aborts the interpreter)."""
    _need_litert()
    from ai_edge_litert.tools import flatbuffer_utils as fbu

    from denoisezoo.dsp.stft import stft
    from denoisezoo.rnnoise_port import rnnoise_tiny

    torch.manual_seed(7)
    model = rnnoise_tiny().eval()
    fl = tmp_path / "rn.tflite"
    export_tflite(model, fl)
    _no_converter(monkeypatch, tmp_path)  # reuse fl, no converter
    audio = [speechlike(16000 * 3, seed=s) for s in (1, 2)]
    spec = stft(torch.from_numpy(speechlike(16000 * 2, seed=3))[None], model.geometry)
    with torch.inference_mode():
        ref = model.forward_stateful(spec, None)[0]
    assert float((ref - spec).norm() / ref.norm()) > 0.5  # the model changes its input
    for bits, bound in ((8, RN_INT8_REL_BOUND), (16, RN_INT16X8_REL_BOUND)):
        q = tmp_path / f"rn_w8a{bits}.tflite"
        meta = export_tflite(model, q, int8=True, calibration=audio, max_calibration_frames=120,
                             activation_bits=bits, check_frames=100, float_tflite=fl)
        rec = meta["compression"]
        assert meta["precision"] == ("int8" if bits == 8 else "int16x8")
        assert rec["integer_scope"] == RNNOISE_FAMILY.litert_quant_scope
        assert meta["check_rel_err"] < bound
        # the network is integer: every GRU / dense FULLY_CONNECTED computes on int8 weights
        fb = fbu.read_model(str(q))
        sg = fb.subgraphs[0]
        codes = [fbu.get_builtin_code_from_operator_code(c) for c in fb.operatorCodes]
        from ai_edge_litert import schema_py_generated as schema

        fcs = [op for op in sg.operators if codes[op.opcodeIndex]
               == schema.BuiltinOperator.FULLY_CONNECTED]
        net = [op for op in fcs if b"KerasGRU_" in sg.tensors[op.outputs[0]].name
               or b"Linear_" in sg.tensors[op.outputs[0]].name]
        assert len(net) >= 11  # input dense + 3 GRUs x 3 + output dense
        assert all(sg.tensors[op.inputs[1]].type == schema.TensorType.INT8 for op in net)
        lite = LiteRTStepModel(q)  # sidecar from disk; signature outputs all carry data
        got, state = lite.forward_stateful(spec, None)
        assert all(np.isfinite(s).all() for s in state)
        rel = float((ref - got).norm() / ref.norm())
        assert rel < bound, (bits, rel)
        # continuing from a state == one call over all frames
        a, st = lite.forward_stateful(spec[:, :, :40], None)
        b, _ = lite.forward_stateful(spec[:, :, 40:], st)
        assert torch.equal(torch.cat([a, b], dim=2), got)
