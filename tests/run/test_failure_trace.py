"""The failure trace as arrivals (sim/costs/failure_trace.py), against hand-computed schedules."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sim.costs.failure_trace import TraceArrivals, TraceSchedule, trace_schedule
from sim.costs.reliability import FailureClass
from sim.engine.run import LOSSES, RunParams, simulate_run
from sim.specs._schema import build
from sim.specs.reliability import FailureSpec

H = 3600.0
#: Faults of a 4-node fleet: a 2-node burst at hour 1 (repairs 2 h and 3 h), a software crash at hour 4.
TRACE = {"time_hours": [1, 1, 4], "node": ["a", "b", "c"], "category": ["gpu", "host", "software"],
         "repair_hours": [2, 3, 0]}


def _spec(**fields) -> FailureSpec:
    return build(FailureSpec, {"trace": TRACE, "trace_nodes": 4, **fields})


def test_a_job_of_half_the_fleet_sees_the_trace_stretched_twice():
    s = trace_schedule(_spec(), job_nodes=2)
    assert s.times_s == (2 * H, 8 * H) and s.cycle_s == 8 * H
    burst, crash = s.events
    assert (burst.blast_nodes, burst.repair_s, burst.name) == (2, (2 * H, 3 * H), "gpu")
    assert (crash.blast_nodes, crash.repair_s, crash.category) == (0, (), "software")
    assert s.rate_per_s == pytest.approx(2 / (8 * H))


def test_rate_scale_speeds_the_trace_up_and_zero_removes_it():
    assert trace_schedule(_spec(rate_scale=2), job_nodes=2).times_s == (1 * H, 4 * H)
    assert trace_schedule(_spec(rate_scale=0), job_nodes=2) is None


def test_replay_feeds_the_events_in_order_and_cycles():
    arrivals = TraceArrivals(trace_schedule(_spec(), job_nodes=4), np.random.default_rng(0))
    times, t = [], 0.0
    for _ in range(5):
        t, cls = arrivals.next_event(t)
        times.append((t / H, cls.blast_nodes))
    # cycle 4 h: events at 1 and 4 h, then 5 and 8 h (the first gap after the last event), then 9 h
    assert times == [(1, 2), (4, 0), (5, 2), (8, 0), (9, 2)]


def test_resample_draws_the_trace_gaps_and_events_with_the_seeded_generator():
    schedule = trace_schedule(_spec(trace_mode="resample"), job_nodes=4)
    gaps = set(schedule.gaps_s / H)
    assert gaps == {1.0, 3.0}

    def draw(seed: int) -> list[tuple[float, int]]:
        arrivals, t, out = TraceArrivals(schedule, np.random.default_rng(seed)), 0.0, []
        for _ in range(2000):
            nxt, cls = arrivals.next_event(t)
            out.append((nxt - t, cls.blast_nodes))
            t = nxt
        return out

    first = draw(1)
    assert first == draw(1) and first != draw(2)  # seeded
    assert {g / H for g, _ in first} == gaps and {b for _, b in first} == {0, 2}
    # the mean gap is the trace's (4 h / 2 events) within sampling error (sd of the mean 1 h / sqrt(2000))
    assert np.mean([g for g, _ in first]) / H == pytest.approx(2.0, abs=0.1)


# --- through the engine, by hand --------------------------------------------------------------------------------

def _schedule(times_h, blasts, repairs_h=None, cycle_h=None) -> TraceSchedule:
    events = tuple(FailureClass("gpu" if b else "software", "gpu" if b else "software", 0.0, b, False,
                                repair_s=tuple(r * H for r in (repairs_h or {}).get(i, ())))
                   for i, b in enumerate(blasts))
    return TraceSchedule(events, tuple(t * H for t in times_h), (cycle_h or max(times_h)) * H, False)


def test_replay_interrupts_at_the_trace_times_and_cycles():
    # One fault at 1.5 h, so the replay cycle is 1.5 h: faults at 1.5, 3.0, 4.5 h of wall time. Checkpoints every
    # hour of work (no stall). At 1.5 h: 0.5 h lost, 600 s restart, resumed at 6,000 s from work 1 h. At 3 h
    # (10,800 s) work is 1 h + 4,800 s; the save at work 2 h lies behind: 1,200 s lost, resumed at 11,400 s;
    # the last hour of work ends at 15,000 s, before the fault at 4.5 h.
    p = RunParams(work_s=3 * H, interval_s=H, restart_s=600, nodes=4, trace=_schedule([1.5], [1]))
    r = simulate_run(p, np.random.default_rng(0))
    assert r.interruption_count == 2 and r.finished
    assert r.losses_s["lost_work"] == pytest.approx(1800 + 1200)
    assert r.losses_s["restart"] == pytest.approx(1200)
    assert r.wall_s == pytest.approx(15_000)


def test_a_traced_burst_drains_the_spare_pool_and_its_repair_times_are_the_traces():
    # A 2-node burst at 1 h (repairs 2 h and 3 h), then nothing until 100 h; one spare, no checkpoints. The job
    # takes the spare, waits for the first repaired node (3 h), restarts (600 s) and trains 3 h from scratch.
    p = RunParams(work_s=3 * H, restart_s=600, nodes=4, spares=1,
                  trace=_schedule([1, 100], [2, 0], {0: (2, 3)}))
    r = simulate_run(p, np.random.default_rng(0))
    assert sorted(r.repairs) == [(H, 3 * H), (H, 4 * H)]
    assert r.losses_s["spare_wait"] == pytest.approx(2 * H)
    assert r.losses_s["lost_work"] == pytest.approx(H)
    assert r.wall_s == pytest.approx(3 * H + 600 + 3 * H)


def test_the_trace_and_the_renewal_populations_merge():
    # planned stops stay beside the trace: an injected failure at 0.5 h comes before the trace's 1.5 h fault
    p = RunParams(work_s=3 * H, interval_s=H, restart_s=600, nodes=4, inject_s=(0.5 * H,),
                  trace=_schedule([1.5], [1]))
    r = simulate_run(p, np.random.default_rng(0))
    assert r.interruptions_by_name["injected"] == 1 and r.interruptions_by_name["gpu"] >= 1


# --- warm standby -------------------------------------------------------------------------------------------------

def _standby(**kw) -> RunParams:
    base = dict(work_s=3 * H, interval_s=H, restart_s=600, nodes=4, step_s=100, standby_nodes=1,
                standby_switch_s=20, inject_s=(5450.0,))
    return RunParams(**{**base, **kw})


def test_a_standby_switch_over_costs_the_step_in_flight_and_the_switch_by_hand():
    # At 5,450 s the job is 50 s into its 55th step: 50 s lost, 20 s to switch, no reload (storage holds 1 h).
    r = simulate_run(_standby(), np.random.default_rng(0))
    assert r.standby_switch_overs == 1
    assert r.losses_s["lost_work"] == pytest.approx(50)
    assert r.losses_s["restart"] == pytest.approx(20)
    assert r.wall_s == pytest.approx(3 * H + 50 + 20)
    without = simulate_run(_standby(standby_nodes=0), np.random.default_rng(0))
    assert without.wall_s == pytest.approx(3 * H + (5450 - H) + 600)


def test_a_second_fault_before_the_standby_is_replaced_falls_back_to_a_restart_by_hand():
    # No spare: the used standby is owed a repaired node (1 h, fixed). Second fault at 6,000 s: no standby, a
    # full restart from storage (work 1 h): the job resumed at 5,470 s from work 5,400 s, so 2,330 s are lost.
    # The job's needs come first: it takes the first repaired node (9,050 s, 3,050 s of waiting); restart
    # 600 s; then 2 h of work: 9,650 + 7,200 = 16,850 s.
    p = _standby(inject_s=(5450.0, 6000.0), spares=0, repair_mu_ln_s=math.log(H), repair_sigma_ln=0.0)
    r = simulate_run(p, np.random.default_rng(0))
    assert r.standby_switch_overs == 1
    assert r.losses_s["lost_work"] == pytest.approx(50 + 2330)
    assert r.losses_s["spare_wait"] == pytest.approx(3050)
    assert r.losses_s["restart"] == pytest.approx(20 + 600)
    assert r.wall_s == pytest.approx(16_850)


def test_a_burst_larger_than_the_standbys_is_a_full_restart():
    p = _standby(inject_s=(), trace=_schedule([5450 / H, 100], [2, 0]))
    r = simulate_run(p, np.random.default_rng(0))
    assert r.standby_switch_overs == 0
    assert r.losses_s["restart"] == pytest.approx(600)


@settings(max_examples=30, deadline=None)
@given(work_h=st.floats(0.5, 50), interval_h=st.floats(0.05, 5), stall=st.floats(0, 300),
       persist=st.floats(0, 900), gap_h=st.floats(0.3, 20), restart=st.floats(0, 1800),
       spares=st.one_of(st.none(), st.integers(0, 3)), shrink=st.booleans(), burst=st.integers(1, 4),
       resample=st.booleans(), standby=st.integers(0, 3), switch=st.floats(0, 120), step=st.floats(0, 60),
       memory=st.integers(0, 3), episodes_per_h=st.floats(0, 2), sdc_h=st.floats(0, 10),
       stragglers=st.floats(0, 0.05), seed=st.integers(0, 2**16))
def test_invariants_with_a_trace_a_standby_and_everything_else_on(
        work_h, interval_h, stall, persist, gap_h, restart, spares, shrink, burst, resample, standby, switch,
        step, memory, episodes_per_h, sdc_h, stragglers, seed):
    """Wall = work + the named losses; losses non-negative; the same with record=True (no quiet cycles)."""
    sdc = FailureClass("sdc", "gpu", 1 / (30 * H), 1, False, silent=True)
    events = (FailureClass("gpu", "gpu", 0.0, burst, False, repair_s=tuple(i * H for i in range(1, burst + 1))),
              FailureClass("software", "software", 0.0, 0, True), FailureClass("node", "node", 0.0, 1, False))
    trace = TraceSchedule(events, (gap_h * H, 1.5 * gap_h * H, 3 * gap_h * H), 3 * gap_h * H, resample)
    p = RunParams(work_s=work_h * H, interval_s=interval_h * H, stall_s=stall, persist_s=persist, restart_s=restart,
                  failures=(sdc,), trace=trace, nodes=32, dp_replicas=4, spares=spares, shrink=shrink,
                  repair_mu_ln_s=math.log(H), repair_sigma_ln=0.5, standby_nodes=standby, standby_switch_s=switch,
                  step_s=step, memory_replicas=memory, memory_load_s=5, sdc_detection_s=sdc_h * H,
                  episode_rate_per_s=episodes_per_h / H, episode_mu_ln_s=math.log(1200), episode_sigma_ln=1.0,
                  episode_slowdown=0.3, straggler_fraction=stragglers, straggler_slowdown=0.1, max_wall_factor=200)
    r = simulate_run(p, np.random.default_rng(seed))
    assert set(r.losses_s) == set(LOSSES) and all(v >= -1e-6 for v in r.losses_s.values())
    if r.finished:
        assert r.wall_s == pytest.approx(r.work_s + sum(r.losses_s.values()), rel=1e-9, abs=1e-6)
    assert r.standby_switch_overs <= r.interruption_count
    rec = simulate_run(p, np.random.default_rng(seed), record=True)
    assert rec.wall_s == pytest.approx(r.wall_s, rel=1e-9)
    assert rec.interruptions_by_name == r.interruptions_by_name


def test_standby_gpus_are_paid_and_powered_idle_by_hand():
    """16 H100 (2 nodes) and one standby node: 24 GPUs paid; the standby's 8 draw the idle 100 W all along."""
    from sim.analysis.runlevel import simulate_run_level
    from sim.specs.scenario import scenario_from_mapping
    from tests.hostile.conftest import base_mapping

    costs = {"usd_per_gpu_hour": 2.0, "pue": 1.0, "gpu_power_w": 700, "idle_gpu_power_w": 100,
             "host_power_w_per_gpu": 0}
    data = base_mapping(**{"failures": {"model": "custom", "restart_minutes": 10, "warm_standby": {"nodes": 1}},
                           "costs": costs})
    run = simulate_run_level(scenario_from_mapping(data), 2.0)
    hours = run.days_mean * 24
    assert run.standby_gpus == 8 and run.standby_switch_overs == 0
    assert run.gpu_hours == pytest.approx(hours * 24)
    assert run.cost_usd == pytest.approx(hours * 24 * 2.0)
    assert run.energy_mwh == pytest.approx(hours * (16 * 700 + 8 * 100) / 1e6)
