"""Slow training: stragglers and transient fail-slow episodes.

A synchronous step runs at the pace of its slowest node, so for stragglers only whether *any* node is slow
matters (an order statistic, not a loop over nodes). With a per-node probability the slow nodes are drawn
anew at each (re)start (one binomial draw, in sim/engine/run/replica.py); with an exact count they stay until
evicted. Episodes slow the whole job while one lasts; their starts and ends are the moments the pace changes.
"""

from __future__ import annotations

import heapq

import numpy as np

from sim.engine.run.params import RunParams


def straggler_speed(params: RunParams, slow: int) -> float:
    """The job's speed with ``slow`` slow nodes: 1 / (1 + slowdown) when there is any."""
    return 1 / (1 + params.straggler_slowdown) if slow > 0 else 1.0


class Episodes:
    """Transient fail-slow episodes of the job: Poisson starts, lognormal lengths, possibly overlapping; the
    job runs slow while any lasts. Drawn from a generator of their own, in time order, so the draws do not
    depend on how often the job asks (record=True or not)."""

    def __init__(self, params: RunParams, rng: np.random.Generator) -> None:
        self.p, self.rng = params, rng
        self.mean_gap = 1 / params.episode_rate_per_s
        self.slow = 1 / (1 + params.episode_slowdown)  # the pace factor while any episode lasts
        self.next_start = float(rng.exponential(self.mean_gap))
        self.ends: list[float] = []

    def next_change(self) -> float:
        return min(self.next_start, self.ends[0]) if self.ends else self.next_start

    def factor(self, now: float) -> float:
        """Apply the starts and ends up to ``now``; the job's pace factor until ``next_change()``."""
        p, ends = self.p, self.ends
        while True:
            start = self.next_start
            if ends and ends[0] <= start:
                if ends[0] > now:
                    break
                heapq.heappop(ends)
            else:
                if start > now:
                    break
                heapq.heappush(ends, start + self.rng.lognormal(p.episode_mu_ln_s, p.episode_sigma_ln))
                self.next_start = start + self.rng.exponential(self.mean_gap)
        return self.slow if ends else 1.0
