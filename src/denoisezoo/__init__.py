"""denoisezoo: real-time speech-denoising model zoo.

Quick use::

    import denoisezoo
    model = denoisezoo.load_model("gtcrn")
    denoisezoo.denoise_file("noisy.wav", "clean.wav", model=model)
"""

from __future__ import annotations

__version__ = "0.1.0"

__all__ = ["load_model", "build_model", "denoise_file", "enhance", "enhance_array", "__version__"]


def __getattr__(name: str):
    # lazy: `import denoisezoo` stays light; the API pulls in torch only when used
    if name == "build_model":
        from denoisezoo import hub

        return hub.build_model
    if name in ("load_model", "denoise_file", "enhance", "enhance_array"):
        from denoisezoo import api as _enh

        return getattr(_enh, name)
    raise AttributeError(f"module 'denoisezoo' has no attribute {name!r}")
