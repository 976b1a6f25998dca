"""denoisezoo: real-time speech-denoising model zoo."""

__version__ = "0.1.0"
