"""Failure arrivals from a trace (sim/costs/failure_trace.py), merged with the renewal populations that stay
beside it (planned stops, ``rates`` added, injected failures)."""

from __future__ import annotations

import numpy as np

from sim.costs.failure_trace import TraceArrivals, TraceSchedule
from sim.costs.reliability import FailureClass
from sim.engine.run.arrivals import RenewalArrivals
from sim.engine.run.params import RunParams

#: The key of a trace event (above every renewal key and far from the detections' keys).
TRACE_KEY = 2**40


class TracedArrivals:
    """The trace's next event and the renewal populations' next, whichever comes first (the Arrivals protocol).

    Replay draws nothing; resampling draws from a generator of its own (spawned), so the renewal draws are
    the same with either mode."""

    def __init__(self, params: RunParams, schedule: TraceSchedule, rng: np.random.Generator) -> None:
        self.renewal = RenewalArrivals(params, rng)
        self.trace = TraceArrivals(schedule, rng.spawn(1)[0])
        self.next = self.trace.next_event(0.0)

    def peek(self) -> float:
        return min(self.next[0], self.renewal.peek())

    def pop(self) -> tuple[float, FailureClass, int] | None:
        t, cls = self.next
        if t <= self.renewal.peek():
            self.next = self.trace.next_event(t)
            return t, cls, TRACE_KEY
        return self.renewal.pop()

    def push_detection(self, t: float, cls: FailureClass) -> int:
        return self.renewal.push_detection(t, cls)

    def rescale(self, now: float, scale: float) -> None:
        self.renewal.rescale(now, scale)  # a trace carries its own repeat offenders: lemons are refused with one
