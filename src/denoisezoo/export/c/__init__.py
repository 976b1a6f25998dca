"""C export: a model as plain C99 (weights as ``const`` arrays, the whole streamer in C).

- :func:`export_c`: write the folder (``denoisezoo export c``);
- :func:`build`: compile it with the system compiler (its ``Makefile``);
- :func:`cached_library`, :func:`c_model`: export + build once into the cache and run the
  library as a :class:`denoisezoo.streaming.CStepModel` (what ``denoise --backend c`` uses).

Running a built library is :mod:`denoisezoo.streaming.c_runtime`; this package writes and builds.
"""

from denoisezoo.export.c.build import (
    CACHE_OPT,
    DEFAULT_OPT,
    CompilerMissingError,
    build,
    cache_root,
    cached_library,
    compiler,
    compiler_missing_reason,
)
from denoisezoo.export.c.export import (
    LADSPA_PLUGIN,
    SIDECAR,
    SIDECAR_FORMAT,
    check_library,
    check_signal,
    export_c,
    export_ladspa,
    generated_files,
    ladspa_label,
)

__all__ = ["CACHE_OPT", "DEFAULT_OPT", "LADSPA_PLUGIN", "SIDECAR", "SIDECAR_FORMAT",
           "CompilerMissingError", "build", "c_model", "cache_root", "cached_library",
           "check_library", "check_signal", "compiler", "compiler_missing_reason", "export_c",
           "export_ladspa", "generated_files", "ladspa_label"]


def c_model(model, name: str | None = None):
    """``model`` (a PyTorch GTCRN) run by its C library, built on demand into the cache: a
    :class:`~denoisezoo.streaming.CStepModel` the Streamer (and ``denoise_file``) takes."""
    from denoisezoo.streaming.c_runtime import CStepModel

    if isinstance(model, CStepModel):
        return model
    if name is None:
        name = getattr(model, "checkpoint_meta", {}).get("name")
    return CStepModel(cached_library(model, name=name))
