"""The live demo's device plumbing: open a full-duplex stream, show its state, stop cleanly.

:func:`run_live` resolves and checks the devices, calibrates the model against the budget,
opens one ``sounddevice.Stream`` whose callback is :meth:`LiveProcessor.process`, prints the
total latency, then refreshes a status view from the main thread (a ``rich`` live table on a
terminal, one plain line per second otherwise) until ``duration`` has passed, ``q`` or Ctrl-C.
Key ``b`` (or Enter) toggles bypass while running; keys are read in a thread when stdin is a TTY.
"""

from __future__ import annotations

import math
import os
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from denoisezoo.live.devices import (
    DeviceChoice,
    DeviceError,
    check_settings,
    import_sounddevice,
    resolve_device,
)
from denoisezoo.live.processor import LiveProcessor, default_blocksize, default_budget_ms
from denoisezoo.live.recorder import Recorder
from denoisezoo.streaming.streamer import Streamer

__all__ = ["LiveOptions", "run_live", "format_latency", "format_summary", "to_backend", "BACKENDS"]

BACKENDS = ("auto", "torch", "onnx")


@dataclass
class LiveOptions:
    """Settings of one live session (the ``denoisezoo live`` flags)."""

    input_device: str | None = None
    output_device: str | None = None
    samplerate: int | None = None  # None: the input device's default rate
    blocksize: int | None = None  # None: one model hop at the device rate
    budget_ms: float | None = None  # None: half the shorter of a hop and a block
    bypass: bool = False
    record_dir: str | Path | None = None
    duration: float | None = None  # seconds; None: until Ctrl-C / q
    fallback: str = "mask"
    worker: bool = False
    latency: str | float = "low"  # PortAudio suggested latency
    calibrate_seconds: float = 1.0
    keys: bool = True  # read b/Enter/q from a TTY stdin
    threads: int = 1  # torch intra-op threads
    atten_lim_db: float | None = None  # strength: max suppression per bin (None: unlimited)
    wet: float = 1.0  # strength: dry/wet mix


def format_latency(proc: LiveProcessor, device_in_s: float, device_out_s: float) -> str:
    """One line: total = device buffers + processing (overlap-add + buffering/resampling)."""
    total = 1000.0 * (device_in_s + device_out_s) + proc.latency_ms
    g = proc.streamer.geometry
    return (f"latency {total:.1f} ms = device input {1000 * device_in_s:.1f} + device output "
            f"{1000 * device_out_s:.1f} + processing {proc.latency_ms:.1f} (overlap-add "
            f"{proc.overlap_add_ms:.1f} + hop buffering/resampling/blocks {proc.prefill_ms:.1f}); "
            f"model window {g.latency_ms:g} ms, hop {proc.streamer.hop_ms:g} ms at "
            f"{g.sample_rate} Hz, device {proc.device_rate} Hz, block {proc.blocksize}")


def _db(x: float) -> float:
    return 20.0 * math.log10(x) if x > 1e-9 else -180.0


def _meter(peak: float, width: int = 30, floor: float = -60.0) -> str:
    db = max(floor, min(0.0, _db(peak)))
    n = int(round(width * (db - floor) / -floor))
    return "#" * n + "." * (width - n)


