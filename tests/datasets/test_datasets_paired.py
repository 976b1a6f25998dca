"""Corpus layout readers (VoiceBank-DEMAND, DNS, CSV, folders) and PairedDataset."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from denoisezoo.datasets import CorpusError, PairedDataset
from denoisezoo.datasets.paired import (
    csv_pairs,
    dns_test_pairs,
    dns_training_dirs,
    find_pairs,
    folder_pairs,
    voicebank_pairs,
)


def _wav(path: Path, seconds: float, sr: int = 16000, value: float = 0.1) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    t = np.arange(int(seconds * sr)) / sr
    sf.write(path, (value * np.sin(2 * np.pi * 300 * t)).astype(np.float32), sr)
    return path


@pytest.fixture()
def voicebank(tmp_path) -> Path:
    root = tmp_path / "vb"
    for split, names in (("testset", ["p232_001", "p232_002"]), ("trainset_28spk", ["p226_001"])):
        for name in names:
            _wav(root / f"clean_{split}_wav" / f"{name}.wav", 0.5, 48000)
            _wav(root / f"noisy_{split}_wav" / f"{name}.wav", 0.5, 48000, 0.2)
    _wav(root / "noisy_testset_wav" / "p232_003.wav", 0.5, 48000)  # no clean partner
    return root


def test_voicebank_pairs_and_resampling(voicebank, caplog):
    with caplog.at_level(logging.WARNING):
        test = voicebank_pairs(voicebank, "test")
    assert [(n.name, c.parent.name) for n, c in test] == [
        ("p232_001.wav", "clean_testset_wav"), ("p232_002.wav", "clean_testset_wav")]
    assert "without a partner" in caplog.text
    train = voicebank_pairs(voicebank, "train")
    assert [n.parent.name for n, _ in train] == ["noisy_trainset_28spk_wav"]
    assert find_pairs(voicebank) == test
    ds = PairedDataset(test, sample_rate=16000)
    noisy, clean = ds[0]
    assert noisy.shape == clean.shape == (8000,) and noisy.dtype == torch.float32
    assert noisy.abs().max() > 1.5 * clean.abs().max()  # noisy file had the larger amplitude
    with pytest.raises(CorpusError):
        voicebank_pairs(voicebank / "clean_testset_wav")


def test_dns_test_pairs_by_fileid(tmp_path):
    root = tmp_path / "synthetic" / "no_reverb"
    for i in (12, 3, 40):
        _wav(root / "noisy" / f"book_00123_chp_0001_reader_fileid_{i}_snr5_tl-25.wav", 0.2)
    for i in (3, 12):
        _wav(root / "clean" / f"clean_fileid_{i}.wav", 0.2)
    pairs = dns_test_pairs(root)
    assert [(p[0].name.split("_")[6], p[1].name) for p in pairs] == [
        ("3", "clean_fileid_3.wav"), ("12", "clean_fileid_12.wav")]
    assert find_pairs(root) == pairs


def test_folder_and_csv_pairs(tmp_path):
    for k in range(3):
        _wav(tmp_path / "noisy" / "sub" / f"x{k}.wav", 0.3)
        _wav(tmp_path / "clean" / "sub" / f"x{k}.flac", 0.3)
    pairs = folder_pairs(tmp_path / "noisy", tmp_path / "clean")
    assert len(pairs) == 3 and pairs[0][1].suffix == ".flac"
    manifest = tmp_path / "list.csv"
    manifest.write_text("clean,noisy\nclean/sub/x1.flac,noisy/sub/x1.wav\n")
    assert csv_pairs(manifest) == [(tmp_path / "noisy/sub/x1.wav", tmp_path / "clean/sub/x1.flac")]
    assert find_pairs(manifest) == csv_pairs(manifest)
    (tmp_path / "bad.csv").write_text("path\na.wav\n")
    with pytest.raises(CorpusError, match="'noisy' and 'clean'"):
        csv_pairs(tmp_path / "bad.csv")
    with pytest.raises(CorpusError, match="not a pairs layout"):
        find_pairs(tmp_path / "noisy")


def test_paired_dataset_segments_and_bad_pairs(tmp_path, caplog):
    a = (_wav(tmp_path / "n1.wav", 0.5), _wav(tmp_path / "c1.wav", 0.5))
    b = (_wav(tmp_path / "n2.wav", 0.2), _wav(tmp_path / "c2.wav", 0.2))
    broken = tmp_path / "broken.wav"
    broken.write_bytes(b"not audio")
    with caplog.at_level(logging.WARNING):
        ds = PairedDataset([a, (broken, a[1]), b], segment_seconds=0.3)
    assert len(ds) == 2 and "broken.wav" in caplog.text
    n0, c0 = ds[0]
    n1, c1 = ds[1]
    assert n0.shape == n1.shape == (4800,)
    assert torch.count_nonzero(n1[3200:]) == 0  # zero padding after the 0.2 s file
    loader = torch.utils.data.DataLoader(ds, batch_size=2)
    noisy, clean = next(iter(loader))
    assert noisy.shape == (2, 4800)
    with pytest.raises(CorpusError):
        PairedDataset([(broken, broken)])


def test_dns_training_dirs(tmp_path):
    _wav(tmp_path / "datasets_fullband" / "clean_fullband" / "a.wav", 0.1)
    _wav(tmp_path / "datasets_fullband" / "noise_fullband" / "b.wav", 0.1)
    dirs = dns_training_dirs(tmp_path)
    assert dirs["speech"] == [tmp_path / "datasets_fullband" / "clean_fullband"]
    assert dirs["noise"] == [tmp_path / "datasets_fullband" / "noise_fullband"] and not dirs["rir"]
    with pytest.raises(CorpusError):
        dns_training_dirs(tmp_path / "datasets_fullband" / "clean_fullband")


def test_datamodule_with_val_pairs(voicebank, tmp_path):
    from denoisezoo.datasets import MixDataModule

    speech = tmp_path / "speech"
    for k in range(3):
        _wav(speech / f"s{k}.wav", 0.6)
    dm = MixDataModule([str(speech)], [], [], [], segment_seconds=0.25, batch_size=2,
                       num_workers=0, train_length=4, val_pairs=str(voicebank))
    dm.setup("fit")
    noisy, clean = next(iter(dm.train_dataloader()))
    assert noisy.shape == (2, 4000)
    val = list(dm.val_dataloader())
    assert len(val) == 2 and val[0][0].shape == (1, 8000)
