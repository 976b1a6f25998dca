"""The live demo's callback logic driven from a file, its recorder, device selection and CLI
errors (no audio device needed; the real PortAudio path is in test_live_device.py)."""

from __future__ import annotations

import builtins
import json
import subprocess
import sys
from types import SimpleNamespace

import numpy as np
import pytest
import soundfile as sf
import torch
from conftest import speechlike

from denoisezoo.dsp.resample import Resampler
from denoisezoo.dsp.stft import StftGeometry
from denoisezoo.gtcrn import gtcrn_tiny
from denoisezoo.live import (
    STATUS_BITS,
    DeviceError,
    LiveProcessor,
    PortAudioMissing,
    Recorder,
    plan_prefill,
    resolve_device,
    status_bits,
)
from denoisezoo.live.devices import INSTALL_HINT, check_settings, format_devices
from denoisezoo.live.processor import DEFAULT_QUALITY
from denoisezoo.streaming import Streamer

torch.set_num_threads(1)
NO_DEADLINE = 1e6  # a budget no hop can miss: per-hop processing, the model output every hop


class Identity:
    """A streamable 'model' that returns its input spectrum (the Streamer then reconstructs the
    input exactly, delayed by ``n_fft - hop``)."""

    geometry = StftGeometry(16000, 512, 256)
    name = "identity"

    def initial_state(self, batch=1, device=None, dtype=None):
        return ()

    def forward_stateful(self, spec, state):
        return spec, state


@pytest.fixture(scope="module")
def tiny():
    torch.manual_seed(0)
    return gtcrn_tiny().eval()


