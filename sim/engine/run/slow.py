"""Slow training: stragglers drawn per (re)start and transient fail-slow episodes.

A synchronous step runs at the pace of its slowest node, so for stragglers only whether *any* node is slow
matters (an order statistic, not a loop over nodes). Episodes slow the whole job while one lasts; their
starts and ends are the moments the pace changes.
"""

from __future__ import annotations

import heapq

import numpy as np

from sim.engine.run.params import RunParams


def straggler_speed(params: RunParams, rng: np.random.Generator) -> float:
    """The job's speed for one (re)start: 1 / (1 + slowdown) when any of its nodes is slow."""
    p = params
    if p.straggler_fraction > 0 and p.straggler_slowdown > 0 and rng.binomial(p.nodes, p.straggler_fraction) > 0:
        return 1 / (1 + p.straggler_slowdown)
    return 1.0


class Episodes:
    """Transient fail-slow episodes of the job: Poisson starts, lognormal lengths, possibly overlapping; the
    job runs slow while any lasts. Drawn from a generator of their own, in time order, so the draws do not
    depend on how often the job asks (record=True or not)."""

    def __init__(self, params: RunParams, rng: np.random.Generator) -> None:
        self.p, self.rng = params, rng
        self.next_start = float(rng.exponential(1 / params.episode_rate_per_s))
        self.ends: list[float] = []

    def next_change(self) -> float:
        return min(self.next_start, self.ends[0]) if self.ends else self.next_start

    def factor(self, now: float) -> float:
        """Apply the starts and ends up to ``now``; the job's pace factor until ``next_change()``."""
        p = self.p
        while self.next_change() <= now:
            if self.ends and self.ends[0] <= self.next_start:
                heapq.heappop(self.ends)
            else:
                heapq.heappush(self.ends, self.next_start + self.rng.lognormal(p.episode_mu_ln_s, p.episode_sigma_ln))
                self.next_start += self.rng.exponential(1 / p.episode_rate_per_s)
        return 1 / (1 + p.episode_slowdown) if self.ends else 1.0
