"""The generated C library (``denoisezoo export c``), compiled with the system compiler: equal to
the PyTorch Streamer on a real file, robust to bad input, clean under ASan/UBSan, usable from
Python as the Streamer's ``c`` backend."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch
from conftest import REPO, randomised

from denoisezoo.export.c import (
    build,
    c_model,
    cached_library,
    check_library,
    compiler,
    compiler_missing_reason,
    export_c,
)
from denoisezoo.gtcrn import GTCRN, GTCRNConfig, gtcrn_tiny
from denoisezoo.hub import load_model
from denoisezoo.streaming import Streamer
from denoisezoo.streaming.c_runtime import CLibrary, CStepModel

pytestmark = pytest.mark.skipif(compiler() is None, reason=compiler_missing_reason() or "")

EXAMPLE = REPO / "examples" / "noisy_example.wav"
TOL = 1e-4  # issue #32: max abs difference to the Python Streamer


def _example(seconds: float, sample_rate: int = 16000) -> np.ndarray:
    x, sr = sf.read(EXAMPLE, dtype="float32")
    if sr != sample_rate:
        import soxr

        x = soxr.resample(x, sr, sample_rate).astype(np.float32)
    return x[: int(seconds * sample_rate)]


def _built(tmp_path_factory, model, tag: str) -> Path:
    folder = tmp_path_factory.mktemp(tag)
    export_c(model, folder, name=tag)
    build(folder, extra_cflags="-Werror")
    return folder


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    model = randomised(gtcrn_tiny)
    return model, _built(tmp_path_factory, model, "tiny")


@pytest.fixture(scope="module")
def shipped(tmp_path_factory):
    model = load_model("gtcrn")
    return model, _built(tmp_path_factory, model, "gtcrn")


def _python(model, x: np.ndarray, atten_lim_db: float | None = None) -> np.ndarray:
    s = Streamer(model)
    if atten_lim_db is not None:
        s.set_strength(atten_lim_db)
    return torch.cat([s.feed(torch.from_numpy(x)), s.flush()]).numpy()


def _hops(lib: CLibrary, x: np.ndarray, changes: dict[int, float] | None = None,
          handle: int | None = None) -> np.ndarray:
    """``x`` (whole hops) through one C model, hop by hop, with attenuation changes by hop."""
    h = lib.create() if handle is None else handle
    out = []
    for i in range(len(x) // lib.hop):
        if changes and i in changes:
            lib.set_atten_lim_db(h, changes[i])
        out.append(lib.process(h, x[i * lib.hop : (i + 1) * lib.hop])[0].copy())
    if handle is None:
        lib.destroy(h)
    return np.concatenate(out)


def test_make_builds_all_targets_without_warnings(tiny):
    _, folder = tiny
    for f in ("libdenoisezoo.so", "libdenoisezoo.a", "dz_demo"):
        assert (folder / f).is_file(), f
    # the warning flags of the issue, at -O2 too, as C99 with -pedantic
    res = subprocess.run(["make", "-C", str(folder), "-B", "libdenoisezoo.so", "CFLAGS_OPT=-O2",
                          "CFLAGS_WARN=-Wall -Wextra -pedantic"], capture_output=True, text=True)
    assert res.returncode == 0, res.stderr
    assert "warning" not in res.stderr, res.stderr
    syms = subprocess.run(["nm", "-D", "--defined-only", str(folder / "libdenoisezoo.so")],
                          capture_output=True, text=True).stdout if shutil.which("nm") else ""
    if syms:  # only the API is exported
        names = {line.split()[-1] for line in syms.splitlines() if " T " in line}
        assert {"dz_create", "dz_process", "dz_set_atten_lim_db"} <= names
        assert not {n for n in names if n.startswith("compute_")}


def test_real_file_equals_python_streamer(shipped):
    model, folder = shipped
    lib = CLibrary(folder)
    x = _example(6.0)
    res = check_library(model, folder, x)
    assert res["samples"] == lib.delay + len(x)
    assert res["max_abs_diff"] <= TOL, res
    assert res["vad_max_abs_diff"] <= 1e-3, res
    # the output is the input delayed by n_fft - hop, as the Streamer's: it tracks the input
    y, _ = lib.denoise(x)
    aligned = y[lib.delay :]
    assert np.corrcoef(aligned, x)[0, 1] > 0.5


def test_tiny_equals_python_with_attenuation_limit(tiny):
    model, folder = tiny
    lib = CLibrary(folder)
    x = _example(2.0)
    x = x[: len(x) // lib.hop * lib.hop]
    assert check_library(model, folder, x)["max_abs_diff"] <= TOL
    ref = _python(model, x, atten_lim_db=12.0)[: len(x)]
    assert np.abs(_hops(lib, x, {0: 12.0}) - ref).max() <= TOL
    # changes while streaming ramp in over 4 hops as Streamer.set_strength's; 0 = no limit
    s = Streamer(model)
    out = []
    for i in range(len(x) // lib.hop):
        if i in (20, 60):
            s.set_strength(6.0 if i == 20 else None)
        out.append(s.feed(torch.from_numpy(x[i * lib.hop : (i + 1) * lib.hop])))
    ref = torch.cat(out).numpy()
    assert np.abs(_hops(lib, x, {20: 6.0, 60: 0.0}) - ref).max() <= TOL


def test_non_power_of_two_fft_48k(tmp_path_factory):
    """1536-point frames (3 x 512: radix-3 stage of the mixed-radix FFT) at 48 kHz."""
    model = randomised(lambda: GTCRN(GTCRNConfig.for_sample_rate(48000, channels=8, dilations=(1, 2),
                                                                 num_dual_path=1)))
    folder = _built(tmp_path_factory, model, "tiny48k")
    lib = CLibrary(folder)
    assert (lib.sample_rate, lib.n_fft, lib.hop) == (48000, 1536, 768)
    assert check_library(model, folder, _example(1.0, 48000))["max_abs_diff"] <= TOL


def test_bad_input_never_crashes_nor_poisons_later_hops(tiny):
    _, folder = tiny
    lib = CLibrary(folder)
    x = _example(2.0)
    x = x[: len(x) // lib.hop * lib.hop]
    hop, k = lib.hop, 30
    zeroed = x.copy()
    zeroed[k * hop : (k + 1) * hop] = 0.0
    ref_zero = _hops(lib, zeroed)
    for bad in (np.nan, np.inf, -np.inf):  # a non-finite sample counts as 0
        xb = x.copy()
        xb[k * hop : (k + 1) * hop] = bad
        y = _hops(lib, xb)
        assert np.isfinite(y).all()
        np.testing.assert_array_equal(y, ref_zero)
    clean = _hops(lib, x)
    for bad in (1e30, -3e38, 1e4):  # huge: clipped; later hops stay finite and in range
        xb = x.copy()
        xb[k * hop : (k + 1) * hop] = bad
        y = _hops(lib, xb)
        assert np.isfinite(y).all()
        later = y[(k + 10) * hop :]
        assert np.abs(later).max() <= 2 * np.abs(clean).max() + 1e-3
    # dz_reset forgets everything: the same output as a fresh model
    h = lib.create()
    _hops(lib, xb, handle=h)
    lib.reset(h)
    np.testing.assert_array_equal(_hops(lib, x, handle=h), clean)
    lib.destroy(h)


def _sanitizer_missing(tmp: Path) -> str | None:
    src = tmp / "probe.c"
    src.write_text("int main(void) { return 0; }\n")
    res = subprocess.run([*compiler().split(), "-fsanitize=address,undefined", "-o", str(tmp / "probe"),
                          str(src)], capture_output=True, text=True)
    if res.returncode != 0:
        return "the compiler has no ASan/UBSan runtime"
    if subprocess.run([str(tmp / "probe")], capture_output=True).returncode != 0:
        return "ASan cannot run here"
    return None


def test_sanitizer_build_of_the_demo_runs_clean(tiny, tmp_path):
    _, folder = tiny
    reason = _sanitizer_missing(tmp_path)
    if reason:
        pytest.skip(reason)
    res = subprocess.run(["make", "-C", str(folder), "dz_demo_asan"], capture_output=True, text=True)
    assert res.returncode == 0, res.stderr
    x = _example(1.0)
    x[3000:3300] = np.nan
    x[5000:5100] = np.inf
    x[7000:7600] = 1e30
    x.tofile(tmp_path / "in.f32")
    s16 = (np.clip(np.nan_to_num(x, posinf=1.0, neginf=-1.0), -1.0, 1.0) * 32767).astype(np.int16)
    s16.tofile(tmp_path / "in.s16")
    for args in (["in.f32", "out.f32"], ["-s16", "in.s16", "out.s16"]):
        run = subprocess.run([str(folder / "dz_demo_asan"), *args], cwd=tmp_path, capture_output=True,
                             text=True, env={"ASAN_OPTIONS": "detect_leaks=1:abort_on_error=1",
                                             "UBSAN_OPTIONS": "halt_on_error=1:print_stacktrace=1"})
        assert run.returncode == 0, run.stderr
        assert "runtime error" not in run.stderr and "ERROR" not in run.stderr, run.stderr
    assert np.isfinite(np.fromfile(tmp_path / "out.f32", np.float32)).all()


def test_demo_writes_the_library_output(tiny, tmp_path):
    _, folder = tiny
    lib = CLibrary(folder)
    x = _example(1.0)
    x.tofile(tmp_path / "in.f32")
    res = subprocess.run([str(folder / "dz_demo"), "-t", "in.f32", "out.f32"], cwd=tmp_path,
                         capture_output=True, text=True)
    assert res.returncode == 0, res.stderr
    assert "median" in res.stderr
    y = np.fromfile(tmp_path / "out.f32", np.float32)
    ref, _ = lib.denoise(x)
    np.testing.assert_array_equal(y, ref)
    (np.round(x * 32767).astype(np.int16)).tofile(tmp_path / "in.s16")
    res = subprocess.run([str(folder / "dz_demo"), "-s16", "in.s16", "out.s16"], cwd=tmp_path,
                         capture_output=True, text=True)
    assert res.returncode == 0, res.stderr
    y16 = np.fromfile(tmp_path / "out.s16", np.int16) / 32768.0
    assert y16.shape == ref.shape and np.abs(y16 - ref).max() < 1e-3


def test_streamer_runs_the_c_backend_from_the_cache(tiny, tmp_path, monkeypatch):
    model, _ = tiny
    monkeypatch.setenv("DENOISEZOO_CACHE", str(tmp_path))
    c = c_model(model)
    assert isinstance(c, CStepModel) and c.backend == "c"
    assert Path(c.path).parent.parent == tmp_path / "c"
    stamp = c.path.stat().st_mtime_ns
    assert cached_library(model) == c.path and c.path.stat().st_mtime_ns == stamp  # no rebuild
    x = _example(1.5)
    ref = _python(model, x)
    for chunk in (None, 100, 256):  # whole signal, odd chunks, one hop per feed
        s = Streamer(c, vad=True)
        parts = [x] if chunk is None else [x[i : i + chunk] for i in range(0, len(x), chunk)]
        y = torch.cat([*[s.feed(torch.from_numpy(p)) for p in parts], s.flush()]).numpy()
        assert s.backend == "c"
        assert np.abs(y - ref).max() <= TOL
        assert s.pop_vad().shape[1] == -(-(len(x) + s.delay) // s.geometry.hop_length)
    stereo = np.stack([x, x[::-1].copy()])  # channels as the batch: one C model each
    s = Streamer(c, batch=2)
    y = torch.cat([s.feed(torch.from_numpy(stereo)), s.flush()], dim=-1).numpy()
    assert np.abs(y[0] - ref).max() <= TOL


def test_denoise_cli_with_the_c_backend(tiny, tmp_path, monkeypatch):
    from denoisezoo.cli import main
    from denoisezoo.hub import save_checkpoint

    monkeypatch.setenv("DENOISEZOO_CACHE", str(tmp_path / "cache"))
    ck = save_checkpoint(tiny[0], tmp_path / "tiny.pt", name="tiny")
    x = _example(2.0)
    sf.write(tmp_path / "in.wav", x, 16000, subtype="FLOAT")
    for backend in ("torch", "c"):
        assert main(["denoise", str(tmp_path / "in.wav"), "-o", str(tmp_path / f"{backend}.wav"),
                     "--checkpoint", str(ck), "--backend", backend, "--no-progress"]) == 0
    a, _ = sf.read(tmp_path / "torch.wav", dtype="float32")
    b, _ = sf.read(tmp_path / "c.wav", dtype="float32")
    assert a.shape == b.shape == x.shape and np.abs(a - b).max() <= TOL
    assert main(["denoise", str(tmp_path / "in.wav"), "-o", str(tmp_path / "rn.wav"),
                 "--preset", "rnnoise_16k", "--backend", "c"]) == 1
