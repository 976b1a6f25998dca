"""sherpa-onnx runs our GTCRN models: `export onnx --format sherpa-onnx` writes the file its own
speech denoiser loads, and its output (its own STFT) equals ours."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import soxr
from conftest import randomised

import denoisezoo
from denoisezoo.cli import main
from denoisezoo.gtcrn import gtcrn_tiny
from denoisezoo.rnnoise_port import rnnoise_tiny

sherpa_onnx = pytest.importorskip(
    "sherpa_onnx", reason="the sherpa-onnx wheel is not installed (pip install sherpa-onnx)")

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "noisy_example.wav"


def _sherpa_denoise(path: Path, x: np.ndarray, sr: int) -> tuple[np.ndarray, int]:
    so = sherpa_onnx
    cfg = so.OfflineSpeechDenoiserConfig(model=so.OfflineSpeechDenoiserModelConfig(
        gtcrn=so.OfflineSpeechDenoiserGtcrnModelConfig(model=str(path)), num_threads=1))
    out = so.OfflineSpeechDenoiser(cfg)(x, sr)
    return np.asarray(out.samples, np.float32), out.sample_rate


def _snr(ref: np.ndarray, y: np.ndarray) -> float:
    n = min(len(ref), len(y))
    return float(10 * np.log10(np.sum(ref[:n] ** 2) / np.sum((ref[:n] - y[:n]) ** 2)))


@pytest.mark.parametrize("name", ["gtcrn_dns3_ft", "gtcrn_half", "gtcrn_48k"])
def test_sherpa_onnx_runs_our_model_like_we_do(name, tmp_path):
    out = tmp_path / f"{name}.onnx"
    assert main(["export", "onnx", "--format", "sherpa-onnx", "--model", name, "-o", str(out),
                 "--check-frames", "50"]) == 0
    side = json.loads(out.with_suffix(".json").read_text())
    assert side["model_type"] == "gtcrn" and side["window_type"] == "hann_sqrt"
    model = denoisezoo.load_model(name)
    x, sr = sf.read(EXAMPLE, dtype="float32")
    if model.geometry.sample_rate != sr:  # gtcrn_48k: at its own rate (sherpa-onnx would resample)
        x = soxr.resample(x, sr, model.geometry.sample_rate).astype(np.float32)
        sr = model.geometry.sample_rate
    y, sr_out = _sherpa_denoise(out, x, sr)
    ref = denoisezoo.enhance_array(model, x, sr)
    assert sr_out == sr and len(y) == len(x)  # same framing: no delay to align
    assert _snr(ref, y) >= 40.0  # measured 46.1 dB for gtcrn_dns3_ft, 48.0 dB for gtcrn_48k


def test_sherpa_export_refuses_other_families_and_overwrites(tmp_path, capsys):
    from denoisezoo.export.sherpa import export_sherpa_onnx

    with pytest.raises(TypeError, match="GTCRN"):
        export_sherpa_onnx(rnnoise_tiny(), tmp_path / "r.onnx")
    p = tmp_path / "t.onnx"
    meta = export_sherpa_onnx(randomised(gtcrn_tiny), p, check_frames=20)
    assert meta["check_max_abs_diff"] < 1e-4 and meta["conv_cache_shape"].count(",") >= 2
    with pytest.raises(FileExistsError):
        export_sherpa_onnx(randomised(gtcrn_tiny), p)
    assert main(["export", "onnx", "--format", "sherpa-onnx", "--preset", "rnnoise_tiny", "-o",
                 str(tmp_path / "x.onnx")]) == 1
    assert "GTCRN" in capsys.readouterr().err
