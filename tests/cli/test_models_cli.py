"""`denoisezoo models`: the zoo table is read from the self-describing checkpoints."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import soundfile as sf

from denoisezoo import hub
from denoisezoo.cli import main
from denoisezoo.gtcrn import gtcrn_tiny
from denoisezoo.profile import count_parameters, macs_per_second
from denoisezoo.rnnoise_port import rnnoise_tiny


@pytest.fixture
def zoo(tmp_path, monkeypatch):
    """A weights folder with two checkpoints whose model cards differ."""
    meta = {"metrics": {"pesq_wb": 1.8, "estoi": 0.81, "si_sdr": 12.5}, "global_step": 1234,
            "int8": {"runtime": "onnxruntime", "mode": "mixed",
                     "metrics": {"pesq_wb": 1.77, "estoi": 0.80, "si_sdr": 12.1}}}
    hub.save_checkpoint(gtcrn_tiny(), tmp_path / "g_tiny.pt", name="g_tiny", meta=meta)
    hub.save_checkpoint(rnnoise_tiny(), tmp_path / "r_tiny.pt", name="r_tiny",
                        meta={"global_step": 5})
    monkeypatch.setattr(hub, "_weights_dir", lambda: tmp_path)
    return tmp_path


def test_models_json_comes_from_the_checkpoints(zoo, capsys):
    assert main(["models", "--json"]) == 0
    rows = {r["name"]: r for r in json.loads(capsys.readouterr().out)}
    assert set(rows) == {"g_tiny", "r_tiny"}
    g, r = rows["g_tiny"], rows["r_tiny"]
    assert g["params"] == count_parameters(gtcrn_tiny()) and r["params"] == count_parameters(rnnoise_tiny())
    assert g["macs_per_s"] == pytest.approx(macs_per_second(gtcrn_tiny()))
    assert g["sample_rate"] == r["sample_rate"] == 16000
    assert g["latency_ms"] == 32 and r["latency_ms"] == 20
    assert g["file_kb"] == round((zoo / "g_tiny.pt").stat().st_size / 1024, 1)
    assert g["dev_scores"]["pesq_wb"] == 1.8 and g["steps"] == 1234
    assert g["int8"] == "ORT mixed, PESQ -0.03" and r["int8"] is None
    assert r["dev_scores"] == {}


def test_models_table_and_presets(zoo, capsys):
    assert main(["models", "--presets"]) == 0
    out = capsys.readouterr().out
    for name in ("g_tiny", "r_tiny", "gtcrn_48k", "rnnoise_16k"):
        assert name in out
    assert "ORT mixed" in out and "1.80 / 0.810 / 12.5" in out


def test_every_shipped_model_is_listed_and_loadable(capsys):
    assert main(["models", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert {r["name"] for r in rows} == set(hub.shipped_models())
    for r in rows:
        assert hub.load_model(r["name"]).geometry.sample_rate == r["sample_rate"]
        assert r["dev_scores"]["pesq_wb"] > 1.0


@pytest.mark.parametrize("name", sorted(hub.shipped_models()))
def test_denoise_cli_takes_every_shipped_model(name, tmp_path):
    src = Path(__file__).resolve().parents[2] / "examples" / "noisy_example.wav"
    out = tmp_path / "out.wav"
    assert main(["denoise", str(src), "-o", str(out), "--model", name]) == 0
    x, sr = sf.read(src, dtype="float32")
    y, sr_out = sf.read(out, dtype="float32")
    assert sr_out == sr and y.shape == x.shape
    assert 0 < abs(y).max() and abs(y - x).max() > 1e-3  # processed, not silence or a copy
