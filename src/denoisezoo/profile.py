"""Parameter and MAC counting with forward hooks (no third-party profiler).

Convention (ptflops-like, stated so numbers can be compared): a multiply-accumulate counts 1, and so
does each elementwise operation of the forward pass:

- convolutions: ``output positions x k x C_in x C_out / groups`` + bias per output; transposed convs
  too (as ptflops does), which counts a stride-2 transposed conv at twice its actual products;
- linear layers: ``in x out`` per row + bias per output;
- GRU: ``3 h (in + h)`` products + ``6 h`` biases + ``7 h`` gate operations per step and direction;
- BatchNorm / LayerNorm: 2 per element (scale and shift); PReLU / Sigmoid / Tanh: 1 per element;
- model-specific operations each family declares (``Family.mac_counters``, e.g. GTCRN's ERB matrix products,
  TRA energy and gating, residual/skip additions, complex mask multiplication).

The GTCRN paper model gives 33.0 M MACs per second of 16 kHz audio under this convention (the
authors report 33.0 M with ptflops).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import nn

from denoisezoo.hub import FAMILIES

__all__ = ["count_parameters", "count_macs", "macs_per_second", "ModelCounts", "model_counts"]


def count_parameters(model: nn.Module, trainable_only: bool = True) -> int:
    """Learnable parameters (``trainable_only``) or all parameters plus persistent buffers that
    act as weights (frozen filterbanks; BatchNorm running statistics are not counted)."""
    n = sum(p.numel() for p in model.parameters() if p.requires_grad or not trainable_only)
    if not trainable_only:
        for name, b in model.named_buffers():
            leaf = name.rsplit(".", 1)[-1]
            if leaf not in ("running_mean", "running_var", "num_batches_tracked") and b.is_floating_point():
                n += b.numel()
    return n


def _gru_macs(m: nn.GRU, inp: torch.Tensor) -> int:
    x = inp[0] if isinstance(inp, tuple) else inp
    if m.batch_first:
        n, t = x.shape[0], x.shape[1]
    else:
        t, n = x.shape[0], x.shape[1]
    dirs = 2 if m.bidirectional else 1
    h = m.hidden_size
    total = 0
    in_size = m.input_size
    for _layer in range(m.num_layers):
        # 3 gates: W_ih x + W_hh h, plus elementwise gate maths (~ 3 h per step)
        per_step = 3 * (in_size * h + h * h) + 13 * h
        total += dirs * per_step * n * t
        in_size = h * dirs
    return total


EXTRA_COUNTERS: dict[type, Callable] = {}


def _ensure_counters() -> None:
    if not EXTRA_COUNTERS:
        for fam in FAMILIES.values():  # each family's own layers (denoisezoo.family.Family)
            EXTRA_COUNTERS.update(fam.mac_counters())


def count_macs(model: nn.Module, *inputs: torch.Tensor) -> int:
    """MACs of one ``model(*inputs)`` call in eval mode."""
    _ensure_counters()
    total = 0
    hooks = []

    def conv_hook(m: nn.Conv2d, inp, out):
        nonlocal total
        k = int(torch.tensor(m.kernel_size).prod())
        # like ptflops, every conv (transposed ones included) is counted per OUTPUT position; for a
        # stride-2 transposed conv this is twice the products actually computed
        positions = out.numel() // m.out_channels
        total += positions * k * m.in_channels * (m.out_channels // m.groups)
        if m.bias is not None:
            total += out.numel()

    def linear_hook(m: nn.Linear, inp, out):
        nonlocal total
        total += out.numel() * (m.in_features + (1 if m.bias is not None else 0))

    def gru_hook(m: nn.GRU, inp, out):
        nonlocal total
        total += _gru_macs(m, inp[0])

    def elem_hook(m, inp, out):
        nonlocal total
        o = out[0] if isinstance(out, tuple) else out
        total += o.numel() * (2 if isinstance(m, (nn.BatchNorm2d, nn.LayerNorm)) else 1)

    def extra_hook(fn):
        def hook(m, inp, out):
            nonlocal total
            total += int(fn(m, inp, out))

        return hook

    for m in model.modules():
        if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d, nn.Conv1d)):
            hooks.append(m.register_forward_hook(conv_hook))
        elif isinstance(m, nn.Linear):
            hooks.append(m.register_forward_hook(linear_hook))
        elif isinstance(m, nn.GRU):
            hooks.append(m.register_forward_hook(gru_hook))
        elif isinstance(m, (nn.BatchNorm2d, nn.LayerNorm, nn.PReLU, nn.Tanh, nn.Sigmoid)):
            hooks.append(m.register_forward_hook(elem_hook))
        for cls, fn in EXTRA_COUNTERS.items():
            if type(m) is cls:
                hooks.append(m.register_forward_hook(extra_hook(fn)))


    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            model(*inputs)
    finally:
        for h in hooks:
            h.remove()
        model.train(was_training)
    return total


def macs_per_second(model: nn.Module, seconds: float = 1.0) -> float:
    """MACs for ``seconds`` of audio at the model's rate (spectral models: ``geometry``)."""
    g = model.geometry
    frames = max(1, round(seconds * g.sample_rate / g.hop_length))
    spec = torch.randn(1, g.n_freqs, frames, 2)
    return count_macs(model, spec) * (g.sample_rate / g.hop_length) / frames


@dataclass(frozen=True)
class ModelCounts:
    params: int
    params_total: int
    macs_per_second: float


def model_counts(model: nn.Module) -> ModelCounts:
    return ModelCounts(count_parameters(model), count_parameters(model, False), macs_per_second(model))
