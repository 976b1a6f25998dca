"""Streaming engine: Streamer == offline for any chunking, states, restarts, batches, budget."""

from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf
import torch
from conftest import randomised, speechlike

from denoisezoo.api import denoise_file, enhance
from denoisezoo.cli import main
from denoisezoo.dsp.stft import stft
from denoisezoo.gtcrn import gtcrn, gtcrn_half, gtcrn_tiny
from denoisezoo.hub import save_checkpoint
from denoisezoo.streaming import Streamer

TOL = 1e-5





@pytest.fixture(scope="module", params=[gtcrn_tiny, gtcrn], ids=lambda f: f.__name__)
def model(request):
    return randomised(request.param)


@pytest.fixture(scope="module")
def tiny():
    return randomised(gtcrn_tiny)


def _signal(n: int, seed: int = 0) -> torch.Tensor:
    return torch.from_numpy(speechlike(n, seed=seed))


def _stream(streamer: Streamer, x: torch.Tensor, chunks) -> torch.Tensor:
    """Feed ``x (B, N)`` in the given chunk sizes (cycled), then flush; ``(B, delay + N)``."""
    outs, i, k = [], 0, 0
    while i < x.shape[-1]:
        n = chunks[k % len(chunks)]
        outs.append(streamer.feed(x[:, i : i + n]))
        i, k = i + n, k + 1
    outs.append(streamer.flush())
    return torch.cat(outs, dim=-1)


@pytest.mark.parametrize("chunks", [[1], [256], [37], [1000], [768], [0, 5, 300, 1, 2048]],
                         ids=["1", "hop", "37", "1000", "3hops", "mixed"])
def test_streamer_equals_offline(model, chunks):
    _assert_streams_like_offline(model, chunks)


def test_half_width_preset_streams_like_offline():
    """gtcrn_half (narrower block convs, caches and GRU states than the paper model) streams too."""
    _assert_streams_like_offline(randomised(gtcrn_half), [37])


def _assert_streams_like_offline(model, chunks) -> None:
    x = _signal(6000)
    ref = enhance(model, x)
    assert ref.abs().max() > 1e-3  # the model does something measurable
    s = Streamer(model)
    y = _stream(s, x[None], chunks)[0]
    assert y.shape[-1] == s.delay + x.shape[-1]
    assert (y[s.delay :] - ref).abs().max() <= TOL
    assert s.stats["hops"] == s.stats["model_hops"] and s.stats["fallback_hops"] == 0


def test_states_carried_across_calls_match_offline_prefix(model):
    """After m whole hops fed in odd chunks, the session state is the offline state after m frames."""
    x = _signal(4000)
    g = model.geometry
    m = 9
    s = Streamer(model)
    for i in range(0, m * g.hop_length, 37):
        s.feed(x[i : min(i + 37, m * g.hop_length)])
    with torch.inference_mode():
        _, ref_state = model.forward_stateful(stft(x[None], g)[:, :, :m], None)
    for name, a, b in zip(ref_state._fields, s.state, ref_state, strict=True):
        assert a.shape == b.shape, name
        assert (a - b).abs().max() <= TOL, name


def test_flush_then_feed_again_is_a_clean_restart(tiny):
    x1, x2 = _signal(3000, seed=1), _signal(2500, seed=2)
    s = Streamer(tiny)
    first = _stream(s, x1[None], [100])[0]
    second = _stream(s, x2[None], [77])[0]
    fresh = _stream(Streamer(tiny), x2[None], [77])[0]
    assert first.shape[-1] == s.delay + 3000 and second.shape[-1] == s.delay + 2500
    assert torch.equal(second, fresh)
    assert (second[s.delay :] - enhance(tiny, x2)).abs().max() <= TOL


def test_reset_mid_stream_forgets_history(tiny):
    x1, x2 = _signal(1500, seed=3), _signal(2000, seed=4)
    s = Streamer(tiny)
    s.feed(x1)
    s.reset()
    assert torch.equal(_stream(s, x2[None], [128])[0], _stream(Streamer(tiny), x2[None], [128])[0])


def test_batch_of_two_streams_equals_each_alone(model):
    x = torch.stack([_signal(3000, seed=5), _signal(3000, seed=6)])
    both = _stream(Streamer(model, batch=2), x, [37])
    for b in range(2):
        alone = _stream(Streamer(model), x[b : b + 1], [37])
        assert (both[b] - alone[0]).abs().max() <= TOL


def test_caller_may_reuse_its_buffer(tiny):
    """A live audio callback hands the same buffer every time: the session must copy it."""
    x = _signal(3000).numpy()
    ref = _stream(Streamer(tiny), torch.from_numpy(x)[None], [100])[0]
    s = Streamer(tiny)
    buf = np.zeros(100, np.float32)
    outs = []
    for i in range(0, 3000, 100):
        buf[:] = x[i : i + 100]
        outs.append(s.feed(buf).clone())
        buf[:] = np.nan
    outs.append(s.flush())
    assert torch.equal(torch.cat(outs), ref)


