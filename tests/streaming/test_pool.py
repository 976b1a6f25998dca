"""StreamPool: many streams, one batched step per hop; each stream == a lone Streamer; ONNX
backend == torch; hop budget, latency percentiles and the overload policy under overload."""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
import pytest
import torch
from conftest import randomised, speechlike

from denoisezoo.export import export_onnx
from denoisezoo.hub import build_model
from denoisezoo.streaming import OnnxStepModel, Streamer, StreamPool

TOL = 1e-6  # pool == lone Streamer (same backend)
ORT_TOL = 1e-5  # ONNX pool == torch pool
PRESETS = ["gtcrn_tiny", "rnnoise_tiny"]


@pytest.fixture(scope="module", params=PRESETS)
def model(request):
    return randomised(lambda: build_model(request.param))


@pytest.fixture(scope="module")
def onnx_pair(model, tmp_path_factory):
    path = tmp_path_factory.mktemp("pool") / "step.onnx"
    export_onnx(model, path, dynamic_batch=True)
    return model, OnnxStepModel(path)


# Streams of a scenario: (first hop, last hop + 1, seed, strength at open, strength change
# (hop, atten_lim_db, wet) or None, hops it sits out). They join late, leave early and pause.
SCENARIO = [
    (0, 24, 1, None, None, ()),
    (3, 24, 2, (12.0, 1.0), None, (9, 10)),
    (5, 13, 3, None, (8, 0.0, 0.6), ()),
    (0, 9, 4, (6.0, 0.8), None, ()),
    (11, 24, 5, None, (15, None, 1.0), ()),
]
HOPS = 24


def _run_scenario(pool: StreamPool, model, lone_model=None, vad: bool = False,
                  scenario=SCENARIO, make_lone=None, sig=None):
    """Run ``scenario`` through ``pool`` and through one Streamer per stream (over ``lone_model``,
    or ``make_lone()`` when given); returns ``(pool outputs, Streamer outputs, pool VAD, Streamer VAD)``
    per stream."""
    SCENARIO = scenario  # noqa: N806
    hop = pool.hop_size
    sr = pool.geometry.sample_rate
    if sig is None:
        sig = [speechlike(HOPS * hop, sr, seed) for _, _, seed, *_ in SCENARIO]
    sids: dict[int, int] = {}
    lone: dict[int, Streamer] = {}
    got = {k: [] for k in range(len(SCENARIO))}
    ref = {k: [] for k in range(len(SCENARIO))}
    vads = {k: [] for k in range(len(SCENARIO))}
    for t in range(HOPS):
        for k, (start, stop, _, strength, change, _) in enumerate(SCENARIO):
            if t == start:
                kw = {} if strength is None else {"atten_lim_db": strength[0], "wet": strength[1]}
                sids[k] = pool.open(**kw)
                lone[k] = make_lone() if make_lone else Streamer(lone_model or model, vad=vad)
                if strength is not None:
                    lone[k].set_strength(*strength)
            if change is not None and t == change[0]:
                pool.set_strength(sids[k], change[1], change[2])
                lone[k].set_strength(change[1], change[2])
            if t == stop:
                if vad:
                    vads[k].append(pool.pop_vad(sids[k]))
                pool.close(sids.pop(k))
        given = {sids[k]: sig[k][t * hop : (t + 1) * hop] for k in sids
                 if t not in SCENARIO[k][5]}
        outs = pool.process(given)
        assert sorted(outs) == sorted(given)
        for k, sid in sids.items():
            if sid in outs:
                assert outs[sid].shape == (hop,) and outs[sid].dtype == np.float32
                got[k].append(outs[sid])
                ref[k].append(lone[k].feed(given[sid]).numpy())
    if vad:
        for k, sid in sids.items():
            vads[k].append(pool.pop_vad(sid))
    cat = {k: np.concatenate(v) for k, v in got.items()}
    cref = {k: np.concatenate(v) for k, v in ref.items()}
    if not vad:
        return cat, cref, {}, {}
    vad_ref = {k: s.pop_vad()[0] for k, s in lone.items()}
    return cat, cref, {k: np.concatenate(v) for k, v in vads.items()}, vad_ref


