"""The failure trace as arrivals (sim/costs/failure_trace.py), against hand-computed schedules."""

from __future__ import annotations

import numpy as np
import pytest

from sim.costs.failure_trace import TraceArrivals, trace_schedule
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
