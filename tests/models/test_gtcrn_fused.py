"""The fast paths of GTCRN against the reference path: the fused grouped GRU (one block-diagonal
``torch.gru`` recurrence for all groups and directions, instead of the ``nn.GRU`` modules one after
the other) and the inference-only folded conv blocks (BatchNorm folded into the convs, SFE merged
into the first point-wise conv, transposed convs as ordinary / polyphase convs, dense weights for
small grouped convs)."""

import pytest
import torch
from conftest import randomised

from denoisezoo.gtcrn import gtcrn, gtcrn_tiny
from denoisezoo.gtcrn.model import GRNN, ConvBlock, GTConvBlock


def _reference_only(monkeypatch):
    monkeypatch.setattr(GRNN, "use_fused", lambda self, x: False)
    monkeypatch.setattr(ConvBlock, "folded", lambda self: None)
    monkeypatch.setattr(GTConvBlock, "folded", lambda self: None)


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
    blocks = [m for m in model.modules() if isinstance(m, (ConvBlock, GTConvBlock))]
    assert all(m._folded_cache[2] is not None for m in blocks)  # folded conv blocks ran
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


# ------------------------------------------------------------------ folded conv blocks (inference)
def _random_bn(module, seed=0):
    g = torch.Generator().manual_seed(seed)
    for m in module.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.copy_(torch.rand(m.num_features, generator=g) * 0.4 - 0.2)
            m.running_var.copy_(torch.rand(m.num_features, generator=g) + 0.5)
            m.weight.data.copy_(torch.rand(m.num_features, generator=g) + 0.5)
            m.bias.data.copy_(torch.rand(m.num_features, generator=g) - 0.5)
    return module.eval()


@pytest.mark.parametrize("kind", ["conv", "conv_g2", "deconv_g2", "deconv_last"])
@pytest.mark.parametrize("frames", [1, 7])
def test_convblock_folded_equals_reference(kind, frames):
    torch.manual_seed(0)
    cin = 9 if kind == "conv" else 16
    block = {"conv": lambda: ConvBlock(9, 16, (1, 5), (1, 2), (0, 2)),
             "conv_g2": lambda: ConvBlock(16, 16, (1, 5), (1, 2), (0, 2), groups=2),
             "deconv_g2": lambda: ConvBlock(16, 16, (1, 5), (1, 2), (0, 2), groups=2, deconv=True),
             "deconv_last": lambda: ConvBlock(16, 2, (1, 5), (1, 2), (0, 2), deconv=True,
                                              last=True)}[kind]()
    _random_bn(block)
    x = torch.randn(2, cin, frames, 33)
    with torch.no_grad():
        ref = block.act(block.bn(block.conv(x)))
        got = block(x)
    assert block._folded_cache[2] is not None
    assert got.shape == ref.shape
    torch.testing.assert_close(got, ref, atol=1e-5, rtol=0)


@pytest.mark.parametrize("deconv", [False, True], ids=["encoder", "decoder"])
@pytest.mark.parametrize("dilation", [1, 5])
@pytest.mark.parametrize("frames", [1, 6])
def test_gtconvblock_folded_equals_reference(deconv, dilation, frames, monkeypatch):
    torch.manual_seed(0)
    block = _random_bn(GTConvBlock(16, 12, dilation, 3, deconv=deconv, tra_hidden=10))
    x = torch.randn(2, 16, frames, 33)
    cache = torch.randn(2, 12, block.cache_len, 33)
    h = torch.randn(1, 2, 10)
    with torch.no_grad():
        got = block(x, cache, h)
        got_zero = block(x)
    assert block._folded_cache[2] is not None
    monkeypatch.setattr(GTConvBlock, "folded", lambda self: None)
    with torch.no_grad():
        ref = block(x, cache, h)
        ref_zero = block(x)
    for a, b in zip(got + got_zero, ref + ref_zero, strict=True):
        assert a.shape == b.shape
        torch.testing.assert_close(a, b, atol=1e-5, rtol=0)


