"""The run simulation against hand arithmetic: one failure, async persist, spares, shrink, stragglers."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sim.costs.reliability import FailureClass
from sim.engine.run import LOSSES, RunParams, simulate_run

H = 3600.0


def _rng(seed: int = 0) -> np.random.Generator:
    return np.random.default_rng(seed)


def test_no_failures_wall_is_work_plus_checkpoint_stalls():
    p = RunParams(work_s=10 * H, interval_s=H, stall_s=60)
    r = simulate_run(p, _rng())
    assert r.finished and r.checkpoints == 9  # none after the last step
    assert r.wall_s == pytest.approx(10 * H + 9 * 60)
    assert r.losses_s["checkpoint"] == pytest.approx(540)


def test_single_injected_failure_by_hand():
    # checkpoints (sync, 60 s) end at wall k*3660 s; the failure at 5.5 h = 19,800 s comes 1,500 s after
    # the 5th ends (18,300 s): 1,500 s of work lost, then a 600 s restart, then the rest of the run.
    p = RunParams(work_s=10 * H, interval_s=H, stall_s=60, restart_s=600, inject_s=(5.5 * H,))
    r = simulate_run(p, _rng())
    assert r.interruptions == {"injected": 1}
    assert r.losses_s["lost_work"] == pytest.approx(1500)
    assert r.losses_s["restart"] == pytest.approx(600)
    assert r.wall_s == pytest.approx(10 * H + 9 * 60 + 1500 + 600)
    assert r.goodput == pytest.approx(10 * H / r.wall_s)


def test_failure_during_persist_falls_back_one_more_checkpoint():
    # async: 10 s stall, 600 s persist. Checkpoint 1 (work 1 h) is durable at 3,610 + 600 = 4,210 s;
    # checkpoint 2 ends its stall at 7,220 s and would be durable at 7,820 s. A failure at 7,500 s
    # finds only checkpoint 1 durable: lost = work done (1 h + 1 h + 280 s) - 1 h = 3,880 s.
    p = RunParams(work_s=4 * H, interval_s=H, stall_s=10, persist_s=600, restart_s=0, inject_s=(7500,))
    r = simulate_run(p, _rng())
    assert r.losses_s["lost_work"] == pytest.approx(H + 280)


def test_failure_during_a_checkpoint_stall_loses_the_segment():
    # sync stall 100 s: checkpoint 1 runs 3,600..3,700 s; a failure at 3,650 s loses the first hour.
    p = RunParams(work_s=2 * H, interval_s=H, stall_s=100, restart_s=0, inject_s=(3650,))
    r = simulate_run(p, _rng())
    assert r.losses_s["lost_work"] == pytest.approx(H)
    assert r.losses_s["checkpoint"] == pytest.approx(50 + 100)  # the broken stall, then the retried one


def test_no_spare_waits_for_the_repair():
    # sigma 0: the repair takes exactly e^mu = 2 h; restart 300 s starts once the node is back
    p = RunParams(work_s=10 * H, restart_s=300, inject_s=(H,), spares=0, repair_mu_ln_s=math.log(2 * H))
    r = simulate_run(p, _rng())
    assert r.losses_s["spare_wait"] == pytest.approx(2 * H)
    assert r.wall_s == pytest.approx(10 * H + H + 2 * H + 300)  # no checkpoint: the first hour is redone


def test_a_spare_avoids_the_wait_and_comes_back_after_repair():
    p = RunParams(work_s=10 * H, restart_s=300, inject_s=(H, 2 * H), spares=1, repair_mu_ln_s=math.log(0.5 * H))
    r = simulate_run(p, _rng())
    assert r.losses_s["spare_wait"] == 0  # the first node is repaired before the second failure


def test_shrink_runs_on_with_fewer_replicas():
    # 4 replicas of one node each; one lost, no spare: run at 3/4 speed (the node never returns here)
    p = RunParams(work_s=4 * H, restart_s=0, inject_s=(H,), spares=0, shrink=True, dp_replicas=4,
                  nodes_per_replica=1, repair_mu_ln_s=math.log(1e9))
    r = simulate_run(p, _rng())
    assert r.losses_s["spare_wait"] == 0
    assert r.wall_s == pytest.approx(H + 4 * H / 0.75)  # the first hour lost, then all 4 h at 3/4 speed
    assert r.losses_s["slowdown"] == pytest.approx(4 * H / 0.75 - 4 * H)


def test_certain_straggler_slows_the_whole_job():
    p = RunParams(work_s=10 * H, nodes=100, straggler_fraction=1.0, straggler_slowdown=0.25)
    assert simulate_run(p, _rng()).wall_s == pytest.approx(12.5 * H)


def test_straggler_probability_is_an_order_statistic():
    # P(no slow node among n) = (1 - f)^n: with n = 100, f = 0.01 -> 0.366 of the draws run at full speed
    p = RunParams(work_s=H, nodes=100, straggler_fraction=0.01, straggler_slowdown=0.5)
    full = np.mean([simulate_run(p, _rng(i)).wall_s == pytest.approx(H) for i in range(400)])
    assert full == pytest.approx(0.99**100, abs=0.07)


def test_weibull_inter_arrivals_keep_the_mean_rate():
    cls = FailureClass("x", "x", 1 / H, 0, False)
    p = RunParams(work_s=1e12, failures=(cls,), restart_s=0, weibull_shape=0.6, horizon_s=2000 * H)
    counts = [simulate_run(p, _rng(i)).interruption_count for i in range(5)]
    assert np.mean(counts) == pytest.approx(2000, rel=0.08)


def test_horizon_stops_the_run_unfinished():
    r = simulate_run(RunParams(work_s=10 * H, horizon_s=2 * H), _rng())
    assert not r.finished and r.wall_s == pytest.approx(2 * H) and r.work_s == pytest.approx(2 * H)


def test_same_generator_seed_same_replica():
    cls = FailureClass("x", "x", 1 / H, 1, False)
    p = RunParams(work_s=50 * H, interval_s=0.5 * H, stall_s=20, failures=(cls,), restart_s=120, spares=2,
                  repair_mu_ln_s=math.log(3 * H), repair_sigma_ln=1.0)
    assert simulate_run(p, _rng(7)) == simulate_run(p, _rng(7))
    assert simulate_run(p, _rng(7)).wall_s != simulate_run(p, _rng(8)).wall_s


@settings(max_examples=40, deadline=None)
@given(work_h=st.floats(0.5, 50), interval_h=st.floats(0.05, 5), stall=st.floats(0, 300),
       persist=st.floats(0, 900), mtbi_h=st.floats(0.2, 20), restart=st.floats(0, 1800),
       spares=st.one_of(st.none(), st.integers(0, 3)), shrink=st.booleans(), seed=st.integers(0, 2**16))
def test_invariants(work_h, interval_h, stall, persist, mtbi_h, restart, spares, shrink, seed):
    """Wall = work + the named losses; goodput in (0, 1]; losses non-negative; interruptions counted."""
    cls = FailureClass("x", "x", 1 / (mtbi_h * H), 1, False)
    p = RunParams(work_s=work_h * H, interval_s=interval_h * H, stall_s=stall, persist_s=persist,
                  failures=(cls,), restart_s=restart, spares=spares, shrink=shrink, dp_replicas=4,
                  repair_mu_ln_s=math.log(H), repair_sigma_ln=0.5, max_wall_factor=200)
    r = simulate_run(p, _rng(seed))
    assert set(r.losses_s) == set(LOSSES) and all(v >= -1e-6 for v in r.losses_s.values())
    if r.finished:
        assert r.wall_s == pytest.approx(r.work_s + sum(r.losses_s.values()), rel=1e-9, abs=1e-6)
        assert 0 < r.goodput <= 1 + 1e-12


@pytest.mark.parametrize(("kw", "field"), [
    ({"interval_s": 0.0}, "interval_s"), ({"stall_s": -1.0}, "stall_s"), ({"lemon_fraction": 1.5}, "lemon_fraction"),
    ({"lemon_fraction": 0.5, "lemon_multiplier": 2.0}, "lemon_multiplier"), ({"spares": -1}, "spares"),
    ({"inject_s": (3600.0,)}, "restart_s"), ({"nodes": 0}, "nodes"), ({"weibull_shape": 0.0}, "weibull_shape"),
])
def test_run_params_are_validated_when_built(kw, field):
    with pytest.raises(ValueError, match=field):
        RunParams(work_s=H, **kw)
