"""The optional realism of the run level against hand arithmetic: correlated bursts, lemon nodes, silent
data corruption found late, transient fail-slow episodes; and the invariants with all of them on."""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sim.analysis.runlevel import run_plan
from sim.costs.reliability import FailureClass
from sim.engine.run import LOSSES, RunParams, simulate_run
from sim.engine.run.arrivals import RenewalArrivals
from sim.specs.scenario import load_scenario

H, DAY = 3600.0, 86400.0
ROOT = Path(__file__).resolve().parents[2]


def _rng(seed: int = 0) -> np.random.Generator:
    return np.random.default_rng(seed)


def test_a_burst_evicts_several_nodes_and_drains_the_spare_pool():
    # burst_continue 0: every burst is exactly 2 nodes. One spare covers one; the other waits for its
    # repair (sigma 0: exactly 2 h), then the 300 s restart; no checkpoint, so the first hour is redone.
    p = RunParams(work_s=10 * H, restart_s=300, inject_s=(H,), spares=1, repair_mu_ln_s=math.log(2 * H),
                  burst_fraction=1.0, burst_continue=0.0)
    r = simulate_run(p, _rng(), record=True)
    assert [e.args["nodes"] for e in r.events if e.kind == "failure"] == [2]
    assert r.losses_s["spare_wait"] == pytest.approx(2 * H)
    assert r.wall_s == pytest.approx(10 * H + H + 2 * H + 300)
    assert r.interruption_count == 1  # a burst is one interruption


def test_burst_size_is_capped():
    p = RunParams(work_s=10 * H, restart_s=0, inject_s=(H,), spares=10, burst_fraction=1.0, burst_continue=0.999,
                  burst_max_nodes=3)
    r = simulate_run(p, _rng(), record=True)
    assert [e.args["nodes"] for e in r.events if e.kind == "failure"] == [3]


def test_rescale_is_a_time_change_of_the_hardware_clocks():
    hw, sw = FailureClass("gpu", "gpu", 1 / H, 1, False), FailureClass("sw", "sw", 1 / H, 0, False)
    arr = RenewalArrivals(RunParams(work_s=H, lemon_fraction=0.1, lemon_multiplier=2), _rng())
    arr.hw, arr.heap = [(100.0, 0, hw)], [(100.0, 1, sw)]  # both due at 100 s at the nominal rate
    arr.rescale(40.0, 2.0)  # twice the rate from t = 40: the 60 s left to the hardware event become 30 s
    assert arr.peek() == 70.0
    assert arr.pop()[:2] == (70.0, hw)
    arr.hw = []  # (the gpu's next event was drawn on its own clock)
    assert arr.pop()[:2] == (100.0, sw)


def test_replacing_failed_lemons_by_average_nodes_lowers_the_job_rate_to_its_balance():
    # 24 % lemons at 2.9x the fleet mean (the others at (1 - 0.24 x 2.9) / 0.76 = 0.4x). Each failed node
    # is replaced by an average one, so lemons leave at n_L x 2.9 x (1 - 0.24) and arrive at 0.24 x n_N x 0.4:
    # balance n_L / n_N = 0.24 x 0.4 / (0.76 x 2.9) = 0.0436, a job rate of 0.0417 x 2.9 + 0.9583 x 0.4 = 0.504
    # of the nominal one (the nominal one holds only at the first draw of the job's nodes).
    f, m = 0.24, 2.9
    normal = (1 - f * m) / (1 - f)
    share = f * normal / ((1 - f) * m + f * normal)
    balance = share * m + (1 - share) * normal
    assert balance == pytest.approx(0.504, abs=0.001)
    rate = 100 * 0.1 / DAY  # 100 nodes, 0.1 failures per node-day: the job's nodes turn over every ~10 days
    cls = FailureClass("node", "node", rate, 1, False)
    p = RunParams(work_s=1e12, failures=(cls,), restart_s=0, nodes=100, lemon_fraction=f, lemon_multiplier=m,
                  horizon_s=2000 * DAY)
    counts = [simulate_run(p, _rng(i)).interruption_count for i in range(3)]
    assert np.mean(counts) / (rate * 2000 * DAY) == pytest.approx(balance, rel=0.04)
    # without lemons the same run keeps the nominal rate
    flat = simulate_run(dataclasses.replace(p, lemon_fraction=0.0), _rng(0)).interruption_count
    assert flat / (rate * 2000 * DAY) == pytest.approx(1, rel=0.03)


