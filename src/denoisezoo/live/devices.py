"""Audio devices through ``sounddevice`` (PortAudio), imported lazily.

Everything else in :mod:`denoisezoo` imports without ``sounddevice`` or PortAudio; the live demo
calls :func:`import_sounddevice`, which turns a missing library into :class:`PortAudioMissing`
with a one-line install hint. Device selection errors are :class:`DeviceError` messages that
list the devices available for that direction.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

__all__ = ["PortAudioMissing", "DeviceError", "DeviceChoice", "import_sounddevice",
           "format_devices", "resolve_device", "check_settings", "INSTALL_HINT"]

INSTALL_HINT = ("PortAudio is not installed (needed by `denoisezoo live`): install it with "
                "`apt-get install -y libportaudio2` (Debian/Ubuntu; `brew install portaudio` on "
                "macOS) and retry")


class PortAudioMissing(RuntimeError):
    """``sounddevice`` or the PortAudio shared library cannot be loaded."""


class DeviceError(ValueError):
    """A device or setting that cannot be used (one-line, user-facing message)."""


@dataclass(frozen=True)
class DeviceChoice:
    """A resolved device: PortAudio index, name, host API and its defaults."""

    index: int
    name: str
    hostapi: str
    max_input_channels: int
    max_output_channels: int
    default_samplerate: float

    def __str__(self) -> str:
        return f"[{self.index}] {self.name} ({self.hostapi})"


def import_sounddevice() -> Any:
    """The ``sounddevice`` module; raises :class:`PortAudioMissing` with an install hint."""
    try:
        import sounddevice
    except OSError as exc:  # the package is there, libportaudio is not
        raise PortAudioMissing(INSTALL_HINT) from exc
    except ImportError as exc:
        raise PortAudioMissing("the sounddevice package is not installed: "
                               "`pip install sounddevice`, then retry") from exc
    return sounddevice


def _choice(sd: Any, d: dict) -> DeviceChoice:
    return DeviceChoice(int(d["index"]), str(d["name"]), str(sd.query_hostapis(d["hostapi"])["name"]),
                        int(d["max_input_channels"]), int(d["max_output_channels"]),
                        float(d["default_samplerate"]))


def _devices(sd: Any) -> list[DeviceChoice]:
    return [_choice(sd, d) for d in sd.query_devices()]


def format_devices(sd: Any) -> str:
    """A table of all devices (index, direction channels, default rate, host API), defaults marked."""
    devs = _devices(sd)
    if not devs:
        return ("no audio devices found (PortAudio sees none: check that a sound card or an ALSA "
                "PCM is configured)")
    din, dout = _default_indices(sd)
    lines = [f"{'':2}{'ID':>3}  {'in':>3} {'out':>3}  {'rate':>6}  name (host API)"]
    for d in devs:
        mark = ("<>" if d.index == din and d.index == dout else
                "> " if d.index == din else " <" if d.index == dout else "  ")
        lines.append(f"{mark}{d.index:>3}  {d.max_input_channels:>3} {d.max_output_channels:>3}  "
                     f"{d.default_samplerate:>6.0f}  {d.name} ({d.hostapi})")
    lines.append("> default input, < default output; select with --input-device/--output-device "
                 "ID or part of the name")
    return "\n".join(lines)


def _default_indices(sd: Any) -> tuple[int, int]:
    try:
        din, dout = sd.default.device
    except (TypeError, ValueError):
        return -1, -1
    return (int(din) if din is not None else -1), (int(dout) if dout is not None else -1)


def _available(devs: list[DeviceChoice], kind: str) -> str:
    key = "max_input_channels" if kind == "input" else "max_output_channels"
    names = [f"{d.index} '{d.name}'" for d in devs if getattr(d, key) > 0]
    return ", ".join(names) if names else "none"


def resolve_device(sd: Any, spec: str | int | None, kind: str) -> DeviceChoice:
    """Find the ``kind`` (``"input"``/``"output"``) device named by ``spec``.

    ``spec`` is ``None`` (the system default), a PortAudio index, or a case-insensitive part of a
    device name (an exact name wins; several partial matches are an error).
    """
    if kind not in ("input", "output"):
        raise ValueError(f"kind must be 'input' or 'output', got {kind!r}")
    key = "max_input_channels" if kind == "input" else "max_output_channels"
    devs = _devices(sd)
    flag = f"--{kind}-device"
    avail = _available(devs, kind)
    if spec is None or str(spec).strip() == "":
        idx = _default_indices(sd)[0 if kind == "input" else 1]
        if idx < 0 or idx >= len(devs):
            raise DeviceError(f"no default {kind} device; pass {flag} ID or NAME "
                              f"(available {kind} devices: {avail})")
        cands = [devs[idx]]
    elif str(spec).strip().lstrip("-").isdigit():
        idx = int(spec)
        if not 0 <= idx < len(devs):
            raise DeviceError(f"{flag} {spec}: no such device (available {kind} devices: {avail})")
        cands = [devs[idx]]
    else:
        s = str(spec).strip().lower()
        cands = [d for d in devs if d.name.lower() == s and getattr(d, key) > 0]
        if not cands:
            cands = [d for d in devs if s in d.name.lower() and getattr(d, key) > 0]
        if not cands:
            raise DeviceError(f"{flag} {spec!r}: no {kind} device matches (available {kind} "
                              f"devices: {avail})")
        if len(cands) > 1:
            names = ", ".join(f"{d.index} '{d.name}'" for d in cands)
            raise DeviceError(f"{flag} {spec!r} matches several {kind} devices ({names}); "
                              f"pass its ID")
    dev = cands[0]
    if getattr(dev, key) < 1:
        raise DeviceError(f"{flag} {spec if spec is not None else dev.index}: {dev} has no "
                          f"{kind} channels (available {kind} devices: {avail})")
    return dev


def check_settings(sd: Any, inp: DeviceChoice, out: DeviceChoice, samplerate: int,
                   out_channels: int) -> None:
    """Raise :class:`DeviceError` if the devices refuse ``samplerate`` / the channel counts."""
    for kind, dev, check, ch in (("input", inp, sd.check_input_settings, 1),
                                 ("output", out, sd.check_output_settings, out_channels)):
        try:
            check(device=dev.index, channels=ch, dtype="float32", samplerate=samplerate)
        except Exception as exc:  # sounddevice.PortAudioError / ValueError
            msg = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            raise DeviceError(f"{kind} device {dev} cannot run at {samplerate} Hz with {ch} "
                              f"channel(s) ({msg}); try --samplerate "
                              f"{dev.default_samplerate:.0f} (its default) or another device "
                              f"(--list-devices)") from exc