def test_bad_input_shapes_raise(tiny):
    s = Streamer(tiny, batch=2)
    with pytest.raises(ValueError, match=r"\(2, n\)"):
        s.feed(torch.zeros(100))
    with pytest.raises(ValueError, match="fallback"):
        Streamer(tiny, fallback="nope")
    with pytest.raises(ValueError, match="budget_ms"):
        Streamer(tiny, budget_ms=0)


def test_latency_and_delay_from_geometry(tiny):
    s = Streamer(tiny)
    assert s.delay == 256 and s.latency_ms == pytest.approx(32.0) and s.hop_ms == pytest.approx(16.0)


# ------------------------------------------------------------------ latency budget (fake clock)
class FakeClock:
    def __init__(self):
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


class ScriptedModel:
    """A streamable fake: output = gain * input spectrum; each call costs a scripted time."""

    def __init__(self, geometry, clock: FakeClock, costs_ms, gain: float = 0.5):
        self.geometry = geometry
        self.clock = clock
        self.costs = list(costs_ms)
        self.gain = gain
        self.calls = 0

    def initial_state(self, batch=1, device=None, dtype=torch.float32):
        return torch.zeros(batch)

    def forward_stateful(self, spec, state):
        cost = self.costs[self.calls] if self.calls < len(self.costs) else self.costs[-1]
        self.clock.now += cost / 1000.0
        self.calls += 1
        return self.gain * spec, state + spec.shape[2]


def test_overrun_is_paid_back_by_fallback_hops_without_blocking(tiny):
    clock = FakeClock()
    fake = ScriptedModel(tiny.geometry, clock, [1, 1, 35, 1, 1, 1, 1, 1])
    s = Streamer(fake, budget_ms=10.0, clock=clock)
    hop = s.geometry.hop_length
    x = _signal(12 * hop)
    outs = []
    for i in range(12):  # one hop per call, as a live stream
        y = s.feed(x[i * hop : (i + 1) * hop])
        assert y.shape[-1] == hop  # every call returns its hop: the audio path never stalls
        outs.append(y)
    st = s.stats
    # hop 2 overran by 25 ms -> hops 3, 4, 5 fall back (paying 10 ms each), hop 6 runs the model
    assert st["deadline_misses"] == 1
    assert st["fallback_hops"] == 3 and st["model_hops"] == 9 == fake.calls
    assert st["max_us"] == pytest.approx(35_000)
    # "mask" fallback reuses the last mask (0.5 here): the output is exactly 0.5 x delayed
    y = torch.cat(outs)
    assert (y[s.delay :] - 0.5 * x[: y.shape[-1] - s.delay]).abs().max() < 1e-6


def test_passthrough_fallback_outputs_the_delayed_input(tiny):
    clock = FakeClock()
    fake = ScriptedModel(tiny.geometry, clock, [100, 0], gain=0.5)
    s = Streamer(fake, budget_ms=1.0, fallback="passthrough", clock=clock)
    hop = s.geometry.hop_length
    x = _signal(20 * hop)
    y = torch.cat([s.feed(x[i * hop : (i + 1) * hop]) for i in range(20)])
    assert s.stats["fallback_hops"] == 19 and fake.calls == 1
    # from the third output hop on, both overlapping frames were passed through
    start = 2 * hop
    assert (y[start:] - x[start - s.delay : y.shape[-1] - s.delay]).abs().max() < 1e-6
    assert (y[hop:start] - x[: hop]).abs().max() > 1e-3  # the first frame was the model's (gain 0.5)


class GatedModel:
    """A streamable fake whose calls block until ``gate`` is set (output = 0.5 x input)."""

    def __init__(self, geometry):
        import threading

        self.geometry = geometry
        self.gate = threading.Event()
        self.calls = 0

    def initial_state(self, batch=1, device=None, dtype=torch.float32):
        return 0

    def forward_stateful(self, spec, state):
        assert self.gate.wait(timeout=10), "test gate never opened"
        self.calls += 1
        return 0.5 * spec, state + spec.shape[2]


