"""UL-UNAS step exported to ONNX: graph contract, ONNX Runtime == eager (random and the authors'
weights), the Streamer on ONNX Runtime == the offline eager model, ``denoisezoo export onnx``."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from conftest import randomised, shared_file, speechlike

from denoisezoo.api import enhance
from denoisezoo.cli import main
from denoisezoo.export import export_onnx
from denoisezoo.streaming import OnnxStepModel, Streamer, sidecar_path
from denoisezoo.ulunas import load_official_checkpoint, ulunas, ulunas_tiny

onnx = pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")

TOL = 1e-4
STATE = ["conv", "tfa", "rnn"]
# ops that would tie the graph to runtimes with FFT / control-flow support: the window change
# is exported as two real (514, 514) MatMuls, not as DFTs
FORBIDDEN_OPS = {"DFT", "STFT", "Loop", "If", "Scan", "SequenceConstruct", "SplitToSequence"}


@pytest.fixture(scope="module", params=[ulunas_tiny, ulunas], ids=lambda f: f.__name__)
def exported(request, tmp_path_factory):
    model = randomised(request.param)
    path = tmp_path_factory.mktemp("ulunas_onnx") / f"{request.param.__name__}.onnx"
    meta = export_onnx(model, path, name=request.param.__name__)
    return model, path, meta


def test_graph_contract_and_sidecar(exported):
    model, path, meta = exported
    g = onnx.load(str(path)).graph
    assert list(model.initial_state(1)._fields) == STATE
    assert [i.name for i in g.input] == ["frame", *STATE]
    assert [o.name for o in g.output] == ["out", *[f"{n}_out" for n in STATE]]
    ops = {n.op_type for n in g.node}
    assert not ops & FORBIDDEN_OPS and all(n.domain in ("", "ai.onnx") for n in g.node)
    side = json.loads(sidecar_path(path).read_text())
    assert side == meta and side["family"] == "ulunas"
    state = model.initial_state(1)
    assert [s["shape"] for s in side["state"]] == [list(t.shape) for t in state]
    assert [s["batch_axis"] for s in side["state"]] == [0, 0, 1]


def test_onnxruntime_equals_eager_over_hundreds_of_frames(exported):
    model, path, _ = exported
    ort_model = OnnxStepModel(path)
    spec = 0.3 * torch.randn(1, 257, 300, 2)
    with torch.inference_mode():
        ref, ref_state = model.forward_stateful(spec, None)
    got, state = ort_model.forward_stateful(spec, None)
    assert ref.abs().max() > 1e-3
    assert (got - ref).abs().max() <= TOL * max(1.0, float(ref.abs().max()))
    for name, a, b in zip(ref_state._fields, state, ref_state, strict=True):
        assert np.abs(a - b.numpy()).max() <= TOL * max(1.0, float(b.abs().max())), name


def test_authors_weights_stream_on_onnxruntime_like_eager(shared, tmp_path):
    """The authors' checkpoint on their noisy example, streamed hop by hop through ONNX Runtime,
    equals the offline eager model (paper state sizes: conv 5,358, tfa 402, rnn 2 x 33 x 16)."""
    import soundfile as sf

    model = load_official_checkpoint(shared_file("reference/ul-unas/checkpoints/"
                                                 "model_trained_on_dns3.tar"))
    x, sr = sf.read(shared_file("reference/ul-unas/audio/noisy/0174.wav"), dtype="float32")
    x = torch.from_numpy(x[: 4 * sr])
    meta = export_onnx(model, tmp_path / "ulunas.onnx", name="ulunas")
    assert [s["shape"] for s in meta["state"]] == [[1, 5358], [1, 402], [2, 1, 33, 16]]
    s = Streamer(OnnxStepModel(tmp_path / "ulunas.onnx"))
    assert s.backend == "onnxruntime"
    hop = s.geometry.hop_length
    y = torch.cat([s.feed(x[i : i + hop]) for i in range(0, x.shape[-1], hop)] + [s.flush()])
    ref = enhance(model, x)
    assert (y[s.delay :] - ref).abs().max() <= TOL
    assert (ref - x).abs().max() > 0.05  # the model really changes the signal


def test_cli_export_preset(tmp_path, capsys):
    out = tmp_path / "tiny.onnx"
    assert main(["export", "onnx", "--preset", "ulunas_tiny", "-o", str(out)]) == 0
    assert "max abs diff" in capsys.readouterr().out
    side = json.loads(sidecar_path(out).read_text())
    assert side["name"] == "ulunas_tiny" and side["family"] == "ulunas"
    x = torch.from_numpy(speechlike(3000, seed=4))
    st = Streamer(OnnxStepModel(out))
    assert st.feed(x).shape[-1] + st.flush().shape[-1] == st.delay + x.shape[-1]
