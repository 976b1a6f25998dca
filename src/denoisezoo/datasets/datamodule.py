"""``MixDataModule``: dynamic-mixing training data and a fixed validation set for Lightning.

Built from YAML by LightningCLI (all arguments typed, immutable defaults)::

    data:
      class_path: denoisezoo.datasets.MixDataModule
      init_args:
        train_speech: [../shared/data/speech/train]
        train_noise: [../shared/data/noise/train]
        val_speech: [../shared/data/speech/dev]
        val_noise: [../shared/data/noise/dev]
        batch_size: 16
        num_workers: 2

Batches are ``(noisy (B, N), clean (B, N))`` float32. Training items come from
:class:`~denoisezoo.datasets.mixing.DynamicMixDataset` in the order of an
:class:`~denoisezoo.datasets.mixing.EpochSampler` (seeded; item content and order depend only on
``(seed, epoch)``). Validation is either a deterministic dynamic-mix set (same mixtures every epoch)
or, with ``val_pairs``, fixed noisy/clean pairs (:class:`~denoisezoo.datasets.paired.PairedDataset`).
Corpora are decoded in :meth:`setup` (main process), before workers fork, so workers share them.
"""

from __future__ import annotations

import multiprocessing as mp
import sys
from collections.abc import Sequence
from pathlib import Path

import lightning as L
import numpy as np
from torch.utils.data import DataLoader, Dataset

from denoisezoo.datasets.mixing import DynamicMixDataset, EpochSampler

__all__ = ["MixDataModule", "shared_datamodule"]

_VAL_SEED_OFFSET = 7919  # validation mixtures never coincide with training ones