class _View:
    """Status view refreshed by the main thread: rich table on a terminal, else text lines."""

    def __init__(self, proc: LiveProcessor, console: Any, live: bool, write: Callable[[str], None]):
        self.proc = proc
        self.console = console
        self.write = write
        self.t0 = time.monotonic()
        self._last = (0.0, 0)  # busy_s, frames at the previous update
        self._last_line = 0.0
        self._live = None
        if live:
            from rich.live import Live

            self._live = Live(self._table(0.0, 0.0, 0.0), console=console, auto_refresh=False,
                              transient=False)

    def __enter__(self) -> _View:
        if self._live is not None:
            self._live.__enter__()
        return self

    def __exit__(self, *exc) -> None:
        if self._live is not None:
            self._live.__exit__(*exc)

    def _recent_rtf(self) -> float:
        p = self.proc
        busy, frames = p.busy_s, p.frames
        b0, f0 = self._last
        self._last = (busy, frames)
        return (busy - b0) * p.device_rate / (frames - f0) if frames > f0 else 0.0

    def _table(self, in_pk: float, out_pk: float, rtf_now: float):
        from rich.table import Table

        p = self.proc
        s = p.streamer.stats
        t = Table(show_header=False, box=None, padding=(0, 1))
        t.add_column(style="bold")
        t.add_column()
        mode = "[yellow]BYPASS (input passed through)[/]" if p.bypass else "[green]DENOISING[/]"
        t.add_row("mode", f"{mode}   keys: b/Enter toggle bypass, q or Ctrl-C quit")
        t.add_row("input", f"{_meter(in_pk)} {max(-99.9, _db(in_pk)):6.1f} dBFS peak")
        t.add_row("output", f"{_meter(out_pk)} {max(-99.9, _db(out_pk)):6.1f} dBFS peak")
        t.add_row("real-time factor", f"{rtf_now:.3f} now, {p.rtf:.3f} mean, max callback "
                  f"{1000 * p.max_callback_s:.2f} ms / block {1000 * p.blocksize / p.device_rate:.1f} ms")
        t.add_row("deadline misses", f"{s['deadline_misses']} (budget {s['budget_ms']:g} ms per hop), "
                  f"fallback hops {s['fallback_hops']} of {s['hops']}, late callbacks {p.late_callbacks}")
        f = p.flags
        xr = (f["input_overflow"] + f["input_underflow"] + f["output_underflow"]
              + f["output_overflow"] + p.starved_samples)
        t.add_row("under/overruns", f"{'[red]' if xr else ''}input overflow {f['input_overflow']}, "
                  f"input underflow {f['input_underflow']}, output underflow {f['output_underflow']}, "
                  f"output overflow {f['output_overflow']}, FIFO starved {p.starved_samples} samples"
                  f"{'[/]' if xr else ''}")
        t.add_row("elapsed", f"{time.monotonic() - self.t0:.1f} s, {p.frames / p.device_rate:.1f} s of "
                  f"audio in {p.callbacks} callbacks")
        return t

    def update(self) -> None:
        in_pk, out_pk = self.proc.take_levels()
        rtf = self._recent_rtf()
        if self._live is not None:
            self._live.update(self._table(in_pk, out_pk, rtf), refresh=True)
            return
        now = time.monotonic()
        if now - self._last_line < 1.0:
            return
        self._last_line = now
        p, s, f = self.proc, self.proc.streamer.stats, self.proc.flags
        self.write(f"[{now - self.t0:5.1f} s] {'bypass' if p.bypass else 'denoise'} in "
                   f"{_db(in_pk):6.1f} dB out {_db(out_pk):6.1f} dB  RTF {rtf:.3f}  misses "
                   f"{s['deadline_misses']}  fallback {s['fallback_hops']}  in-overflow "
                   f"{f['input_overflow']}  out-underflow {f['output_underflow']}  starved "
                   f"{p.starved_samples}")


class _Keyboard(threading.Thread):
    """Reads single keys from a TTY stdin (cbreak mode, restored on stop)."""

    def __init__(self, on_toggle: Callable[[], None], on_quit: Callable[[], None]):
        super().__init__(name="denoisezoo-keys", daemon=True)
        self.on_toggle, self.on_quit = on_toggle, on_quit
        self._stop_event = threading.Event()

    def run(self) -> None:
        import select
        import termios
        import tty

        fd = sys.stdin.fileno()
        old = termios.tcgetattr(fd)
        try:
            tty.setcbreak(fd)
            while not self._stop_event.is_set():
                ready, _, _ = select.select([fd], [], [], 0.1)
                if not ready:
                    continue
                ch = os.read(fd, 1)
                if ch in (b"b", b"B", b"\n", b"\r"):
                    self.on_toggle()
                elif ch in (b"q", b"Q"):
                    self.on_quit()
        finally:
            termios.tcsetattr(fd, termios.TCSADRAIN, old)

    def stop(self) -> None:
        self._stop_event.set()
        self.join(timeout=1.0)


def _keys_available() -> bool:
    try:
        import termios  # noqa: F401
    except ImportError:
        return False
    return sys.stdin is not None and sys.stdin.isatty()


