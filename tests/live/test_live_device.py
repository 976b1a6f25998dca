"""``denoisezoo live`` on the real sounddevice/PortAudio/ALSA path, with virtual devices.

Each test writes an ALSA configuration into a temporary HOME (``~/.asoundrc``) that defines:

- ``dzoo_in``: capture from a ``file`` PCM whose ``infile`` is a raw S16 speech-like signal
  (through ``plug``, so PortAudio may open it as float32 at any rate);
- ``dzoo_out``: playback into a ``file`` PCM that stores what the device was sent in ``out.raw``.

Both sit on ALSA's ``null`` PCM, which has no clock: PortAudio runs the callback as fast as it
returns, so one wall-clock second covers more than one second of audio. The tests run the CLI in
a subprocess (PortAudio reads the ALSA configuration once per process) and check that callbacks
ran, frames were counted, the --record files match the counters, the captured audio is the
infile's and the device received exactly the recorded output.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch
from conftest import speechlike

try:
    import sounddevice  # noqa: F401
except OSError:
    pytest.skip("libportaudio2 is not installed (apt-get install -y libportaudio2)",
                allow_module_level=True)

RATE = 48000
ASOUNDRC = """
pcm.dzoo_capture {{ type file  slave.pcm "null"  file "/dev/null"  infile "{infile}"  format "raw" }}
pcm.dzoo_play {{ type file  slave.pcm "null"  file "{outfile}"  format "raw" }}
pcm.dzoo_in {{ type plug  slave {{ pcm "dzoo_capture"  format S16_LE  channels 1  rate {rate} }} }}
pcm.dzoo_out {{ type plug  slave {{ pcm "dzoo_play"  format S16_LE  channels 1  rate {rate} }} }}
"""


@pytest.fixture
def alsa(tmp_path):
    """A HOME with the virtual devices, a tiny checkpoint, and a CLI runner."""
    home = tmp_path / "home"
    home.mkdir()
    infile, outfile = tmp_path / "in.raw", tmp_path / "out.raw"
    x = speechlike(2 * RATE, RATE, seed=4)
    np.round(x * 32767).astype("<i2").tofile(infile)
    (home / ".asoundrc").write_text(ASOUNDRC.format(infile=infile, outfile=outfile, rate=RATE))
    from denoisezoo.gtcrn import gtcrn_tiny
    from denoisezoo.hub import save_checkpoint

    torch.manual_seed(0)
    ckpt = save_checkpoint(gtcrn_tiny(), tmp_path / "tiny.pt", name="gtcrn_tiny")
    env = {**os.environ, "HOME": str(home), "PYTHONUNBUFFERED": "1", "OMP_NUM_THREADS": "1"}

    def run(*args: str, timeout: float = 120) -> subprocess.CompletedProcess:
        cmd = [sys.executable, "-m", "denoisezoo", "live", *args]
        return subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=timeout,
                              stdin=subprocess.DEVNULL, cwd=tmp_path)

    return {"run": run, "ckpt": str(ckpt), "infile": infile, "outfile": outfile, "dir": tmp_path}


def _session(rec: Path) -> tuple[dict, np.ndarray, np.ndarray]:
    (info_path,) = rec.glob("live-*.json")
    stem = info_path.stem
    info = json.loads(info_path.read_text())
    raw, sr = sf.read(rec / f"{stem}-raw.wav", dtype="float32")
    den, sr2 = sf.read(rec / f"{stem}-denoised.wav", dtype="float32")
    assert sr == sr2 == info["samplerate"]
    return info, raw, den


def test_list_devices_shows_the_virtual_devices(alsa):
    r = alsa["run"]("--list-devices")
    assert r.returncode == 0, r.stderr
    assert "dzoo_in (ALSA)" in r.stdout and "dzoo_out (ALSA)" in r.stdout


def test_bad_device_name_is_one_line_listing_devices(alsa):
    r = alsa["run"]("--checkpoint", alsa["ckpt"], "--input-device", "no-such-mic",
                    "--output-device", "dzoo_out")
    assert r.returncode == 1
    err = r.stderr.strip()
    assert len(err.splitlines()) == 1 and "Traceback" not in r.stderr
    assert "no input device matches" in err and "'dzoo_in'" in err


def test_live_runs_on_a_portaudio_device_and_records(alsa):
    rec = alsa["dir"] / "rec"
    r = alsa["run"]("--checkpoint", alsa["ckpt"], "--input-device", "dzoo_in", "--output-device",
                    "dzoo_out", "--samplerate", str(RATE), "--duration", "1", "--record", str(rec),
                    "--calibrate-seconds", "0.2")
    assert r.returncode == 0, r.stdout + r.stderr
    out = r.stdout
    assert "backend: onnxruntime" in out  # --backend auto exported the step
    assert "calibration: gtcrn_tiny on onnxruntime" in out and "budget" in out
    assert "latency " in out and "device input" in out and "overlap-add" in out
    assert "stopped after" in out and "recorded:" in out
    info, raw, den = _session(rec)
    block = info["blocksize"]
    assert block == 768  # one 16 ms hop at 48 kHz
    assert info["callbacks"] >= 10 and info["frames"] == info["callbacks"] * block
    assert info["recorded_frames"] == info["frames"] == len(raw) == len(den)
    assert info["hops"] > 0 and info["model_hops"] + info["fallback_hops"] == info["hops"]
    assert info["error"] is None and info["errors"] == 0
    assert 0.9 < info["wall_seconds"] < 5
    lat = info["total_latency_ms"]
    assert lat == pytest.approx(info["device_latency_in_ms"] + info["device_latency_out_ms"]
                                + info["latency_ms"])
    # the captured audio is the infile's (16-bit grid; segments found verbatim in it; ALSA's
    # file PCM may skip or rewind the infile at xruns, so positions are not compared)
    x = np.fromfile(alsa["infile"], "<i2").astype(np.float32) / 32768
    assert np.abs(raw * 32768 - np.round(raw * 32768)).max() == 0.0
    xwin = np.lib.stride_tricks.sliding_window_view(x, 32)
    loud = np.nonzero(np.abs(raw) > 0.05)[0]
    assert loud.size > 1000
    for k in loud[np.linspace(0, loud.size - 100, 5).astype(int)]:
        assert (np.abs(xwin - raw[k : k + 32]).max(axis=1) == 0).any(), f"raw[{k}:] not in infile"
    # the device received exactly what was recorded as played (after PortAudio's priming
    # silence; 16-bit rounding in the file PCM)
    played = np.fromfile(alsa["outfile"], "<i2").astype(np.float32) / 32768
    assert np.abs(den).max() > 0.01
    k = int(np.nonzero(np.abs(den) > 0.01)[0][0])
    q = np.round(den * 32768) / 32768
    seg = q[k : k + 64]
    win = np.lib.stride_tricks.sliding_window_view(played, 64)
    hits = np.nonzero(np.abs(win - seg).max(axis=1) <= 1.5 / 32768)[0]
    assert hits.size, "recorded output not found in what the device played"
    off = int(hits[0]) - k
    n = min(len(q), len(played) - off)
    assert off >= 0 and n > 0.9 * len(q)
    assert np.abs(played[off : off + n] - q[:n]).max() <= 1.5 / 32768


def test_bypass_on_the_device_is_the_input_delayed_by_the_stated_latency(alsa):
    rec = alsa["dir"] / "rec"
    r = alsa["run"]("--checkpoint", alsa["ckpt"], "--input-device", "dzoo_in", "--output-device",
                    "dzoo_out", "--samplerate", "16000", "--duration", "1", "--record", str(rec),
                    "--calibrate-seconds", "0.2", "--bypass", "--backend", "torch")
    assert r.returncode == 0, r.stdout + r.stderr
    assert "starting bypassed" in r.stdout and "calibration: gtcrn_tiny on torch" in r.stdout
    info, raw, den = _session(rec)
    assert info["samplerate"] == 16000 and info["bypass"] is True and info["callbacks"] > 0
    d = info["latency_samples"]
    assert info["starved_samples"] == 0
    np.testing.assert_array_equal(den[d:], raw[: len(raw) - d])
    assert not np.any(den[:d])


def test_live_at_48k_runs_the_shipped_native_model(alsa):
    """On a 48 kHz device, `--model gtcrn` is swapped for the shipped `gtcrn_48k` (no resampling);
    --resample keeps the 16 kHz model."""
    from denoisezoo.hub import shipped_models

    assert "gtcrn_48k" in shipped_models()
    rec = alsa["dir"] / "rec48"
    common = ("--input-device", "dzoo_in", "--output-device", "dzoo_out", "--samplerate", "48000",
              "--duration", "0.5", "--calibrate-seconds", "0.2")
    r = alsa["run"]("--model", "gtcrn", *common, "--record", str(rec))
    assert r.returncode == 0, r.stdout + r.stderr
    assert "using gtcrn_48k" in r.stdout
    info, raw, den = _session(rec)
    assert info["device_rate"] == info["model_rate"] == 48000
    assert np.abs(den).max() > 0.001
    r = alsa["run"]("--model", "gtcrn", *common, "--resample", "--record", str(rec / "rs"))
    assert r.returncode == 0, r.stdout + r.stderr
    assert "using gtcrn_48k" not in r.stdout
    info, _, _ = _session(rec / "rs")
    assert info["device_rate"] == 48000 and info["model_rate"] == 16000
