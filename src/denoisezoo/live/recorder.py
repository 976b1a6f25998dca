"""``Recorder``: the raw and the played stream of a live session to WAV, off the audio thread.

The audio callback only calls :meth:`Recorder.put` (a ``queue.SimpleQueue.put`` of two arrays,
which never blocks); a writer thread drains the queue into two
:class:`denoisezoo.audio.AtomicWriter` files, renamed into place by :meth:`Recorder.close`
(an interrupted or failed recording leaves no half-written WAV).
"""

from __future__ import annotations

import json
import queue
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np

from denoisezoo.audio import AtomicWriter

__all__ = ["Recorder"]


class Recorder:
    """Write ``<stem>-raw.wav`` and ``<stem>-denoised.wav`` (32-bit float, mono) in ``directory``.

    Args:
        directory: output folder (created).
        sample_rate: rate of the blocks passed to :meth:`put` (the device rate).
        stem: file name stem (default ``live-YYYYmmdd-HHMMSS``; ``-1``, ``-2``... is appended
            if files of that stem exist).

    The denoised file holds exactly what was sent to the output device (the bypassed input
    while bypass was on), so it lags the raw file by the processing latency.
    """

    def __init__(self, directory: str | Path, sample_rate: int, stem: str | None = None):
        self.directory = Path(directory)
        base = stem or time.strftime("live-%Y%m%d-%H%M%S")
        self.stem, i = base, 1
        while any((self.directory / f"{self.stem}{s}").exists()
                  for s in ("-raw.wav", "-denoised.wav", ".json")):
            self.stem, i = f"{base}-{i}", i + 1  # never overwrite an earlier take
        self.sample_rate = int(sample_rate)
        self.raw_path = self.directory / f"{self.stem}-raw.wav"
        self.denoised_path = self.directory / f"{self.stem}-denoised.wav"
        self.info_path = self.directory / f"{self.stem}.json"
        self._raw = AtomicWriter(self.raw_path, self.sample_rate, 1, subtype="FLOAT")
        try:
            self._den = AtomicWriter(self.denoised_path, self.sample_rate, 1, subtype="FLOAT")
        except BaseException:
            self._raw.abort()
            raise
        self._q: queue.SimpleQueue = queue.SimpleQueue()
        self.frames = 0
        self.error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="denoisezoo-recorder", daemon=True)
        self._thread.start()

    def put(self, raw: np.ndarray, denoised: np.ndarray) -> None:
        """Queue one block pair (``(n,)`` float32 each; the arrays must not be reused)."""
        self._q.put((raw, denoised))

    def _run(self) -> None:
        while True:
            item = self._q.get()
            if item is None:
                return
            if self.error is not None:
                continue  # keep draining so the callback's puts never pile up
            raw, den = item
            try:
                self._raw.write(raw[:, None])
                self._den.write(den[:, None])
                self.frames += raw.shape[0]
            except Exception as exc:  # disk full, ...: reported by close()
                self.error = exc

    def close(self, info: dict[str, Any] | None = None) -> list[Path]:
        """Drain the queue, commit both files (and ``<stem>.json`` with ``info``); returns the
        paths written. Raises ``OSError`` if writing failed (nothing is left half-written)."""
        self._q.put(None)
        self._thread.join()
        if self.error is not None:
            self._raw.abort()
            self._den.abort()
            raise OSError(f"recording to {self.directory} failed: {self.error}")
        paths = [self._raw.commit(), self._den.commit()]
        if info is not None:
            tmp = self.info_path.with_name(self.info_path.name + ".part")
            tmp.write_text(json.dumps({**info, "recorded_frames": self.frames}, indent=2) + "\n")
            tmp.replace(self.info_path)
            paths.append(self.info_path)
        return paths

    def abort(self) -> None:
        """Stop the writer and remove the temporary files."""
        self._q.put(None)
        self._thread.join()
        self._raw.abort()
        self._den.abort()
