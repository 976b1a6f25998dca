"""Tests of denoisezoo.datasets: corpora, dynamic mixing, sampler, DataModule."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from denoisezoo.datasets import (
    AudioCorpus,
    CorpusError,
    DynamicMixDataset,
    EpochSampler,
    list_audio_files,
    synth,
)

SR = 16000


def _speechlike(rng: np.random.Generator, seconds: float, f0: float) -> np.ndarray:
    """Harmonic tone with syllable-rate amplitude modulation and a silent lead-in/out."""
    n = int(seconds * SR)
    t = np.arange(n) / SR
    x = sum(np.sin(2 * np.pi * k * f0 * t + rng.uniform(0, 6)) / k for k in range(1, 8))
    env = np.clip(np.sin(2 * np.pi * 3.0 * t), 0, None) ** 2
    x = 0.3 * x * env / 2.5
    x[: int(0.1 * SR)] = 0
    x[-int(0.1 * SR):] = 0
    return x.astype(np.float32)


@pytest.fixture(scope="module")
def corpus_dirs(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("corpus")
    rng = np.random.default_rng(0)
    speech = root / "speech"
    (speech / "sub").mkdir(parents=True)
    for k in range(6):  # short prompts (< segment) and long ones, two folders deep
        sec = 0.8 if k < 3 else 3.0
        folder = speech / "sub" if k % 2 else speech
        sf.write(folder / f"utt{k}.flac", _speechlike(rng, sec, 110 + 30 * k), SR)
    # a file at 8 kHz, stereo: must be resampled and down-mixed
    st = np.stack([_speechlike(rng, 2.0, 200)] * 2, axis=1)[::2]
    sf.write(speech / "utt_8k.wav", st, 8000)
    noise = root / "noise"
    noise.mkdir()
    sf.write(noise / "n_long.wav", (0.05 * rng.standard_normal(3 * SR)).astype(np.float32), SR)
    sf.write(noise / "n_short.flac", (0.1 * rng.standard_normal(SR // 2)).astype(np.float32), SR)
    return {"speech": speech, "noise": noise, "root": root}


def _ds(dirs, **kw) -> DynamicMixDataset:
    args = dict(segment_seconds=1.0, length=50, seed=3)
    args.update(kw)
    return DynamicMixDataset([dirs["speech"]], [dirs["noise"]], **args)


def _snr(noisy: np.ndarray, clean: np.ndarray) -> float:
    """Independent reimplementation: active 20 ms frames of clean (within 40 dB of max) vs noise."""
    f = 320
    n = len(clean) // f * f
    p = (clean[:n].astype(np.float64).reshape(-1, f) ** 2).mean(axis=1)
    ps = p[p >= p.max() * 1e-4].mean()
    pn = ((noisy - clean).astype(np.float64) ** 2).mean()
    return float(10 * np.log10(ps / pn))


# ----------------------------------------------------------------------------------------- corpus
def test_list_audio_files_recursive_and_manifest(corpus_dirs, tmp_path):
    files = list_audio_files([corpus_dirs["speech"]])
    assert len(files) == 7 and files == sorted(files)
    assert any(f.parent.name == "sub" for f in files)
    manifest = tmp_path / "m.csv"
    manifest.write_text("path,text\n" + "\n".join(f"{f},x" for f in files[:2]) + "\n")
    assert list_audio_files([manifest]) == files[:2]
    with pytest.raises(CorpusError, match="no such file"):
        list_audio_files([tmp_path / "missing"])


def test_corpus_resamples_downmixes_and_skips_bad_files(corpus_dirs, tmp_path, caplog):
    bad = tmp_path / "broken.wav"
    bad.write_bytes(b"RIFF\x00\x00\x00\x00WAVEjunkjunkjunk")
    silent = tmp_path / "silent.wav"
    sf.write(silent, np.zeros(SR, np.float32), SR)
    with caplog.at_level(logging.WARNING, logger="denoisezoo.datasets.corpus"):
        c = AudioCorpus([corpus_dirs["speech"], bad, silent], SR, name="speech").load()
    assert len(c) == 7
    assert {p.name for p, _ in c.skipped} == {"broken.wav", "silent.wav"}
    assert "broken.wav" in caplog.text and "silent.wav" in caplog.text
    k = [p.name for p in c.paths].index("utt_8k.wav")
    assert abs(int(c.lengths[k]) - 2 * SR) < 50  # 2 s at 8 kHz, resampled to 16 kHz
    x = c.get(0)
    ref, _ = sf.read(c.paths[0], dtype="float32")
    np.testing.assert_allclose(x, ref, atol=2 * float(np.abs(ref).max()) / 32767)
    looped = c.looped(0, int(c.lengths[0]) - 10, 30)
    np.testing.assert_allclose(looped[10:], x[:20], atol=1e-6)


def test_dataset_survives_undecodable_file(corpus_dirs, tmp_path, caplog):
    bad = tmp_path / "bad.flac"
    bad.write_bytes(b"fLaC" + b"\x00" * 64)
    with caplog.at_level(logging.WARNING):
        ds = DynamicMixDataset([corpus_dirs["speech"], bad], [corpus_dirs["noise"], bad],
                               segment_seconds=0.5, length=4)
        noisy, clean = ds[0]
    assert noisy.shape == (8000,)
    skips = [r for r in caplog.records if "skipping" in r.getMessage()]
    assert len(skips) == 2 and all("bad.flac" in r.getMessage() for r in skips)


def test_no_speech_is_an_error(tmp_path):
    bad = tmp_path / "bad.wav"
    bad.write_bytes(b"nope")
    with pytest.raises(CorpusError, match="no decodable speech"):
        DynamicMixDataset([bad], [], length=2)[0]


# ----------------------------------------------------------------------------------------- mixing
def test_items_shapes_dtypes_and_levels(corpus_dirs):
    ds = _ds(corpus_dirs, rir_prob=0.5, level_db=(-30.0, -20.0))
    for i in range(12):
        noisy, clean = ds[i]
        assert noisy.dtype == torch.float32 and clean.dtype == torch.float32
        assert noisy.shape == clean.shape == (SR,)
        assert torch.isfinite(noisy).all() and torch.isfinite(clean).all()
        peak = max(noisy.abs().max().item(), clean.abs().max().item())
        assert peak <= 0.99 + 1e-6
        assert clean.pow(2).mean() > 0
        level = 10 * torch.log10(noisy.double().pow(2).mean()).item()
        assert level <= -20.0 + 1e-3 and (level >= -30.0 - 1e-3 or peak > 0.989)


def test_determinism_seed_epoch_and_index(corpus_dirs):
    a, b = _ds(corpus_dirs), _ds(corpus_dirs)
    for i in (0, 7, 49):
        torch.testing.assert_close(a[i], b[i], rtol=0, atol=0)
    assert not torch.equal(a[0][0], a[1][0])
    e0 = a[5]
    a.set_epoch(1)
    e1 = a[5]
    assert not torch.equal(e0[0], e1[0])
    torch.testing.assert_close(b[(1, 5)], e1, rtol=0, atol=0)  # (epoch, i) == set_epoch
    c = _ds(corpus_dirs, seed=4)
    assert not torch.equal(c[0][0], b[0][0])
    with pytest.raises(IndexError):
        a[50]


def test_deterministic_set_ignores_epoch(corpus_dirs):
    ds = _ds(corpus_dirs, deterministic=True)
    first = [ds[i] for i in range(3)]
    ds.set_epoch(9)
    for i in range(3):
        torch.testing.assert_close(ds[i], first[i], rtol=0, atol=0)
        torch.testing.assert_close(ds[(4, i)], first[i], rtol=0, atol=0)


@pytest.mark.parametrize("channel", [False, True])
def test_snr_matches_request(corpus_dirs, channel):
    p = 0.5 if channel else 0.0
    ds = _ds(corpus_dirs, snr_db=(-5.0, 20.0), rir_prob=0.0, bandlimit_prob=p, eq_prob=p,
             synthetic_noise_prob=0.5, length=40)
    snrs = []
    for i in range(40):
        noisy, clean, info = ds.example(i)
        assert abs(_snr(noisy, clean) - info["snr_db"]) < 0.5, info
        snrs.append(info["snr_db"])
    assert min(snrs) < 2 and max(snrs) > 13  # the range is really used


def test_noise_kinds_are_all_produced(corpus_dirs):
    ds = _ds(corpus_dirs, synthetic_noise_prob=0.6, length=200)
    kinds = {ds.example(i)[2]["noise"].split("+")[0] for i in range(200)}
    expected = {"synthetic:colored", "synthetic:hum", "synthetic:babble", "n_long.wav",
                "n_short.flac"}
    assert expected <= kinds


def test_speech_only_dataset_uses_synthetic_noise(corpus_dirs):
    ds = DynamicMixDataset([corpus_dirs["speech"]], [], segment_seconds=0.5, length=10)
    for i in range(10):
        _, _, info = ds.example(i)
        assert info["noise"].startswith("synthetic:")


def test_crops_are_not_silent(tmp_path):
    # one file: 4 s of silence then 0.5 s of tone; 1 s crops must contain the tone
    x = np.zeros(int(4.5 * SR), np.float32)
    x[4 * SR:] = 0.3 * np.sin(2 * np.pi * 220 * np.arange(SR // 2) / SR)
    x[:4 * SR] = 1e-6 * np.random.default_rng(0).standard_normal(4 * SR)
    sf.write(tmp_path / "mostly_silent.wav", x, SR, subtype="FLOAT")
    ds = DynamicMixDataset([tmp_path], [], segment_seconds=1.0, length=10, level_db=(-20, -20),
                           bandlimit_prob=0, eq_prob=0)
    hits = 0
    for i in range(10):
        _, clean = ds[i]
        hits += clean.abs().max().item() > 1e-3
    assert hits >= 9


def test_rir_target_is_early_reverb(corpus_dirs):
    ds = _ds(corpus_dirs, rir_prob=1.0, bandlimit_prob=0, eq_prob=0, length=8)
    for i in range(4):
        noisy, clean, info = ds.example(i)
        assert info["rir"] == "simulated"
    # the early-reverb convention on a hand-made RIR: delta at d, tail starting after 60 ms
    rng = np.random.default_rng(1)
    x = rng.standard_normal(4000).astype(np.float32)
    h = np.zeros(3000, np.float32)
    d = 37
    h[d] = 1.0
    h[d + int(0.06 * SR):] = 0.1 * rng.standard_normal(3000 - d - int(0.06 * SR))
    rev, early = synth.convolve_rir(x, h, SR)
    np.testing.assert_allclose(early, x, atol=1e-5)  # aligned, direct path only
    full = np.convolve(x, h)[d:d + 4000]
    np.testing.assert_allclose(rev, full, atol=1e-4)


def test_synthetic_noise_spectra():
    rng = np.random.default_rng(0)
    n = 4 * SR

    def band_power(x, lo, hi):
        spec = np.abs(np.fft.rfft(x)) ** 2
        f = np.fft.rfftfreq(len(x), 1 / SR)
        return spec[(f >= lo) & (f < hi)].mean()

    white = synth.colored_noise(rng, n, SR, 0.0)
    brown = synth.colored_noise(rng, n, SR, 2.0)
    assert white.dtype == np.float32 and white.shape == (n,)
    assert abs(10 * np.log10(np.mean(white.astype(np.float64) ** 2))) < 0.5  # unit power
    w_ratio = band_power(white, 200, 400) / band_power(white, 4000, 8000)
    b_ratio = band_power(brown, 200, 400) / band_power(brown, 4000, 8000)
    assert 0.7 < w_ratio < 1.4 and b_ratio > 100
    hum = synth.hum_noise(rng, n, SR, mains_hz=50.0)
    assert band_power(hum, 45, 55) > 1000 * band_power(hum, 70, 90)


def test_transient_noise_is_bursty_and_broadband():
    n = 4 * SR
    x = synth.transient_noise(np.random.default_rng(3), n, SR)
    assert x.dtype == np.float32 and x.shape == (n,) and np.isfinite(x).all()
    assert abs(10 * np.log10(np.mean(x.astype(np.float64) ** 2))) < 0.01  # unit power
    np.testing.assert_array_equal(x, synth.transient_noise(np.random.default_rng(3), n, SR))

    def peak_over_median_db(v):  # of 32 ms frame energies: bursty vs steady
        e = 10 * np.log10(np.square(v[: len(v) // 512 * 512].astype(np.float64)).reshape(-1, 512).sum(1))
        return float(e.max() - np.median(e))

    steady = synth.colored_noise(np.random.default_rng(3), n, SR, 1.0)
    assert peak_over_median_db(x) > 10 > 4 > peak_over_median_db(steady)
    with pytest.raises(ValueError, match="rate_hz"):
        synth.transient_noise(np.random.default_rng(0), n, SR, rate_hz=(0.0, 1.0))


def test_transient_prob_adds_bursts_and_defaults_off(corpus_dirs):
    off, on = _ds(corpus_dirs, length=20), _ds(corpus_dirs, length=20, transient_prob=1.0)
    names_off = [off.example(i)[2]["noise"] for i in range(20)]
    names_on = [on.example(i)[2]["noise"] for i in range(20)]
    assert not any("transient" in s for s in names_off)
    assert all(s.endswith("+transient") for s in names_on)
    # the transient draw comes after the noise draw: same speech and base noise, different mixture
    assert [s.removesuffix("+transient") for s in names_on] == names_off
    assert not torch.equal(off[0][0], on[0][0])
    with pytest.raises(ValueError, match="transient_prob"):
        _ds(corpus_dirs, transient_prob=1.5)


def test_change_speed_scales_pitch_and_keeps_length():
    n = SR
    t = np.arange(int(np.ceil(n * 1.1))) / SR
    x = np.sin(2 * np.pi * 200.0 * t).astype(np.float32)

    def f0(y):
        return np.argmax(np.abs(np.fft.rfft(y * np.hanning(n)))) * SR / n

    for factor, hz in ((0.9, 180.0), (1.0, 200.0), (1.1, 220.0)):
        y = synth.change_speed(x, factor, n)
        assert y.shape == (n,) and y.dtype == np.float32
        assert f0(y) == pytest.approx(hz, abs=1.5)
        assert np.abs(y[-200:]).max() > 0.9  # filled to the end, not zero-padded
    with pytest.raises(ValueError, match="factor"):
        synth.change_speed(x, 0.0, n)


def test_speed_prob_perturbs_speech_and_defaults_off(corpus_dirs):
    off = _ds(corpus_dirs, length=12)
    on = _ds(corpus_dirs, length=12, speed_prob=1.0, speed_range=(0.85, 0.95))
    assert not any("speed" in off.example(i)[2] for i in range(12))
    speeds = [on.example(i)[2]["speed"] for i in range(12)]
    assert all(0.85 <= s <= 0.95 for s in speeds) and len(set(speeds)) > 1
    noisy, clean = on[0]
    assert noisy.shape == off[0][0].shape and torch.isfinite(noisy).all() and clean.abs().max() > 0
    with pytest.raises(ValueError, match="speed_prob"):
        _ds(corpus_dirs, speed_prob=-0.1)
    with pytest.raises(ValueError, match="speed_range"):
        _ds(corpus_dirs, speed_range=(0.0, 1.1))


# ----------------------------------------------------------------------------------- sampler / DM
def test_epoch_sampler():
    s = EpochSampler(20, seed=1)
    e0 = list(s)
    assert sorted(i for _, i in e0) == list(range(20)) and {e for e, _ in e0} == {0}
    assert list(EpochSampler(20, seed=1)) == e0
    s.set_epoch(1)
    e1 = list(s)
    assert {e for e, _ in e1} == {1} and [i for _, i in e1] != [i for _, i in e0]
    s.skip_to(1, 15)  # mid-epoch resume: only epoch 1 is shortened
    assert len(s) == 5 and list(s) == e1[15:]
    s.set_epoch(2)
    assert len(s) == 20 and len(list(s)) == 20


def _dm(dirs, **kw):
    from denoisezoo.datasets import MixDataModule

    args = dict(train_speech=[str(dirs["speech"])], train_noise=[str(dirs["noise"])],
                val_speech=[str(dirs["speech"])], val_noise=[str(dirs["noise"])],
                segment_seconds=0.5, val_segment_seconds=0.5, batch_size=4, num_workers=0,
                train_length=8, val_length=6, seed=2)
    args.update(kw)
    dm = MixDataModule(**args)
    dm.setup("fit")
    return dm


def test_datamodule_loaders(corpus_dirs):
    dm = _dm(corpus_dirs)
    batches = list(dm.train_dataloader())
    assert len(batches) == 2
    noisy, clean = batches[0]
    assert noisy.shape == clean.shape == (4, 8000) and noisy.dtype == torch.float32
    v1 = [b[0] for b in dm.val_dataloader()]
    assert [v.shape[0] for v in v1] == [4, 2]
    dm.train_sampler.set_epoch(1)  # what Lightning does each epoch
    batches1 = list(dm.train_dataloader())
    assert not torch.equal(batches1[0][0], noisy)
    v2 = [b[0] for b in dm.val_dataloader()]
    for a, b in zip(v1, v2, strict=True):
        torch.testing.assert_close(a, b, rtol=0, atol=0)
    # validation never equals training items
    assert not any(torch.equal(v1[0][0], t) for t in noisy)


def test_datamodule_workers_follow_epoch(corpus_dirs):
    """Persistent forked workers must produce the same batches as the main process, per epoch."""
    ref = _dm(corpus_dirs)
    dm = _dm(corpus_dirs, num_workers=1)
    loader = dm.train_dataloader()
    for epoch in (0, 1):
        ref.train_sampler.set_epoch(epoch)
        dm.train_sampler.set_epoch(epoch)
        got = list(loader)
        exp = list(ref.train_dataloader())
        for (a, _), (b, _) in zip(got, exp, strict=True):
            torch.testing.assert_close(a, b, rtol=0, atol=0)


def test_datamodule_from_yaml(corpus_dirs, tmp_path):
    from jsonargparse import ArgumentParser

    from denoisezoo.datasets import MixDataModule

    cfg = tmp_path / "data.yaml"
    cfg.write_text(
        "data:\n"
        "  class_path: denoisezoo.datasets.MixDataModule\n"
        "  init_args:\n"
        f"    train_speech: [{corpus_dirs['speech']}]\n"
        f"    train_noise: [{corpus_dirs['noise']}]\n"
        f"    val_speech: [{corpus_dirs['speech']}]\n"
        "    val_noise: []\n"
        "    snr_db: [0.0, 10.0]\n"
        "    batch_size: 2\n")
    parser = ArgumentParser()
    parser.add_argument("--config", action="config")
    parser.add_subclass_arguments(MixDataModule, "data")
    ns = parser.parse_args(["--config", str(cfg)])
    instantiate = getattr(parser, "instantiate", None) or parser.instantiate_classes
    dm = instantiate(ns).data
    assert isinstance(dm, MixDataModule)
    assert dm.train_set.mixer.snr_db == (0.0, 10.0) and dm.batch_size == 2


def test_bad_arguments(corpus_dirs):
    with pytest.raises(ValueError, match="snr_db"):
        _ds(corpus_dirs, snr_db=(10.0, 0.0))
    with pytest.raises(ValueError, match="rir_prob"):
        _ds(corpus_dirs, rir_prob=1.5)
    with pytest.raises(TypeError, match="sequences"):
        DynamicMixDataset(str(corpus_dirs["speech"]), [])
