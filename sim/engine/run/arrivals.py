"""Failure arrivals: when the next interruption comes and of which class.

The replica asks an arrivals object for the next event (``peek``/``pop``), queues the late detection of a
silent corruption on it (``push_detection``), and changes the hardware classes' rate when the job's lemon
mix changes (``rescale``). :class:`RenewalArrivals` draws them; another source (a replayed failure trace)
only needs the same four methods (:class:`Arrivals`).
"""

from __future__ import annotations

import heapq
import math
from typing import Protocol

import numpy as np

from sim.costs.reliability import FailureClass
from sim.engine.run.params import RunParams

DETECTION = -(2**40)  # heap keys at or below this are detections of silent corruption


def hardware(cls: FailureClass) -> bool:
    """Failures of the job's nodes themselves (their rate follows the nodes' lemon mix)."""
    return cls.blast_nodes > 0 and not cls.planned


class Arrivals(Protocol):
    """A source of interruptions in wall-clock time, the next one first."""

    def peek(self) -> float:
        """Wall time of the next event (inf: none)."""

    def pop(self) -> tuple[float, FailureClass, int] | None:
        """The next event: (time, class, key); key <= DETECTION marks the detection of a corruption."""

    def push_detection(self, t: float, cls: FailureClass) -> int:
        """Queue the detection of a corruption at ``t``; its key."""

    def rescale(self, now: float, scale: float) -> None:
        """The hardware rates become ``scale`` x nominal from ``now`` on."""


class RenewalArrivals:
    """Merged renewal processes of every failure class (exponential or Weibull), plus injected events and
    pending detections of silent corruption.

    ``scale`` multiplies the hardware classes' rates. With lemons on, their events live on a clock of their
    own that runs ``scale`` times as fast as the wall: a change of rate is a change of that clock's speed
    (the residual time to each one's next event shrinks or stretches), O(1) whatever the classes.
    """

    def __init__(self, params: RunParams, rng: np.random.Generator, scale: float = 1.0) -> None:
        self.k = params.weibull_shape
        self.scale, self.scaled = scale, params.lemon_fraction > 0
        self.wall0 = self.clock0 = 0.0  # the hardware clock read clock0 at wall time wall0
        # Weibull scale such that the mean inter-arrival is 1/rate: mean = scale * Γ(1 + 1/k).
        self.gamma = math.gamma(1 + 1 / self.k) if self.k else 1.0
        self.heap: list[tuple[float, int, FailureClass]] = []  # wall times
        self.hw: list[tuple[float, int, FailureClass]] = []  # hardware clock times (lemons on)
        self._weibull, self._exponential = rng.weibull, rng.exponential
        for i, cls in enumerate(params.failures):
            self._push(0.0, i, cls)
        injected = FailureClass("injected", "injected", 0.0, 1, False)
        for j, t in enumerate(params.inject_s):
            heapq.heappush(self.heap, (t, -1 - j, injected))
        self.detections = 0

    def _push(self, last: float, i: int, cls: FailureClass) -> None:
        """The class's next event, ``last`` being its previous one on its own clock."""
        heapq.heappush(self.hw if self.scaled and hardware(cls) else self.heap, self._next(last, i, cls))

    def _next(self, last: float, i: int, cls: FailureClass) -> tuple[float, int, FailureClass]:
        """The class's event after the one at ``last`` (its gap drawn now, so the draws stay in time order)."""
        # Planned maintenance is a schedule, not wear: always Poisson.
        if self.k is None or cls.planned:
            return last + self._exponential(1 / cls.rate_per_s), i, cls
        return last + self._weibull(self.k) / (cls.rate_per_s * self.gamma), i, cls

    def _wall(self, clock: float) -> float:
        return self.wall0 + (clock - self.clock0) / self.scale

    def peek(self) -> float:
        t = self.heap[0][0] if self.heap else math.inf
        return min(t, self._wall(self.hw[0][0])) if self.hw else t

    def pop(self) -> tuple[float, FailureClass, int] | None:
        heap, hw = self.heap, self.hw
        # A class's next event replaces its last in one heap operation: a class stays in the heap it was put in
        # at the start. Every entry's (time, key) is unique (one pending event per class), so the heap's order is
        # total and the order of events does not depend on how it is kept.
        if hw:
            c, i, cls = hw[0]
            wall = self.wall0 + (c - self.clock0) / self.scale
            if not heap or wall < heap[0][0]:
                heapq.heapreplace(hw, self._next(c, i, cls))
                return wall, cls, i
        if not heap:
            return None
        t, i, cls = heap[0]
        if i < 0:  # injected, or a detection: no renewal
            heapq.heappop(heap)
        else:
            heapq.heapreplace(heap, self._next(t, i, cls))
        return t, cls, i

    def push_detection(self, t: float, cls: FailureClass) -> int:
        self.detections += 1
        key = DETECTION - self.detections
        heapq.heappush(self.heap, (t, key, cls))
        return key

    def rescale(self, now: float, scale: float) -> None:
        self.clock0 += (now - self.wall0) * self.scale
        self.wall0, self.scale = now, scale
