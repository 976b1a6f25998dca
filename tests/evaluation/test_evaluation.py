"""Evaluation: metric correctness vs reference packages / formulas, missing scores, data SPECs,
``denoisezoo evaluate`` end to end, bad-input reporting, and the leaderboard script."""

from __future__ import annotations

import csv
import importlib.util
import json
import math
from pathlib import Path

import numpy as np
import pesq as pesq_pkg
import pystoi
import pytest
import soundfile as sf
import torch
from conftest import REPO, speechlike

from denoisezoo.cli import main
from denoisezoo.dsp.resample import resample
from denoisezoo.evaluation import metrics as M
from denoisezoo.evaluation.data import find_pairs, load_pair
from denoisezoo.evaluation.runner import evaluate_systems, mean_ci95, paired_gain

SR = 16000


def _noise(n: int, seed: int = 1) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal(n).astype(np.float32)


def _at_snr(clean: np.ndarray, snr_db: float, seed: int = 1) -> np.ndarray:
    """clean + white noise orthogonal to (zero-mean) clean, at exactly ``snr_db``."""
    s = clean.astype(np.float64) - clean.mean()
    n = _noise(len(clean), seed).astype(np.float64)
    n -= n.mean()
    n -= np.dot(n, s) / np.dot(s, s) * s
    n *= math.sqrt(np.dot(s, s) / np.dot(n, n) / 10 ** (snr_db / 10))
    return s + n, s


# ----------------------------------------------------------------------------- metrics
def test_pesq_matches_reference_package_and_clean_is_max():
    c = speechlike(2 * SR)
    noisy = c + 0.05 * _noise(len(c))
    assert M.pesq(c, c, SR) == pytest.approx(4.644, abs=0.01)
    ref_wb = pesq_pkg.pesq(SR, c.astype(np.float64), noisy.astype(np.float64), "wb")
    ref_nb = pesq_pkg.pesq(SR, c.astype(np.float64), noisy.astype(np.float64), "nb")
    assert M.pesq(c, noisy, SR) == pytest.approx(ref_wb, abs=1e-4)
    assert M.pesq(c, noisy, SR, mode="nb") == pytest.approx(ref_nb, abs=1e-4)
    assert M.pesq(c, noisy, SR) < 3.0


def test_pesq_other_rate_is_resampled_to_16k():
    c = speechlike(2 * SR)
    noisy = (c + 0.05 * _noise(len(c))).astype(np.float32)
    at16 = M.pesq(c, noisy, SR)
    c48, n48 = resample(c, SR, 48000), resample(noisy, SR, 48000)
    assert M.pesq(c48, n48, 48000) == pytest.approx(at16, abs=0.1)


def test_stoi_estoi_match_pystoi():
    c = speechlike(2 * SR)
    noisy = c + 0.1 * _noise(len(c))
    assert M.stoi(c, c, SR) == pytest.approx(1.0, abs=1e-6)
    assert M.estoi(c, c, SR) == pytest.approx(1.0, abs=1e-6)
    assert M.stoi(c, noisy, SR) == pytest.approx(pystoi.stoi(c, noisy, SR), abs=1e-9)
    assert M.estoi(c, noisy, SR) == pytest.approx(pystoi.stoi(c, noisy, SR, extended=True), abs=1e-9)
    assert M.estoi(c, noisy, SR) < 0.95


@pytest.mark.parametrize("snr_db", [-5.0, 0.0, 10.0, 20.0])
def test_si_sdr_and_snr_of_known_noise(snr_db):
    noisy, clean = _at_snr(speechlike(SR), snr_db)
    assert M.si_sdr(clean, noisy, SR) == pytest.approx(snr_db, abs=0.1)
    assert M.snr(clean, noisy, SR) == pytest.approx(snr_db, abs=0.1)


def test_si_sdr_is_scale_invariant_and_snr_is_not():
    c = speechlike(SR)
    assert M.si_sdr(c, 0.3 * c, SR) > 100  # a scaled copy: no distortion at all
    noisy = c + 0.1 * _noise(len(c))
    assert M.si_sdr(c, 0.5 * noisy, SR) == pytest.approx(M.si_sdr(c, noisy, SR), abs=1e-6)
    assert M.snr(c, 0.5 * c, SR) == pytest.approx(20 * math.log10(2), abs=1e-6)  # error = c / 2


