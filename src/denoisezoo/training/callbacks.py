"""Callbacks: a SIGKILL injector for fault tests.

Exact mid-epoch resume of the data order is the data module's job (``MixDataModule.state_dict``)."""

from __future__ import annotations

import os
import signal

import lightning as L

__all__ = ["KillAtStep"]


class KillAtStep(L.Callback):
    """Send SIGKILL to this process after optimizer step ``step`` (fault-injection tests only)."""

    def __init__(self, step: int):
        self.step = step

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        if trainer.global_step >= self.step:
            os.kill(os.getpid(), signal.SIGKILL)
