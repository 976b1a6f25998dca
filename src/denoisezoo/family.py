"""What a model family declares once, for every part of the package that needs it.

A family (GTCRN, the RNNoise port, ...) lives in its own package and ends with a ``family.py``
that builds one :class:`Family`; :data:`denoisezoo.hub.FAMILIES` lists them (one line per family).
Everything that treats families differently looks the answer up here instead of testing class
names: checkpoints and artefacts rebuild the model from ``config_cls``, training takes the
default ``loss``, structured pruning reads ``pruning``, ORT INT8 keeps ``int8_keep_float``
in float, LiteRT quantizes ``litert_quant_scope``, BatchNorm folding and QAT read
``conv_bn_pairs`` / ``qat_keep_float``.

Adding a family: write its package (config, model, presets, ``family.py``) and add its
``FAMILY`` to :data:`denoisezoo.hub.FAMILIES`. Nothing else changes.

This module imports only torch: model packages import it.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from torch import nn

__all__ = ["Family", "Pruning", "UnitGroup"]


@dataclass(frozen=True)
class UnitGroup:
    """One prunable group: ``subs`` sub-groups (module prefix, direction suffix) sharing a count.

    ``kind`` is one of the family's :attr:`Pruning.kinds`; ``index`` is the block (0 when a kind
    has one group); ``size`` the units per sub-group.
    """

    kind: str
    index: int
    prefix: str
    subs: tuple[str, ...]
    size: int

    @property
    def key(self) -> str:
        return f"{self.kind}{self.index}"


# A parameter slice owned or fed by a unit: (state-dict key, dim, how) with ``how`` one of
# "unit" (index = unit), "gate" (the unit's row in each of the 3 stacked GRU gates) or
# "out:<offset>" (index = offset + unit: a consumer's input rows / columns).
Slice = tuple[str, int, str]
# A signal whose gradient scores a unit (Taylor): (module, "pre" | "out", unit axis, offset).
Signal = tuple[nn.Module, str, int, int]


@dataclass(frozen=True)
class Pruning:
    """How structured pruning sees a family (:mod:`denoisezoo.compress.structured`)."""

    kinds: tuple[str, ...]
    groups: Callable[[nn.Module, Sequence[str]], list[UnitGroup]]
    slices: Callable[[nn.Module, UnitGroup, str], list[Slice]]
    signals: Callable[[nn.Module, UnitGroup], list[Signal]]
    rebuild: Callable[[nn.Module, dict[str, UnitGroup], dict[str, int]], nn.Module]


@dataclass(frozen=True)
class Family:
    """A model family: its classes, presets and what each tool needs to know about it.

    Attributes:
        name: registry name, written into checkpoints and sidecars (``"gtcrn"``).
        model_cls: the network (``forward``, ``initial_state``, ``step``).
        config_cls: its frozen config dataclass (``to_dict`` / ``from_dict``).
        presets: preset name -> factory of a randomly initialised model.
        loss: ``loss(model) -> nn.Module``, the family's default training loss.
        pruning: structured-pruning tables, or ``None`` if the family cannot be pruned.
        int8_keep_float: ONNX node-name patterns kept float by ONNX Runtime INT8
            (``{last}`` is replaced by the last decoder index).
        int8_float_ops: op types that stay float in the INT8 step (recorded in the sidecar).
        litert_quant_scope: regex of LiteRT op names that LiteRT INT8 quantizes (``None``: all).
        conv_bn_pairs: ``model -> [(parent module, conv attribute, BatchNorm attribute)]``, the
            BatchNorms folded into their convs before INT8 export and QAT.
        qat_keep_float: ``model -> modules`` that QAT leaves in float (first / last layers).
        mac_counters: ``() -> {module class: hook(module, inputs, output) -> MACs}`` for the
            family's layers whose arithmetic the generic counters (conv, linear, GRU, norms) miss
            (:func:`denoisezoo.profile.count_macs`).
        legacy_names: other names this family had in older files (sidecars wrote class names).
    """

    name: str
    model_cls: type[nn.Module]
    config_cls: Any
    presets: Mapping[str, Callable[[], nn.Module]]
    loss: Callable[[nn.Module], nn.Module]
    pruning: Pruning | None = None
    int8_keep_float: tuple[str, ...] = ()
    int8_float_ops: tuple[str, ...] = ()
    litert_quant_scope: str | None = None
    conv_bn_pairs: Callable[[nn.Module], list[tuple[nn.Module, str, str]]] = field(
        default=lambda model: [])
    qat_keep_float: Callable[[nn.Module], list[nn.Module]] = field(default=lambda model: [])
    mac_counters: Callable[[], Mapping[type, Callable[..., int]]] = field(default=lambda: {})
    legacy_names: tuple[str, ...] = ()

    def config_from_dict(self, d: Mapping[str, Any]) -> Any:
        return self.config_cls.from_dict(dict(d))

    def build(self, config: Any) -> nn.Module:
        return self.model_cls(config)
