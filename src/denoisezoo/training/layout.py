"""Where a training run writes: one folder, derived loggers and checkpoint callbacks.

Every config in ``configs/`` used to spell out the same two loggers and three callbacks with its run folder
repeated five times. A config now names the folder once::

    run: {dir: runs/gtcrn_alone, snapshot_every: 1500}

and :class:`RunLayout` derives the rest (``denoisezoo train`` adds it to the trainer)::

    runs/gtcrn_alone/
      checkpoints/last.ckpt   resume point, rewritten every ``checkpoint_every`` steps (``--ckpt_path last``)
      snapshots/stepN.ckpt    kept every ``snapshot_every`` steps, for equal-step comparisons
      logs/version_K/         CSV metrics, a new version per (re)start (CSVLogger rewrites metrics.csv)
      tb/version_0/           TensorBoard events, one stream across restarts

A branch of a run (a cool-down from a snapshot, say) is the same config with another ``--run.dir``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

__all__ = ["RunLayout"]


@dataclass(frozen=True)
class RunLayout:
    """A run folder and its checkpoint cadence.

    Args:
        dir: run folder; ``None`` leaves the trainer's loggers and callbacks as configured.
        checkpoint_every: optimizer steps between rewrites of ``checkpoints/last.ckpt`` (the most a
            killed run loses).
        snapshot_every: optimizer steps between kept ``snapshots/stepN.ckpt``; ``None`` keeps none.
            Must differ from ``checkpoint_every``.
    """

    dir: str | None = None
    checkpoint_every: int = 250
    snapshot_every: int | None = None

    def __post_init__(self) -> None:
        if self.checkpoint_every < 1:
            raise ValueError(f"checkpoint_every must be >= 1, got {self.checkpoint_every}")
        if self.snapshot_every is not None and self.snapshot_every < 1:
            raise ValueError(f"snapshot_every must be >= 1 or None, got {self.snapshot_every}")
        if self.snapshot_every == self.checkpoint_every:  # Lightning keys callback state by cadence
            raise ValueError(f"snapshot_every must differ from checkpoint_every ({self.checkpoint_every}): "
                             "two ModelCheckpoints with one cadence cannot both be resumed")

    def loggers(self) -> list:
        """CSV metrics under ``dir/logs`` and TensorBoard events under ``dir/tb``."""
        from lightning.pytorch.loggers import CSVLogger, TensorBoardLogger

        root = self._root()
        return [CSVLogger(save_dir=str(root), name="logs"),
                TensorBoardLogger(save_dir=str(root), name="tb", version=0)]

    def callbacks(self) -> list:
        """The resume checkpoint, the kept snapshots (if any) and a learning-rate monitor."""
        from lightning.pytorch.callbacks import LearningRateMonitor, ModelCheckpoint

        root = self._root()
        out = [ModelCheckpoint(dirpath=str(root / "checkpoints"), save_last=True, save_top_k=0,
                               every_n_train_steps=self.checkpoint_every)]
        if self.snapshot_every is not None:
            out.append(ModelCheckpoint(dirpath=str(root / "snapshots"), filename="step{step}",
                                       auto_insert_metric_name=False, save_top_k=-1,
                                       every_n_train_steps=self.snapshot_every))
        out.append(LearningRateMonitor(logging_interval="step"))
        return out

    def trainer_kwargs(self, trainer: dict) -> dict:
        """Trainer arguments this layout adds to a trainer configured with ``trainer``.

        ``default_root_dir`` and the loggers only where ``trainer`` leaves them unset (``logger: false``
        stays off); the callbacks are appended to the configured ones.
        """
        if self.dir is None:
            return {}
        out: dict = {}
        if trainer.get("default_root_dir") is None:
            out["default_root_dir"] = str(self._root())
        if trainer.get("logger") is None:
            out["logger"] = self.loggers()
        configured = trainer.get("callbacks") or []
        if not isinstance(configured, list):
            configured = [configured]
        out["callbacks"] = [*configured, *self.callbacks()]
        return out

    def _root(self) -> Path:
        if self.dir is None:
            raise ValueError("RunLayout.dir is not set")
        return Path(self.dir)
