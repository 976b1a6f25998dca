"""The LADSPA plugin of the generated C (``denoisezoo export ladspa``): run by a real host
(``applyplugin`` of the LADSPA SDK) and by a small ctypes host, against the PyTorch Streamer."""

from __future__ import annotations

import ctypes
import shutil
import subprocess

import numpy as np
import pytest
import soundfile as sf
import torch
from conftest import REPO, randomised

from denoisezoo.cli import main
from denoisezoo.export.c import LADSPA_PLUGIN, build, compiler, export_ladspa
from denoisezoo.gtcrn import gtcrn_tiny
from denoisezoo.streaming import Streamer


def _no_ladspa_header() -> str | None:
    cc = compiler()
    if cc is None:
        return "no C compiler"
    res = subprocess.run([*cc.split(), "-fsyntax-only", "-x", "c", "-"], input="#include <ladspa.h>\n",
                         capture_output=True, text=True)
    return None if res.returncode == 0 else "no ladspa.h (apt-get install ladspa-sdk)"


pytestmark = pytest.mark.skipif(_no_ladspa_header() is not None, reason=_no_ladspa_header() or "")
HOP, TOL16 = 256, 1e-4  # the plugin's buffering hop; 16-bit output files round to 3e-5


@pytest.fixture(scope="module")
def plugin(tmp_path_factory):
    model = randomised(gtcrn_tiny)
    folder = tmp_path_factory.mktemp("ladspa")
    meta = export_ladspa(model, folder, name="tiny")
    build(folder, targets=("ladspa",), extra_cflags="-Werror")  # the folder's default goal
    assert (folder / LADSPA_PLUGIN).is_file()
    return model, folder, meta


def _streamer(model, x, atten=None, wet=1.0) -> np.ndarray:
    s = Streamer(model)
    if atten is not None or wet != 1.0:
        s.set_strength(atten, wet)
    return torch.cat([s.feed(torch.from_numpy(x)), s.flush()]).numpy()


@pytest.mark.skipif(shutil.which("applyplugin") is None, reason="no applyplugin (ladspa-sdk)")
def test_applyplugin_output_equals_python(plugin, tmp_path):
    model, folder, meta = plugin
    x, sr = sf.read(REPO / "examples" / "noisy_example.wav", dtype="float32")
    sf.write(tmp_path / "in.wav", x[: 2 * sr], sr, subtype="PCM_16")
    x, _ = sf.read(tmp_path / "in.wav", dtype="float32")  # what the host reads
    label = meta["ladspa"]["label"]
    for atten, wet, py_atten in ((100, 1, None), (12, 1, 12.0), (100, 0.3, None)):
        out = tmp_path / f"out_{atten}_{wet}.wav"
        res = subprocess.run(["applyplugin", str(tmp_path / "in.wav"), str(out),
                              str(folder / LADSPA_PLUGIN), label, str(atten), str(wet)],
                             capture_output=True, text=True)
        assert res.returncode == 0, res.stderr
        y, _ = sf.read(out, dtype="float32")
        ref = _streamer(model, x, py_atten, wet)
        assert len(y) == len(x) and not y[:HOP].any()  # one hop of buffering, then the stream
        assert np.abs(y[HOP:] - ref[: len(y) - HOP]).max() <= TOL16
    sf.write(tmp_path / "in48.wav", x, 48000, subtype="PCM_16")
    res = subprocess.run(["applyplugin", str(tmp_path / "in48.wav"), str(tmp_path / "o48.wav"),
                          str(folder / LADSPA_PLUGIN), label, "100", "1"], capture_output=True, text=True)
    assert res.returncode != 0
    assert "runs at 16000 Hz only, the host asked for 48000 Hz" in res.stderr


class _Hint(ctypes.Structure):
    _fields_ = [("hints", ctypes.c_int), ("lower", ctypes.c_float), ("upper", ctypes.c_float)]


_FN = ctypes.CFUNCTYPE


class _Descriptor(ctypes.Structure):  # LADSPA 1.1
    _fields_ = [("id", ctypes.c_ulong), ("label", ctypes.c_char_p), ("properties", ctypes.c_int),
                ("name", ctypes.c_char_p), ("maker", ctypes.c_char_p), ("copyright", ctypes.c_char_p),
                ("port_count", ctypes.c_ulong), ("port_kinds", ctypes.POINTER(ctypes.c_int)),
                ("port_names", ctypes.POINTER(ctypes.c_char_p)), ("hints", ctypes.POINTER(_Hint)),
                ("data", ctypes.c_void_p),
                ("instantiate", _FN(ctypes.c_void_p, ctypes.c_void_p, ctypes.c_ulong)),
                ("connect_port", _FN(None, ctypes.c_void_p, ctypes.c_ulong, ctypes.c_void_p)),
                ("activate", _FN(None, ctypes.c_void_p)),
                ("run", _FN(None, ctypes.c_void_p, ctypes.c_ulong)),
                ("run_adding", ctypes.c_void_p), ("set_run_adding_gain", ctypes.c_void_p),
                ("deactivate", ctypes.c_void_p), ("cleanup", _FN(None, ctypes.c_void_p))]


def test_ctypes_host_odd_blocks_in_place_and_latency(plugin):
    model, folder, meta = plugin
    lib = ctypes.CDLL(str(folder / LADSPA_PLUGIN))
    lib.ladspa_descriptor.restype = ctypes.POINTER(_Descriptor)
    lib.ladspa_descriptor.argtypes = [ctypes.c_ulong]
    d = lib.ladspa_descriptor(0).contents
    assert not lib.ladspa_descriptor(1)
    names = [d.port_names[i].decode() for i in range(d.port_count)]
    assert names[-1] == "latency" and d.label.decode() == meta["ladspa"]["label"]
    assert d.id == meta["ladspa"]["id"]
    assert not d.instantiate(ctypes.byref(d), 44100)  # refuses another rate
    h = d.instantiate(ctypes.byref(d), 16000)
    assert h
    x = (0.3 * np.random.default_rng(0).standard_normal(16000)).astype(np.float32)
    buf = np.empty(1000, np.float32)
    atten, wet, latency = ctypes.c_float(100.0), ctypes.c_float(1.0), ctypes.c_float(-1.0)
    for port, c in ((2, atten), (3, wet), (4, latency)):
        d.connect_port(h, port, ctypes.addressof(c))
    d.connect_port(h, 0, buf.ctypes.data)  # in place: input and output share one buffer
    d.connect_port(h, 1, buf.ctypes.data)
    d.activate(h)
    out, i, sizes = [], 0, [1, 100, 999, 256, 37, 1000]
    while i < len(x):
        n = min(sizes[len(out) % len(sizes)], len(x) - i)
        buf[:n] = x[i : i + n]
        d.run(h, n)
        out.append(buf[:n].copy())
        i += n
    d.cleanup(h)
    y = np.concatenate(out)
    assert latency.value == meta["ladspa"]["latency"] == 512  # one hop of buffering + the delay
    ref = _streamer(model, x)
    assert np.abs(y[HOP:] - ref[: len(y) - HOP]).max() <= 1e-5


def test_cli_export_ladspa(tmp_path, capsys):
    out = tmp_path / "plug"
    assert main(["export", "ladspa", "--preset", "gtcrn_tiny", "-o", str(out)]) == 0
    assert (out / LADSPA_PLUGIN).is_file() and not (out / "libdenoisezoo.so").exists()
    assert "latency 512 samples" in capsys.readouterr().out
