"""``denoisezoo train {fit,validate} --config configs/NAME.yaml`` through LightningCLI.

The YAML names the system (``EnhancementSystem`` or ``DistillationSystem``) and its models with
``class_path`` / ``init_args``; the data module is :class:`denoisezoo.datasets.MixDataModule`. The sample
rate is stated once, by the model, and linked into the data module. The run folder is stated once too,
``run: {dir: runs/NAME, ...}`` (:class:`denoisezoo.training.RunLayout`), and gives the trainer its loggers and
checkpoint callbacks; ``--run.dir`` branches a run into another folder. Resume with ``--ckpt_path last``.
"""

from __future__ import annotations

import argparse
import os
import sys
import warnings

__all__ = ["add_parser", "run", "main"]


def add_parser(sub) -> None:
    # listed in `denoisezoo --help`; the arguments themselves are parsed by LightningCLI in main()
    sub.add_parser("train", help="train or distil a model with LightningCLI (see `denoisezoo train --help`)",
                   add_help=False)


def run(args: argparse.Namespace) -> int:  # pragma: no cover - main() handles `train` directly
    return main(sys.argv[2:])


def _cli_class():
    from lightning.pytorch.cli import LightningCLI

    from denoisezoo.training import RunLayout

    class DenoiseZooCLI(LightningCLI):
        def add_arguments_to_parser(self, parser) -> None:
            parser.link_arguments("model", "data.init_args.sample_rate",
                                  compute_fn=lambda system: system.geometry.sample_rate,
                                  apply_on="instantiate")
            parser.add_class_arguments(RunLayout, "run")

        def instantiate_trainer(self, **kwargs):
            run = self._get(self.config_init, "run")
            trainer = self._get(self.config_init, "trainer", default={})
            return super().instantiate_trainer(**{**run.trainer_kwargs(trainer), **kwargs})

    return DenoiseZooCLI


def main(argv: list[str] | None = None) -> int:
    import torch

    from denoisezoo.datasets import MixDataModule
    from denoisezoo.training import EnhancementSystem

    threads = os.environ.get("DENOISEZOO_THREADS")
    if threads:  # e.g. 1 per run when several runs share a small machine (oversubscription is slow)
        torch.set_num_threads(int(threads))
    warnings.filterwarnings("ignore", message=".*args parameter is intended to run from within Python.*")
    # manual optimization (for NaN-step skipping) makes Lightning print a 15-line warning at every
    # checkpoint; post-step weights are exactly what a checkpoint should hold, so it is noise here
    warnings.filterwarnings("ignore", message=".*ModelCheckpoint with manual optimization.*")
    cli_cls = _cli_class()
    cli_cls(
        EnhancementSystem,
        MixDataModule,
        subclass_mode_model=True,
        subclass_mode_data=True,
        args=argv,
        save_config_kwargs={"overwrite": True},
        parser_kwargs={"prog": "denoisezoo train"},
    )
    return 0


def __getattr__(name: str):
    if name == "DenoiseZooCLI":
        return _cli_class()
    raise AttributeError(name)