def test_each_stream_equals_a_lone_streamer(model):
    pool = StreamPool(model, overload=None, vad=True)
    got, ref, vad, vad_ref = _run_scenario(pool, model, vad=True)
    for k in got:
        assert np.abs(ref[k]).max() > 1e-3
        np.testing.assert_allclose(got[k], ref[k], atol=TOL, rtol=0, err_msg=f"stream {k}")
        np.testing.assert_allclose(vad[k], vad_ref[k], atol=TOL, rtol=0, err_msg=f"VAD {k}")
        assert vad[k].shape == (len(got[k]) // pool.hop_size,)
    st = pool.stats
    assert st["hops"] == HOPS and st["overload_stream_hops"] == 0
    assert st["model_stream_hops"] == st["stream_hops"] == sum(len(v) for v in got.values()) // pool.hop_size


def test_one_model_step_per_hop(model, monkeypatch):
    calls = []
    real = type(model).forward_stateful

    def counting(self, spec, state):
        calls.append(spec.shape[0])
        return real(self, spec, state)

    monkeypatch.setattr(type(model), "forward_stateful", counting)
    pool = StreamPool(model, overload=None)
    sids = [pool.open() for _ in range(5)]
    hop = np.zeros(pool.hop_size, np.float32)
    for _ in range(3):
        pool.process({s: hop for s in sids})
    pool.process({s: hop for s in sids[1:4]})
    assert calls == [5, 5, 5, 3]


def test_onnx_pool_equals_torch_pool_one_run_per_hop(onnx_pair):
    model, om = onnx_pair
    runs = []
    session = om.session

    class Counting:
        def run(self, names, feeds):
            runs.append(feeds["frame"].shape[0])
            return session.run(names, feeds)

    om.session = Counting()
    try:
        got, ref, vad, vad_ref = _run_scenario(StreamPool(om, backend="onnx", overload=None),
                                               model, lone_model=model)
    finally:
        om.session = session
    for k in got:
        np.testing.assert_allclose(got[k], ref[k], atol=ORT_TOL, rtol=0, err_msg=f"stream {k}")
    assert len(runs) == HOPS and max(runs) == 4  # one session.run per hop, all streams in it


def test_onnx_pool_takes_a_path_and_refuses_batch_one(onnx_pair, tmp_path):
    model, om = onnx_pair
    pool = StreamPool(om.path, backend="onnx")
    assert pool.backend == "onnx" and pool.hop_size == model.geometry.hop_length
    static = tmp_path / "static.onnx"
    export_onnx(model, static)
    with pytest.raises(ValueError, match="dynamic_batch=True"):
        StreamPool(static, backend="onnx")
    with pytest.raises(ValueError, match="export_onnx"):
        StreamPool(model, backend="onnx")
    with pytest.raises(ValueError, match="backend='onnx'"):
        StreamPool(om, backend="torch")


def test_dynamic_batch_export_keeps_the_default_contract(onnx_pair, tmp_path):
    model, om = onnx_pair
    assert om.meta["dynamic_batch"] is True
    assert [i["batch_axis"] for i in om.meta["inputs"]] == [0] + [s["batch_axis"] for s in om.meta["state"]]
    meta = export_onnx(model, tmp_path / "b1.onnx")
    assert meta["dynamic_batch"] is False and meta["inputs"][0] == {
        "name": "frame", "shape": [1, model.geometry.n_freqs, 2], "batch_axis": 0}


def test_bad_calls_raise(model):
    pool = StreamPool(model)
    sid = pool.open()
    with pytest.raises(ValueError, match=r"expected \(\d+,\) samples"):
        pool.process({sid: np.zeros(pool.hop_size + 1, np.float32)})
    with pytest.raises(KeyError, match="no open stream"):
        pool.process({sid + 1: np.zeros(pool.hop_size, np.float32)})
    pool.close(sid)
    with pytest.raises(KeyError):
        pool.close(sid)
    with pytest.raises(ValueError, match="overload"):
        StreamPool(model, overload="drop")
    with pytest.raises(RuntimeError, match="vad=True"):
        StreamPool(model).pop_vad(0)
    with pytest.raises(ValueError, match="wet"):
        pool.open(wet=1.5)
    assert len(pool) == 0
    assert pool.process({}) == {}


# ------------------------------------------------------------------ deadline (fake clock)
class FakeClock:
    def __init__(self):
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


class CountState(NamedTuple):
    frames: torch.Tensor  # B, 1: model frames seen


class CostModel(torch.nn.Module):
    """Output = gain x input spectrum; each call costs ``fixed_ms + per_stream_ms x B`` on the
    fake clock (plus ``extra_ms`` once, on call ``slow_call``)."""

    def __init__(self, geometry, clock, fixed_ms=0.5, per_stream_ms=1.0, gain=1.0,
                 slow_call=None, extra_ms=0.0):
        super().__init__()
        self.geometry = geometry
        self.clock, self.fixed, self.per, self.gain = clock, fixed_ms, per_stream_ms, gain
        self.slow_call, self.extra = slow_call, extra_ms
        self.calls = []

    def initial_state(self, batch=1, device=None, dtype=torch.float32):
        return CountState(torch.zeros(batch, 1))

    def forward_stateful(self, spec, state):
        b = spec.shape[0]
        cost = self.fixed + self.per * b + (self.extra if len(self.calls) == self.slow_call else 0)
        self.clock.now += cost / 1000.0
        self.calls.append(b)
        return self.gain * spec, CountState(state.frames + spec.shape[2])


@pytest.fixture(scope="module")
def geometry():
    return build_model("gtcrn_tiny").geometry


def test_overload_serves_what_fits_and_no_stream_falls_behind(geometry):
    clock = FakeClock()
    fake = CostModel(geometry, clock)  # 30 streams would cost 30.5 ms against a 10 ms budget
    pool = StreamPool(fake, budget_ms=10.0, clock=clock)
    sids = [pool.open() for _ in range(30)]
    hop = pool.hop_size
    x = {s: speechlike(80 * hop, seed=s) for s in sids}
    ys = {s: [] for s in sids}
    served_at: dict[int, list[int]] = {s: [] for s in sids}
    for t in range(80):
        before = {s: pool.stream_stats(s)["model_hops"] for s in sids}
        outs = pool.process({s: x[s][t * hop : (t + 1) * hop] for s in sids})
        assert sorted(outs) == sids  # every stream gets its hop, every call
        for s in sids:
            ys[s].append(outs[s])
            if pool.stream_stats(s)["model_hops"] > before[s]:
                served_at[s].append(t)
    st = pool.stats
    lat = np.asarray(pool.latencies) * 1000
    assert lat[0] == pytest.approx(30.5) and (lat[5:] <= 10.0).all()  # late once, then on time
    assert st["deadline_misses"] == 1
    assert 5 <= max(fake.calls[5:]) <= 9  # as many as fit in 90 % of the budget
    assert st["model_stream_hops"] == sum(fake.calls) and st["hops"] == 80
    assert st["overload_stream_hops"] == st["stream_hops"] - st["model_stream_hops"] > 0
    assert st["p99_us"] > st["p50_us"] > 0
    # round robin: every stream keeps being served, none waits much longer than its turn
    gaps = [max(np.diff(v)) for v in served_at.values()]
    assert max(gaps) <= 30 // 5 + 1 and min(len(v) for v in served_at.values()) >= 8
    # aligned: an identity model with passthrough hops gives the input, delayed, whatever was served
    d = pool.delay
    for s in sids:
        y = np.concatenate(ys[s])
        np.testing.assert_allclose(y[d:], x[s][: y.size - d], atol=1e-6)


def test_one_late_hop_is_paid_back_then_all_served_again(geometry):
    clock = FakeClock()
    fake = CostModel(geometry, clock, fixed_ms=0.2, per_stream_ms=0.2, slow_call=3, extra_ms=40.0)
    pool = StreamPool(fake, budget_ms=10.0, clock=clock)
    sids = [pool.open() for _ in range(10)]
    hop = np.zeros(pool.hop_size, np.float32)
    for _ in range(20):
        pool.process({s: hop for s in sids})
    st = pool.stats
    assert st["deadline_misses"] == 1
    # hop 3 overran by 32.2 ms: the next hops serve nobody until the debt is paid (the model's
    # cost estimate then recovers), then every stream again
    assert fake.calls[:4] == [10] * 4 and fake.calls[-5:] == [10] * 5
    assert st["overload_stream_hops"] >= 30
    assert all(pool.stream_stats(s)["overload_hops"] >= 3 for s in sids)


def test_mask_overload_reuses_each_streams_last_mask(geometry):
    clock = FakeClock()
    fake = CostModel(geometry, clock, gain=0.5)
    pool = StreamPool(fake, budget_ms=10.0, overload="mask", clock=clock)
    sids = [pool.open() for _ in range(20)]
    hop = pool.hop_size
    x = {s: speechlike(40 * hop, seed=s) for s in sids}
    ys = {s: [] for s in sids}
    for t in range(40):
        outs = pool.process({s: x[s][t * hop : (t + 1) * hop] for s in sids})
        for s in sids:
            ys[s].append(outs[s])
    assert pool.stats["overload_stream_hops"] > 0
    d = pool.delay
    for s in sids:  # served or not, each hop is 0.5 x the input (the mask is 0.5)
        y = np.concatenate(ys[s])
        np.testing.assert_allclose(y[d:], 0.5 * x[s][: y.size - d], atol=1e-6)


def test_no_policy_serves_everyone_and_counts_misses(geometry):
    clock = FakeClock()
    fake = CostModel(geometry, clock)
    pool = StreamPool(fake, budget_ms=10.0, overload=None, clock=clock)
    sids = [pool.open() for _ in range(12)]
    for _ in range(5):
        pool.process({s: np.zeros(pool.hop_size, np.float32) for s in sids})
    assert fake.calls == [12] * 5 and pool.stats["deadline_misses"] == 5


def test_tiny_budget_on_a_real_model_passes_the_input_through(model):
    pool = StreamPool(model, budget_ms=1e-6)
    assert StreamPool(model).budget_ms == pytest.approx(pool.hop_ms)  # default: one hop
    hop = pool.hop_size
    sids = [pool.open() for _ in range(3)]
    x = {s: speechlike(12 * hop, pool.geometry.sample_rate, seed=s) for s in sids}
    ys = {s: [] for s in sids}
    for t in range(12):
        outs = pool.process({s: x[s][t * hop : (t + 1) * hop] for s in sids})
        for s in sids:
            ys[s].append(outs[s])
    st = pool.stats
    assert st["model_stream_hops"] == 3 and st["overload_stream_hops"] == 33  # first hop only
    d = pool.delay
    for s in sids:
        y = np.concatenate(ys[s])
        # from the third hop on, no frame the model touched remains in the overlap-add
        np.testing.assert_allclose(y[d + 2 * hop :], x[s][2 * hop : y.size - d], atol=1e-6)


def test_exported_step_pickles_by_reopening_its_file(onnx_pair):
    import pickle

    _, om = onnx_pair
    again = pickle.loads(pickle.dumps(om))
    assert type(again) is type(om) and again.path == om.path and again.dynamic_batch
    frame = torch.randn(2, om.geometry.n_freqs, 1, 2)
    np.testing.assert_array_equal(again.forward_stateful(frame, None)[0].numpy(),
                                  om.forward_stateful(frame, None)[0].numpy())


# ------------------------------------------------------------------ backend "c": dz_process_many
C_TOL = 1e-6  # C pool == the same library's dz_process, stream alone
C_TORCH_TOL = 1e-4  # C pool == torch pool
# attenuation limits (set at open, changed while running, 0 dB, unlimited again) or a dry/wet
# mix, not both at once (the C pool mixes after the C library's limit, the others before)
C_SCENARIO = [
    (0, 24, 1, None, None, ()),
    (3, 24, 2, (12.0, 1.0), None, (9, 10)),
    (5, 13, 3, None, (8, 0.0, 1.0), ()),
    (0, 9, 4, (6.0, 1.0), (4, 20.0, 1.0), ()),
    (11, 24, 5, None, (15, None, 1.0), ()),
    (2, 20, 6, (None, 0.7), None, (6,)),
]


class LoneC:
    """One stream alone through a C library's ``dz_process`` (the Streamer interface the
    scenario drives), the dry/wet mix on the output hop as the C pool's."""

    def __init__(self, lib):
        self.lib, self.h = lib, lib.create()
        self.hist = np.zeros(lib.delay, np.float32)
        self.wet, self.started, self.probs = 1.0, False, []

    def set_strength(self, atten_lim_db=None, wet=1.0):
        assert not self.started or wet == self.wet  # a wet ramp is the pool's, not tested here
        db = 0.0 if atten_lim_db is None else max(atten_lim_db, 1e-30)
        self.lib.set_atten_lim_db(self.h, db)
        self.wet = wet

    def feed(self, x):
        y, p = self.lib.process(self.h, x)
        seq = np.concatenate([self.hist, x])
        self.hist = seq[self.lib.hop :]
        self.started = True
        self.probs.append(p)
        if self.wet != 1.0:
            w = np.float32(self.wet)
            y = w * y + (1 - w) * seq[: self.lib.hop]
        return torch.from_numpy(y)

    def pop_vad(self):
        return (np.asarray(self.probs, np.float32),)


def _c_compiler():
    from denoisezoo.export.c import compiler, compiler_missing_reason

    return compiler(), compiler_missing_reason() or ""


needs_cc = pytest.mark.skipif(_c_compiler()[0] is None, reason=_c_compiler()[1])


@pytest.fixture(scope="module")
def c_tiny(tmp_path_factory):
    from denoisezoo.export.c import cached_library
    from denoisezoo.streaming import CLibrary

    model = randomised(lambda: build_model("gtcrn_tiny"))
    return model, CLibrary(cached_library(model, root=tmp_path_factory.mktemp("c_pool")))


def _counting(lib):
    calls = []
    real = lib.process_many

    def counting(handles, hops, *a, **kw):
        calls.append(len(handles))
        return real(handles, hops, *a, **kw)

    lib.process_many = counting
    return calls, real


@needs_cc
def test_c_pool_equals_lone_dz_process_and_the_torch_pool(c_tiny):
    model, lib = c_tiny
    calls, real = _counting(lib)
    try:
        pool = StreamPool(lib, backend="c", overload=None, vad=True)
        got, ref, vad, vad_ref = _run_scenario(pool, model, vad=True, scenario=C_SCENARIO,
                                               make_lone=lambda: LoneC(lib))
    finally:
        lib.process_many = real
    assert len(calls) == HOPS and max(calls) == 5  # one dz_process_many per hop, all streams
    torch_got, *_ = _run_scenario(StreamPool(model, overload=None), model, scenario=C_SCENARIO)
    for k in got:
        assert np.abs(ref[k]).max() > 1e-3
        np.testing.assert_allclose(got[k], ref[k], atol=C_TOL, rtol=0, err_msg=f"stream {k}")
        np.testing.assert_allclose(vad[k], vad_ref[k], atol=C_TOL, rtol=0, err_msg=f"VAD {k}")
        np.testing.assert_allclose(got[k], torch_got[k], atol=C_TORCH_TOL, rtol=0,
                                   err_msg=f"stream {k} vs torch")
    assert pool.stats["backend"] == "c" and pool.stats["overload_stream_hops"] == 0
    handles = list(pool._owned)
    for sid in pool.streams:
        pool.close(sid)
    assert not pool._owned and len(handles) == 3  # destroyed on close


@needs_cc
def test_c_pool_on_the_real_model_and_a_clip():
    import soundfile as sf
    from conftest import REPO

    from denoisezoo.export.c import c_model
    from denoisezoo.hub import load_model

    model = load_model("gtcrn")
    cm = c_model(model)
    x, sr = sf.read(REPO / "examples" / "noisy_example.wav", dtype="float32")
    assert sr == model.geometry.sample_rate
    hop = model.geometry.hop_length
    sig = [np.roll(x, 4000 * k)[: HOPS * hop] for k in range(len(C_SCENARIO))]
    got, ref, *_ = _run_scenario(StreamPool(cm, backend="c", overload=None), model,
                                 scenario=C_SCENARIO, make_lone=lambda: LoneC(cm.library), sig=sig)
    torch_got, *_ = _run_scenario(StreamPool(model, overload=None), model, scenario=C_SCENARIO,
                                  sig=sig)
    for k in got:
        assert np.abs(ref[k]).max() > 1e-3
        np.testing.assert_allclose(got[k], ref[k], atol=C_TOL, rtol=0, err_msg=f"stream {k}")
        np.testing.assert_allclose(got[k], torch_got[k], atol=C_TORCH_TOL, rtol=0,
                                   err_msg=f"stream {k} vs torch")


@needs_cc
def test_c_pool_overload_passes_the_input_through(c_tiny, tmp_path):
    model, lib = c_tiny
    with pytest.raises(ValueError, match="mask"):
        StreamPool(lib, backend="c", overload="mask")
    with pytest.raises(ValueError, match="built C library"):
        StreamPool(model, backend="c")
    pool = StreamPool(str(lib.path), backend="c", budget_ms=1e-6)  # a path works too
    hop = pool.hop_size
    sids = [pool.open() for _ in range(3)]
    xs = {s: speechlike(12 * hop, pool.geometry.sample_rate, seed=s) for s in sids}
    ys = {s: [] for s in sids}
    for t in range(12):
        outs = pool.process({s: xs[s][t * hop : (t + 1) * hop] for s in sids})
        for s in sids:
            ys[s].append(outs[s])
    st = pool.stats
    assert st["model_stream_hops"] == 3 and st["overload_stream_hops"] == 33  # first hop only
    d = pool.delay
    for s in sids:
        y = np.concatenate(ys[s])
        np.testing.assert_allclose(y[d + 2 * hop :], xs[s][2 * hop : y.size - d], atol=1e-6)
