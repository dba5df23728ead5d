"""A failure trace as the run's failure arrivals (pure: no I/O, no SimPy).

Mapping of the job onto the traced fleet: a job of N nodes is N / F of a fleet of F nodes
(``failures.trace_nodes``, default the trace's distinct node ids), so it sees the fleet's events at N / F of
their rate: trace hours are stretched by F / N (and shrunk by ``rate_scale``). Rows at the same time are one
event (a burst): each of its rows of a node category evicts one node for that row's repair time; rows of a
job-level category (software, nccl, storage, job) restart the job on the same nodes.

Replay feeds the events in the trace's order, cycling when the run outlasts it (the next cycle's first event
comes the trace's first gap after its last). Resample draws each gap from the trace's gaps and each event, with
its repair times, from its events, independently, with the run's seeded generator.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from sim.costs.reliability import FailureClass
from sim.specs.enums import TraceMode
from sim.specs.failure_trace import categories
from sim.specs.reliability import FailureSpec
from sim.units import HOUR


@dataclass(frozen=True, slots=True)
class TraceSchedule:
    """A trace in job seconds: its events (one failure class each, with the evicted nodes' repair times)."""

    events: tuple[FailureClass, ...]
    times_s: tuple[float, ...]  # of each event, from the start of a replay cycle
    cycle_s: float  # a replay cycle: the trace's last event
    resample: bool
    file: str | None = None  # where the trace came from (None: given inline)
    faults: int = 0  # rows (node faults) of the trace
    fleet_nodes: int = 0  # nodes of the traced fleet
    trace_hours_per_job_hour: float = 1.0  # job nodes / fleet nodes (x rate_scale)

    @property
    def gaps_s(self) -> np.ndarray:
        """Gaps between consecutive events, the first from 0 (their mean is cycle_s / events)."""
        return np.diff(np.asarray((0.0, *self.times_s)))

    @property
    def rate_per_s(self) -> float:
        return len(self.events) / self.cycle_s


def trace_schedule(spec: FailureSpec, job_nodes: int) -> TraceSchedule | None:
    """The scenario's trace for a job of ``job_nodes`` (None without a trace or with rate_scale 0)."""
    trace = spec.trace
    if trace is None or spec.rate_scale == 0:
        return None
    stretch = HOUR / spec.trace_hours_per_job_hour(job_nodes)
    known = categories()
    rows: dict[float, list[tuple[str, float]]] = {}
    for t, cat, rep in zip(trace.time_hours, trace.category, trace.repair_hours, strict=True):
        rows.setdefault(t, []).append((cat, rep))
    events = tuple(_event(group, known) for group in rows.values())
    return TraceSchedule(events, tuple(t * stretch for t in rows), trace.span_hours() * stretch,
                         spec.trace_mode is TraceMode.RESAMPLE, trace.file, len(trace.time_hours), spec.fleet_nodes,
                         spec.trace_hours_per_job_hour(job_nodes))


def _event(group: list[tuple[str, float]], known: dict[str, dict]) -> FailureClass:
    """One trace event as a failure class: evicting rows first name it; its rate is unused (the trace times it)."""
    evicting = [(c, r) for c, r in group if known[c]["blast"] > 0]
    name = (evicting or group)[0][0]
    entry = known[name]
    return FailureClass(name, entry["category"], 0.0, len(evicting),
                        any(known[c]["detect"] == "hang" for c, _ in group),
                        silent=all(known[c].get("silent", False) for c, _ in group),
                        repair_s=tuple(r * HOUR for _, r in evicting))


class TraceArrivals:
    """The next trace event, by replay (in order, cycling) or by resampling (seeded draws)."""

    def __init__(self, schedule: TraceSchedule, rng: np.random.Generator) -> None:
        self.s, self.rng = schedule, rng
        self.gaps = schedule.gaps_s
        self.k = 0  # events handed out so far

    def next_event(self, after_s: float) -> tuple[float, FailureClass]:
        """The event after the one at ``after_s`` (the first: ``after_s`` = 0)."""
        s, n = self.s, len(self.s.events)
        if s.resample:
            i = int(self.rng.integers(n))
            gap = float(self.gaps[int(self.rng.integers(n))])
            self.k += 1
            return after_s + gap, s.events[i]
        cycle, i = divmod(self.k, n)
        self.k += 1
        return cycle * s.cycle_s + s.times_s[i], s.events[i]


def expected_events(schedule: TraceSchedule | None, wall_s: float) -> float:
    """Trace events over ``wall_s`` of wall time (the run budget's estimate)."""
    if schedule is None or not math.isfinite(wall_s):
        return 0.0
    return wall_s * schedule.rate_per_s