def _pick_channels(sd: Any, inp: DeviceChoice, out: DeviceChoice, rate: int) -> tuple[int, int]:
    """Mono in, stereo (else mono) out, whichever the devices accept."""
    first_error: DeviceError | None = None
    for out_ch in dict.fromkeys((min(2, out.max_output_channels), 1)):
        try:
            check_settings(sd, inp, out, rate, out_ch)
            return 1, out_ch
        except DeviceError as exc:
            first_error = first_error or exc
    raise first_error  # type: ignore[misc]


def to_backend(model: Any, backend: str, write: Callable[[str], None] = print) -> Any:
    """The model to stream with: ``"torch"`` as given; ``"onnx"`` exports its ``step`` to a
    temporary ONNX file run by ONNX Runtime (one thread); ``"auto"`` tries ONNX and keeps
    PyTorch (saying why) if the export fails. Per-hop ONNX Runtime calls are much cheaper than
    eager PyTorch ones (gtcrn_tiny here: p50 0.54 ms vs 9.9 ms per 16 ms hop, loaded machine).

    Raises:
        ValueError: ``backend == "onnx"`` and the export failed, or an unknown backend.
    """
    if backend not in BACKENDS:
        raise ValueError(f"backend must be one of {BACKENDS}, got {backend!r}")
    if backend == "torch" or not isinstance(model, torch.nn.Module):
        return model
    import tempfile
    import warnings

    from denoisezoo.export.onnx import export_onnx
    from denoisezoo.streaming import OnnxStepModel

    name = getattr(model, "checkpoint_meta", {}).get("name") or type(model).__name__
    try:
        with tempfile.TemporaryDirectory(prefix="denoisezoo-live-") as tmp:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                export_onnx(model, Path(tmp) / "step.onnx", name=name)
            onnx_model = OnnxStepModel(Path(tmp) / "step.onnx", threads=1)  # loaded in memory
    except Exception as exc:
        msg = f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
        if backend == "onnx":
            raise ValueError(f"--backend onnx: exporting {name} to ONNX failed ({msg})") from exc
        write(f"backend: torch (ONNX export of {name} failed: {msg})")
        return model
    write(f"backend: onnxruntime (step of {name} exported to ONNX for this session)")
    return onnx_model


