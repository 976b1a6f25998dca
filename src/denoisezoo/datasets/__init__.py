"""Training and evaluation data: corpora, dynamic mixing, fixed pairs, a Lightning DataModule.

- :class:`DynamicMixDataset`: on-the-fly speech + noise (+ room, channel) mixtures, deterministic
  given ``(seed, epoch, index)``; :class:`EpochSampler` orders it per epoch.
- :class:`MixDataModule`: the LightningDataModule used by ``denoisezoo train``.
- :class:`AudioCorpus`, :func:`list_audio_files`: folders / files / manifests decoded once into memory.
- :class:`PairedDataset` and corpus readers (VoiceBank-DEMAND, DNS Challenge, CSV manifests).
- :mod:`~denoisezoo.datasets.devset` (the fixed development set), :mod:`~denoisezoo.datasets.download`.
"""

from __future__ import annotations

from denoisezoo.datasets.corpus import AudioCorpus, CorpusError, list_audio_files
from denoisezoo.datasets.mixing import DynamicMixDataset, EpochSampler, Mixer, item_rng

__all__ = [
    "AudioCorpus",
    "CorpusError",
    "DynamicMixDataset",
    "EpochSampler",
    "MixDataModule",
    "Mixer",
    "PairedDataset",
    "item_rng",
    "list_audio_files",
    "shared_datamodule",
    "calibration_pairs",
]


def __getattr__(name: str):
    # Lightning is imported only by whoever uses the DataModule
    if name in ("MixDataModule", "shared_datamodule", "calibration_pairs"):
        from denoisezoo.datasets import datamodule

        return getattr(datamodule, name)
    if name == "PairedDataset":
        from denoisezoo.datasets.paired import PairedDataset

        return PairedDataset
    raise AttributeError(f"module 'denoisezoo.datasets' has no attribute {name!r}")