SDC = FailureClass("silent_data_corruption", "gpu", 1 / (20 * H), 1, False, silent=True)


def test_sdc_found_late_rolls_back_to_the_checkpoint_before_it():
    # sync checkpoints every hour with no stall, no restart time: a corruption at work W found 2.5 h later
    # (at work W + 2.5 h) rolls back to floor(W) (hours); the normal loss is the work since the last
    # checkpoint, W + 2.5 - floor(W + 2.5), the rest (floor(W + 2.5) - floor(W)) is the corruption's.
    p = RunParams(work_s=10 * H, interval_s=H, failures=(SDC,), restart_s=0, sdc_detection_s=2.5 * H)
    for seed in range(100):
        r = simulate_run(p, _rng(seed), record=True)
        hits = [e for e in r.events if e.kind == "corruption"]
        if len(hits) == 1 and r.interruption_count == 1 and hits[0].args["work_s"] < 7 * H:
            break
    else:
        pytest.fail("no seed with exactly one corruption")
    w = hits[0].args["work_s"] / H
    assert hits[0].start_s == pytest.approx(w * H)  # nothing else happened before it
    assert r.losses_s["lost_work"] / H == pytest.approx(w + 2.5 - math.floor(w + 2.5))
    assert r.losses_s["silent_corruption"] / H == pytest.approx(math.floor(w + 2.5) - math.floor(w))
    assert r.wall_s / H == pytest.approx(10 + w + 2.5 - math.floor(w))
    assert r.interruptions_by_name == {"silent_data_corruption": 1}


def test_a_rollback_before_the_corruption_erases_it():
    # async persist of 2 h with hourly saves: an injected failure soon after the corruption rolls back past
    # it (the last durable checkpoint predates it), so the detection finds nothing and never interrupts.
    p = RunParams(work_s=10 * H, interval_s=H, persist_s=2 * H, failures=(SDC,), restart_s=0,
                  sdc_detection_s=5 * H)
    for seed in range(200):
        r0 = simulate_run(p, _rng(seed), record=True)
        hits = [e for e in r0.events if e.kind == "corruption"]
        if len(hits) == 1 and 2 * H < hits[0].start_s < 4 * H:
            break
    else:
        pytest.fail("no seed with one early corruption")
    r = simulate_run(dataclasses.replace(p, inject_s=(hits[0].start_s + 60,)), _rng(seed), record=True)
    assert r.interruptions_by_name.get("silent_data_corruption", 0) == r0.interruptions_by_name.get(
        "silent_data_corruption", 0) - 1
    assert r.losses_s["silent_corruption"] == 0


def test_sdc_found_at_once_is_an_ordinary_failure():
    p = RunParams(work_s=50 * H, interval_s=H, stall_s=20, failures=(SDC,), restart_s=300)
    plain = dataclasses.replace(p, failures=(dataclasses.replace(SDC, silent=False),))
    assert simulate_run(p, _rng(3)) == simulate_run(plain, _rng(3))


def test_one_fail_slow_episode_by_hand():
    # no failures or checkpoints: an episode of fixed length d (sigma 0) at slowdown s trains d / (1 + s)
    # of work in d seconds, so the run is d x s / (1 + s) longer. The episode draws come from the run
    # generator's first spawned child, in order: first start, its length, the next start.
    work, rate, d, s = 10 * H, 1 / (5 * H), 1800.0, 0.5
    p = RunParams(work_s=work, episode_rate_per_s=rate, episode_mu_ln_s=math.log(d), episode_slowdown=s)
    for seed in range(50):
        child = _rng(seed).spawn(1)[0]
        start = child.exponential(1 / rate)
        child.lognormal(math.log(d), 0.0)
        nxt = start + child.exponential(1 / rate)
        if start + d < work and nxt > work + d:
            break
    r = simulate_run(p, _rng(seed))
    assert r.wall_s == pytest.approx(work + d * s / (1 + s))
    assert r.losses_s["fail_slow"] == pytest.approx(d * s / (1 + s))


