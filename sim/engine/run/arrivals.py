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
    pending detections of silent corruption. ``scale`` multiplies the hardware classes' rates: a change is
    a time change of their clocks (the residual time to each one's next event shrinks or stretches)."""

    def __init__(self, params: RunParams, rng: np.random.Generator, scale: float = 1.0) -> None:
        self.rng, self.k = rng, params.weibull_shape
        self.scale, self.scaled = scale, params.lemon_fraction > 0
        # Weibull scale such that the mean inter-arrival is 1/rate: mean = scale * Γ(1 + 1/k).
        self.gamma = math.gamma(1 + 1 / self.k) if self.k else 1.0
        self.heap: list[tuple[float, int, FailureClass]] = []
        for i, cls in enumerate(params.failures):
            heapq.heappush(self.heap, (self._gap(cls), i, cls))
        injected = FailureClass("injected", "injected", 0.0, 1, False)
        for j, t in enumerate(params.inject_s):
            heapq.heappush(self.heap, (t, -1 - j, injected))
        self.detections = 0

    def _gap(self, cls: FailureClass) -> float:
        # Planned maintenance is a schedule, not wear: always Poisson.
        if self.k is None or cls.planned:
            gap = self.rng.exponential(1 / cls.rate_per_s)
        else:
            gap = self.rng.weibull(self.k) / (cls.rate_per_s * self.gamma)
        return gap / self.scale if self.scaled and hardware(cls) else gap

    def peek(self) -> float:
        return self.heap[0][0] if self.heap else math.inf

    def pop(self) -> tuple[float, FailureClass, int] | None:
        if not self.heap:
            return None
        t, i, cls = heapq.heappop(self.heap)
        if i >= 0:
            heapq.heappush(self.heap, (t + self._gap(cls), i, cls))
        return t, cls, i

    def push_detection(self, t: float, cls: FailureClass) -> int:
        self.detections += 1
        key = DETECTION - self.detections
        heapq.heappush(self.heap, (t, key, cls))
        return key

    def rescale(self, now: float, scale: float) -> None:
        ratio = self.scale / scale
        self.heap = [(now + (t - now) * ratio, i, c) if i >= 0 and hardware(c) else (t, i, c)
                     for t, i, c in self.heap]
        heapq.heapify(self.heap)
        self.scale = scale