def run_live(model: Any, opts: LiveOptions, console: Any = None,
             write: Callable[[str], None] = print) -> dict[str, Any]:
    """Run the live demo until ``opts.duration``, ``q`` or Ctrl-C; returns the session summary.

    Raises:
        PortAudioMissing: sounddevice / libportaudio cannot be loaded.
        DeviceError: a device or rate that cannot be used (one-line message).
    """
    sd = import_sounddevice()
    if console is None:
        from rich.console import Console

        console = Console()
    inp = resolve_device(sd, opts.input_device, "input")
    outd = resolve_device(sd, opts.output_device, "output")
    rate = int(opts.samplerate or round(inp.default_samplerate))
    if rate <= 0:
        raise DeviceError(f"--samplerate {rate}: must be a positive rate in Hz")
    in_ch, out_ch = _pick_channels(sd, inp, outd, rate)
    torch.set_num_threads(max(1, opts.threads))
    g = model.geometry
    blocksize = int(opts.blocksize or default_blocksize(rate, g.hop_length, g.sample_rate))
    if blocksize < 1:
        raise DeviceError(f"--blocksize {blocksize}: must be >= 1 frame")
    hop_ms = 1000.0 * g.hop_length / g.sample_rate
    budget = opts.budget_ms or default_budget_ms(hop_ms, 1000.0 * blocksize / rate)
    streamer = Streamer(model, budget_ms=budget, fallback=opts.fallback, worker=opts.worker,
                        max_history=1024)
    calib = streamer.calibrate(seconds=opts.calibrate_seconds)
    if opts.atten_lim_db is not None or opts.wet != 1.0:
        streamer.set_strength(opts.atten_lim_db, opts.wet)
    write(f"devices: input {inp}, output {outd}, {rate} Hz, block {blocksize} frames, "
          f"{in_ch} in / {out_ch} out channel(s)")
    write(f"calibration: {calib}")
    proc = LiveProcessor(streamer, rate, blocksize, out_channels=out_ch, bypass=opts.bypass)
    failure: list[BaseException] = []
    finished = threading.Event()
    stop = threading.Event()

    def callback(indata, outdata, frames, time_info, status) -> None:
        try:
            proc.process(indata, outdata, frames, status)
        except Exception as exc:  # reported by the main thread; the stream stops
            outdata.fill(0)
            proc.errors += 1
            failure.append(exc)
            raise sd.CallbackAbort from exc

    def toggle() -> None:
        proc.bypass = not proc.bypass

    try:
        stream = sd.Stream(samplerate=rate, blocksize=blocksize, device=(inp.index, outd.index),
                           channels=(in_ch, out_ch), dtype="float32", latency=opts.latency,
                           callback=callback, finished_callback=finished.set)
    except Exception as exc:  # sounddevice.PortAudioError
        streamer.close()
        msg = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise DeviceError(f"cannot open {inp} -> {outd} at {rate} Hz, block {blocksize} ({msg}); "
                          f"try another --samplerate/--blocksize or device (--list-devices)") from exc
    lat_in, lat_out = (float(v) for v in stream.latency)
    recorder: Recorder | None = None
    keys = _Keyboard(toggle, stop.set) if opts.keys and _keys_available() else None
    interrupted = False
    switch = sys.getswitchinterval()
    t_start = time.monotonic()
    try:
        if opts.record_dir:
            recorder = Recorder(opts.record_dir, rate)
            proc.record = recorder.put
        start_latency_ms = 1000 * (lat_in + lat_out) + proc.latency_ms
        write(format_latency(proc, lat_in, lat_out))
        if proc.bypass:
            write("starting bypassed (--bypass): press b or Enter to denoise")
        sys.setswitchinterval(0.001)  # the callback thread waits less for the GIL
        t_start = time.monotonic()
        with stream:
            if keys:
                keys.start()
            with _View(proc, console, console.is_terminal, write) as view:
                while not stop.is_set() and not finished.is_set():
                    left = (opts.duration - (time.monotonic() - t_start)
                            if opts.duration is not None else 0.25)
                    if left <= 0:
                        break
                    stop.wait(min(0.25, left))
                    view.update()
    except KeyboardInterrupt:
        interrupted = True
    except BaseException:
        if recorder:
            recorder.abort()
        raise
    finally:
        sys.setswitchinterval(switch)
        if keys and keys.is_alive():
            keys.stop()
        if not stream.closed:
            stream.close()
        streamer.close()
    wall = time.monotonic() - t_start
    summary: dict[str, Any] = {
        "input_device": str(inp), "output_device": str(outd), "samplerate": rate,
        "wall_seconds": wall, "interrupted": interrupted,
        "device_latency_in_ms": 1000 * lat_in, "device_latency_out_ms": 1000 * lat_out,
        "total_latency_ms": start_latency_ms,
        "calibration": calib.to_dict(), **proc.summary(),
        "total_latency_ms_final": 1000 * (lat_in + lat_out) + proc.latency_ms,
        "error": repr(failure[0]) if failure else None,
    }
    if recorder:
        summary["recorded"] = [str(p) for p in recorder.close(info=summary)]
    return summary


def format_summary(s: dict[str, Any]) -> str:
    """The end-of-session summary printed by the CLI."""
    lines = [
        f"stopped{' (Ctrl-C)' if s['interrupted'] else ''} after {s['wall_seconds']:.1f} s: "
        f"{s['seconds']:.1f} s of audio, {s['frames']} frames in {s['callbacks']} callbacks",
        f"real-time factor {s['rtf']:.3f} (max callback {s['max_callback_ms']:.2f} ms, "
        f"{s['late_callbacks']} late callbacks)",
        f"model hops {s['model_hops']} of {s['hops']}, deadline misses {s['deadline_misses']}, "
        f"fallback ({s['fallback']}) hops {s['fallback_hops']}",
        f"under/overruns: input overflow {s['status_input_overflow']}, input underflow "
        f"{s['status_input_underflow']}, output underflow {s['status_output_underflow']}, output "
        f"overflow {s['status_output_overflow']}, FIFO starved {s['starved_samples']} samples",
        f"total latency {s['total_latency_ms']:.1f} ms at start"
        + (f", {s['total_latency_ms_final']:.1f} ms at the end (grown after FIFO starvation)"
           if s["total_latency_ms_final"] != s["total_latency_ms"] else ""),
    ]
    if s.get("recorded"):
        lines.append("recorded: " + ", ".join(s["recorded"]))
    if s.get("error"):
        lines.append(f"the audio callback failed: {s['error']}")
    return "\n".join(lines)

