"""The C generator (``denoisezoo.export.c``) and ``denoisezoo export c``: what the folder holds
(the issue's API, folded weights as const arrays, the ERB bands as edges), refusals, the CLI."""

from __future__ import annotations

import json
import re

import numpy as np
import pytest
import torch
from conftest import REPO, randomised

from denoisezoo.cli import main
from denoisezoo.export.c import SIDECAR, compiler, export_c, generated_files
from denoisezoo.export.c.export import TEMPLATES
from denoisezoo.export.c.tables import c_float
from denoisezoo.gtcrn import fused, gtcrn_tiny
from denoisezoo.hub import load_model

API = [
    "DzModel *dz_create(void);",
    "void dz_destroy(DzModel *m);",
    "void dz_reset(DzModel *m);",
    "int dz_sample_rate(void);",
    "int dz_hop_size(void);",
    "float dz_process(DzModel *m, const float *in, float *out);",
    "void dz_set_atten_lim_db(DzModel *m, float db);",
    # for servers (StreamPool backend "c"): many streams per call, a hop through the STFT only
    "int dz_process_many(DzModel *const *models, int n, const float *in, float *out, float *vad);",
    "void dz_bypass(DzModel *m, const float *in, float *out);",
    "int dz_bypass_many(DzModel *const *models, int n, const float *in, float *out);",
]


def _table(source: str, name: str) -> np.ndarray:
    body = re.search(rf"static const float {name}\[\d+\] = \{{(.*?)\}};", source, re.S).group(1)
    body = re.sub(r"/\*.*?\*/", "", body)
    return np.asarray([float(v.strip().rstrip("f")) for v in body.split(",")], np.float32)


@pytest.fixture(scope="module")
def tiny_folder(tmp_path_factory):
    model = randomised(gtcrn_tiny)
    folder = tmp_path_factory.mktemp("c")
    meta = export_c(model, folder, name="tiny")
    return model, folder, meta


def test_folder_holds_sources_header_makefile_and_sidecar(tiny_folder):
    model, folder, meta = tiny_folder
    assert sorted(p.name for p in folder.iterdir()) == sorted(generated_files())
    for f in ("dz_model.c", "dz_layers.c", "dz_fft.c", "dz_weights.c", "dz_demo.c", "Makefile",
              "denoisezoo.h", "dz_config.h"):
        assert (folder / f).is_file()
    header = re.sub(r"/\*.*?\*/", "", (folder / "denoisezoo.h").read_text(), flags=re.S)
    header = " ".join(header.split("typedef struct DzModel DzModel;")[1].split())
    declared = re.findall(r"DZ_EXPORT ([^;]*;)", header)
    assert declared == API  # the API plus the server calls, nothing more
    side = json.loads((folder / SIDECAR).read_text())
    assert side == meta and side["family"] == "gtcrn" and side["delay"] == 256
    assert side["geometry"] == {"sample_rate": 16000, "n_fft": 512, "hop_length": 256,
                                "window": "sqrt_hann"}
    config = (folder / "dz_config.h").read_text()
    assert "#define DZ_N_FFT 512" in config and '#define DZ_MODEL_NAME "tiny"' in config
    makefile = (folder / "Makefile").read_text()
    assert makefile.startswith("#") and "\nall: libdenoisezoo.so libdenoisezoo.a dz_demo" in makefile
    for src in ("dz_model.c", "dz_layers.c", "dz_fft.c", "dz_weights.c"):  # libc + libm only
        includes = set(re.findall(r"#include <([^>]+)>", (folder / src).read_text()))
        assert includes <= {"math.h", "stdlib.h", "string.h", "stddef.h"}, (src, includes)


def test_weights_are_folded_const_tables_and_erb_is_band_edges(tiny_folder):
    model, folder, _ = tiny_folder
    src = (folder / "dz_weights.c").read_text()
    assert "running_mean" not in src and "malloc" not in src
    with torch.no_grad():  # the first encoder conv, BatchNorm folded as in the fast path
        blk = model.encoder.en_convs[0]
        w, b = fused.bn_fold(blk.conv.weight, blk.conv.bias, blk.bn)
    np.testing.assert_array_equal(_table(src, "enc0_weight"), w.numpy().reshape(-1))
    np.testing.assert_array_equal(_table(src, "enc0_bias"), b.numpy())
    fb = model.erb.analysis.numpy()  # bands, high bins: never stored densely
    weights = _table(src, "erb_weight")
    assert weights.size < fb.size / 4
    assert np.isclose(weights.sum(), fb.sum())
    assert f"[{fb.size}]" not in src


@pytest.mark.parametrize("v", [0.0, -0.0, 1.0, 3.0, 1e-30, -2.5e38, 0.1, 1 / 3, 123456.789])
def test_float_literals_read_back_exactly(v):
    lit = c_float(v)
    assert lit.endswith("f") and ("." in lit or "e" in lit)
    assert np.float32(float(lit[:-1])) == np.float32(v)


def test_refusals(tiny_folder, tmp_path):
    model, folder, _ = tiny_folder
    with pytest.raises(FileExistsError):
        export_c(model, folder)
    export_c(model, folder, overwrite=True)
    with pytest.raises(TypeError, match="GTCRN family only"):
        export_c(load_model("rnnoise_16k", pretrained=False), tmp_path / "rn")
    assert not (tmp_path / "rn").exists()


def test_templates_are_package_data():
    text = (REPO / "pyproject.toml").read_text()
    assert '"export/c/templates/*"' in text
    assert {"dz_model.c", "Makefile", "denoisezoo.h"} <= {p.name for p in TEMPLATES.iterdir()}


@pytest.mark.skipif(compiler() is None, reason="no C compiler")
def test_cli_exports_builds_and_checks(tmp_path, capsys):
    out = tmp_path / "tiny_c"
    assert main(["export", "c", "--preset", "gtcrn_tiny", "-o", str(out), "--check-seconds", "1"]) == 0
    text = capsys.readouterr().out
    assert "max abs diff" in text and (out / "libdenoisezoo.so").is_file()
    assert (out / "dz_demo").is_file() and (out / "libdenoisezoo.a").is_file()
    assert main(["export", "c", "--preset", "gtcrn_tiny", "-o", str(out)]) == 1  # never overwrites
    assert main(["export", "c", "--preset", "gtcrn_tiny", "-o", str(out), "--overwrite",
                 "--no-build"]) == 0
    assert main(["export", "c", "--preset", "rnnoise_16k", "-o", str(tmp_path / "rn")]) == 1
    assert "GTCRN family only" in capsys.readouterr().err
