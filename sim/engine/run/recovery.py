"""Recovery policies: where a restarted job resumes from and what its restart costs.

A policy answers two questions at each unplanned recovery: the work level to resume from (and whether it
came from peers' memory), and the restart time. :class:`StorageReload` reloads the newest durable
checkpoint; :class:`InMemory` resumes from the newest in-memory snapshot unless every holder of a lost
node's shard failed (then storage). Another policy (a warm standby replica) only needs ``restore`` and
``restart_s``.
"""

from __future__ import annotations

import numpy as np

from sim.costs.reliability import FailureClass
from sim.engine.run.ledger import CheckpointLedger
from sim.engine.run.params import RunParams


class StorageReload:
    """Reload the newest checkpoint durable on storage."""

    def __init__(self, params: RunParams) -> None:
        self.p = params
        self._restart: dict[tuple[bool, bool, bool], float] = {}  # by (hang, planned, from memory)
        self.memory_recoveries = 0  # recoveries from peers' host memory
        self.storage_fallbacks = 0  # recoveries from storage because a lost shard had no surviving holder

    def restore(self, ledger: CheckpointLedger, now: float, cause: FailureClass, corrupted: bool, lost_nodes: int,
                rng: np.random.Generator) -> tuple[float, bool]:
        """(work level to resume from, whether from memory) after ``lost_nodes`` were evicted since the last
        recovery; ``corrupted``: a corruption found late needs a checkpoint older than the newest snapshot."""
        return ledger.durable_at(now), False

    def restart_s(self, cause: FailureClass, from_memory: bool) -> float:
        """Detection to training resumed."""
        key = (cause.hang, cause.planned, from_memory)
        if key not in self._restart:
            self._restart[key] = self.p.restart_time(cause, from_memory)
        return self._restart[key]


class InMemory(StorageReload):
    """Snapshots in peers' host memory (Gemini): nodes hold each other's snapshots in groups of
    ``memory_replicas``; the reload from a peer replaces the storage load of the restart stages."""

    def restore(self, ledger: CheckpointLedger, now: float, cause: FailureClass, corrupted: bool, lost_nodes: int,
                rng: np.random.Generator) -> tuple[float, bool]:
        storage = ledger.durable_at(now)
        if cause.planned:
            return storage, False
        from_memory = not corrupted and (lost_nodes < self.p.memory_replicas or self.survives(lost_nodes, rng))
        self.memory_recoveries += from_memory
        self.storage_fallbacks += not from_memory
        return (ledger.memory_work if from_memory else storage), from_memory

    def survives(self, lost: int, rng: np.random.Generator) -> bool:
        """Whether every lost node's snapshot is still held by a peer: the ``lost`` nodes are a uniform draw
        of the job's."""
        r, n = self.p.memory_replicas, self.p.nodes
        if lost < r:
            return True
        if lost >= n:
            return False
        last = (n - 1) // r  # the last group may be smaller
        size_last = n - r * last
        counts: dict[int, int] = {}
        for group in (rng.choice(n, size=lost, replace=False) // r).tolist():  # a few nodes: plain Python
            counts[group] = c = counts.get(group, 0) + 1
            if c >= (size_last if group == last else r):
                return False  # every holder of this group's snapshots is lost
        return True


def recovery_policy(params: RunParams) -> StorageReload:
    """The policy the parameters ask for."""
    return InMemory(params) if params.memory_replicas > 0 else StorageReload(params)
