"""LiteRT (TFLite) export of the streaming step: conversion rewrite, CLI, interpreter equality.

The rewrite and error-path tests always run. The conversion tests need the ``litert`` extra
(``ai-edge-litert`` + ``ai-edge-quantizer``) in this environment and a litert-torch converter
(``$DENOISEZOO_LITERT_PYTHON`` or ``litert_torch`` importable); they skip otherwise, or fail
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
from denoisezoo.gtcrn import gtcrn_tiny
from denoisezoo.streaming import Streamer, litert
from denoisezoo.streaming.litert import (
    ExactConvTranspose,
    LiteRTStepModel,
    LiteRTUnavailableError,
    conv_transpose2d_exact,
    export_tflite,
)

# relative spectral error vs PyTorch on held-out speech-like audio, gtcrn_tiny (seed 1234),
# 120 calibration frames; measured 0.160 (int8) and 0.014 (int16x8): bounds with ~1.6-2x margin
INT8_REL_BOUND = 0.25
INT16X8_REL_BOUND = 0.03


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
    monkeypatch.delenv(litert.CONVERTER_ENV, raising=False)
    monkeypatch.setattr(litert, "_litert_torch_here", lambda: False)
    out = tmp_path / "m.tflite"
    with pytest.raises(LiteRTUnavailableError, match="litert-torch==0.10"):
        export_tflite(gtcrn_tiny(), out)
    assert main(["export", "tflite", "--preset", "gtcrn_tiny", "-o", str(out)]) == 1
    err = capsys.readouterr().err
    assert "pip install" in err and litert.CONVERTER_ENV in err and "typing-extensions" in err
    assert not out.exists()


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
    if not litert.litert_available():
        missing("the litert extra is not installed (pip install 'denoisezoo[litert]')")
    try:
        py = litert.converter_python()
    except LiteRTUnavailableError as exc:
        missing(str(exc))
    if py is None and not litert._litert_torch_here():
        missing(f"no litert-torch converter: set {litert.CONVERTER_ENV} "
                "(see denoisezoo.streaming.litert)")


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
    """``export_tflite(int8=True)`` on gtcrn_tiny, reusing the fixture's float conversion."""
    import shutil

    model, path, _ = tiny_float
    monkeypatch.setattr(litert, "_convert_float",
                        lambda m, out: (shutil.copyfile(path, out), {"litert_torch": "fixture"})[1])
    monkeypatch.setattr(litert, "_litert_torch_here", lambda: True)
    monkeypatch.delenv(litert.CONVERTER_ENV, raising=False)
    audio = [speechlike(16000 * 3, seed=s) for s in (1, 2)]
    q = tmp_path / f"tiny_w8a{bits}.tflite"
    meta = export_tflite(model, q, int8=True, calibration=audio, max_calibration_frames=120,
                         activation_bits=bits, check_frames=100)
    return model, q, meta


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