def test_segmental_snr_formula():
    c = speechlike(SR)
    assert M.seg_snr(c, 0.9 * c, SR) == pytest.approx(20.0, abs=1e-4)  # error 0.1 c in every frame
    assert M.seg_snr(c, c, SR) == pytest.approx(35.0)  # clamped at the top
    assert M.seg_snr(c, -c, SR) == pytest.approx(-20 * math.log10(2), abs=1e-4)  # error 2 c
    assert M.seg_snr(c, -3 * c, SR) == pytest.approx(-10.0)  # -12 dB, clamped at the bottom


def test_align_trims_within_one_hop_and_rejects_more():
    c = speechlike(SR)
    a, b = M.align(c, c[:-200], SR)  # 200 < 256 samples (16 ms)
    assert a.shape == b.shape == (SR - 200,)
    with pytest.raises(ValueError, match=r"expected 16000 samples \(clean\), found 15000"):
        M.si_sdr(c, c[:15000], SR)
    with pytest.raises(ValueError, match="mono"):
        M.pesq(np.stack([c, c], 1), c, SR)
    with pytest.raises(ValueError, match="NaN"):
        M.snr(c, np.full_like(c, np.nan), SR)
    with pytest.raises(ValueError, match="sample_rate"):
        M.stoi(c, c, 16000.0)


