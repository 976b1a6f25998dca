"""Load the weights of the original RNNoise (xiph/rnnoise v0.1.1, BSD-3-Clause) from ``rnn_data.c``.

The release compiles its trained Keras model into C tables: ``static const rnn_weight NAME[n] =
{...};`` (int8 values) and one ``DenseLayer`` / ``GRULayer`` record per layer naming its bias,
weights (and recurrent weights), its input and output sizes and its activation. The C code uses
every value times ``WEIGHTS_SCALE = 1 / 256`` (biases too). Layouts: a dense layer's weights are
input-major (``w[j * N + i]``: our ``Linear.weight`` transposed); a GRU's are input-major with
the gates side by side (``w[j * 3N + gate * N + i]``, gates update, reset, candidate: our
:class:`~denoisezoo.rnnoise_port.KerasGRU` ``kernel`` / ``recurrent_kernel`` as they are).

:func:`load_rnn_data` parses such a file (the release's, or one written by the release's
``dump_rnn.py`` for a model of the same structure, any widths) into an
:class:`~denoisezoo.rnnoise_port.RNNoise` with the release's DSP (``rnnoise_48k``'s config). The
binary weight files of RNNoise 0.2 and later belong to a different network (new features and
layers) and are not read here.

Pure Python text parsing and torch; no C compiler.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace
from pathlib import Path

import torch

from denoisezoo.rnnoise_port.config import RELEASE_DSP, RNNoiseConfig
from denoisezoo.rnnoise_port.model import RNNoise

__all__ = ["WEIGHTS_SCALE", "CLayer", "parse_rnn_data", "state_dict_from_rnn_data",
           "load_rnn_data", "release_config"]

WEIGHTS_SCALE = 1.0 / 256
_ARRAY = re.compile(r"static\s+const\s+rnn_weight\s+(\w+)\s*\[\s*(\d+)\s*\]\s*=\s*\{([^}]*)\}\s*;")
_LAYER = re.compile(r"static\s+const\s+(DenseLayer|GRULayer)\s+(\w+)\s*=\s*\{([^}]*)\}\s*;")
_COMMENT = re.compile(r"/\*.*?\*/|//[^\n]*", re.S)
# layer name in rnn_data.c -> (module of RNNoise, kind, activation the module computes)
_LAYERS = {"input_dense": ("input_dense", "DenseLayer", "tanh"),
           "vad_gru": ("vad_gru", "GRULayer", None),
           "noise_gru": ("noise_gru", "GRULayer", None),
           "denoise_gru": ("denoise_gru", "GRULayer", None),
           "denoise_output": ("denoise_output", "DenseLayer", "sigmoid"),
           "vad_output": ("vad_output", "DenseLayer", "sigmoid")}


@dataclass(frozen=True)
class CLayer:
    """One layer record of ``rnn_data.c`` with its tables (int8 values, unscaled)."""

    kind: str  # "DenseLayer" or "GRULayer"
    inputs: int
    outputs: int
    activation: str  # "tanh", "sigmoid" or "relu"
    bias: list[int]
    weights: list[int]
    recurrent: list[int] | None = None


def parse_rnn_data(text: str) -> dict[str, CLayer]:
    """The layers of an ``rnn_data.c`` text by name.

    Raises:
        ValueError: a layer names a table that is missing or of the wrong size.
    """
    text = _COMMENT.sub(" ", text)
    arrays: dict[str, list[int]] = {}
    for name, size, body in _ARRAY.findall(text):
        values = [int(v) for v in body.replace("\n", " ").split(",") if v.strip()]
        if len(values) != int(size):
            raise ValueError(f"{name}: {len(values)} values for a table of {size}")
        arrays[name] = values
    layers = {}
    for kind, name, body in _LAYER.findall(text):
        fields = [f.strip() for f in body.split(",") if f.strip()]
        n_tables = 3 if kind == "GRULayer" else 2
        if len(fields) != n_tables + 3:
            raise ValueError(f"{name}: unexpected {kind} record {fields}")
        tables, (m, n, act) = fields[:n_tables], fields[n_tables:]
        missing = [t for t in tables if t not in arrays]
        if missing:
            raise ValueError(f"{name}: tables {missing} not in the file")
        m, n = int(m), int(n)
        gates = 3 if kind == "GRULayer" else 1
        bias, weights = arrays[tables[0]], arrays[tables[1]]
        recurrent = arrays[tables[2]] if kind == "GRULayer" else None
        sizes = [(tables[0], len(bias), gates * n), (tables[1], len(weights), m * gates * n)]
        if recurrent is not None:
            sizes.append((tables[2], len(recurrent), n * 3 * n))
        for table, got, want in sizes:
            if got != want:
                raise ValueError(f"{name}: {table} has {got} values, expected {want}")
        layers[name] = CLayer(kind, m, n, act.removeprefix("ACTIVATION_").lower(), bias, weights,
                              recurrent)
    return layers


def release_config(layers: dict[str, CLayer]) -> RNNoiseConfig:
    """The config of the release's 48 kHz model with the widths and GRU activations of
    ``layers`` (``rnnoise_48k``'s for the release's own file)."""
    missing = sorted(set(_LAYERS) - set(layers))
    if missing:
        raise ValueError(f"rnn_data.c lacks the layers {missing}")
    for name, (_, kind, act) in _LAYERS.items():
        layer = layers[name]
        if layer.kind != kind or (act is not None and layer.activation != act):
            raise ValueError(f"{name}: {layer.kind} with {layer.activation}, expected {kind} "
                             f"with {act or 'tanh / relu'} (the RNNoise layout)")
    base = RNNoiseConfig(sample_rate=48000, pitch_search_rate=12000, **RELEASE_DSP)
    acts = tuple(layers[g].activation for g in ("vad_gru", "noise_gru", "denoise_gru"))
    cfg = replace(base, dense_size=layers["input_dense"].outputs,
                  vad_size=layers["vad_gru"].outputs, noise_size=layers["noise_gru"].outputs,
                  denoise_size=layers["denoise_gru"].outputs, gru_activations=acts)
    want_in = {"input_dense": cfg.n_features, "vad_gru": cfg.dense_size,
               "noise_gru": cfg.dense_size + cfg.vad_size + cfg.n_features,
               "denoise_gru": cfg.vad_size + cfg.noise_size + cfg.n_features,
               "denoise_output": cfg.denoise_size, "vad_output": cfg.vad_size}
    want_out = {"denoise_output": cfg.n_bands, "vad_output": 1}
    for name, n in want_in.items():
        if layers[name].inputs != n:
            raise ValueError(f"{name} takes {layers[name].inputs} inputs, the 48 kHz RNNoise "
                             f"feeds it {n}")
    for name, n in want_out.items():
        if layers[name].outputs != n:
            raise ValueError(f"{name} has {layers[name].outputs} outputs, expected {n}")
    return cfg


def state_dict_from_rnn_data(layers: dict[str, CLayer]) -> dict[str, torch.Tensor]:
    """:class:`RNNoise` parameters (float32, ``value / 256``) from parsed layers."""
    sd: dict[str, torch.Tensor] = {}

    def t(values: list[int], *shape: int) -> torch.Tensor:
        return torch.tensor(values, dtype=torch.float32).reshape(*shape) * WEIGHTS_SCALE

    for name, (module, kind, _) in _LAYERS.items():
        layer = layers[name]
        m, n = layer.inputs, layer.outputs
        if kind == "DenseLayer":
            sd[f"{module}.weight"] = t(layer.weights, m, n).t().contiguous()
            sd[f"{module}.bias"] = t(layer.bias, n)
        else:
            sd[f"{module}.kernel"] = t(layer.weights, m, 3 * n)
            sd[f"{module}.recurrent_kernel"] = t(layer.recurrent, n, 3 * n)
            sd[f"{module}.bias"] = t(layer.bias, 3 * n)
    return sd


def load_rnn_data(path: str | Path) -> RNNoise:
    """An :class:`RNNoise` (eval mode) with the weights of an ``rnn_data.c`` file and the
    release's DSP.

    Example (the release's own file gives ``rnnoise_48k``'s shipped weights)::

        model = load_rnn_data("rnnoise/src/rnn_data.c")
        denoisezoo.hub.save_checkpoint(model, "my_rnnoise.pt", name="rnnoise_48k")

    Raises:
        FileNotFoundError: no such file.
        ValueError: the file does not hold the RNNoise layers in the 48 kHz geometry.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(path)
    layers = parse_rnn_data(path.read_text())
    model = RNNoise(release_config(layers))
    model.load_state_dict(state_dict_from_rnn_data(layers), strict=True)
    return model.eval()
