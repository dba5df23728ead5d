"""Recovery strategies and fleet figures against hand arithmetic: in-memory checkpoints (Gemini) recovered
from a peer, the fallback to storage when every holder of a shard failed, and the nodes-down ledger."""

from __future__ import annotations

import math

import numpy as np
import pytest

from sim.analysis.runlevel import nodes_down_histogram
from sim.costs.reliability import FailureClass, RestartStages
from sim.engine.run import RunParams, simulate_run
from sim.engine.run.recovery import InMemory

H = 3600.0
# explicit detection 30 + diagnosis 300 + reschedule 120 + NCCL init 40 + storage load 500 + warm-up 60 = 1,050 s
STAGES = RestartStages(30, 600, 300, 120, 40, 500, 60)


def _params(**kw) -> RunParams:
    base = dict(work_s=10 * H, interval_s=H, stall_s=10, persist_s=1800, nodes=4, stages=STAGES,
                memory_load_s=5, inject_s=(8000.0,))
    return RunParams(**{**base, **kw})


def test_one_in_memory_recovery_by_hand():
    # Saves end at 3,610 s (work 1 h) and 7,220 s (work 2 h); the second's persist runs to 9,020 s, so at the
    # failure (8,000 s, one node) storage holds 1 h but the peers hold 2 h: 780 s are lost, not 4,380.
    # Restart: 1,050 - 500 (storage load) + 5 (from a peer) = 555 s. Then 8 h of work and 7 more saves.
    r = simulate_run(_params(memory_replicas=2), np.random.default_rng(0))
    assert (r.memory_recoveries, r.storage_fallbacks) == (1, 0)
    assert r.losses_s["lost_work"] == pytest.approx(780)
    assert r.losses_s["restart"] == pytest.approx(555)
    assert r.losses_s["checkpoint"] == pytest.approx(90)
    assert r.wall_s == pytest.approx(8000 + 555 + 8 * H + 7 * 10)


def test_fallback_to_storage_when_the_only_holder_failed():
    # One copy per snapshot (its own node): the failed node took it, so recovery reads storage (1 h durable).
    r = simulate_run(_params(memory_replicas=1), np.random.default_rng(0))
    assert (r.memory_recoveries, r.storage_fallbacks) == (0, 1)
    assert r.losses_s["lost_work"] == pytest.approx(2 * H + 780 - H)
    assert r.losses_s["restart"] == pytest.approx(1050)
    assert r.wall_s == pytest.approx(8000 + 1050 + 9 * H + 8 * 10)


def test_a_burst_taking_both_holders_falls_back_to_storage():
    # Two nodes, snapshots on both: a 2-node burst takes every holder.
    p = _params(memory_replicas=2, nodes=2, burst_fraction=1.0, burst_continue=0.0)
    r = simulate_run(p, np.random.default_rng(0), record=True)
    assert [e.args["nodes"] for e in r.events if e.kind == "failure"] == [2]
    assert (r.memory_recoveries, r.storage_fallbacks) == (0, 1)
    assert r.wall_s == pytest.approx(8000 + 1050 + 9 * H + 8 * 10)


def test_software_failure_keeps_even_a_single_copy():
    # a restart-only failure (no node evicted) leaves every host's memory: recovered from it
    sw = FailureClass("sw", "software", 1 / (1000 * H), 0, False)
    p = _params(memory_replicas=1, inject_s=(), failures=(sw,), work_s=2000 * H)
    r = simulate_run(p, np.random.default_rng(0))
    assert r.interruption_count > 0 and r.memory_recoveries == r.interruption_count and r.storage_fallbacks == 0


def test_without_memory_a_save_waits_for_the_persist_with_memory_it_does_not():
    # interval 1 h, persist 2 h: storage-only saves wait ~1 h for the previous persist; in-memory ones never.
    slow = dict(work_s=10 * H, interval_s=H, stall_s=10, persist_s=2 * H, inject_s=())
    plain = simulate_run(RunParams(**slow), np.random.default_rng(0))
    mem = simulate_run(RunParams(**slow, memory_replicas=2), np.random.default_rng(0))
    assert mem.wall_s == pytest.approx(10 * H + 9 * 10)
    assert plain.wall_s > mem.wall_s + 7 * H


def test_memory_group_draw_is_exact_for_a_whole_group():
    # 6 nodes in groups of 3: losing 3 nodes loses a whole group with probability 2 / C(6, 3) = 0.1
    policy = InMemory(RunParams(work_s=H, nodes=6, memory_replicas=3))
    rng = np.random.default_rng(1)
    lost = np.mean([not policy.survives(3, rng) for _ in range(20_000)])
    assert lost == pytest.approx(0.1, abs=0.01)


def test_two_failure_burst_drains_the_spare_pool_and_the_nodes_down_ledger():
    # One spare, a 2-node burst at 1 h, repairs exactly 2 h: one node waits 2 h for its repair.
    p = RunParams(work_s=10 * H, restart_s=300, inject_s=(H,), spares=1, repair_mu_ln_s=math.log(2 * H),
                  burst_fraction=1.0, burst_continue=0.0)
    r = simulate_run(p, np.random.default_rng(0))
    assert r.losses_s["spare_wait"] == pytest.approx(2 * H)
    assert np.asarray(r.repairs) == pytest.approx(np.array([(H, 3 * H), (H, 3 * H)]))
    hist = nodes_down_histogram(r.repairs, r.wall_s)
    assert hist[2] == pytest.approx(2 * H) and hist[0] == pytest.approx(r.wall_s - 2 * H) and len(hist) == 3


def test_nodes_down_histogram_by_hand():
    # [0, 10]: repairs 1-4, 2-6, 3-12 (clipped to 10): 0 down 0-1, 1 down 1-2 and 6-10, 2 down 2-3 and 4-6, 3 down 3-4
    hist = nodes_down_histogram([(1, 4), (2, 6), (3, 12)], 10)
    assert hist.tolist() == pytest.approx([1, 5, 3, 1])
    assert nodes_down_histogram([], 5).tolist() == [5]