def test_unscorable_clips_are_missing_with_reason_not_zero():
    silent = np.zeros(SR, np.float32)
    res = M.score_pair(silent, _noise(SR), SR)
    assert all(math.isnan(res[k]) for k in M.INTRUSIVE_METRICS)
    assert "silent" in res["missing"]["pesq_wb"] and "silent" in res["missing"]["si_sdr"]

    short = speechlike(SR // 10)  # 0.1 s
    res = M.score_pair(short, short, SR)
    assert math.isnan(res["pesq_wb"]) and "too short" in res["missing"]["pesq_wb"]
    assert math.isnan(res["estoi"]) and "too short" in res["missing"]["estoi"]
    assert res["si_sdr"] > 100 and "si_sdr" not in res["missing"]  # other metrics still scored


def test_pesq_library_errors_become_reasons(monkeypatch):
    def no_utterances(*a, **k):
        raise pesq_pkg.NoUtterancesError(b"No utterances detected")

    monkeypatch.setattr(pesq_pkg, "pesq", no_utterances)
    c = speechlike(SR)
    res = M.score_pair(c, c, SR)
    assert math.isnan(res["pesq_wb"])
    assert "No utterances detected" in res["missing"]["pesq_wb"]
    assert res["stoi"] == pytest.approx(1.0)


def test_score_pair_improvements_and_score_many_pool_matches_inline():
    c = speechlike(SR, seed=3)
    noisy = c + 0.1 * _noise(SR)
    est = c + 0.02 * _noise(SR, seed=2)
    res = M.score_pair(c, est, SR, noisy=noisy)
    for k in M.INTRUSIVE_METRICS:
        assert res[f"{k}_imp"] == pytest.approx(res[k] - res[f"noisy_{k}"])
    assert res["si_sdr_imp"] > 10
    jobs = [(c, est, SR), (c, noisy, SR), (c, c[:1000], SR)]  # the last: length mismatch
    inline = M.score_many(jobs, workers=1, progress=False)
    pooled = M.score_many(jobs, workers=2, progress=False)
    assert [r.get("si_sdr") for r in inline[:2]] == [r.get("si_sdr") for r in pooled[:2]]
    assert inline[0]["pesq_wb"] == pooled[0]["pesq_wb"] > inline[1]["pesq_wb"]
    assert "length mismatch" in pooled[2]["error"]


def test_validation_metrics_skips_missing_pesq():
    c = torch.from_numpy(np.stack([speechlike(SR, seed=1), np.zeros(SR, np.float32)]))
    est = c + 0.05 * torch.randn(c.shape)
    out = M.validation_metrics(c, est, SR)
    assert set(out) == {"pesq_wb", "stoi", "estoi", "si_sdr", "pesq_wb_missing"}
    assert out["pesq_wb_missing"] == 1
    assert out["pesq_wb"] == pytest.approx(M.pesq(c[0].numpy(), est[0].numpy(), SR), abs=1e-6)
    assert math.isfinite(out["si_sdr"]) and 0 < out["estoi"] <= 1
    # the silent item 1 has no STOI either: the mean is item 0's
    assert out["stoi"] == pytest.approx(M.stoi(c[0].numpy(), est[0].numpy(), SR), abs=1e-6)
    with pytest.raises(ValueError, match=r"\(B, N\)"):
        M.validation_metrics(c[0], est[0], SR)


def test_mean_ci95_student_t():
    stats = mean_ci95([1.0, 2.0, 3.0, float("nan")])
    assert stats["n"] == 3 and stats["mean"] == pytest.approx(2.0)
    assert stats["ci95"][1] - 2.0 == pytest.approx(4.302653 * 1.0 / math.sqrt(3), rel=1e-5)
    assert mean_ci95([float("nan")]) == {"mean": None, "ci95": None, "n": 0}


def test_paired_gain_is_the_interval_of_the_differences():
    # differences 1, 2, 3: mean 2, half-width t(0.975, 2) * 1 / sqrt(3)
    gain = paired_gain([11.0, 22.0, 33.0], [10.0, 20.0, 30.0])
    assert gain["n"] == 3 and gain["mean"] == pytest.approx(2.0)
    assert gain["ci95_half"] == pytest.approx(4.302653 / math.sqrt(3), rel=1e-5)
    assert math.isnan(paired_gain([1.0], [0.5])["ci95_half"])
    with pytest.raises(ValueError):
        paired_gain([1.0, 2.0], [1.0])


@pytest.mark.slow  # first call JIT-compiles librosa's mel filterbank (about 10 s here)
def test_dnsmos_scores_offline():
    pytest.importorskip("speechmos")
    pytest.importorskip("librosa")
    from denoisezoo.evaluation.dnsmos import dnsmos, dnsmos_available

    assert dnsmos_available() is None
    c = speechlike(2 * SR)
    clean = dnsmos(c, SR)
    noisy = dnsmos(c + 0.3 * _noise(len(c)), SR)
    assert set(clean) == {"sig", "bak", "ovrl", "p808"}
    assert all(1.0 <= v <= 5.0 for v in clean.values())
    assert noisy["bak"] < clean["bak"]  # loud white noise is heard as background noise
    import speechmos.dnsmos as sm  # our single-threaded sessions give the package's own scores

    ref = sm.run(c, SR)
    assert clean["ovrl"] == pytest.approx(ref["ovrl_mos"], abs=1e-6)
    assert clean["sig"] == pytest.approx(ref["sig_mos"], abs=1e-6)


# ----------------------------------------------------------------------------- data SPECs
def _write_pairs(root: Path, names_noisy, names_clean, seconds=1.0, seed=0):
    (root / "noisy").mkdir(parents=True, exist_ok=True)
    (root / "clean").mkdir(parents=True, exist_ok=True)
    for i, (nn, cn) in enumerate(zip(names_noisy, names_clean, strict=True)):
        c = speechlike(int(seconds * SR), seed=seed + i)
        sf.write(root / "clean" / cn, c, SR)
        sf.write(root / "noisy" / nn, c + 0.05 * _noise(len(c), seed + i), SR)


def test_find_pairs_layouts(tmp_path):
    vb = tmp_path / "vb"
    _write_pairs(vb, ["p232_001.wav", "p232_002.wav"], ["p232_001.wav", "p232_002.wav"])
    (vb / "noisy").rename(vb / "noisy_testset_wav")
    (vb / "clean").rename(vb / "clean_testset_wav")
    pairs = find_pairs(vb)
    assert [p.id for p in pairs] == ["p232_001", "p232_002"] and all(p.problem is None for p in pairs)

    dns = tmp_path / "dns"
    _write_pairs(dns, ["book_x_snr5_fileid_10.wav", "door_snr0_fileid_2.wav"],
                 ["clean_fileid_10.wav", "clean_fileid_2.wav"])
    sf.write(dns / "noisy" / "car_fileid_7.wav", speechlike(SR), SR)  # no clean partner
    pairs = find_pairs(dns)
    assert [p.id for p in pairs] == ["fileid_2", "fileid_7", "fileid_10"]
    assert pairs[0].clean.name == "clean_fileid_2.wav"
    assert "fileid_7" in pairs[1].problem

    man = tmp_path / "m" / "list.csv"
    _write_pairs(tmp_path / "m" / "a", ["x.wav"], ["x.wav"])
    man.write_text("noisy,clean\na/noisy/x.wav,a/clean/x.wav\n")
    (p,) = find_pairs(man)
    assert p.noisy == tmp_path / "m" / "a" / "noisy" / "x.wav"
    assert load_pair(p).clean.shape == (SR,)

    with pytest.raises(ValueError, match="not a data SPEC"):
        find_pairs(tmp_path / "m" / "a" / "noisy")
    bad = tmp_path / "bad.csv"
    bad.write_text("a,b\n1,2\n")
    with pytest.raises(ValueError, match="'noisy' and 'clean'"):
        find_pairs(bad)


def test_evaluate_systems_api(tmp_path):
    _write_pairs(tmp_path, ["a.wav", "b.wav"], ["a.wav", "b.wav"])
    res = evaluate_systems({"same": lambda x, sr: x, "quiet": lambda x, sr: 0.1 * x},
                           tmp_path, workers=1, progress=False)
    s = res["summary"]
    assert list(s) == ["noisy", "same", "quiet"]
    for name in ("same", "quiet"):
        assert s[name]["scored"] == 2
        assert s[name]["metrics"]["si_sdr_imp"]["mean"] == pytest.approx(0, abs=1e-4)
    assert s["quiet"]["metrics"]["snr"]["mean"] < s["noisy"]["metrics"]["snr"]["mean"]
    with pytest.raises(ValueError, match="reserved"):
        evaluate_systems({"noisy": lambda x, sr: x}, tmp_path, workers=1, progress=False)


# ----------------------------------------------------------------------------- CLI
@pytest.fixture(scope="module")
def tiny_ckpt(tmp_path_factory) -> Path:
    from denoisezoo.gtcrn import gtcrn_tiny
    from denoisezoo.hub import save_checkpoint

    return save_checkpoint(gtcrn_tiny(), tmp_path_factory.mktemp("ckpt") / "tiny.pt")


def test_cli_evaluate_end_to_end(tmp_path, tiny_ckpt, capsys):
    data = tmp_path / "data"
    _write_pairs(data, ["a.wav", "b.wav", "c.wav"], ["a.wav", "b.wav", "c.wav"], seconds=1.5)
    out = tmp_path / "out"
    rc = main(["evaluate", "--checkpoint", str(tiny_ckpt), "--data", str(data), "-o", str(out),
               "--plots", "--n-plots", "1", "--workers", "1", "--no-progress"])
    assert rc == 0
    summary = json.loads((out / "summary.json").read_text())
    assert list(summary) == ["noisy", "tiny"]
    for name in summary:
        assert summary[name]["scored"] == 3 and summary[name]["skipped"] == 0
        m = summary[name]["metrics"]["pesq_wb"]
        assert m["n"] == 3 and m["ci95"][0] <= m["mean"] <= m["ci95"][1]
    assert "pesq_wb_imp" in summary["tiny"]["metrics"]
    with (out / "per_file.csv").open() as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) == 6 and {r["system"] for r in rows} == {"noisy", "tiny"}
    assert all(float(r["pesq_wb"]) > 1 for r in rows)
    md = (out / "summary.md").read_text()
    assert "| `noisy` |" in md and "| `tiny` |" in md
    pngs = sorted(p.name for p in (out / "plots").glob("*.png"))
    assert len(pngs) == 2 and pngs[0].startswith("best1_") and pngs[1].startswith("worst1_")
    assert (out / "plots" / pngs[0]).read_bytes()[:4] == b"\x89PNG"


