"""`denoisezoo denoise` of many files: --jobs worker processes, --skip-existing, progress over files."""

import numpy as np
import pytest
import soundfile as sf
import torch

from denoisezoo.api import denoise_files, load_model
from denoisezoo.cli import main
from denoisezoo.gtcrn import gtcrn_tiny
from denoisezoo.hub import save_checkpoint


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory):
    torch.manual_seed(0)
    return save_checkpoint(gtcrn_tiny().eval(), tmp_path_factory.mktemp("ck") / "tiny.pt")


@pytest.fixture
def folder(wav_file):
    paths = [wav_file(f"corpus/{n}.wav", seconds=s, seed=i)
             for i, (n, s) in enumerate([("a", 0.6), ("b", 0.9), ("sub/c", 0.4)])]
    return paths[0].parent


def run(*args) -> int:
    return main([str(a) for a in args])


def _read_all(root):
    return {p.relative_to(root).as_posix(): sf.read(p, dtype="float32")[0]
            for p in sorted(root.rglob("*.wav"))}


def test_jobs_equal_one_process(folder, tmp_path, ckpt):
    assert run("denoise", folder, "-o", tmp_path / "one", "--checkpoint", ckpt) == 0
    assert run("denoise", folder, "-o", tmp_path / "two", "--checkpoint", ckpt, "--jobs", "2") == 0
    one, two = _read_all(tmp_path / "one"), _read_all(tmp_path / "two")
    assert sorted(one) == ["a.wav", "b.wav", "sub/c.wav"] == sorted(two)
    for k in one:
        np.testing.assert_allclose(two[k], one[k], atol=1e-6, err_msg=k)


def test_worker_failure_is_reported_and_the_rest_written(folder, tmp_path, ckpt, capsys):
    (folder / "bad.wav").write_bytes(b"not audio at all")
    model = load_model(ckpt)
    pairs = [(p, tmp_path / "out" / p.name) for p in sorted(folder.glob("*.wav"))]
    res = {src.name: rep for src, _, rep in denoise_files(pairs, model, jobs=2)}
    assert isinstance(res["bad.wav"], ValueError) and "bad.wav" in str(res["bad.wav"])
    assert all(isinstance(res[n], dict) for n in ("a.wav", "b.wav"))
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["a.wav", "b.wav"]


def test_skip_existing_resumes_a_folder(folder, tmp_path, ckpt, capsys):
    out = tmp_path / "out"
    assert run("denoise", folder, "-o", out, "--checkpoint", ckpt) == 0
    first = _read_all(out)
    (out / "b.wav").unlink()  # as if the run stopped before b
    (out / "a.wav").write_bytes(b"precious")  # skipped outputs are not touched
    capsys.readouterr()
    # without the flag, the never-overwrite rule stands: nothing is written
    assert run("denoise", folder, "-o", out, "--checkpoint", ckpt) == 1
    assert "exists" in capsys.readouterr().err and not (out / "b.wav").exists()
    assert run("denoise", folder, "-o", out, "--checkpoint", ckpt, "--skip-existing") == 0
    cap = capsys.readouterr()
    assert "skipping 2 of 3" in cap.err and "b.wav" in cap.out and "a.wav" not in cap.out
    assert (out / "a.wav").read_bytes() == b"precious"
    np.testing.assert_array_equal(sf.read(out / "b.wav", dtype="float32")[0], first["b.wav"])
    # all done: a second resume does nothing
    assert run("denoise", folder, "-o", out, "--checkpoint", ckpt, "--skip-existing") == 0
    assert "skipping 3 of 3" in capsys.readouterr().err


def test_skip_existing_needs_every_output_of_an_input(folder, tmp_path, ckpt, capsys):
    out, vad = tmp_path / "out", tmp_path / "vad"
    assert run("denoise", folder, "-o", out, "--checkpoint", ckpt) == 0
    # the audio exists but its VAD CSV does not: not skipped, and never overwritten
    assert run("denoise", folder, "-o", out, "--vad-csv", vad, "--checkpoint", ckpt,
               "--skip-existing") == 1
    assert "exists" in capsys.readouterr().err and not vad.exists()


def test_flag_errors(folder, tmp_path, ckpt, capsys):
    assert run("denoise", folder, "-o", tmp_path / "o", "--checkpoint", ckpt, "--skip-existing",
               "--overwrite") == 1
    assert "exclude each other" in capsys.readouterr().err
    assert run("denoise", folder, "-o", tmp_path / "o", "--checkpoint", ckpt, "--jobs", "-1") == 1
    assert "--jobs" in capsys.readouterr().err


def test_progress_bar_over_files(folder, tmp_path, ckpt, capsys, monkeypatch):
    import sys

    monkeypatch.setattr(sys.stderr, "isatty", lambda: True, raising=False)
    assert run("denoise", folder, "-o", tmp_path / "o", "--checkpoint", ckpt) == 0
    assert "files: 100%" in capsys.readouterr().err