def drive(proc: LiveProcessor, x: np.ndarray, block: int, status=None, out_channels: int = 1,
          toggle_at: int | None = None) -> np.ndarray:
    """Feed ``x`` in blocks of ``block`` frames as a device would; returns the output (mono)."""
    n = (len(x) // block) * block
    out = np.full((n, out_channels), np.nan, np.float32)
    for i in range(0, n, block):
        if toggle_at is not None and i == toggle_at:
            proc.bypass = not proc.bypass
        proc.process(x[i : i + block, None], out[i : i + block], block, status)
    assert np.isfinite(out).all()
    return out[:, 0]


def signal(rate: int, seconds: float = 1.0) -> np.ndarray:
    return speechlike(int(rate * seconds), rate, seed=1)


def band_limited(rate: int, seconds: float = 1.0) -> np.ndarray:
    """Tones between 200 Hz and 3.5 kHz: nothing the 16 kHz model rate would remove."""
    rng = np.random.default_rng(3)
    t = np.arange(int(rate * seconds)) / rate
    f = rng.uniform(200, 3500, 12)
    x = sum(np.sin(2 * np.pi * fk * t + rng.uniform(0, 6.3)) for fk in f)
    return (0.05 * x).astype(np.float32)


@pytest.mark.parametrize("block", [160, 256, 100])
def test_output_equals_streamer_output_at_model_rate(tiny, block):
    """16 kHz device: out[prefill + j] == Streamer output j (per-hop vs one call: float noise)."""
    x = signal(16000)
    proc = LiveProcessor(Streamer(tiny, budget_ms=NO_DEADLINE), 16000, block)
    out = drive(proc, x, block)
    ref = Streamer(tiny).feed(x).numpy()
    p = proc.prefill
    n = min(len(out) - p, len(ref))
    assert n > 0.9 * len(out) - p
    assert not np.any(out[:p])  # the pre-fill is silence
    np.testing.assert_allclose(out[p : p + n], ref[:n], atol=2e-5, rtol=0)
    assert proc.latency_samples == p + tiny.geometry.delay
    assert proc.starved_samples == 0 and proc.dropped_samples == 0
    assert proc.frames == len(out) and proc.callbacks == len(out) // block


@pytest.mark.parametrize("rate,block", [(48000, 480), (48000, 768), (44100, 441)])
def test_output_equals_resampled_streamer_output(tiny, rate, block):
    """48 / 44.1 kHz: out[prefill:] == resample_up(Streamer(resample_down(x))), same soxr recipe."""
    x = signal(rate)
    proc = LiveProcessor(Streamer(tiny, budget_ms=NO_DEADLINE), rate, block)
    out = drive(proc, x, block, out_channels=2)
    down = Resampler(rate, 16000, 1, DEFAULT_QUALITY).process(x[:, None], last=True)[:, 0]
    enh = Streamer(tiny).feed(down).numpy()
    ref = Resampler(16000, rate, 1, DEFAULT_QUALITY).process(enh[:, None], last=True)[:, 0]
    p = proc.prefill
    n = len(out) - p
    assert not np.any(out[:p])
    np.testing.assert_allclose(out[p:], ref[:n], atol=2e-5, rtol=0)
    assert proc.starved_samples == 0
    assert proc.latency_samples == p + round(tiny.geometry.delay * rate / 16000)


@pytest.mark.parametrize("rate,block,tol", [(16000, 160, 2e-6), (48000, 480, 2e-2)])
def test_stated_latency_is_the_input_output_delay(rate, block, tol):
    """With an identity model, out[n] == in[n - latency_samples]: the printed latency is exact."""
    x = band_limited(rate)
    proc = LiveProcessor(Streamer(Identity(), budget_ms=NO_DEADLINE), rate, block)
    out = drive(proc, x, block)
    d = proc.latency_samples
    skip = d + rate // 20  # the resamplers' start-up transient
    err = np.abs(out[skip:] - x[skip - d : len(out) - d]).max()
    assert err < tol
    # one sample off is far worse: the alignment is not an accident of a smooth signal
    assert np.abs(out[skip:] - x[skip - d - 1 : len(out) - d - 1]).max() > 10 * err


def test_bypass_passes_input_through_at_the_same_latency(tiny):
    rate, block = 48000, 480
    x = signal(rate)
    proc = LiveProcessor(Streamer(tiny, budget_ms=NO_DEADLINE), rate, block, bypass=True)
    out = drive(proc, x, block)
    d = proc.latency_samples
    np.testing.assert_array_equal(out[d:], x[: len(out) - d])
    np.testing.assert_array_equal(out[:d], 0.0)
    assert proc.streamer.stats["model_hops"] > 0  # the model kept running (warm state)


def test_bypass_toggle_switches_between_denoised_and_dry(tiny):
    rate, block = 16000, 160
    x = signal(rate)
    ref_proc = LiveProcessor(Streamer(tiny, budget_ms=NO_DEADLINE), rate, block)
    ref = drive(ref_proc, x, block)
    proc = LiveProcessor(Streamer(tiny, budget_ms=NO_DEADLINE), rate, block)
    k = 50 * block
    out = drive(proc, x, block, toggle_at=k)
    d = proc.latency_samples
    np.testing.assert_allclose(out[:k], ref[:k], atol=1e-6)  # denoised before the toggle
    np.testing.assert_array_equal(out[k:], x[k - d : len(out) - d])  # dry, same latency, after
    assert proc.bypass


def test_status_flags_are_counted_not_fatal(tiny):
    rate, block = 16000, 160
    x = signal(rate, 0.5)
    proc = LiveProcessor(Streamer(tiny, budget_ms=NO_DEADLINE), rate, block)
    clean = LiveProcessor(Streamer(tiny, budget_ms=NO_DEADLINE), rate, block)
    flags = SimpleNamespace(input_overflow=True, input_underflow=False, output_underflow=True,
                            output_overflow=False, priming_output=False)
    out = drive(proc, x, block, status=flags)
    n_blocks = len(out) // block
    assert proc.flags["input_overflow"] == n_blocks and proc.flags["output_underflow"] == n_blocks
    assert proc.flags["input_underflow"] == 0 and proc.flags["output_overflow"] == 0
    np.testing.assert_allclose(out, drive(clean, x, block), atol=1e-6)  # audio unaffected
    proc.process(x[:block, None], np.zeros((block, 1), np.float32), block, 2 | 8)  # int bitmask
    assert proc.flags["input_overflow"] == n_blocks + 1 and proc.flags["output_overflow"] == 1
    assert proc.summary()["status_input_overflow"] == n_blocks + 1
    assert status_bits(None) == 0 and status_bits(flags) == 2 | 4
    assert set(STATUS_BITS) == {"input_underflow", "input_overflow", "output_underflow",
                                "output_overflow", "priming_output"}


class JumpClock:
    """Advances 10 us per call, plus ``jump`` seconds once, at call number ``at``."""

    def __init__(self, at: int, jump: float):
        self.t, self.calls, self.at, self.jump = 0.0, 0, at, jump

    def __call__(self) -> float:
        self.calls += 1
        self.t += 1e-5 + (self.jump if self.calls == self.at else 0.0)
        return self.t


@pytest.mark.parametrize("fallback", ["mask", "passthrough"])
def test_forced_budget_miss_is_counted_and_served_by_the_fallback(tiny, fallback):
    rate, block, budget = 16000, 256, 8.0
    x = signal(rate)
    miss_hop = 20  # the 20th hop (its end-of-hop clock read) takes 50 ms
    s = Streamer(tiny, budget_ms=budget, fallback=fallback, clock=JumpClock(2 * miss_hop, 0.05))
    proc = LiveProcessor(s, rate, block)
    out = drive(proc, x, block)
    ref = drive(LiveProcessor(Streamer(tiny, budget_ms=NO_DEADLINE), rate, block), x, block)
    st = s.stats
    # 50 ms over an 8 ms budget: one miss, then the debt (42 ms) is paid by 6 fallback hops
    assert st["deadline_misses"] == 1
    assert st["fallback_hops"] == 6 and st["model_hops"] == st["hops"] - 6
    assert proc.summary()["deadline_misses"] == 1 and proc.summary()["fallback_hops"] == 6
    assert proc.starved_samples == 0  # the stream kept its pace
    p, hop = proc.prefill, 256
    first_fb = p + miss_hop * hop  # output of hop 21 (index 20): the first fallback hop
    np.testing.assert_allclose(out[:first_fb], ref[:first_fb], atol=1e-6)  # same until the miss
    assert np.abs(out[first_fb : first_fb + 6 * hop] - ref[first_fb : first_fb + 6 * hop]).max() > 1e-3


@pytest.mark.parametrize("bypass", [False, True])
def test_starved_output_is_counted_and_heals_by_growing_latency(bypass):
    """Blocks other than planned run the FIFO dry: silence, counted, and the latency grows by
    exactly the shortfall, to the pre-fill those blocks need; then audio flows, aligned."""
    rate = 16000
    x = signal(rate)
    proc = LiveProcessor(Streamer(Identity(), budget_ms=NO_DEADLINE), rate, blocksize=256,
                         bypass=bypass)
    assert proc.prefill == 0  # one hop per 256-frame block needs no pre-fill
    d0 = proc.latency_samples
    out = drive(proc, x, 200)  # 200-frame blocks: a hop is not always ready
    assert proc.starved_samples > 0 and proc.dropped_samples == 0
    assert proc.latency_samples == d0 + proc.starved_samples
    assert proc.starved_samples == plan_prefill(rate, rate, 256, 200)  # healed at the minimum
    d = proc.latency_samples
    tail = slice(len(out) // 2, len(out))
    np.testing.assert_allclose(out[tail], x[tail.start - d : tail.stop - d], atol=1e-5)


def test_recorder_writes_raw_and_played_streams(tiny, tmp_path):
    rate, block = 48000, 480
    x = signal(rate, 0.5)
    rec = Recorder(tmp_path / "rec", rate, stem="take")
    proc = LiveProcessor(Streamer(tiny, budget_ms=NO_DEADLINE), rate, block, record=rec.put)
    out = drive(proc, x, block)
    paths = rec.close(info=proc.summary())
    assert [p.name for p in paths] == ["take-raw.wav", "take-denoised.wav", "take.json"]
    raw, sr = sf.read(paths[0], dtype="float32")
    den, _ = sf.read(paths[1], dtype="float32")
    assert sr == rate and sf.info(str(paths[0])).subtype == "FLOAT"
    np.testing.assert_array_equal(raw, x[: len(out)])
    np.testing.assert_array_equal(den, out)
    info = json.loads(paths[2].read_text())
    assert info["recorded_frames"] == info["frames"] == len(out)
    assert not list((tmp_path / "rec").glob("*.part"))


def test_recorder_abort_leaves_nothing(tmp_path):
    rec = Recorder(tmp_path, 16000, stem="x")
    rec.put(np.zeros(10, np.float32), np.zeros(10, np.float32))
    rec.abort()
    assert list(tmp_path.iterdir()) == []


def test_plan_prefill_matches_processor_and_is_minimal(tiny):
    """One sample less pre-fill makes the FIFO run dry: the planned value is the minimum."""
    rate, block = 48000, 480
    p = plan_prefill(rate, 16000, 256, block, quality=DEFAULT_QUALITY)
    proc = LiveProcessor(Streamer(Identity(), budget_ms=NO_DEADLINE), rate, block)
    assert proc.prefill == p > 0
    proc._wet.size -= 1  # remove one pre-fill sample
    drive(proc, signal(rate), block)
    assert proc.starved_samples > 0


# ------------------------------------------------------------------ devices (a fake sounddevice)
class FakeSD:
    """Just enough of the sounddevice API for device selection."""

    class PortAudioError(Exception):
        pass

    def __init__(self):
        self.default = SimpleNamespace(device=[1, 2])
        self._devs = [
            dict(index=0, name="HDA Intel: ALC (hw:0,0)", hostapi=0, max_input_channels=2,
                 max_output_channels=2, default_samplerate=44100.0),
            dict(index=1, name="USB mic", hostapi=0, max_input_channels=1,
                 max_output_channels=0, default_samplerate=48000.0),
            dict(index=2, name="USB headphones", hostapi=0, max_input_channels=0,
                 max_output_channels=2, default_samplerate=48000.0),
        ]

    def query_devices(self):
        return self._devs

    def query_hostapis(self, i):
        return {"name": "ALSA"}

    def check_input_settings(self, device, channels, dtype, samplerate):
        if samplerate != 48000:
            raise self.PortAudioError("Invalid sample rate [PaErrorCode -9997]")

    check_output_settings = check_input_settings


def test_resolve_device_by_default_index_and_name():
    sd = FakeSD()
    assert resolve_device(sd, None, "input").name == "USB mic"
    assert resolve_device(sd, None, "output").index == 2
    assert resolve_device(sd, "0", "input").index == 0
    assert resolve_device(sd, "headph", "output").index == 2
    assert resolve_device(sd, "usb mic", "input").index == 1


@pytest.mark.parametrize("spec,kind,expect", [
    ("nope", "input", "no input device matches (available input devices: 0 'HDA Intel"),
    ("7", "output", "--output-device 7: no such device (available output devices: 0 'HDA"),
    ("2", "input", "has no input channels (available input devices: 0 'HDA Intel: ALC (hw:0,0)', "
                   "1 'USB mic')"),
    ("mic", "output", "no output device matches"),  # the mic has no output channels
])
def test_bad_device_gives_one_line_listing_devices(spec, kind, expect):
    with pytest.raises(DeviceError) as exc:
        resolve_device(FakeSD(), spec, kind)
    assert expect in str(exc.value) and "\n" not in str(exc.value)


def test_ambiguous_name_and_bad_rate_messages():
    sd = FakeSD()
    sd._devs[2]["max_input_channels"] = 1
    with pytest.raises(DeviceError, match="matches several input devices"):
        resolve_device(sd, "usb", "input")
    inp, out = resolve_device(sd, "1", "input"), resolve_device(sd, "2", "output")
    with pytest.raises(DeviceError) as exc:
        check_settings(sd, inp, out, 22050, 2)
    msg = str(exc.value)
    assert "cannot run at 22050 Hz" in msg and "--samplerate 48000" in msg and "\n" not in msg
    check_settings(sd, inp, out, 48000, 2)
    table = format_devices(sd)
    assert "USB mic" in table and "> " in table and " <" in table


def test_cli_without_portaudio_says_how_to_install(monkeypatch, capsys):
    from denoisezoo.cli import main

    real_import = builtins.__import__

    def no_portaudio(name, *a, **k):
        if name == "sounddevice":
            raise OSError("PortAudio library not found")
        return real_import(name, *a, **k)

    monkeypatch.delitem(sys.modules, "sounddevice", raising=False)
    monkeypatch.setattr(builtins, "__import__", no_portaudio)
    assert main(["live", "--list-devices"]) == 1
    err = capsys.readouterr().err
    assert err.strip() == f"denoisezoo: error: {INSTALL_HINT}"
    assert "apt-get install -y libportaudio2" in err and len(err.strip().splitlines()) == 1
    monkeypatch.setattr(builtins, "__import__", real_import)
    with pytest.raises(PortAudioMissing):
        monkeypatch.setitem(sys.modules, "sounddevice", None)  # an import of it fails
        from denoisezoo.live import import_sounddevice

        import_sounddevice()


def test_package_imports_without_sounddevice():
    code = ("import sys; sys.modules['sounddevice'] = None\n"
            "import denoisezoo.live, denoisezoo.cli.live\n"
            "from denoisezoo.cli import build_parser\n"
            "p, mods = build_parser(); assert 'live' in mods\n"
            "assert 'sounddevice' not in [m for m in sys.modules if sys.modules[m] is not None]\n"
            "print('ok')")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "ok"


def test_recorder_never_overwrites_an_earlier_take(tmp_path):
    first = Recorder(tmp_path, 16000, stem="take")
    first.put(np.ones(8, np.float32), np.ones(8, np.float32))
    first.close()
    second = Recorder(tmp_path, 16000, stem="take")
    assert second.stem == "take-1"
    second.put(np.zeros(4, np.float32), np.zeros(4, np.float32))
    paths = second.close(info={})
    assert sf.info(str(tmp_path / "take-raw.wav")).frames == 8
    assert [p.name for p in paths] == ["take-1-raw.wav", "take-1-denoised.wav", "take-1.json"]


def test_to_backend_exports_to_onnx_or_keeps_torch(tiny):
    from denoisezoo.live import to_backend

    said: list[str] = []
    assert to_backend(tiny, "torch", said.append) is tiny
    onnx = to_backend(tiny, "auto", said.append)
    assert onnx.backend == "onnxruntime" and said[-1].startswith("backend: onnxruntime")
    x = signal(16000, 0.3)
    a = drive(LiveProcessor(Streamer(tiny, budget_ms=NO_DEADLINE), 16000, 256), x, 256)
    b = drive(LiveProcessor(Streamer(onnx, budget_ms=NO_DEADLINE), 16000, 256), x, 256)
    np.testing.assert_allclose(a, b, atol=1e-4)

    class NoStep(torch.nn.Module):  # a torch model whose step cannot be exported
        geometry = Identity.geometry

    model = NoStep()
    assert to_backend(model, "auto", said.append) is model
    assert said[-1].startswith("backend: torch (ONNX export of NoStep failed")
    with pytest.raises(ValueError, match="--backend onnx: exporting NoStep to ONNX failed"):
        to_backend(model, "onnx", said.append)
