"""One check for every streamable preset: ``step`` frame by frame equals ``forward`` (outputs and
states, two streams at once), within 1e-5 of the output scale in float32."""

from __future__ import annotations

import pytest
import torch
from conftest import randomised, speechlike

from denoisezoo.dsp.stft import stft
from denoisezoo.hub import PRESETS

TOL = 1e-5


@pytest.mark.parametrize("preset", sorted(PRESETS))
def test_step_frame_by_frame_equals_forward(preset):
    model = randomised(PRESETS[preset])
    g = model.geometry
    n = int(0.3 * g.sample_rate)
    x = torch.stack([torch.from_numpy(speechlike(n, g.sample_rate, seed=s)) for s in (1, 2)])
    spec = stft(x, g)  # B, F, T, 2
    with torch.inference_mode():
        ref, ref_state = model.forward_stateful(spec, None)
        state = model.initial_state(2)
        outs = []
        for t in range(spec.shape[2]):
            o, state = model.step(spec[:, :, t], state)
            outs.append(o)
    got = torch.stack(outs, dim=2)
    assert ref.abs().max() > 1e-4  # the model does something measurable
    assert (got - ref).abs().max() <= TOL * max(1.0, float(ref.abs().max()))
    assert type(state) is type(ref_state)
    for name, a, b in zip(ref_state._fields, state, ref_state, strict=True):
        assert a.shape == b.shape, name
        assert (a - b).abs().max() <= TOL * max(1.0, float(b.abs().max())), name