def test_folded_cache_follows_bn_stats_load_and_train_toggle(monkeypatch):
    model = randomised(gtcrn_tiny, seed=1)
    spec = torch.randn(1, 257, 6, 2)

    def reference(m):
        with monkeypatch.context() as mp:
            _reference_only(mp)
            with torch.inference_mode():
                return m(spec)

    def check():
        with torch.inference_mode():
            got = model(spec)
        torch.testing.assert_close(got, reference(model), atol=1e-5, rtol=0)

    keys = list(model.state_dict())
    check()  # fills the caches
    assert list(model.state_dict()) == keys  # the caches are no parameters or buffers
    block = model.encoder.en_convs[2]
    with torch.no_grad():  # BN statistics edited in place
        block.depth_bn.running_var.mul_(3.0)
        model.decoder.de_convs[-2].bn.running_mean.add_(0.5)
    check()
    model.load_state_dict(randomised(gtcrn_tiny, seed=2).state_dict())
    check()
    model.train()  # a training-mode pass (no autograd) updates the running statistics
    with torch.no_grad():
        model(spec)
    model.eval()
    check()
    block.point_conv1.weight = torch.nn.Parameter(torch.randn_like(block.point_conv1.weight))
    check()


def test_folded_path_only_for_plain_inference(monkeypatch):
    block = _random_bn(GTConvBlock(16, 12, 2, 3, deconv=False))
    conv_block = _random_bn(ConvBlock(16, 16, (1, 5), (1, 2), (0, 2), groups=2))
    x = torch.randn(1, 16, 3, 33)
    calls = []
    fold = GTConvBlock._forward_folded
    monkeypatch.setattr(GTConvBlock, "_forward_folded",
                        lambda self, *a: calls.append(1) or fold(self, *a))
    with torch.no_grad():
        block(x)
    assert calls == [1]
    block(x)  # autograd on: reference path (training and gradients unaffected)
    assert calls == [1]
    with torch.no_grad():
        block.train()
        block(x)
        block.eval()
        handle = block.point_conv1.register_forward_hook(lambda m, i, o: calls.append("hook"))
        block(x)  # hooks (MAC counting, QAT) see the submodule calls
        handle.remove()
        block(x)
    assert calls == [1, "hook", 1]
    assert conv_block.folded() is not None
    conv_block.bn.train()
    assert conv_block.folded() is None


def test_folded_path_with_folded_batchnorm(monkeypatch):
    """compress.fold_batchnorm leaves nn.Identity in place of the BatchNorms."""
    from denoisezoo.compress.quantize import fold_batchnorm

    model = fold_batchnorm(randomised(gtcrn_tiny))
    spec = torch.randn(1, 257, 5, 2)
    with torch.inference_mode():
        got = model(spec)
    assert all(m._folded_cache[2] is not None for m in model.modules()
               if isinstance(m, (ConvBlock, GTConvBlock)))
    _reference_only(monkeypatch)
    with torch.inference_mode():
        want = model(spec)
    torch.testing.assert_close(got, want, atol=1e-5, rtol=0)


@pytest.mark.filterwarnings("ignore::UserWarning", "ignore::DeprecationWarning",
                            "ignore::torch.jit.TracerWarning")
def test_exports_keep_the_batchnorm_convs(monkeypatch):
    """torch.export (LiteRT) and tracing (ONNX) see the original conv + BatchNorm layers."""
    calls = []
    fold = GTConvBlock._forward_folded
    monkeypatch.setattr(GTConvBlock, "_forward_folded",
                        lambda self, *a: calls.append(1) or fold(self, *a))
    block = _random_bn(GTConvBlock(8, 8, 1, 3, deconv=True))
    x = torch.randn(1, 8, 1, 9)
    with torch.no_grad():
        ep = torch.export.export(block, (x,))
        torch.jit.trace(block, (x,), check_trace=False)
    assert calls == []
    targets = [str(n.target) for n in ep.graph.nodes]
    assert sum("batch_norm" in t for t in targets) == 3


def test_invert_polarity_negates_the_output_exactly():
    """invert_polarity_ flips the mask layer's BatchNorm: the output becomes -y on both the
    training path and the cached inference fast path, and flipping twice restores the model."""
    torch.manual_seed(0)
    model = gtcrn_tiny().eval()
    spec = torch.randn(1, 257, 12, 2)
    with torch.no_grad():
        y = model(spec)  # fills the fast-path caches
        model.invert_polarity_()
        torch.testing.assert_close(model(spec), -y, atol=1e-6, rtol=0)
    torch.testing.assert_close(model(spec).detach(), -y, atol=1e-5, rtol=0)  # reference path (rounding)
    with torch.no_grad():
        model.invert_polarity_()
        torch.testing.assert_close(model(spec), y, atol=1e-6, rtol=0)
    last = len(model.decoder.de_convs) - 1
    assert model.output_sign_parameters() == [f"decoder.de_convs.{last}.bn.weight",
                                              f"decoder.de_convs.{last}.bn.bias"]
