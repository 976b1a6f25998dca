"""ONNX step export: graph contract, ONNX Runtime == eager, Streamer on ORT, `denoisezoo export`."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from conftest import randomised, speechlike

from denoisezoo.api import enhance
from denoisezoo.cli import main
from denoisezoo.export import export_onnx
from denoisezoo.gtcrn import gtcrn, gtcrn_tiny
from denoisezoo.hub import save_checkpoint
from denoisezoo.streaming import OnnxStepModel, Streamer, sidecar_path

onnx = pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")

TOL = 1e-4

# standard ai.onnx operators the step may use (no DFT/STFT, no control flow, no custom domains)
ALLOWED_OPS = {
    "Add", "BatchNormalization", "Cast", "Concat", "Constant", "ConstantOfShape", "Conv",
    "ConvTranspose", "Div", "Expand", "Gather", "Gemm", "GRU", "Identity", "LayerNormalization",
    "MatMul", "Mul", "Pad", "Pow", "PRelu", "ReduceMean", "Reshape", "Shape", "Sigmoid", "Slice",
    "Split", "Sqrt", "Squeeze", "Sub", "Tanh", "Transpose", "Unsqueeze",
}




@pytest.fixture(scope="module", params=[gtcrn_tiny, gtcrn], ids=lambda f: f.__name__)
def exported(request, tmp_path_factory):
    model = randomised(request.param)
    path = tmp_path_factory.mktemp("onnx") / f"{request.param.__name__}.onnx"
    meta = export_onnx(model, path, name=request.param.__name__)
    return model, path, meta


def test_graph_contract_and_sidecar(exported):
    model, path, meta = exported
    g = onnx.load(str(path)).graph
    names = list(model.initial_state(1)._fields)
    assert [i.name for i in g.input] == ["frame", *names] == ["frame", "conv", "tra", "rnn"]
    assert [o.name for o in g.output] == ["out", "conv_out", "tra_out", "rnn_out"]
    ops = {n.op_type for n in g.node}
    assert ops <= ALLOWED_OPS, ops - ALLOWED_OPS
    assert all(n.domain in ("", "ai.onnx") for n in g.node)
    side = json.loads(sidecar_path(path).read_text())
    assert side == meta and side["opset"] == 17
    assert side["geometry"] == {"sample_rate": 16000, "n_fft": 512, "hop_length": 256,
                                "window": "sqrt_hann"}
    state = model.initial_state(1)
    assert [s["shape"] for s in side["state"]] == [list(t.shape) for t in state]
    assert [s["batch_axis"] for s in side["state"]] == [0, 1, 1]
    dims = [[d.dim_value for d in i.type.tensor_type.shape.dim] for i in g.input]
    assert dims == [[1, 257, 2]] + [list(t.shape) for t in state]


def test_onnxruntime_equals_eager_over_hundreds_of_frames(exported):
    model, path, _ = exported
    ort_model = OnnxStepModel(path)
    spec = 0.3 * torch.randn(1, 257, 400, 2)
    with torch.inference_mode():
        ref, ref_state = model.forward_stateful(spec, None)
    got, state = ort_model.forward_stateful(spec, None)
    assert ref.abs().max() > 1e-3
    assert (got - ref).abs().max() <= TOL
    for name, a, b in zip(ref_state._fields, state, ref_state, strict=True):
        assert np.abs(a - b.numpy()).max() <= TOL, name
    st = ort_model.initial_state(1)  # one-frame calls (the real-time fast path)
    for t in range(50):
        out, st = ort_model.step(spec[:, :, t], st)
        assert (out - ref[:, :, t]).abs().max() <= TOL


def test_streamer_runs_on_onnxruntime(exported):
    model, path, _ = exported
    x = torch.stack([torch.from_numpy(speechlike(4000, seed=s)) for s in (1, 2)])
    s = Streamer(OnnxStepModel(path), batch=2)
    assert s.backend == "onnxruntime"
    y = torch.cat([s.feed(x[:, i : i + 37]) for i in range(0, x.shape[-1], 37)] + [s.flush()], -1)
    assert y.shape == (2, s.delay + x.shape[-1])
    assert (y[:, s.delay :] - enhance(model, x)).abs().max() <= TOL
    res = s.calibrate(seconds=0.1, warmup_hops=1)
    assert res.backend == "onnxruntime" and res.p50_ms > 0


@pytest.mark.parametrize("opset", [11, 13])
def test_older_opsets_export_and_match(tmp_path, opset):
    model = randomised(gtcrn_tiny)
    meta = export_onnx(model, tmp_path / "m.onnx", opset=opset, check_frames=100)
    assert meta["opset"] == opset and meta["check_max_abs_diff"] <= TOL
    assert onnx.load(str(tmp_path / "m.onnx")).opset_import[0].version == opset


def test_export_refuses_to_overwrite(tmp_path):
    model = gtcrn_tiny().eval()
    path = tmp_path / "m.onnx"
    export_onnx(model, path)
    before = path.read_bytes()
    with pytest.raises(FileExistsError, match="exists"):
        export_onnx(model, path)
    assert path.read_bytes() == before
    with pytest.raises(ValueError, match=".onnx"):
        export_onnx(model, tmp_path / "m.bin")


def test_onnx_model_needs_its_sidecar(tmp_path):
    path = tmp_path / "m.onnx"
    export_onnx(gtcrn_tiny().eval(), path)
    sidecar_path(path).unlink()
    with pytest.raises(FileNotFoundError, match="sidecar"):
        OnnxStepModel(path)


def test_cli_export_preset_checkpoint_and_overwrite(tmp_path, capsys):
    out = tmp_path / "tiny.onnx"
    assert main(["export", "onnx", "--preset", "gtcrn_tiny", "-o", str(out), "--opset", "17"]) == 0
    text = capsys.readouterr().out
    assert "max abs diff" in text and out.is_file() and sidecar_path(out).is_file()
    assert json.loads(sidecar_path(out).read_text())["name"] == "gtcrn_tiny"
    before = out.read_bytes()
    assert main(["export", "onnx", "--preset", "gtcrn_tiny", "-o", str(out)]) == 1
    assert "exists" in capsys.readouterr().err and out.read_bytes() == before
    ck = save_checkpoint(randomised(gtcrn_tiny), tmp_path / "tiny.pt", name="mytiny")
    assert main(["export", "onnx", "--checkpoint", str(ck), "-o", str(out), "--overwrite"]) == 0
    assert json.loads(sidecar_path(out).read_text())["name"] == "mytiny"
    with pytest.raises(SystemExit) as exc:  # one flag chooses the model (argparse usage error)
        main(["export", "onnx", "--preset", "gtcrn_tiny", "--checkpoint", str(ck),
              "-o", str(tmp_path / "x.onnx")])
    assert exc.value.code == 2 and "not allowed with" in capsys.readouterr().err
    assert main(["export", "onnx", "--preset", "nope", "-o", str(tmp_path / "y.onnx")]) == 1
    assert "nope" in capsys.readouterr().err


def test_official_checkpoint_on_real_audio_ort_equals_eager(shared, tmp_path):
    """Trained weights, real noisy speech (official test clip), a few hundred hops streamed."""
    import soundfile as sf

    from denoisezoo import load_model

    ref_dir = shared / "reference/gtcrn"
    tar = ref_dir / "checkpoints/stream_onnx_models__model_trained_on_dns3.tar"
    if not tar.is_file():
        pytest.skip(f"{tar} not found")
    model = load_model(tar)
    x, sr = sf.read(ref_dir / "test_wavs/mix.wav", dtype="float32")
    x = torch.from_numpy(x[: 5 * sr])
    export_onnx(model, tmp_path / "official.onnx")
    s = Streamer(OnnxStepModel(tmp_path / "official.onnx"))
    hop = s.geometry.hop_length
    y = torch.cat([s.feed(x[i : i + hop]) for i in range(0, x.shape[-1], hop)] + [s.flush()])
    ref = enhance(model, x)
    assert (y[s.delay :] - ref).abs().max() <= TOL
    assert (ref - x).abs().max() > 0.05  # the model really changes the signal
