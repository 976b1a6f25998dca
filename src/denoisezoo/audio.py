"""Audio I/O on ``soundfile``: validated reading, block reading, atomic writing.

Every public entry point raises :class:`AudioError` (a ``ValueError``) with a one-line message
naming the file and what is wrong; callers (the CLI) print it and exit non-zero.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf

__all__ = [
    "AudioError",
    "AudioInfo",
    "audio_info",
    "read_audio",
    "iter_blocks",
    "check_finite",
    "AtomicWriter",
    "refuse_existing",
    "write_audio",
    "AUDIO_EXTENSIONS",
]

AUDIO_EXTENSIONS = (".wav", ".flac", ".ogg", ".oga", ".aiff", ".aif", ".au", ".mp3", ".opus")


class AudioError(ValueError):
    """Bad or unreadable audio input (one-line, user-facing message)."""


@dataclass(frozen=True)
class AudioInfo:
    path: Path
    sample_rate: int
    channels: int
    frames: int
    format: str
    subtype: str

    @property
    def duration(self) -> float:
        return self.frames / self.sample_rate


def audio_info(path: str | Path) -> AudioInfo:
    """Header of an audio file; raises :class:`AudioError` when missing, not audio or empty."""
    p = Path(path)
    if not p.exists():
        raise AudioError(f"{p}: no such file")
    if p.is_dir():
        raise AudioError(f"{p}: is a directory, not an audio file")
    try:
        i = sf.info(str(p))
    except (sf.LibsndfileError, RuntimeError, OSError) as exc:
        raise AudioError(f"{p}: not a readable audio file ({_short(exc)})") from exc
    if i.frames <= 0:
        raise AudioError(f"{p}: empty audio (0 samples)")
    return AudioInfo(p, int(i.samplerate), int(i.channels), int(i.frames), i.format, i.subtype)


def _short(exc: BaseException) -> str:
    return str(exc).strip().splitlines()[0][:200] if str(exc).strip() else type(exc).__name__


def check_finite(block: np.ndarray, path: Path | str, offset: int = 0) -> None:
    """Raise :class:`AudioError` if ``block`` holds NaN or inf."""
    if not np.isfinite(block).all():
        bad = int(np.argmax(~np.isfinite(block).reshape(block.shape[0], -1).all(axis=1)))
        raise AudioError(f"{path}: non-finite sample (NaN/inf) at sample {offset + bad}")


FULL_SCALE = 0.999  # |x| at or above this is at full scale (int16 full scale is 32767/32768)


def count_clipped(block: np.ndarray) -> int:
    """Samples of ``block (frames, channels)`` on a flat top: at full scale (``|x| >= FULL_SCALE``)
    with a neighbour in the same channel at full scale of the same sign, the trace clipping leaves
    (a lone peak that touches full scale is not counted)."""
    x = np.asarray(block, dtype=np.float32)
    if x.shape[0] < 2:
        return 0
    top = np.where(x >= FULL_SCALE, 1, np.where(x <= -FULL_SCALE, -1, 0)).astype(np.int8)
    pair = (top[1:] == top[:-1]) & (top[1:] != 0)  # (frames - 1, channels): sample i and i+1 flat
    flat = np.zeros(top.shape, dtype=bool)
    flat[1:] |= pair
    flat[:-1] |= pair
    return int(flat.sum())


def read_audio(path: str | Path, min_frames: int = 1) -> tuple[np.ndarray, int]:
    """Read a whole file as float32 ``(frames, channels)`` with validation.

    Raises:
        AudioError: missing, unreadable, empty, shorter than ``min_frames``, or NaN/inf samples.
    """
    info = audio_info(path)
    if info.frames < min_frames:
        raise AudioError(f"{info.path}: too short ({info.frames} samples, need >= {min_frames})")
    try:
        data, sr = sf.read(str(info.path), dtype="float32", always_2d=True)
    except (sf.LibsndfileError, RuntimeError, OSError) as exc:
        raise AudioError(f"{info.path}: cannot decode audio ({_short(exc)})") from exc
    if data.shape[0] == 0:
        raise AudioError(f"{info.path}: empty audio (0 samples)")
    check_finite(data, info.path)
    return data, int(sr)


def iter_blocks(path: str | Path, block_frames: int) -> Iterator[np.ndarray]:
    """Yield float32 ``(n, channels)`` blocks of at most ``block_frames``, checking each is finite."""
    info = audio_info(path)
    offset = 0
    try:
        with sf.SoundFile(str(info.path)) as f:
            while True:
                block = f.read(block_frames, dtype="float32", always_2d=True)
                if block.shape[0] == 0:
                    break
                check_finite(block, info.path, offset)
                offset += block.shape[0]
                yield block
    except (sf.LibsndfileError, RuntimeError) as exc:
        raise AudioError(f"{info.path}: cannot decode audio ({_short(exc)})") from exc


def refuse_existing(paths: Iterable[str | Path], overwrite: bool) -> None:
    """The one never-overwrite rule: ``FileExistsError`` naming the first of ``paths`` that
    exists, unless ``overwrite``."""
    if overwrite:
        return
    for p in paths:
        if Path(p).exists():
            raise FileExistsError(f"{p}: exists (use --overwrite to replace it)")


class AtomicWriter:
    """Write audio to a temporary file beside ``path`` and rename it into place on success.

    Nothing exists at ``path`` until :meth:`commit`; on error or :meth:`abort` the temporary file is
    removed, so an interrupted run leaves no half-written output.
    """

    def __init__(self, path: str | Path, sample_rate: int, channels: int,
                 subtype: str | None = None, format: str | None = None, overwrite: bool = False):
        self.path = Path(path)
        refuse_existing([self.path], overwrite)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fmt = format or _format_for(self.path)
        if subtype is not None and not sf.check_format(fmt, subtype):
            subtype = None
        fd, tmp = tempfile.mkstemp(prefix=f".{self.path.name}.", suffix=".part", dir=self.path.parent)
        os.close(fd)
        self.tmp = Path(tmp)
        self._f = sf.SoundFile(str(self.tmp), "w", samplerate=sample_rate, channels=channels,
                               subtype=subtype, format=fmt)
        self.clipped = 0

    def write(self, block: np.ndarray) -> None:
        """Write ``(n, channels)`` float samples; values beyond [-1, 1] are clipped and counted."""
        if self._f.subtype not in ("FLOAT", "DOUBLE"):
            over = np.abs(block) > 1.0
            if over.any():
                self.clipped += int(over.sum())
                block = np.clip(block, -1.0, 1.0)
        self._f.write(block)

    def commit(self) -> Path:
        self._f.close()
        os.chmod(self.tmp, 0o666 & ~_umask())  # mkstemp creates 0600; give the usual permissions
        os.replace(self.tmp, self.path)
        return self.path

    def abort(self) -> None:
        with contextlib.suppress(Exception):
            self._f.close()
        with contextlib.suppress(FileNotFoundError):
            self.tmp.unlink()

    def __enter__(self) -> AtomicWriter:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            self.commit()
        else:
            self.abort()


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _format_for(path: Path) -> str:
    ext = path.suffix.lower().lstrip(".")
    fmt = {"wav": "WAV", "flac": "FLAC", "ogg": "OGG", "oga": "OGG", "aiff": "AIFF", "aif": "AIFF",
           "au": "AU", "mp3": "MP3", "opus": "OGG"}.get(ext)
    if fmt is None:
        raise AudioError(f"{path}: unsupported output extension {path.suffix!r}")
    return fmt


def write_audio(path: str | Path, data: np.ndarray, sample_rate: int, subtype: str | None = None,
                overwrite: bool = False) -> Path:
    """Atomically write ``(frames,)`` or ``(frames, channels)`` float audio."""
    data = np.asarray(data, dtype=np.float32)
    if data.ndim == 1:
        data = data[:, None]
    w = AtomicWriter(path, sample_rate, data.shape[1], subtype=subtype, overwrite=overwrite)
    try:
        w.write(data)
    except BaseException:
        w.abort()
        raise
    return w.commit()
