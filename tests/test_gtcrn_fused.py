"""The fused grouped GRU path of GTCRN (one block-diagonal ``torch.gru`` recurrence for all groups
and directions) against the reference path (the ``nn.GRU`` modules one after the other)."""

import pytest
import torch
from conftest import randomised

from denoisezoo.gtcrn import gtcrn, gtcrn_tiny
from denoisezoo.gtcrn.model import GRNN


def _reference_only(monkeypatch):
    monkeypatch.setattr(GRNN, "use_fused", lambda self, x: False)


@pytest.mark.parametrize("bidirectional", [True, False], ids=["intra", "inter"])
@pytest.mark.parametrize("hidden", [8, 16, 6], ids=lambda h: f"hidden{h}")
@pytest.mark.parametrize("with_h", [False, True], ids=["zero_h", "given_h"])
def test_grnn_fused_equals_reference(bidirectional, hidden, with_h):
    torch.manual_seed(0)
    m = GRNN(16, hidden, bidirectional)
    d = 2 if bidirectional else 1
    x = torch.randn(5, 33, 16)
    h = torch.randn(d, 5, hidden) if with_h else None
    with torch.no_grad():
        y_ref, h_ref = m(x, h, fused=False)
        y, hn = m(x, h, fused=True)
    assert y.shape == y_ref.shape == (5, 33, d * hidden) and hn.shape == h_ref.shape == (d, 5, hidden)
    torch.testing.assert_close(y, y_ref, atol=1e-6, rtol=0)
    torch.testing.assert_close(hn, h_ref, atol=1e-6, rtol=0)


@pytest.mark.parametrize("bidirectional", [True, False], ids=["intra", "inter"])
def test_grnn_fused_gradients_equal_reference(bidirectional):
    """Training takes the fused path on CPU: same loss gradients for the input and every weight."""
    torch.manual_seed(0)
    m = GRNN(16, 12, bidirectional).train()
    x = torch.randn(4, 20, 16)
    h = torch.randn(2 if bidirectional else 1, 4, 12)
    grads = []
    for fused in (False, True):
        m.zero_grad()
        xi = x.clone().requires_grad_(True)
        hi = h.clone().requires_grad_(True)
        y, hn = m(xi, hi, fused=fused)
        (y.square().sum() + hn.sin().sum()).backward()
        grads.append([xi.grad, hi.grad] + [p.grad.clone() for p in m.parameters()])
    for g_ref, g in zip(*grads, strict=True):
        torch.testing.assert_close(g, g_ref, atol=1e-5, rtol=1e-5)


def test_default_path_choice():
    m = GRNN(16, 8, True)
    x = torch.randn(2, 33, 16)
    assert m.use_fused(x)
    calls = []
    handle = m.rnn1.register_forward_hook(lambda mod, inp, out: calls.append(1))
    assert not m.use_fused(x)  # hooks (MAC counting, Taylor pruning) see the nn.GRU calls
    with torch.no_grad():
        m(x)
    assert calls == [1]
    handle.remove()
    with torch.no_grad():
        m(x)
    assert calls == [1]


@pytest.mark.parametrize("factory", [gtcrn_tiny, gtcrn], ids=lambda f: f.__name__)
def test_model_forward_and_step_equal_reference(factory, monkeypatch):
    model = randomised(factory)
    spec = torch.randn(2, 257, 12, 2)
    with torch.inference_mode():
        fused = model(spec)
        state = model.initial_state(2)
        steps = []
        for t in range(spec.shape[2]):
            o, state = model.step(spec[:, :, t], state)
            steps.append(o)
    assert all(dp.intra_rnn._fused_cache is not None for dp in model.dpgrnn)  # fused path ran
    _reference_only(monkeypatch)
    with torch.inference_mode():
        ref, ref_state = model.forward_stateful(spec, None)
    torch.testing.assert_close(fused, ref, atol=1e-5, rtol=0)
    torch.testing.assert_close(torch.stack(steps, 2), ref, atol=1e-5, rtol=0)
    for a, b in zip(state, ref_state, strict=True):
        torch.testing.assert_close(a, b, atol=1e-5, rtol=0)


def test_fused_cache_follows_parameter_changes(monkeypatch):
    model = randomised(gtcrn_tiny, seed=1)
    other = randomised(gtcrn_tiny, seed=2)
    keys = list(model.state_dict())
    spec = torch.randn(1, 257, 6, 2)
    with torch.inference_mode():
        model(spec)  # fills the caches
    assert list(model.state_dict()) == keys  # the cache is no parameter or buffer
    model.load_state_dict(other.state_dict())
    with torch.no_grad():
        model.dpgrnn[0].intra_rnn.rnn2.weight_hh_l0_reverse.mul_(1.5)  # in place
        other.dpgrnn[0].intra_rnn.rnn2.weight_hh_l0_reverse.mul_(1.5)
    with torch.inference_mode():
        got = model(spec)
    _reference_only(monkeypatch)
    with torch.inference_mode():
        want = other(spec)
    torch.testing.assert_close(got, want, atol=1e-5, rtol=0)


@pytest.mark.filterwarnings("ignore::UserWarning", "ignore::DeprecationWarning",
                            "ignore::torch.jit.TracerWarning")
def test_exports_trace_the_reference_path(monkeypatch):
    """torch.export (LiteRT) and tracing (ONNX) keep the nn.GRU operators: no fused call."""
    calls = []
    fused = GRNN._forward_fused
    monkeypatch.setattr(GRNN, "_forward_fused", lambda self, *a: calls.append(1) or fused(self, *a))
    m = GRNN(8, 4, True).eval()
    x = torch.randn(1, 9, 8)
    with torch.no_grad():
        m(x)
        assert calls == [1]
        ep = torch.export.export(m, (x,))
        torch.jit.trace(m, (x,), check_trace=False)
    assert calls == [1]
    grus = [n for n in ep.graph.nodes if "gru" in str(n.target)]
    assert len(grus) == 2  # rnn1 and rnn2, each bidirectional
