"""Building blocks shared by the models (torch only)."""

from denoisezoo.nn.causal import CausalConv2d, CausalConvTranspose2d

__all__ = ["CausalConv2d", "CausalConvTranspose2d"]