def test_cli_evaluate_reports_bad_inputs(tmp_path, tiny_ckpt, capsys):
    root = tmp_path / "d"
    _write_pairs(root, ["ok.wav", "long.wav", "rate.wav"], ["ok.wav", "long.wav", "rate.wav"])
    sf.write(root / "clean" / "long.wav", speechlike(2 * SR), SR)  # 2 s clean vs 1 s noisy
    sf.write(root / "clean" / "rate.wav", speechlike(8000), 8000)  # 8 kHz clean vs 16 kHz noisy
    (root / "noisy" / "junk.wav").write_bytes(b"RIFF not really audio" * 10)
    (root / "clean" / "junk.wav").write_bytes(b"RIFF not really audio" * 10)
    manifest = root / "m.csv"
    manifest.write_text("noisy,clean\n" + "".join(
        f"noisy/{n},clean/{n}\n" for n in ("ok.wav", "long.wav", "rate.wav", "junk.wav", "gone.wav")))
    out = tmp_path / "out"
    rc = main(["evaluate", "--checkpoint", str(tiny_ckpt), "--data", str(manifest), "-o", str(out),
               "--workers", "1", "--no-progress"])
    assert rc == 0
    s = json.loads((out / "summary.json").read_text())
    for name in ("noisy", "tiny"):
        assert (s[name]["files"], s[name]["scored"], s[name]["skipped"]) == (5, 1, 4)
        reasons = {f["id"]: f["reason"] for f in s[name]["skipped_files"]}
        assert "length mismatch" in reasons["long"]
        assert "sample rate mismatch" in reasons["rate"]
        assert "not a readable audio file" in reasons["junk"]
        assert "no such file" in reasons["gone"]
    md = (out / "summary.md").read_text()
    assert "4 file(s) skipped" in md and "gone.wav: no such file" in md
    assert "4 of 5 file(s) skipped" in capsys.readouterr().err


