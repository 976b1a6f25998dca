"""RNNoise step exported to ONNX: graph contract, ONNX Runtime == eager on speech-like audio,
the Streamer on ONNX Runtime == the offline eager model, ``load_model(x.onnx)``."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from conftest import randomised, speechlike

from denoisezoo import load_model
from denoisezoo.api import enhance
from denoisezoo.dsp.stft import stft
from denoisezoo.export import export_onnx
from denoisezoo.rnnoise_port import rnnoise_48k, rnnoise_tiny
from denoisezoo.streaming import OnnxStepModel, Streamer, sidecar_path

onnx = pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")

TOL = 1e-4
STATE = ["history", "ola", "ceps", "vad_h", "noise_h", "denoise_h", "gains"]
# ops that would tie the graph to runtimes with FFT / control-flow support, or that are not ONNX
FORBIDDEN_OPS = {"DFT", "STFT", "Loop", "If", "Scan", "SequenceConstruct", "SplitToSequence"}


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    model = randomised(rnnoise_tiny)
    path = tmp_path_factory.mktemp("rnnoise_onnx") / "rnnoise_tiny.onnx"
    meta = export_onnx(model, path, name="rnnoise_tiny")
    return model, path, meta


def _audio(seconds: float = 3.0) -> torch.Tensor:
    """Two speech-like channels (the second with extra noise), 300 frames at 16 kHz."""
    n = int(seconds * 16000)
    x = torch.stack([torch.from_numpy(speechlike(n, seed=s)) for s in (1, 2)])
    x[1] += 0.05 * torch.randn(n, generator=torch.Generator().manual_seed(3))
    return x


def test_graph_contract_and_sidecar(exported):
    model, path, meta = exported
    g = onnx.load(str(path)).graph
    assert list(model.initial_state(1)._fields) == STATE
    assert [i.name for i in g.input] == ["frame", *STATE]
    assert [o.name for o in g.output] == ["out", *[f"{n}_out" for n in STATE]]  # no VAD output
    ops = {n.op_type for n in g.node}
    assert not ops & FORBIDDEN_OPS, ops & FORBIDDEN_OPS
    assert all(n.domain in ("", "ai.onnx") for n in g.node)
    # float32 / int64 / bool only: no complex or float64 tensors anywhere in the graph
    types = {t.data_type for t in g.initializer}
    types |= {v.type.tensor_type.elem_type for v in [*g.input, *g.output, *g.value_info]}
    allowed = {onnx.TensorProto.FLOAT, onnx.TensorProto.INT64, onnx.TensorProto.BOOL}
    assert types <= allowed, types - allowed
    side = json.loads(sidecar_path(path).read_text())
    assert side == meta and side["opset"] == 17 and side["family"] == "rnnoise"
    assert side["geometry"] == {"sample_rate": 16000, "n_fft": 320, "hop_length": 160,
                                "window": "vorbis"}
    state = model.initial_state(1)
    assert [s["shape"] for s in side["state"]] == [list(t.shape) for t in state]
    assert [s["batch_axis"] for s in side["state"]] == [0] * len(STATE)


def test_onnxruntime_equals_eager_on_speechlike_audio(exported):
    model, path, _ = exported
    ort_model = OnnxStepModel(path)
    spec = stft(_audio()[:1], model.geometry)  # 1, 161, 301, 2
    assert spec.shape[2] >= 300
    with torch.inference_mode():
        ref, ref_state = model.forward_stateful(spec, None)
        period = model.extract_features(spec)[0].period
    assert period[0, 10:].unique().numel() > 10  # the pitch search really tracks a moving f0
    assert (ref - spec).abs().max() > 0.1  # the model changes the signal
    got, state = ort_model.forward_stateful(spec, None)
    assert (got - ref).abs().max() <= TOL
    for name, a, b in zip(STATE, state, ref_state, strict=True):
        assert np.abs(a - b.numpy()).max() <= TOL * max(1.0, b.abs().max().item()), name
    st = ort_model.initial_state(1)  # one-frame calls, as in real time
    for t in range(60):
        out, st = ort_model.step(spec[:, :, t], st)
        assert (out - ref[:, :, t]).abs().max() <= TOL


def test_streamer_on_onnxruntime_equals_offline_eager(exported):
    model, path, _ = exported
    x = _audio()
    s = Streamer(OnnxStepModel(path), batch=2)
    assert s.backend == "onnxruntime"
    y = torch.cat([s.feed(x[:, i : i + 997]) for i in range(0, x.shape[-1], 997)] + [s.flush()],
                  -1)
    assert y.shape == (2, s.delay + x.shape[-1])
    ref = enhance(model, x)
    assert (ref - x).abs().max() > 0.01
    assert (y[:, s.delay :] - ref).abs().max() <= TOL


def test_load_model_of_the_exported_step(exported):
    model, path, _ = exported
    loaded = load_model(path)
    assert isinstance(loaded, OnnxStepModel) and loaded.geometry == model.geometry
    x = _audio(0.5)[0]
    s = Streamer(loaded)
    y = torch.cat([s.feed(x), s.flush()])
    assert (y[s.delay :] - enhance(model, x)).abs().max() <= TOL


def test_48k_step_with_the_factored_dft_exports(tmp_path):
    """rnnoise_48k's 960-point DFTs use the two-factor form (30 x 32): ONNX Runtime == eager."""
    model = randomised(rnnoise_48k)
    assert model.dft.factors == (30, 32)
    path = tmp_path / "rnnoise_48k.onnx"
    export_onnx(model, path, name="rnnoise_48k")
    x = torch.from_numpy(speechlike(48000, sr=48000, seed=4))[None]  # 100 frames
    spec = stft(x, model.geometry)
    with torch.inference_mode():
        ref, ref_state = model.forward_stateful(spec, None)
    got, state = OnnxStepModel(path).forward_stateful(spec, None)
    assert (ref - spec).abs().max() > 0.1
    assert (got - ref).abs().max() <= TOL
    for name, a, b in zip(STATE, state, ref_state, strict=True):
        assert np.abs(a - b.numpy()).max() <= TOL * max(1.0, b.abs().max().item()), name
