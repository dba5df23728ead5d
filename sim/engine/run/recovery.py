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
        restart = self._restart.get(key)
        if restart is None:
            restart = self._restart[key] = self.p.restart_time(cause, from_memory)
        return restart


class Subsets:
    """Uniform draws of k of n items without replacement from a PCG64 generator, exactly as numpy's
    ``Generator.choice(n, k, replace=False)`` makes them: Floyd's algorithm, then the draws of its shuffle (a
    partial Fisher-Yates when n > 10,000 and k > n / 50), each a bounded integer by Lemire's method on the
    generator's 32-bit words (a 64-bit word's low half first).

    Written out because choice's argument handling cost ~8 % of a run with in-memory checkpoints; the draws,
    and so the results, are the same (tests/run/test_node_draws.py checks set and stream against choice). The
    half word left over is kept here: the generator's other users (lognormal repair times) take 64-bit words,
    which do not touch it, as in numpy."""

    def __init__(self, rng: np.random.Generator) -> None:
        self.rng = rng
        self.raw = rng.bit_generator.random_raw
        self.half: int | None = None

    def _word(self) -> int:
        half = self.half
        if half is not None:
            self.half = None
            return half
        word = self.raw()
        self.half = word >> 32
        return word & 0xFFFFFFFF

    def _bounded(self, top: int) -> int:
        """An integer in [0, top] (Lemire's nearly divisionless method, as numpy's 32-bit one)."""
        span = top + 1
        m = self._word() * span
        if (m & 0xFFFFFFFF) < span:
            threshold = (0xFFFFFFFF - top) % span
            while (m & 0xFFFFFFFF) < threshold:
                m = self._word() * span
        return m >> 32

    def draw(self, n: int, k: int) -> set[int]:
        """k distinct items of range(n) (0 < k < n)."""
        if n > 10_000 and k > n // 50:  # numpy shuffles the tail of the whole range
            moved: dict[int, int] = {}
            for i in range(n - 1, n - k - 1, -1):
                j = self._bounded(i)
                moved[i], moved[j] = moved.get(j, j), moved.get(i, i)
            return {moved.get(i, i) for i in range(n - k, n)}
        chosen: set[int] = set()
        for j in range(n - k, n):
            v = self._bounded(j)
            chosen.add(j if v in chosen else v)
        for i in range(k - 1, 0, -1):  # the shuffle's draws (the order is not needed)
            self._bounded(i)
        return chosen


class InMemory(StorageReload):
    """Snapshots in peers' host memory (Gemini): nodes hold each other's snapshots in groups of
    ``memory_replicas``; the reload from a peer replaces the storage load of the restart stages."""

    def __init__(self, params: RunParams) -> None:
        super().__init__(params)
        self._subsets: Subsets | None = None

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
        if type(rng.bit_generator) is not np.random.PCG64:
            nodes = set(rng.choice(n, size=lost, replace=False).tolist())
        else:
            if self._subsets is None or self._subsets.rng is not rng:
                self._subsets = Subsets(rng)
            nodes = self._subsets.draw(n, lost)
        last = (n - 1) // r  # the last group may be smaller
        size_last = n - r * last
        counts: dict[int, int] = {}
        for node in nodes:  # a few nodes: plain Python
            group = node // r
            counts[group] = c = counts.get(group, 0) + 1
            if c >= (size_last if group == last else r):
                return False  # every holder of this group's snapshots is lost
        return True


def recovery_policy(params: RunParams) -> StorageReload:
    """The policy the parameters ask for."""
    return InMemory(params) if params.memory_replicas > 0 else StorageReload(params)
