"""Export a GTCRN-family model in the form sherpa-onnx's speech denoiser loads.

sherpa-onnx (C, C++, Python, Java/Kotlin, Swift, C#, Go, JavaScript bindings) runs a GTCRN step
file of its own convention: the STFT is its own (``n_fft``, ``hop_length``, ``window_length``
and ``window_type`` from the file's metadata; ``hann_sqrt`` is our sqrt-Hann), and the graph is
``(x (1, F, 1, 2), conv_cache, tra_cache, inter_cache) -> (out (1, F, 1, 2), next caches)``, the
three caches created as zeros from the ``*_cache_shape`` metadata and fed back unchanged in
meaning. Our step has the same three states (``conv``, ``tra``, ``rnn``), so the file is our step
with a time axis of one frame around it and the metadata sherpa-onnx reads (``model_type``
``gtcrn``, ``version``, ``sample_rate``, ...). The graph is checked against PyTorch at export.

Use it from sherpa-onnx's Python API::

    import sherpa_onnx
    cfg = sherpa_onnx.OfflineSpeechDenoiserConfig(model=sherpa_onnx.OfflineSpeechDenoiserModelConfig(
        gtcrn=sherpa_onnx.OfflineSpeechDenoiserGtcrnModelConfig(model="gtcrn_sherpa.onnx")))
    denoiser = sherpa_onnx.OfflineSpeechDenoiser(cfg)
    audio = denoiser(samples, sample_rate)   # audio.samples, audio.sample_rate
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path
from typing import Any

import torch
from torch import nn

from denoisezoo.export.onnx import DEFAULT_OPSET, export_paths
from denoisezoo.hub import family_of

__all__ = ["export_sherpa_onnx", "SHERPA_STATES"]

SHERPA_STATES = ("conv_cache", "tra_cache", "inter_cache")  # sherpa-onnx's order and names
_WINDOWS = {"sqrt_hann": "hann_sqrt"}


class _SherpaStep(nn.Module):
    """``(x (1, F, 1, 2), *caches) -> (out (1, F, 1, 2), *next caches)`` over the model's step."""

    def __init__(self, model: nn.Module, state_type: type):
        super().__init__()
        self.model = model
        self.state_type = state_type

    def forward(self, x: torch.Tensor, *state: torch.Tensor):
        out, nxt = self.model.step(x[:, :, 0], self.state_type(*state))  # B, F, 2
        return (out.unsqueeze(2), *nxt)


def export_sherpa_onnx(model: nn.Module, path: str | Path, *, name: str | None = None,
                       overwrite: bool = False, opset: int = DEFAULT_OPSET,
                       check_frames: int = 100) -> dict[str, Any]:
    """Write ``model`` (a GTCRN-family network) as a sherpa-onnx speech-denoiser ``.onnx``.

    Args:
        model: a GTCRN network (any :class:`~denoisezoo.gtcrn.GTCRNConfig`: 16 or 48 kHz, pruned).
        path: output ``.onnx``; a JSON sidecar with the same metadata goes beside it.
        name: recorded in the metadata (``comment``).
        overwrite: replace existing files.
        opset: ONNX opset.
        check_frames: random frames compared between ONNX Runtime and PyTorch (0: none).

    Returns:
        The metadata written into the file (plus ``check_max_abs_diff``).

    Raises:
        TypeError: not a GTCRN-family model (sherpa-onnx's denoiser knows only that graph).
    """
    fam = family_of(model, strict=False)
    if fam is None or fam.name != "gtcrn":
        raise TypeError(f"sherpa-onnx's speech denoiser runs GTCRN models; {type(model).__name__} "
                        "is not one (export it with `denoisezoo export onnx` instead)")
    import onnx

    path, side = export_paths(path, ".onnx", overwrite)
    model = model.eval()
    g = model.geometry
    state = model.initial_state(1, None, torch.float32)
    if len(state) != len(SHERPA_STATES):
        raise TypeError(f"expected {len(SHERPA_STATES)} state tensors, got {len(state)}")
    window = _WINDOWS.get(g.window)
    if window is None:
        raise ValueError(f"sherpa-onnx has no {g.window!r} window")
    x = torch.zeros(1, g.n_freqs, 1, 2)
    graph = _SherpaStep(model, type(state)).eval()
    tmp = path.with_name(path.name + ".part")
    path.parent.mkdir(parents=True, exist_ok=True)
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")
        torch.onnx.export(graph, (x, *state), str(tmp), opset_version=opset, dynamo=False,
                          input_names=["mix", *SHERPA_STATES],
                          output_names=["enh", *[f"{n}_out" for n in SHERPA_STATES]],
                          do_constant_folding=True)
    meta: dict[str, Any] = {
        "model_type": "gtcrn",
        "version": 1,
        "sample_rate": g.sample_rate,
        "n_fft": g.n_fft,
        "hop_length": g.hop_length,
        "window_length": g.n_fft,
        "window_type": window,
        **{f"{n}_shape": ",".join(str(d) for d in s.shape) for n, s in zip(SHERPA_STATES, state,
                                                                           strict=True)},
        "comment": f"denoisezoo {name or getattr(model, 'checkpoint_meta', {}).get('name') or 'gtcrn'}",
    }
    proto = onnx.load(str(tmp))
    del proto.metadata_props[:]
    for k, v in meta.items():
        proto.metadata_props.add(key=k, value=str(v))
    onnx.save(proto, str(tmp))
    tmp.replace(path)
    if check_frames > 0:
        meta["check_frames"] = check_frames
        meta["check_max_abs_diff"] = _check(model, path, check_frames)
    side.write_text(json.dumps({"format": "sherpa-onnx-gtcrn", **meta}, indent=2) + "\n")
    return meta


def _check(model: nn.Module, path: Path, frames: int) -> float:
    from denoisezoo.streaming.onnx_runtime import make_session

    sess = make_session(path)
    gen = torch.Generator().manual_seed(0)
    spec = torch.randn(1, model.geometry.n_freqs, frames, 2, generator=gen)
    with torch.inference_mode():
        ref = model.forward_stateful(spec, None)[0]
    state = [s.numpy() for s in model.initial_state(1, None, torch.float32)]
    worst = 0.0
    for t in range(frames):
        feeds = {"mix": spec[:, :, t : t + 1].numpy(), **dict(zip(SHERPA_STATES, state, strict=True))}
        out, *state = sess.run(None, feeds)
        worst = max(worst, float(abs(out[:, :, 0] - ref[:, :, t].numpy()).max()))
    return worst