def test_cli_evaluate_nothing_scored_exits_nonzero(tmp_path, tiny_ckpt, capsys):
    manifest = tmp_path / "m.csv"
    manifest.write_text("noisy,clean\nmissing_n.wav,missing_c.wav\n")
    out = tmp_path / "out"
    rc = main(["evaluate", "--checkpoint", str(tiny_ckpt), "--data", str(manifest), "-o", str(out),
               "--workers", "1", "--no-progress"])
    assert rc != 0
    assert "nothing could be scored" in capsys.readouterr().err
    s = json.loads((out / "summary.json").read_text())
    assert s["noisy"]["scored"] == 0 and s["noisy"]["skipped"] == 1


def test_cli_evaluate_bad_spec_and_model(tmp_path, tiny_ckpt, capsys):
    assert main(["evaluate", "--checkpoint", str(tiny_ckpt), "--data", str(tmp_path / "nope"),
                 "-o", str(tmp_path / "o")]) != 0
    assert "no such file or folder" in capsys.readouterr().err
    _write_pairs(tmp_path / "d", ["a.wav"], ["a.wav"])
    assert main(["evaluate", "--checkpoint", str(tmp_path / "none.pt"), "--data",
                 str(tmp_path / "d"), "-o", str(tmp_path / "o")]) != 0
    assert "not found" in capsys.readouterr().err


