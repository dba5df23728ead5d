"""Warm standby nodes (TrainMover, OSDI'26): a node fault is covered by a standby that is already loaded and
joined to the job's communicators; the job loses the step in flight and the switch-over time, not a checkpoint
reload and a restart pipeline.

The standbys in front of the job's recovery policy: a fault that evicts at most the standbys available takes
them; the used standbys are replaced from the spare pool when nodes are there (the job's own needs first), at
once without one. A fault that finds too few standbys, a planned stop, a job-level crash (no node to replace) and a
corruption found late go to the fallback policy (storage reload or in-memory). A recovery is a switch-over only
if every fault during it was covered.
"""

from __future__ import annotations

import math

import numpy as np

from sim.costs.reliability import FailureClass
from sim.engine.run.fleet import SparePool
from sim.engine.run.ledger import CheckpointLedger
from sim.engine.run.params import RunParams
from sim.engine.run.recovery import StorageReload


class WarmStandby:
    """Standby nodes in front of ``fallback``: ``take`` at each fault, ``restore`` and ``restart_s`` per recovery."""

    def __init__(self, params: RunParams, fallback: StorageReload) -> None:
        self.p, self.fallback = params, fallback
        self.available = params.standby_nodes
        self.switching = False  # the recovery under way is a switch-over
        self.switch_overs = 0

    @property
    def memory_recoveries(self) -> int:
        return self.fallback.memory_recoveries

    @property
    def storage_fallbacks(self) -> int:
        return self.fallback.storage_fallbacks

    def take(self, evicted: int, cls: FailureClass, recovering: bool, pool: SparePool | None, now: float,
             job_short: bool) -> bool:
        """Whether standbys cover this fault's ``evicted`` nodes (they are then in use until replaced); a fault
        during a recovery that is not a switch-over leaves it a full restart.

        Used standbys are replaced from the pool at a fault (nothing looks at them in between), the job's needs
        first: not while the job is short of nodes, nor when even a full refill would not cover this fault (the
        job then takes the pool's nodes). Without a pool a replacement is always there."""
        full = self.p.standby_nodes
        if pool is None:
            self.available = full
        elif self.available < full and not job_short:
            refill = min(full - self.available, pool.available(now))
            if evicted == 0 or self.available + refill >= evicted:
                self.available += pool.take(now, refill)
        covered = 0 < evicted <= self.available and not cls.planned
        if covered:
            self.available -= evicted
        self.switching = covered and (self.switching or not recovering)
        return covered

    def restore(self, ledger: CheckpointLedger, now: float, cause: FailureClass, corrupted: bool, lost_nodes: int,
                rng: np.random.Generator) -> tuple[float, bool]:
        """A switch-over resumes from the last completed step (the survivors hold the state); else the fallback."""
        if self.switching and not corrupted:
            step = self.p.step_s
            # steps completed, with a tolerance: progress summed phase by phase (record=True) and advanced
            # arithmetically differ by ulps, and a bare floor at a step boundary would then lose a whole step
            steps = ledger.progress / step if step > 0 else math.inf
            floor = step * math.floor(steps + 1e-11 * max(1.0, steps)) if math.isfinite(steps) else ledger.progress
            return max(floor, ledger.durable_at(now)), False
        self.switching = False
        return self.fallback.restore(ledger, now, cause, corrupted, lost_nodes, rng)

    def restart_s(self, cause: FailureClass, from_memory: bool) -> float:
        if self.switching:
            return self.p.standby_switch_s
        return self.fallback.restart_s(cause, from_memory)

    def recovered(self) -> None:
        """A recovery ended."""
        self.switch_overs += self.switching
        self.switching = False
