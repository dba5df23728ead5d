"""Stragglers (issue 13, item 3): exactly N slow nodes, detect-and-evict, and the effective MFU."""

from __future__ import annotations

import math

import numpy as np
import pytest

from sim.engine.run import RunParams, simulate_run

H = 3600.0


def _run(**kw):
    return simulate_run(RunParams(**kw), np.random.default_rng(0), record=True)


def test_exactly_n_slow_nodes_slow_the_whole_run():
    # one slow node at 25 %: 10 h of work take 12.5 h, 2.5 h of them lost to the straggler
    r = _run(work_s=10 * H, straggler_count=1, straggler_slowdown=0.25)
    assert r.wall_s == pytest.approx(12.5 * H)
    assert r.losses_s["slowdown"] == pytest.approx(2.5 * H)
    assert _run(work_s=10 * H, straggler_count=0, straggler_slowdown=0.25).wall_s == pytest.approx(10 * H)


def test_one_eviction_by_hand():
    # 1 slow node (25 %), evicted after 30 min: 1,800 s at 0.8 do 1,440 s of work and lose 360 s; the save
    # before the swap is free (stall 0), the spare is there, the restart takes 300 s; the 34,560 s of work
    # left run at full speed: wall 1,800 + 300 + 34,560 = 36,660 s
    r = _run(work_s=10 * H, restart_s=300, straggler_count=1, straggler_slowdown=0.25, straggler_evict_s=1800,
             spares=1, repair_mu_ln_s=math.log(5 * H))
    assert r.wall_s == pytest.approx(36_660)
    assert r.losses_s["slowdown"] == pytest.approx(360) and r.losses_s["restart"] == pytest.approx(300)
    assert r.losses_s["lost_work"] == 0  # announced: saved first
    assert r.interruptions == {"straggler": 1} and r.interruptions_by_name == {"straggler_eviction": 1}
    assert [round(a) for a, _ in r.repairs] == [1800]  # the slow node went to repair


def test_an_eviction_that_drains_the_spare_pool_waits_for_a_repair():
    # 2 slow nodes, 1 spare, repairs of exactly 2 h: the second replacement is the first repaired node, back at
    # 1,800 + 7,200 = 9,000 s; restart 300 s; then 34,560 s of work: wall 43,860 s
    r = _run(work_s=10 * H, restart_s=300, straggler_count=2, straggler_slowdown=0.25, straggler_evict_s=1800,
             spares=1, repair_mu_ln_s=math.log(2 * H))
    assert r.wall_s == pytest.approx(43_860)
    assert r.losses_s["spare_wait"] == pytest.approx(2 * H)


def test_an_exact_count_stays_across_failure_restarts_until_evicted():
    # a failure at 1 h loses the 0.8 h of work done (no checkpoint); the restart keeps the slow node, so all
    # 10.8 h of work run at 0.8: the straggler costs 0.25 x 10.8 h
    p = RunParams(work_s=10 * H, restart_s=0, straggler_count=1, straggler_slowdown=0.25, inject_s=(H,))
    r = simulate_run(p, np.random.default_rng(0))
    assert r.losses_s["lost_work"] == pytest.approx(0.8 * H)
    assert r.losses_s["slowdown"] == pytest.approx(0.25 * 10.8 * H)
    # a per-node probability of 1 draws every node slow again at the restart: the same loss
    assert simulate_run(RunParams(work_s=10 * H, restart_s=0, straggler_fraction=1.0, straggler_slowdown=0.25,
                                  inject_s=(H,)), np.random.default_rng(0)).losses_s["slowdown"] == pytest.approx(
        0.25 * 10.8 * H)