def test_worker_mode_never_waits_past_the_deadline(tiny):
    import time

    fake = GatedModel(tiny.geometry)
    hop = tiny.geometry.hop_length
    x = _signal(6 * hop)
    with Streamer(fake, budget_ms=200.0, worker=True) as s:
        fake.gate.set()
        outs = [s.feed(x[:hop])]  # hop 0: in time
        fake.gate.clear()
        t0 = time.perf_counter()
        outs.append(s.feed(x[hop : 2 * hop]))  # hop 1: the model hangs -> fallback at the deadline
        outs.append(s.feed(x[2 * hop : 3 * hop]))  # hop 2: worker still busy -> fallback at once
        waited = time.perf_counter() - t0
        assert waited < 5.0  # bounded by the deadline, not by the (10 s) stuck model
        assert s.stats["deadline_misses"] == 1 and s.stats["fallback_hops"] == 2
        fake.gate.set()
        s._job.result(timeout=10)  # the late hop completes and updates the state
        outs += [s.feed(x[i * hop : (i + 1) * hop]) for i in range(3, 6)]
        assert s.state == 5 and fake.calls == 5  # hops 0, 1 (late), 3, 4, 5; hop 2 skipped
        st = s.stats
    assert st["model_hops"] == 4 and st["fallback_hops"] == 2 and st["hops"] == 6
    y = torch.cat(outs)
    assert y.shape[-1] == 6 * hop
    assert (y[s.delay :] - 0.5 * x[: y.shape[-1] - s.delay]).abs().max() < 1e-6


def test_worker_mode_on_time_equals_offline(tiny):
    x = _signal(4000)
    with Streamer(tiny, budget_ms=60_000.0, worker=True) as s:
        y = _stream(s, x[None], [256])[0]
        assert s.stats["fallback_hops"] == 0
    assert (y[s.delay :] - enhance(tiny, x)).abs().max() <= TOL


def test_worker_mode_needs_a_budget(tiny):
    with pytest.raises(ValueError, match="budget_ms"):
        Streamer(tiny, worker=True)


def test_budget_path_without_overruns_equals_offline(tiny):
    x = _signal(5000)
    s = Streamer(tiny, budget_ms=60_000.0)
    y = _stream(s, x[None], [1000])[0]
    assert (y[s.delay :] - enhance(tiny, x)).abs().max() <= TOL
    assert s.stats["fallback_hops"] == 0 and s.stats["deadline_misses"] == 0


@pytest.mark.parametrize("cost_ms,ok", [(2.0, True), (20.0, False)])
def test_calibrate_says_whether_the_budget_is_met(tiny, cost_ms, ok):
    clock = FakeClock()
    fake = ScriptedModel(tiny.geometry, clock, [cost_ms])
    s = Streamer(fake, budget_ms=16.0, clock=clock)
    s.feed(torch.zeros(300))
    before = (s._pending.copy(), s.stats["hops"])
    res = s.calibrate(seconds=0.5)
    assert res.ok is ok
    assert res.hops == 31 and res.p99_ms == pytest.approx(cost_ms)
    assert ("MEETS" in res.message) is ok and ("DOES NOT MEET" in res.message) is (not ok)
    assert res.misses == (0 if ok else 31)
    assert np.array_equal(s._pending, before[0]) and s.stats["hops"] == before[1]  # session untouched


def test_calibrate_on_the_real_model_reports_times(tiny):
    res = Streamer(tiny).calibrate(seconds=0.2, warmup_hops=2)
    assert res.hops == 12 and 0 < res.p50_ms <= res.p99_ms <= res.max_ms
    assert res.budget_ms == pytest.approx(16.0) and res.backend == "torch"
    assert str(res) == res.message and "budget 16 ms" in res.message


# ------------------------------------------------------------------ `denoise --streaming`
def test_denoise_file_streaming_equals_block_path(tmp_path, tiny):
    n = 22050
    data = np.stack([speechlike(n, 22050, seed=7), speechlike(n, 22050, seed=8)], axis=1)
    src = tmp_path / "in.wav"
    sf.write(src, data, 22050, subtype="FLOAT")
    denoise_file(src, tmp_path / "block.wav", tiny)
    denoise_file(src, tmp_path / "stream.wav", tiny, streaming=True)
    a, _ = sf.read(tmp_path / "block.wav", dtype="float32")
    b, _ = sf.read(tmp_path / "stream.wav", dtype="float32")
    assert a.shape == b.shape == data.shape
    assert np.abs(a).max() > 1e-3 and np.abs(a - b).max() <= TOL


def test_cli_streaming_feeds_one_hop_at_a_time(tmp_path, tiny, monkeypatch):
    from denoisezoo import api

    ck = save_checkpoint(tiny, tmp_path / "tiny.pt")
    x = speechlike(16000, seed=9)
    src = tmp_path / "in.wav"
    sf.write(src, x, 16000, subtype="FLOAT")
    sizes = []
    orig = api.Streamer.feed

    def spy(self, samples):
        sizes.append(samples.shape[-1])
        return orig(self, samples)

    monkeypatch.setattr(api.Streamer, "feed", spy)
    args = ["denoise", str(src), "-o", str(tmp_path / "o.wav"), "--checkpoint", str(ck)]
    assert main(args + ["--streaming"]) == 0
    assert max(sizes) == 256 and len(sizes) >= 16000 // 256
    y, _ = sf.read(tmp_path / "o.wav", dtype="float32")
    ref = enhance(tiny, torch.from_numpy(x)).numpy()
    assert np.abs(y - ref).max() <= TOL