def test_scenario_fields_reach_the_run_params():
    s = load_scenario(ROOT / "scenarios" / "llama3-405b-16k-h100-tp8-pp16-dp128.yaml")
    from sim.specs.reliability import StragglerSpec

    s = dataclasses.replace(s, failures=dataclasses.replace(s.failures, burst_fraction=0.054, lemon_fraction=0.24,
                                                            sdc_detection_hours=12),
                            stragglers=StragglerSpec(episodes_per_day=3, episode_median_minutes=10))
    p = run_plan(s, 8.3).params
    assert (p.burst_fraction, p.burst_continue, p.burst_max_nodes) == (0.054, 0.5, 8)
    assert (p.lemon_fraction, p.lemon_multiplier, p.sdc_detection_s) == (0.24, 2.9, 12 * H)
    assert p.episode_rate_per_s == pytest.approx(3 / DAY)
    assert p.episode_mu_ln_s == pytest.approx(math.log(600))
    assert (p.episode_sigma_ln, p.episode_slowdown) == (2.155, 0.34)
    assert any(c.silent for c in p.failures)


def _all_on(**kw) -> RunParams:
    rate = kw.pop("rate")
    hw, sw = FailureClass("x", "x", rate, 1, False), FailureClass("sw", "sw", rate / 3, 0, False)
    sdc = dataclasses.replace(SDC, rate_per_s=kw.pop("sdc_rate"))
    return RunParams(failures=(hw, sw, sdc), burst_continue=0.5, lemon_multiplier=2.9, dp_replicas=4, nodes=32,
                     repair_mu_ln_s=math.log(H), repair_sigma_ln=0.5, episode_mu_ln_s=math.log(1200),
                     episode_sigma_ln=1.0, max_wall_factor=200, **kw)


@settings(max_examples=40, deadline=None)
@given(work_h=st.floats(0.5, 50), interval_h=st.floats(0.05, 5), stall=st.floats(0, 300),
       persist=st.floats(0, 900), mtbi_h=st.floats(0.5, 20), restart=st.floats(0, 1800),
       spares=st.one_of(st.none(), st.integers(0, 3)), shrink=st.booleans(), burst=st.floats(0, 1),
       lemons=st.floats(0, 0.3), sdc_h=st.floats(0, 10), sdc_mtbi_h=st.floats(2, 50),
       episodes_per_h=st.floats(0, 2), slow=st.floats(0, 1), memory=st.integers(0, 3),
       stragglers=st.floats(0, 0.05), slow_count=st.one_of(st.none(), st.integers(0, 3)),
       evict_min=st.one_of(st.none(), st.floats(0, 120)), seed=st.integers(0, 2**16))
def test_invariants_with_everything_on(work_h, interval_h, stall, persist, mtbi_h, restart, spares, shrink, burst,
                                       lemons, sdc_h, sdc_mtbi_h, episodes_per_h, slow, memory, stragglers, slow_count,
                                       evict_min, seed):
    """Wall = work + the named losses; losses non-negative; the same with record=True (no quiet cycles)."""
    p = _all_on(work_s=work_h * H, interval_s=interval_h * H, stall_s=stall, persist_s=persist,
                rate=1 / (mtbi_h * H), sdc_rate=1 / (sdc_mtbi_h * H), restart_s=restart, spares=spares,
                shrink=shrink, burst_fraction=burst, lemon_fraction=lemons, sdc_detection_s=sdc_h * H,
                episode_rate_per_s=episodes_per_h / H, episode_slowdown=slow, memory_replicas=memory,
                straggler_fraction=stragglers, straggler_slowdown=0.1, straggler_count=slow_count,
                straggler_evict_s=None if evict_min is None else evict_min * 60)
    r = simulate_run(p, _rng(seed))
    assert set(r.losses_s) == set(LOSSES) and all(v >= -1e-6 for v in r.losses_s.values())
    if r.finished:
        assert r.wall_s == pytest.approx(r.work_s + sum(r.losses_s.values()), rel=1e-9, abs=1e-6)
        assert 0 < r.goodput <= 1 + 1e-12
    rec = simulate_run(p, _rng(seed), record=True)
    assert rec.wall_s == pytest.approx(r.wall_s, rel=1e-9)
    assert rec.interruptions_by_name == r.interruptions_by_name
    assert all(rec.losses_s[k] == pytest.approx(r.losses_s[k], rel=1e-6, abs=1e-3) for k in LOSSES)
