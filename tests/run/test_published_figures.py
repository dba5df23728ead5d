"""Published run-level figures reproduced through scenario fields alone (issue 13 acceptance), each within
10 %. Step times are fixed here (the run level's figures, not the step model's, are under test)."""

from __future__ import annotations

import pytest

from sim.analysis.runlevel import simulate_run_level
from sim.specs.scenario import scenario_from_mapping

DAY = 86400.0


def _scenario(num_gpus: int, days: float, step_s: float, failures: dict, replicas: int) -> dict:
    """A job of ``num_gpus`` H100 (TP 8, PP 4) whose failure-free run lasts ``days`` at ``step_s`` per step."""
    dp = num_gpus // 32
    steps = days * DAY / step_s
    return {"name": "published", "model": {"preset": "llama3-70b"},
            "cluster": {"gpu": "H100-SXM-80GB", "num_gpus": num_gpus, "topology": "dgx-h100-superpod"},
            "parallelism": {"tensor": 8, "pipeline": 4, "data": dp, "schedule": "1f1b", "sequence_parallel": True,
                            "activation_recompute": "full"},
            "training": {"global_batch_size": dp, "tokens": steps * dp * 8192},
            "failures": failures, "simulation": {"seed": 0, "monte_carlo": replicas}}


def test_stepfun_trace_mean_unavailability_of_nodes():
    """stepfun-ai/InfiniteHBD-Trace (SIGCOMM'25), 400 servers over 348 days: on average 2.34 % of the nodes
    (9.4 of 400) are out of service (reliability reference F11, computed from fault_trace.json). Inputs from
    the same trace: 4.23 node faults per 1,000 node-days (F8), repair median 0.85 d and mean 5.5 d (F9).

    The trace's fleet was in service before its window opened, so its figure is the stationary occupancy; a
    simulated job starts with every node up, and with this heavy-tailed repair law (sigma 1.93) a 348-day
    window reaches only 84 % of the stationary mean (E[min(S, T - t)] / E[S], t uniform on [0, T]), 1.95 %:
    the simulation is therefore run over 2,000 days (96 %) and compared with the stationary figure. The
    trace's tail (>= 20 nodes down 15.8 % of the time) comes from bursts and rate swings that a stationary
    rate does not make: not reproduced, and not claimed."""
    s = scenario_from_mapping(_scenario(3200, 2000, 10.0, {
        "node_failures_per_1000_node_days": 4.23, "planned_per_day": 0, "restart_minutes": 10,
        "repair_hours": {"median": 0.85 * 24, "mean": 5.5 * 24}}, replicas=10))
    run = simulate_run_level(s, 10.0)
    assert run.nodes_down_mean / 400 == pytest.approx(0.0234, rel=0.10)


@pytest.mark.parametrize(("num_gpus", "mttf_h"), [(16_384, 1.8), (131_072, 0.23)])
def test_kokolis_projected_job_mttf_from_the_node_failure_rate(num_gpus, mttf_h):
    """Kokolis et al., arXiv 2410.21680 (HPCA'25): with RSC-1's r_f = 6.50 failures per 1,000 node-days a
    16,384-GPU job fails every 1.8 h and a 131,072-GPU job every ~14 min (0.23 h) (reference K4). The simulated
    mean time between interruptions (wall hours / interruptions) must match."""
    s = scenario_from_mapping(_scenario(num_gpus, 4, 10.0, {
        "node_failures_per_1000_node_days": 6.5, "planned_per_day": 0, "restart_minutes": 2}, replicas=8))
    run = simulate_run_level(s, 10.0)
    assert run.mtbi_hours_simulated == pytest.approx(mttf_h, rel=0.10)


def test_kokolis_ettr_at_12k_gpus_with_a_10_second_checkpoint_overhead():
    """Kokolis et al., arXiv 2410.21680 v2 (HPCA'25), §ETTR (quoted verbatim in the reliability reference, K5):
    "To reach ETTR of 0.9 for the largest feasible training runs on RSC-1 (~12,000 GPUs, taking two thirds of
    RSC-1), checkpoint write time overhead needs to be on the order of ~10 seconds" at RSC-1's r_f = 6.50
    failures per 1,000 node-days (K2). Published: ETTR 0.9, i.e. 10 % of the wall time lost; compared on that
    loss (1 - ETTR), within 10 %: on ETTR itself 10 % would accept anything from 0.81 to 0.99.

    Inputs from the paper: 12,000 GPUs (1,500 nodes), r_f 6.50, a 10 s blocking checkpoint. Not in what was
    read of it: its restart overhead and its checkpoint interval. Here the interval is Daly's optimum for the
    10 s stall (6.9 min) and the restart the catalog's stage model, unchanged and not fitted to this figure:
    detection 30 s (ByteRobust), diagnosis 5 min (MegaScale), rescheduling 2 min and warm-up 1 min
    (assumed, no published figure), NCCL init 26 s (NCCLX fit), checkpoint load 10 s, 9.1 min in all. The
    match rests on that restart time: a fixed 5 min gives a loss of 8.1 %, 15 min 14.2 %."""
    m = _scenario(12_000, 30, 10.0, {"node_failures_per_1000_node_days": 6.5, "planned_per_day": 0}, replicas=20)
    m["checkpoint"] = {"interval_minutes": "young-daly", "stall_seconds": 10}
    run = simulate_run_level(scenario_from_mapping(m), 10.0)
    assert run.plan.interval_rule == "young-daly" and run.plan.params.restart_s is None  # the stage model
    assert 1 - run.goodput == pytest.approx(0.10, rel=0.10)
