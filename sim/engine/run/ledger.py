"""The checkpoint ledger: how much work is done, held by the newest in-memory snapshot, and durable.

Work is counted in seconds of failure-free compute. A synchronous save is durable when its stall ends; an
asynchronous one only once its background persist has finished (one persist in flight, as DCP async
does); with an in-memory tier every save is held in peers' memory at once and the persist to storage takes
the newest snapshot whenever storage is free. Checkpoints are not kept one by one: the cadence restarts at
each recovery (an *anchor*), so any past checkpoint is found arithmetically.
"""

from __future__ import annotations

import bisect
import math

from sim.engine.run.params import RunParams


class CheckpointLedger:
    def __init__(self, params: RunParams) -> None:
        self.interval, self.persist = params.interval_s, params.persist_s
        self.memory = params.memory_replicas > 0
        self.progress = 0.0  # work done
        self.durable = 0.0  # work covered by a durable checkpoint
        self.pending: list[tuple[float, float]] = []  # (persist end time, work) of async checkpoints
        self.memory_work = 0.0  # work held by the last in-memory snapshot
        self.anchors = [0.0]  # work levels where the current line of checkpoints restarted its cadence

    def durable_at(self, now: float) -> float:
        """Work durable on storage at ``now`` (finished persists counted, pruned)."""
        pending = self.pending
        if not pending or pending[0][0] > now:  # persists end in the order they started
            return self.durable
        durable, kept = self.durable, []
        for t, w in pending:
            if t > now:
                kept.append((t, w))
            elif w > durable:
                durable = w
        self.durable, self.pending = durable, kept
        return durable

    def persist_wait(self, compute_end: float) -> float:
        """How long a save whose compute ends at ``compute_end`` waits for the previous persist (snapshots to
        host memory never wait for storage)."""
        if self.memory or not self.pending:
            return 0.0
        return max(0.0, self.pending[-1][0] - compute_end)  # the newest persist ends last

    def saved(self, now: float, work: float) -> None:
        """A save's stall ended at ``now`` holding ``work``."""
        persist = self.persist
        if self.memory:
            self.durable_at(now)
            self.memory_work = work
            if persist <= 0:
                self.durable = work
            elif not self.pending:
                self.pending.append((now + persist, work))
        elif persist > 0:
            self.durable_at(now)  # prune the finished persists (the list stays short)
            self.pending.append((now + persist, work))
        else:
            self.durable = work

    def quiet(self, start: float, end: float, k: int, first: float, cycle: float) -> None:
        """``k`` whole cycles ran from ``start`` to ``end`` (the first ``first`` s long, the others ``cycle``)
        with a save at the end of each; the ledger after them, without an event per save."""
        interval, persist = self.interval, self.persist
        work0 = self.progress
        progress = self.progress = work0 + k * interval
        if not self.memory:
            if persist > 0:  # the one before the last has persisted (a cycle outlasts a persist)
                self.durable = progress - interval
                self.pending = [(end + persist, progress)]
            else:
                self.durable = progress
            return
        # With an in-memory tier saves never wait; persist j starts at the first save at or after the previous
        # one's end (arithmetic, no event per save).
        self.memory_work = progress
        if persist <= 0:
            self.durable = progress
            return
        t1 = start + first
        pending = self.pending
        j1 = 1
        if pending:
            busy = pending[-1][0]
            if busy > t1:
                j1 = 1 + math.ceil((busy - t1) / cycle)  # >= 2: busy > t1 and cycle > 0
                if j1 > k:
                    return
        step = math.ceil(persist / cycle)  # saves between persist starts (>= 1: persist > 0)
        starts = 1 + (k - j1) // step
        last = j1 + (starts - 1) * step
        durable = self.durable
        for _, w in pending:  # the one in flight ended by save j1
            if w > durable:
                durable = w
        if starts >= 2:
            done = work0 + (last - step) * interval
            if done > durable:
                durable = done
        self.durable = durable
        self.pending = [(t1 + (last - 1) * cycle + persist, work0 + last * interval)]

    def forced_save(self) -> None:
        """A save announced before maintenance, persisted in full: everything done is durable."""
        self.durable, self.pending = self.progress, []
        self.memory_work = self.progress

    def roll_back(self, level: float) -> None:
        """Resume from ``level``: in-flight persists die with the job; every node holds the state it resumes
        from."""
        self.progress, self.pending = level, []
        self.memory_work = level

    def step_back(self, level: float) -> None:
        """Resume from ``level`` without the job dying (a standby switch-over): persists in flight go on, the
        newest snapshot stays where it was."""
        self.progress = level
        self.memory_work = min(self.memory_work, level)

    def clean_checkpoint(self, work: float) -> float:
        """The last checkpoint of the current line at or before ``work``: from the anchor below it, one
        every ``interval_s`` of work (arithmetic, so no event per checkpoint is kept)."""
        a = self.anchors[bisect.bisect_right(self.anchors, work) - 1]
        interval = self.interval
        if not math.isfinite(interval):
            return a
        return min(work, a + math.floor((work - a) / interval + 1e-9) * interval)

    def anchor(self) -> None:
        """After a recovery the cadence restarts from the work the job resumes at."""
        while self.anchors[-1] > self.progress:
            self.anchors.pop()
        if self.anchors[-1] < self.progress:
            self.anchors.append(self.progress)
