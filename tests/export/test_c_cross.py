"""The generated C library cross-built for aarch64 (Debian ``gcc-aarch64-linux-gnu``) gives the
same output under ``qemu-aarch64`` as the host build and the PyTorch Streamer."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import randomised

from denoisezoo.export.c import build, check_signal, compiler, export_c
from denoisezoo.gtcrn import gtcrn_tiny
from denoisezoo.streaming import CLibrary, Streamer

CROSS = "aarch64-linux-gnu-gcc"
SYSROOT = Path("/usr/aarch64-linux-gnu")
pytestmark = pytest.mark.skipif(
    compiler() is None or shutil.which(CROSS) is None or shutil.which("qemu-aarch64") is None
    or not SYSROOT.is_dir(),
    reason="needs a host C compiler, aarch64-linux-gnu-gcc (apt-get install gcc-aarch64-linux-gnu) "
           "and qemu-aarch64 (qemu-user)")


def test_aarch64_build_equals_host_and_python(tmp_path):
    model = randomised(gtcrn_tiny)
    host, arm = tmp_path / "host", tmp_path / "arm"
    export_c(model, host)
    export_c(model, arm)
    build(host)
    build(arm, cc=CROSS, targets=("dz_demo",), extra_cflags="-Werror")
    kind = subprocess.run(["file", str(arm / "dz_demo")], capture_output=True, text=True).stdout
    assert "aarch64" in kind or not kind
    x = check_signal(1.5, 16000)
    x.tofile(tmp_path / "in.f32")
    run = subprocess.run(["qemu-aarch64", "-L", str(SYSROOT), str(arm / "dz_demo"), "in.f32", "out.f32"],
                         cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr
    got = np.fromfile(tmp_path / "out.f32", np.float32)
    ref, _ = CLibrary(host).denoise(x)
    assert got.shape == ref.shape and np.abs(got - ref).max() <= 1e-6
    s = Streamer(model)
    py = torch.cat([s.feed(torch.from_numpy(x)), s.flush()]).numpy()
    assert np.abs(got - py).max() <= 1e-4
