"""The job's nodes as a fleet: which nodes an event evicts (correlated bursts) and the lemon mix.

Lemon nodes are two node classes whose counts in the job change when a failed node is swapped for an
average one; the job's hardware failure rate follows (the arrivals apply it as a time change of their
clock, not a loop over nodes).
"""

from __future__ import annotations

import heapq

import numpy as np

from sim.costs.reliability import FailureClass
from sim.engine.run.params import RunParams


def blast(params: RunParams, cls: FailureClass, rng: np.random.Generator) -> int:
    """Nodes this event evicts: its class's blast radius, or a correlated burst."""
    p, nodes = params, cls.blast_nodes
    if nodes and not cls.planned and p.burst_fraction > 0 and rng.random() < p.burst_fraction:
        size = 1 + int(rng.geometric(1 - p.burst_continue))  # 2, 3, ... with ratio burst_continue
        nodes = max(nodes, min(p.burst_max_nodes, size))
    return nodes


class Lemons:
    """How many of the job's nodes are lemons, and the job's hardware failure rate over the fleet mean."""

    def __init__(self, params: RunParams, rng: np.random.Generator) -> None:
        self.p = params
        # a non-lemon node's hardware rate over the fleet mean (the two classes average to 1)
        self.normal = (1 - params.lemon_fraction * params.lemon_multiplier) / (1 - params.lemon_fraction)
        self.on = params.lemon_fraction > 0
        # lemons in the job (the rest are average-fleet nodes of the other class); 0 when the feature is off
        self.count = int(rng.binomial(params.nodes, params.lemon_fraction)) if self.on else 0
        self._scale = self._rate_scale()

    def _rate_scale(self) -> float:
        p = self.p
        if not self.on:
            return 1.0
        return (self.count * p.lemon_multiplier + (p.nodes - self.count) * self.normal) / p.nodes

    def scale(self) -> float:
        """The job's hardware failure rate over the fleet mean, from its lemon count."""
        return self._scale

    def swap(self, evicted: int, rng: np.random.Generator) -> float:
        """Evicted nodes leave the job and average fleet nodes take their place; the job's new rate scale.

        The node that failed is a lemon in proportion to the lemons' share of the job's hardware rate; the
        others of a burst are its neighbours, drawn by headcount.
        """
        p = self.p
        n, lem = p.nodes, self.count
        if evicted > n:
            evicted = n
        out = int(rng.random() * self._scale * n < lem * p.lemon_multiplier)
        if evicted > 1:
            out += rng.hypergeometric(lem - out, n - lem - (1 - out), evicted - 1)
        self.count = lem - out + rng.binomial(evicted, p.lemon_fraction)
        self._scale = self._rate_scale()
        return self._scale


class SparePool:
    """Spare nodes, and evicted nodes in repair that come back to it.

    The job is the pool's only taker, so its level at any time follows from the repair end times: no event
    per repair (a run has hundreds), only a wait when the job needs more nodes than the pool holds.
    """

    def __init__(self, spares: int) -> None:
        self.level = spares
        self.returns: list[float] = []  # heap of repair end times (wall s)

    def repaired_at(self, end: float) -> None:
        heapq.heappush(self.returns, end)

    def _release(self, now: float) -> None:
        returns = self.returns
        while returns and returns[0] <= now:
            heapq.heappop(returns)
            self.level += 1

    def available(self, now: float) -> int:
        """Nodes in the pool at ``now``."""
        self._release(now)
        return self.level

    def take(self, now: float, wanted: int) -> int:
        """Take up to ``wanted`` nodes at ``now``; how many were there."""
        if self.returns:
            self._release(now)
        n = min(wanted, self.level)
        self.level -= n
        return n

    def ready_at(self, now: float, wanted: int) -> float:
        """When the pool will hold ``wanted`` nodes (every missing node is in repair, so it will)."""
        self._release(now)
        short = wanted - self.level
        return now if short <= 0 else heapq.nsmallest(short, self.returns)[-1]
