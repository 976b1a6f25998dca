"""The one cache-aware causal convolution primitive used by both the offline and the step path.

A causal convolution over time (dim 2 of ``(B, C, T, F)``) with receptive field ``cache_len + 1``
frames is computed as ``conv(cat(cache, x))``: offline, the cache is zeros (equivalent to left
zero-padding); streaming, it holds the last ``cache_len`` input frames of the previous call. The
module's own time padding must make an input of ``cache_len + T`` frames give ``T`` output frames.
Both classes subclass the plain torch convolutions so parameter names stay those of ``nn.Conv2d``.
"""

from __future__ import annotations

import torch
from torch import nn

__all__ = ["CausalConv2d", "CausalConvTranspose2d", "cached_time_conv"]


def cached_time_conv(
    conv: nn.Module, x: torch.Tensor, cache: torch.Tensor | None, cache_len: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Run ``conv`` causally over time with a frame cache.

    Args:
        conv: the convolution (``nn.Conv2d`` or ``nn.ConvTranspose2d`` forward).
        x: ``(B, C, T, F)`` input frames.
        cache: ``(B, C, cache_len, F)`` previous frames, or ``None`` for zeros.
        cache_len: frames of left context.

    Returns:
        ``(y, new_cache)`` with ``y`` of ``T`` frames and ``new_cache`` the last ``cache_len``
        frames of ``cat(cache, x)``.
    """
    if cache is None:
        cache = x.new_zeros(x.shape[0], x.shape[1], cache_len, x.shape[3])
    xc = torch.cat([cache, x], dim=2)  # B, C, cache_len + T, F
    return conv(xc), xc[:, :, xc.shape[2] - cache_len :]


class CausalConv2d(nn.Conv2d):
    """``nn.Conv2d`` made causal over time; time padding of the underlying conv must be 0.

    Example:
        >>> conv = CausalConv2d(4, 4, (3, 3), padding=(0, 1), dilation=(2, 1), groups=4)
        >>> y, cache = conv.forward_cached(torch.randn(1, 4, 7, 5), None)
        >>> tuple(y.shape), tuple(cache.shape)
        ((1, 4, 7, 5), (1, 4, 4, 5))
    """

    @property
    def cache_len(self) -> int:
        return (self.kernel_size[0] - 1) * self.dilation[0] - 2 * self.padding[0]

    def forward_cached(self, x: torch.Tensor, cache: torch.Tensor | None):
        return cached_time_conv(super().forward, x, cache, self.cache_len)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        return self.forward_cached(x, None)[0]


class CausalConvTranspose2d(nn.ConvTranspose2d):
    """``nn.ConvTranspose2d`` with stride 1 over time, made causal over time.

    The official GTCRN decoder uses transposed depthwise convs with time padding ``2 * dilation``
    after left-padding by ``2 * dilation``; this class reproduces that with the shared cache.
    """

    @property
    def cache_len(self) -> int:
        # output length = (L - 1) - 2p + d (k - 1) + 1 = L  =>  cache = 2p - d (k - 1)
        return 2 * self.padding[0] - self.dilation[0] * (self.kernel_size[0] - 1)

    def forward_cached(self, x: torch.Tensor, cache: torch.Tensor | None):
        return cached_time_conv(super().forward, x, cache, self.cache_len)

    def forward(self, x: torch.Tensor, output_size=None) -> torch.Tensor:  # type: ignore[override]
        return self.forward_cached(x, None)[0]