class MixDataModule(L.LightningDataModule):
    """Dynamic-mixing train loader + fixed validation loader.

    Args:
        train_speech, train_noise, val_speech, val_noise, rir: files / folders / manifests.
        sample_rate: model rate; everything is resampled to it.
        segment_seconds: training item length; ``val_segment_seconds`` for validation items.
        batch_size, num_workers: loader settings (validation uses the same).
        train_length: items per training epoch; ``val_length`` validation items.
        seed: base seed of training (validation uses ``seed + 7919``, deterministic).
        snr_db, level_db, synthetic_noise_prob, rir_prob, bandlimit_prob, eq_prob: mixing recipe
            (validation uses the same SNR/noise recipe without room, band-limit or EQ).
        transient_prob: probability of adding bursty noise to a training mixture (0: off, and
            the training mixtures of existing configs are unchanged); validation never adds it.
        speed_prob, speed_range: speed perturbation of the training speech (new pitch and
            formants from few speakers; 0: off, existing configs unchanged); never in validation.
        val_pairs: optional fixed noisy/clean pairs for validation instead of dynamic mixing: a
            VoiceBank-DEMAND or DNS test folder, a folder holding ``noisy/`` and ``clean/``, or a
            CSV manifest with ``noisy,clean`` columns.
        val_rir_prob: room probability in the validation mixtures.
    """

    def __init__(self, train_speech: Sequence[str], train_noise: Sequence[str],
                 val_speech: Sequence[str], val_noise: Sequence[str],
                 rir: Sequence[str] = (), sample_rate: int = 16000, segment_seconds: float = 4.0,
                 batch_size: int = 16, num_workers: int = 2, train_length: int = 8000,
                 val_length: int = 64, val_segment_seconds: float = 4.0, seed: int = 0,
                 snr_db: tuple[float, float] = (-5.0, 20.0),
                 level_db: tuple[float, float] = (-35.0, -15.0),
                 synthetic_noise_prob: float = 0.3, rir_prob: float = 0.2,
                 bandlimit_prob: float = 0.2, eq_prob: float = 0.2,
                 val_pairs: str | None = None, val_rir_prob: float = 0.0,
                 persistent_workers: bool = True, transient_prob: float = 0.0,
                 speed_prob: float = 0.0, speed_range: tuple[float, float] = (0.9, 1.1)):
        super().__init__()
        if not train_speech:
            raise ValueError("train_speech must name at least one file or folder")
        if not val_speech and val_pairs is None:
            raise ValueError("give val_speech (dynamic validation mixtures) or val_pairs")
        if batch_size <= 0 or num_workers < 0:
            raise ValueError(f"batch_size must be > 0 and num_workers >= 0, found "
                             f"{batch_size}, {num_workers}")
        self.save_hyperparameters()
        self.batch_size, self.num_workers = int(batch_size), int(num_workers)
        self.persistent_workers = bool(persistent_workers)
        self.seed = int(seed)
        self.train_set = DynamicMixDataset(
            list(train_speech), list(train_noise), list(rir), sample_rate=sample_rate,
            segment_seconds=segment_seconds, length=train_length, snr_db=tuple(snr_db),
            level_db=tuple(level_db), synthetic_noise_prob=synthetic_noise_prob,
            rir_prob=rir_prob, bandlimit_prob=bandlimit_prob, eq_prob=eq_prob, seed=seed,
            transient_prob=transient_prob, speed_prob=speed_prob, speed_range=tuple(speed_range))
        self.val_set: Dataset
        if val_pairs is not None:
            from denoisezoo.datasets.paired import PairedDataset

            self.val_set = PairedDataset.from_path(val_pairs, sample_rate=sample_rate)
        else:
            self.val_set = DynamicMixDataset(
                list(val_speech), list(val_noise), list(rir) if val_rir_prob > 0 else [],
                sample_rate=sample_rate, segment_seconds=val_segment_seconds, length=val_length,
                snr_db=tuple(snr_db), level_db=tuple(level_db),
                synthetic_noise_prob=synthetic_noise_prob, rir_prob=val_rir_prob,
                bandlimit_prob=0.0, eq_prob=0.0, seed=seed + _VAL_SEED_OFFSET,
                deterministic=True)
        self.train_sampler = EpochSampler(train_length, seed=seed, shuffle=True)

    def setup(self, stage: str | None = None) -> None:
        """Decode corpora in this (main) process so forked workers share the cache."""
        if stage in (None, "fit"):
            self.train_set.preload()
        if stage in (None, "fit", "validate"):
            self.val_set.preload()

    def _loader_kwargs(self) -> dict:
        kw: dict = {"batch_size": self.batch_size, "num_workers": self.num_workers}
        if self.num_workers > 0:
            kw["persistent_workers"] = self.persistent_workers
            # fork shares the decoded corpora copy-on-write (spawn/forkserver would re-decode)
            if sys.platform.startswith("linux") and "fork" in mp.get_all_start_methods():
                kw["multiprocessing_context"] = "fork"
        return kw

    def train_dataloader(self) -> DataLoader:
        return DataLoader(self.train_set, sampler=self.train_sampler, drop_last=True,
                          **self._loader_kwargs())

    def val_dataloader(self) -> DataLoader:
        kw = self._loader_kwargs()
        if getattr(self.val_set, "variable_length", False):
            kw["batch_size"] = 1  # fixed pairs of different lengths: one per batch, no padding
        return DataLoader(self.val_set, shuffle=False, drop_last=False, **kw)

    def state_dict(self) -> dict:
        """Saved in Lightning checkpoints: the sampler epoch and the items of it already consumed,
        so a run killed mid-epoch resumes with exactly the batches it had not yet seen."""
        consumed = 0
        trainer = getattr(self, "trainer", None)
        if trainer is not None:
            consumed = trainer.fit_loop.epoch_loop.batch_progress.current.processed * self.batch_size
        return {"epoch": self.train_sampler.epoch, "consumed": int(consumed)}

    def load_state_dict(self, state_dict: dict) -> None:
        epoch = int(state_dict.get("epoch", 0))
        self.train_sampler.set_epoch(epoch)
        consumed = int(state_dict.get("consumed", 0))
        # a checkpoint written after the last batch of an epoch has consumed it all: Lightning restarts
        # with the next epoch itself, so skipping here would leave it an empty loader ("No training batches")
        full = self.train_sampler.length // self.batch_size * self.batch_size  # drop_last
        if 0 < consumed < full:
            self.train_sampler.skip_to(epoch, consumed)


def shared_datamodule(shared_root: str | Path, sample_rate: int = 16000, **kwargs) -> MixDataModule:
    """A :class:`MixDataModule` on the ``../shared`` layout, set up for ``fit``: training speech
    and noise from ``data/{speech,noise}/train``, validation from the Italian dev speech and the
    dev noise. ``kwargs`` are further :class:`MixDataModule` arguments (segment, batch, lengths,
    seed, recipe); e.g. calibration mixtures for INT8 are ``dm.train_set[i][0]``."""
    root = Path(shared_root) / "data"
    dm = MixDataModule(train_speech=[str(root / "speech/train")],
                       train_noise=[str(root / "noise/train")],
                       val_speech=[str(root / "speech/dev/it")], val_noise=[str(root / "noise/dev")],
                       sample_rate=sample_rate, **kwargs)
    dm.setup("fit")
    return dm


def calibration_pairs(shared_root: str | Path, sample_rate: int, count: int = 16,
                      seconds: float = 2.0, seed: int = 0) -> list[tuple[np.ndarray, np.ndarray]]:
    """``count`` ``(noisy, clean)`` training mixtures of ``seconds`` each from the ``../shared``
    training data (never the dev set): the calibration audio of INT8 steps (the noisy halves) and
    the Taylor-pruning batches in scripts and benchmarks."""
    dm = shared_datamodule(shared_root, sample_rate, segment_seconds=seconds, batch_size=1,
                           num_workers=0, train_length=count, val_length=1, seed=seed)
    return [(n.numpy(), c.numpy()) for n, c in (dm.train_set[i] for i in range(count))]
