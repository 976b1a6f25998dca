"""Live full-duplex denoising (``denoisezoo live``): microphone -> model -> speakers.

- :class:`LiveProcessor`: the audio-callback logic (resampling, :class:`~denoisezoo.streaming.Streamer`,
  output FIFO, bypass, counters), driven by a device or by a file in tests.
- :class:`Recorder`: raw and played streams to WAV from a writer thread.
- :func:`run_live`: the device plumbing (``sounddevice``, imported lazily), status view, keys.

Nothing in this package needs PortAudio at import time.
"""

from denoisezoo.live.devices import (
                                     INSTALL_HINT,
                                     DeviceChoice,
                                     DeviceError,
                                     PortAudioMissing,
                                     format_devices,
                                     import_sounddevice,
                                     resolve_device,
)
from denoisezoo.live.processor import (
                                     STATUS_BITS,
                                     LiveProcessor,
                                     default_blocksize,
                                     default_budget_ms,
                                     plan_prefill,
                                     status_bits,
)
from denoisezoo.live.recorder import Recorder
from denoisezoo.live.session import (
    BACKENDS,
    LiveOptions,
    format_latency,
    format_summary,
    run_live,
    to_backend,
)

__all__ = [
    "BACKENDS",
    "INSTALL_HINT",
    "STATUS_BITS",
    "DeviceChoice",
    "DeviceError",
    "LiveOptions",
    "LiveProcessor",
    "PortAudioMissing",
    "Recorder",
    "default_blocksize",
    "default_budget_ms",
    "format_devices",
    "format_latency",
    "format_summary",
    "import_sounddevice",
    "plan_prefill",
    "resolve_device",
    "run_live",
    "status_bits",
    "to_backend",
]
