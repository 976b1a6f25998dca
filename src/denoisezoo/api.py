"""The Python API: load any model, denoise tensors and files of any rate, channel count and length.

:func:`load_model` takes every source a user has (a shipped name, a preset, a checkpoint, an
official GTCRN ``.tar``, an exported ``.onnx`` / ``.tflite`` step).

Files are processed block by block through a :class:`~denoisezoo.streaming.Streamer` (channels as the
batch) and a streaming resampler, so an hour of audio runs in bounded memory and the result equals
processing the whole file at once. :func:`denoise_files` runs many files in worker processes.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np
import torch
from torch import nn

from denoisezoo.audio import (
    AtomicWriter,
    AudioError,
    audio_info,
    count_clipped,
    iter_blocks,
    refuse_existing,
)
from denoisezoo.dsp.resample import Resampler, resample
from denoisezoo.dsp.stft import istft, stft
from denoisezoo.dsp.strength import apply_strength, db_to_floor
from denoisezoo.dsp.vad import VAD_THRESHOLD
from denoisezoo.export.artefacts import load_artefact
from denoisezoo.hub import EXPORTED_SUFFIXES
from denoisezoo.hub import load_model as _load_checkpoint_model
from denoisezoo.streaming.streamer import Streamer

__all__ = ["load_model", "enhance", "enhance_array", "denoise_file", "denoise_files"]


def load_model(source: str | Path, pretrained: bool = True):
    """A model from any source, ready for :func:`enhance`, :func:`denoise_file` and the Streamer.

    Args:
        source: a shipped name (``"gtcrn"``; ``denoisezoo models``), a preset name with
            ``pretrained=False``, a denoisezoo / Lightning checkpoint, a compressed checkpoint, an
            official GTCRN ``.tar``, or an exported ``.onnx`` / ``.tflite`` step with its sidecar.
        pretrained: if False, build the named preset with random weights.

    Returns:
        The PyTorch model in eval mode, or for an exported step an
        :class:`~denoisezoo.export.OnnxModel` / :class:`~denoisezoo.export.LiteRTModel`.

    Example:
        >>> import denoisezoo
        >>> model = denoisezoo.load_model("gtcrn_tiny", pretrained=False)
        >>> model.geometry.hop_length
        256
    """
    if Path(str(source)).suffix in EXPORTED_SUFFIXES:
        return load_artefact(source)
    return _load_checkpoint_model(source, pretrained)


def enhance(model: nn.Module, wav: torch.Tensor, atten_lim_db: float | None = None,
            wet: float = 1.0) -> torch.Tensor:
    """Denoise a waveform at the model's rate (offline, whole signal in one forward).

    Args:
        model: a spectral model (``geometry`` + ``forward``).
        wav: ``(N,)`` or ``(B, N)`` float waveform at ``model.geometry.sample_rate``.
        atten_lim_db: suppress no time-frequency bin by more than this many dB (``None``: no
            limit; ``0``: return the input).
        wet: dry/wet mix, the fraction of denoised signal (1: fully denoised).

    Returns:
        The enhanced waveform, same shape.
    """
    if wav.ndim not in (1, 2):
        raise ValueError(f"expected (N,) or (B, N) waveform, got shape {tuple(wav.shape)}")
    if wav.shape[-1] == 0:
        raise ValueError("empty waveform")
    if not torch.isfinite(wav).all():
        raise ValueError("waveform contains NaN or inf")
    g = model.geometry
    x = wav.float().reshape(-1, wav.shape[-1])
    with torch.inference_mode():
        spec = stft(x, g)
        out = model(spec)
        if atten_lim_db is not None or wet != 1.0:
            noisy_c = torch.view_as_complex(spec.contiguous())
            out_c = apply_strength(noisy_c, torch.view_as_complex(out.contiguous()),
                                   db_to_floor(atten_lim_db), wet)
            out = torch.view_as_real(out_c)
        y = istft(out, g, x.shape[-1])
    return y.reshape(wav.shape)


def enhance_array(model: nn.Module, audio: np.ndarray, sample_rate: int,
                  atten_lim_db: float | None = None, wet: float = 1.0) -> np.ndarray:
    """Denoise ``(frames,)`` or ``(frames, channels)`` audio at any rate (resampled both ways);
    ``atten_lim_db`` and ``wet`` as in :func:`enhance`."""
    a = np.asarray(audio, dtype=np.float32)
    two_d = a.ndim == 2
    a2 = a if two_d else a[:, None]
    sr_m = model.geometry.sample_rate
    x = resample(a2, sample_rate, sr_m)
    y = enhance(model, torch.from_numpy(np.ascontiguousarray(x.T)), atten_lim_db, wet).numpy().T
    y = resample(np.ascontiguousarray(y), sr_m, sample_rate)
    y = _fit_length(y, a2.shape[0])
    return y if two_d else y[:, 0]


def _fit_length(y: np.ndarray, n: int) -> np.ndarray:
    if y.shape[0] >= n:
        return y[:n]
    return np.concatenate([y, np.zeros((n - y.shape[0], y.shape[1]), y.dtype)], axis=0)


def denoise_file(src: str | Path, dst: str | Path, model: nn.Module, overwrite: bool = False,
                 block_seconds: float = 10.0, progress: bool | None = None,
                 streaming: bool = False, atten_lim_db: float | None = None, wet: float = 1.0,
                 vad_csv: str | Path | None = None, vad_threshold: float = VAD_THRESHOLD) -> dict:
    """Denoise one audio file into ``dst`` (same rate, channels, length and subtype).

    Nothing is written unless the whole file was processed: output goes to a temporary file that
    is renamed at the end. Raises :class:`~denoisezoo.audio.AudioError` for bad input and
    ``FileExistsError`` if ``dst`` exists and ``overwrite`` is False. With ``streaming=True`` the
    :class:`~denoisezoo.streaming.Streamer` is fed one hop at a time, as a live stream would be
    (same result, slower).

    With ``vad_csv``, the model's per-frame voice activity (see :class:`Streamer`, ``vad=True``)
    is written there too (same overwrite rule, written only on success): one row per model hop,
    ``start_s,end_s`` (the input span the hop completes) then ``vad`` and ``speech`` (``vad >=
    vad_threshold``) for a mono file, or ``vad_<c>,speech_<c>`` per channel.

    Returns:
        A small report: input/output paths, duration, file and model rates, channels, frames, the
        output samples clipped to [-1, 1] and the input samples on a clipped flat top
        (:func:`~denoisezoo.audio.count_clipped`).
    """
    info = audio_info(src)
    g = model.geometry
    dst = Path(dst)
    refuse_existing([dst], overwrite)
    if dst.resolve() == info.path.resolve():
        raise AudioError(f"{dst}: output would replace its own input")
    if vad_csv is not None:
        refuse_existing([vad_csv], overwrite)
    min_frames = max(1, int(np.ceil(g.hop_length * info.sample_rate / g.sample_rate)))
    if info.frames < min_frames:
        raise AudioError(f"{info.path}: too short ({info.frames} samples; need at least one "
                         f"{1000 * g.hop_length / g.sample_rate:.0f} ms frame = {min_frames} samples)")
    c = info.channels
    rs_in = Resampler(info.sample_rate, g.sample_rate, c)
    rs_out = Resampler(g.sample_rate, info.sample_rate, c)
    streamer = Streamer(model, batch=c, vad=vad_csv is not None)
    if atten_lim_db is not None or wet != 1.0:
        streamer.set_strength(atten_lim_db, wet)
    to_skip = g.delay  # streamer output delay at the model rate
    written = 0
    input_clipped = 0
    writer = AtomicWriter(dst, info.sample_rate, c, subtype=info.subtype, overwrite=overwrite)
    block = max(1, int(block_seconds * info.sample_rate))
    bar = _progress(info.frames, info.path.name, progress)
    try:
        def feed(x: np.ndarray) -> np.ndarray:
            xt = torch.from_numpy(np.ascontiguousarray(x.T))  # C, n at the model rate
            if not streaming:
                return streamer.feed(xt).numpy().T
            hop = g.hop_length
            ys = [streamer.feed(xt[:, i : i + hop]) for i in range(0, xt.shape[-1], hop)]
            return torch.cat(ys, dim=-1).numpy().T

        def emit(y: np.ndarray, last: bool = False) -> None:
            nonlocal written, to_skip
            if to_skip:
                cut = min(to_skip, y.shape[0])
                y, to_skip = y[cut:], to_skip - cut
            out = rs_out.process(y, last=last)
            out = out[: max(0, info.frames - written)]
            if out.shape[0]:
                writer.write(out)
                written += out.shape[0]

        for blk in iter_blocks(info.path, block):
            input_clipped += count_clipped(blk)
            x = rs_in.process(blk)
            if x.shape[0]:
                emit(feed(x))
            if bar is not None:
                bar.update(blk.shape[0])
        x = rs_in.process(np.zeros((0, c), np.float32), last=True)
        if x.shape[0]:
            emit(feed(x))
        emit(streamer.flush().numpy().T, last=True)
        if written < info.frames:  # resampler rounding: pad the last few samples with silence
            writer.write(np.zeros((info.frames - written, c), np.float32))
            written = info.frames
        clipped = writer.clipped
        if vad_csv is not None:
            _write_vad_csv(vad_csv, streamer.pop_vad(), g.hop_length / g.sample_rate, vad_threshold)
        writer.commit()
    except BaseException:
        writer.abort()
        raise
    finally:
        if bar is not None:
            bar.close()
    return {"input": str(info.path), "output": str(dst), "seconds": info.duration,
            "sample_rate": info.sample_rate, "model_sample_rate": g.sample_rate, "channels": c,
            "frames": info.frames, "clipped_samples": clipped, "input_clipped_samples": input_clipped}


def denoise_files(pairs: Sequence[tuple[str | Path, str | Path]], model: nn.Module, jobs: int = 1,
                  **kwargs) -> Iterator[tuple[Path, Path, dict | Exception]]:
    """Denoise many files: :func:`denoise_file` for every ``(src, dst)`` pair, ``jobs`` at a time.

    With ``jobs > 1`` the files go to that many worker processes (spawned, one torch thread each;
    every task carries the pickled ``model``); per-file progress bars are off there.

    Why not a :class:`~denoisezoo.streaming.StreamPool` with every file as a stream: one file's
    blocks already run many frames per model call, the pool one hop per call. Measured by
    ``benchmarks/streams_per_core.py`` (16 files x 10 s, GTCRN, shared 2-vCPU machine): one
    process 4.4 s, one pool 16.4 s, 2 workers 24.9 s of which 18.3 s starting them (a fresh
    interpreter importing torch each); the workers' marginal rate beats the pool's, so they win
    on a large corpus, and beat one process only when idle cores outlast their start.

    Args:
        pairs: ``(source, output)`` paths.
        model: the model (picklable for ``jobs > 1``: PyTorch models and exported steps are).
        jobs: worker processes (1: in this process, in order).
        **kwargs: passed to :func:`denoise_file` (``vad_csv`` may be a sequence, one per pair).

    Yields:
        ``(src, dst, report)`` as files finish, or ``(src, dst, error)`` for a file that failed
        with :class:`~denoisezoo.audio.AudioError` or ``FileExistsError`` (nothing written for it).
    """
    vad = kwargs.pop("vad_csv", None)
    vads = list(vad) if isinstance(vad, (list, tuple)) else [vad] * len(pairs)
    work = [(Path(s), Path(d), {**kwargs, "vad_csv": v}) for (s, d), v in zip(pairs, vads, strict=True)]
    if jobs <= 1 or len(work) <= 1:
        for src, dst, kw in work:
            yield src, dst, _denoise_one(src, dst, model, kw)
        return
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor, as_completed

    ex = ProcessPoolExecutor(max_workers=min(jobs, len(work)),
                             mp_context=multiprocessing.get_context("spawn"))
    try:
        futures = {ex.submit(_worker_denoise, src, dst, model, {**kw, "progress": False}): (src, dst)
                   for src, dst, kw in work}
        for fut in as_completed(futures):
            src, dst = futures[fut]
            yield src, dst, fut.result()
    finally:
        ex.shutdown(wait=True, cancel_futures=True)


def _denoise_one(src: Path, dst: Path, model, kwargs: dict) -> dict | Exception:
    try:
        return denoise_file(src, dst, model, **kwargs)
    except (AudioError, FileExistsError) as exc:
        return exc


def _worker_denoise(src: Path, dst: Path, model, kwargs: dict) -> dict | Exception:
    """One file in a worker process (one torch thread: the workers share the cores)."""
    torch.set_num_threads(1)
    return _denoise_one(src, dst, model, kwargs)


def _write_vad_csv(path: str | Path, vad: np.ndarray, hop_s: float, threshold: float) -> None:
    """``vad (C, T)`` -> CSV (written to a temporary file, then renamed)."""
    path = Path(path)
    c, t = vad.shape
    names = ["vad", "speech"] if c == 1 else [f"{k}_{i}" for i in range(c) for k in ("vad", "speech")]
    lines = [",".join(["start_s", "end_s", *names])]
    for j in range(t):
        cols = [f"{j * hop_s:.4f}", f"{(j + 1) * hop_s:.4f}"]
        for i in range(c):
            cols += [f"{vad[i, j]:.4f}", str(int(vad[i, j] >= threshold))]
        lines.append(",".join(cols))
    tmp = path.with_name(f".{path.name}.tmp")
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp.write_text("\n".join(lines) + "\n")
    tmp.replace(path)


def _progress(total: int, desc: str, enabled: bool | None):
    if enabled is None:
        enabled = sys.stderr.isatty() and total > 30 * 16000
    if not enabled:
        return None
    from tqdm import tqdm

    return tqdm(total=total, desc=desc, unit="smp", unit_scale=True, leave=False)