# ----------------------------------------------------------------------------- leaderboard
def _leaderboard():
    spec = importlib.util.spec_from_file_location("leaderboard", REPO / "benchmarks" / "leaderboard.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_rnnoise_baseline_is_delay_compensated():
    pytest.importorskip("pyrnnoise")
    run = _leaderboard().rnnoise_system()
    c = speechlike(SR)
    y = run(c, SR)
    assert y.shape == c.shape
    lags = range(-400, 401)  # the uncompensated delay would show at +320 samples (20 ms)
    xc = [np.dot(y[max(0, k):SR + min(0, k)], c[max(0, -k):SR - max(0, k)]) for k in lags]
    assert abs(lags[int(np.argmax(xc))]) <= 2  # delay removed: output aligned with the input
    assert M.si_sdr(c, y, SR) > 5


def test_leaderboard_script_writes_json_and_markdown(tmp_path, tiny_ckpt):
    _write_pairs(tmp_path / "d", ["a.wav", "b.wav"], ["a.wav", "b.wav"])
    out = tmp_path / "res"
    rc = _leaderboard().main(["--data", str(tmp_path / "d"), "--out", str(out), "--no-official",
                              "--no-rnnoise", "--no-noisereduce", "--workers", "1",
                              "--extra", f"tiny={tiny_ckpt}", "--no-progress"])
    assert rc == 0
    doc = json.loads((out / "leaderboard.json").read_text())
    assert "noisy" in doc["systems"] and doc["systems"]["tiny"]["params"] > 0
    assert doc["systems"]["tiny"]["rtf"] > 0 and doc["meta"]["data"]["files"] == 2
    md = (out / "leaderboard.md").read_text()
    assert "python benchmarks/leaderboard.py --data" in md and "| `tiny` |" in md


def test_distill_vs_alone_script_pairs_equal_steps(tmp_path, tiny_ckpt):
    import shutil

    from denoisezoo.gtcrn import gtcrn_tiny
    from denoisezoo.hub import save_checkpoint

    spec = importlib.util.spec_from_file_location("dva", REPO / "benchmarks" / "distill_vs_alone.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    _write_pairs(tmp_path / "d", ["a.wav", "b.wav", "c.wav"], ["a.wav", "b.wav", "c.wav"])
    (tmp_path / "dist").mkdir(), (tmp_path / "alone").mkdir()
    for d in ("dist", "alone"):  # step 10: the same weights on both sides
        shutil.copy(tiny_ckpt, tmp_path / d / "step10.ckpt")
    shutil.copy(tiny_ckpt, tmp_path / "dist" / "step20.ckpt")
    torch.manual_seed(5)
    save_checkpoint(gtcrn_tiny(), tmp_path / "alone" / "step20.ckpt")
    out = tmp_path / "res"
    common = ["--distilled", str(tmp_path / "dist"), "--alone", str(tmp_path / "alone"),
              "--data", str(tmp_path / "d"), "--out", str(out), "--no-progress"]
    assert mod.main(common) == 0
    doc = json.loads((out / "distill_vs_alone.json").read_text())
    same, other = doc["steps"]
    assert (same["step"], other["step"], same["files"]) == (10, 20, 3)
    assert same["pesq_wb"]["gain"]["mean"] == 0 and same["si_sdr"]["gain"]["ci95_half"] == 0
    assert other["si_sdr"]["gain"]["mean"] != 0
    assert other["si_sdr"]["gain"]["mean"] == pytest.approx(
        other["si_sdr"]["distilled"] - other["si_sdr"]["alone"])
    assert "| 20 |" in (out / "distill_vs_alone.md").read_text()
    with pytest.raises(SystemExit, match="not in both"):
        mod.main(common + ["--steps", "30"])



def test_teachers_script_scores_candidates_against_the_first(tmp_path):
    shared = REPO.parent / "shared"
    if not (shared / "reference/gtcrn/checkpoints/model_trained_on_dns3.tar").is_file():
        pytest.skip("../shared/reference/gtcrn/checkpoints (official GTCRN checkpoint) not present")
    spec = importlib.util.spec_from_file_location("teachers", REPO / "benchmarks" / "teachers.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    _write_pairs(tmp_path / "d", ["a.wav", "b.wav"], ["a.wav", "b.wav"], seconds=1.5)
    out = tmp_path / "res"
    assert mod.main(["--data", str(tmp_path / "d"), "--out", str(out), "--no-progress",
                     "--shared", str(shared)]) == 0
    doc = json.loads((out / "teachers.json").read_text())
    first, *others = doc["teachers"]
    assert first["pesq_wb"]["gain"]["mean"] == 0 and first["files"] == 2
    assert len(others) == 4 and all(t["files"] == 2 for t in others)
    # the bidirectional single model differs from the causal one it is built from
    assert others[0]["bidirectional"] and others[0]["si_sdr"]["gain"]["mean"] != 0
    assert "| gtcrn_dns3_ft + official ep87, bidirectional | 4 |" in (out / "teachers.md").read_text()
