"""One run replica: the training job as a SimPy process that meets its interruptions in time order.

The job runs compute up to the next checkpoint (or the end), takes the checkpoint's blocking stall, and goes
on; whole checkpoint cycles that end before the next failure are advanced in one step (nothing random
happens between failures). Interruptions come from the arrivals (sim/engine/run/arrivals.py), in wall-clock
time: components fail whether the job trains or restarts; while it waits for nodes only hardware failures
count, as no software runs. The next one is always known, so every phase of the job (a training segment,
a forced save, a spare wait, a restart) is one timeout to its end or to the next interruption, whichever
comes first: no interrupt, no second process. On an interruption the work since the recovery point is
lost (sim/engine/run/ledger.py, sim/engine/run/recovery.py), the restart pipeline runs (and starts over if
another failure lands during it), evicted nodes go to repair (lognormal) and are replaced from the spare
pool — or the job waits for a repaired node, or shrinks to fewer data-parallel replicas (sim/engine/run/
fleet.py, with correlated bursts and lemon nodes). Stragglers are drawn per (re)start and fail-slow
episodes change the pace (sim/engine/run/slow.py). Silent data corruption is found only after a detection
latency and rolls back to the last checkpoint taken before it.

Events per replica grow with the number of failures, never with the number of GPUs or repairs; with
``record=True`` every checkpoint is its own event, for the timeline.
"""

from __future__ import annotations

import math
from collections import Counter

import numpy as np
import simpy

from sim.costs.reliability import FailureClass
from sim.engine.run.arrivals import DETECTION, RenewalArrivals
from sim.engine.run.fleet import Lemons, SparePool, blast
from sim.engine.run.ledger import CheckpointLedger
from sim.engine.run.params import LOSSES, ReplicaResult, RunEvent, RunParams
from sim.engine.run.recovery import StorageReload, recovery_policy
from sim.engine.run.slow import Episodes, slow_nodes, straggler_speed
from sim.engine.run.standby import WarmStandby
from sim.engine.run.traced import TracedArrivals

#: Swapping slow nodes for spares: announced by the straggler detector, so a save comes first and no detection
#: or diagnosis is paid (a planned stop's restart).
EVICTION = FailureClass("straggler_eviction", "straggler", 0.0, 0, False, planned=True)


class _Stop(Exception):
    """The failure budget (``max_failures``) is spent: the replica ends unfinished."""


class Replica:
    def __init__(self, params: RunParams, rng: np.random.Generator, record: bool) -> None:
        self.p, self.rng, self.record = params, rng, record
        self.limit = math.inf
        self.env = simpy.Environment()
        self.pool = SparePool(params.spares) if params.spares is not None else None
        self.ledger = CheckpointLedger(params)
        self.missing = 0  # evicted nodes not yet replaced
        self.speed = 1.0
        self.losses = dict.fromkeys(LOSSES, 0.0)
        self.by_category: Counter[str] = Counter()
        self.by_name: Counter[str] = Counter()
        self.checkpoints = 0
        self.events: list[RunEvent] = []
        self.done = False
        self.lemons = Lemons(params, rng)
        self.arrivals = (TracedArrivals(params, params.trace, rng) if params.trace is not None
                         else RenewalArrivals(params, rng, self.lemons.scale()))
        self.episodes = Episodes(params, rng.spawn(1)[0]) if params.episode_rate_per_s > 0 else None
        # fleet draws (repairs without a spare pool, which shards a burst takes) come from a generator of their
        # own, so turning them on leaves the failure draws alone (common random numbers across recoveries)
        self.fleet_rng = rng.spawn(1)[0]
        self.repairs: list[tuple[float, float]] = []
        self.recovery: StorageReload | WarmStandby = recovery_policy(params)
        self.standby = WarmStandby(params, self.recovery) if params.standby_nodes > 0 else None
        if self.standby is not None:
            self.recovery = self.standby
        self.recovering = False  # a recovery is under way (a fault then restarts it)
        self.lost_nodes = 0  # nodes evicted since the last completed recovery (their snapshots are gone)
        self.corrupt: dict[int, float] = {}  # undetected corruptions: detection key -> work when it happened
        self.sdc_work: float | None = None  # a found corruption: roll back to a checkpoint at or before this work
        self.next_event: tuple[float, FailureClass, int] | None = None
        self.next_failure = math.inf  # wall time of the next interruption (inf: none)
        self.failure_count = 0
        self.waiting_for_nodes = False
        self.segment: tuple[float, float, float, float] | None = None  # (start, work at start, compute s, pace)
        self.slow_nodes = params.straggler_count or 0  # an exact count stays until evicted
        self.evict_at = math.inf  # when the straggler detector swaps the slow nodes out
        self.now = 0.0  # the job's clock: SimPy's, plus the quiet time advanced since the last interruption

    # --- bookkeeping -------------------------------------------------------------------------
    def _log(self, kind: str, start: float, end: float, **args) -> None:
        """Keep an event for the timeline (callers test ``self.record`` first: no arguments built otherwise)."""
        if end > start:
            self.events.append(RunEvent(kind, start, end, args))

    def _work_at(self, now: float) -> float:
        """Work done by wall time ``now`` (inside a training segment, or where the job stands)."""
        if self.segment is None:
            return self.ledger.progress
        start, at, compute, pace = self.segment
        return at + min(now - start, compute) * pace

    def _pace(self) -> tuple[float, float]:
        """Fail-slow factor on the job's speed now, and the wall time it next changes."""
        if self.episodes is None:
            return 1.0, math.inf
        factor = self.episodes.factor(self.now)
        return factor, self.episodes.next_change()

    def _slow_losses(self, ran: float, factor: float) -> None:
        """Split ``ran`` wall seconds of training at ``speed x factor`` into work and the two slow losses."""
        self.losses["slowdown"] += ran * factor * (1 - self.speed)
        self.losses["fail_slow"] += ran * (1 - factor)

    def _draw_speed(self, evicted: bool = False) -> None:
        """The job's speed from this (re)start: stragglers (none just after an eviction; an exact count
        stays, a per-node probability is drawn anew) and the replicas lost when shrunk."""
        p = self.p
        if evicted:
            self.slow_nodes = 0
        elif p.straggler_count is None:
            self.slow_nodes = slow_nodes(p, self.rng)
        speed = straggler_speed(p, self.slow_nodes)
        if p.shrink and self.missing:
            lost = min(p.dp_replicas, math.ceil(self.missing * self._replicas_per_node()))
            speed *= (p.dp_replicas - lost) / p.dp_replicas
        self.speed = speed
        slow = self.slow_nodes > 0 and p.straggler_slowdown > 0
        self.evict_at = self.now + p.straggler_evict_s if slow and p.straggler_evict_s is not None else math.inf

    # --- interruptions -----------------------------------------------------------------------
    def _pop(self) -> None:
        """Draw the next interruption (its class's next gap is drawn now: the draws stay in time order)."""
        self.next_event = self.arrivals.pop()
        self.next_failure = self.next_event[0] if self.next_event is not None else math.inf

    def _until(self, end: float):
        """Wait until ``end`` or the next interruption, whichever comes first; the interrupting class, or None
        once ``end`` is reached. Events that do not interrupt (a corruption happening, a software failure while
        the job waits for nodes) are applied on the way.

        Only interruptions are SimPy events: a phase that ends before the next one is advanced arithmetically
        (nothing random happens in between), unless it runs past the wall-time limit, where the run stops.
        """
        env = self.env
        while self.next_failure < end:
            t = self.next_failure
            yield env.timeout(max(0.0, t - env.now))
            self.now = max(self.now, t)
            cause = self._apply()
            if cause is not None:
                return cause
        if end > self.limit:
            yield env.timeout(end - env.now)  # the run stops at the limit on the way
        self.now = end
        return None

    def _reached(self, end: float) -> bool:
        """Whether the job gets to ``end`` with nothing in between (then its clock is there): the common case,
        without the generator of :meth:`_until`."""
        if self.next_failure < end or end > self.limit:
            return False
        self.now = end
        return True

    def _apply(self) -> FailureClass | None:
        """Apply the event due now and draw the next one; its class if it interrupts the job."""
        assert self.next_event is not None
        t, cls, key = self.next_event
        p = self.p
        if cls.silent and p.sdc_detection_s > 0 and key > DETECTION:
            # the state is corrupted now; the job trains on until the corruption is found
            found = self.arrivals.push_detection(t + p.sdc_detection_s, cls)
            self.corrupt[found] = self._work_at(t)
            if self.record:
                self._log("corruption", t, t + 1e-9, cause=cls.name, work_s=self.corrupt[found])
            self._pop()
            return None
        if key <= DETECTION:
            work = self.corrupt.pop(key, None)
            if work is None:
                self._pop()
                return None  # a rollback to a checkpoint before the corruption already erased it
            self.sdc_work = work if self.sdc_work is None else min(self.sdc_work, work)
        self.failure_count += 1
        if self.failure_count > p.max_failures:
            raise _Stop
        if self.waiting_for_nodes and not cls.blast_nodes:
            self._pop()
            return None  # a stopped job has no software to crash and no maintenance to interrupt
        self.by_category[cls.category] += 1
        self.by_name[cls.name] += 1
        evicted = blast(p, cls, self.rng)
        if evicted and self.lemons.on:
            self.arrivals.rescale(t, self.lemons.swap(evicted, self.rng))
        self.lost_nodes += evicted
        self._pop()
        # warm standbys cover the evicted nodes if enough are there (the pool then owes the standbys, not the job)
        covered = self.standby is not None and self.standby.take(evicted, cls, self.recovering, self.pool, t,
                                                                          self.missing > 0)
        self._to_repair(t, evicted, covered, cls.repair_s)
        if self.record:
            self._log("failure", t, t + 1e-9, cause=cls.name, category=cls.category, nodes=evicted)
        return cls

    def _to_repair(self, t: float, nodes: int, covered: bool = False, durations: tuple[float, ...] = ()) -> None:
        """``nodes`` leave the job at ``t`` for repair (for ``durations``, a trace's, else drawn from the law);
        with a pool the job needs as many replacements, unless warm standbys ``covered`` them."""
        p = self.p
        traced = durations[:nodes] if durations else (None,) * nodes
        if nodes and self.pool is not None:
            if not covered:
                self.missing += nodes
            for duration in traced:
                end = t + (float(self.rng.lognormal(p.repair_mu_ln_s, p.repair_sigma_ln)) if duration is None
                           else duration)
                self.repairs.append((t, end))
                self.pool.repaired_at(end)
        elif nodes:  # replacements are always there; the fleet still has the node in repair
            self.repairs += [(t, t + (float(self.fleet_rng.lognormal(p.repair_mu_ln_s, p.repair_sigma_ln))
                                      if duration is None else duration)) for duration in traced]

    def _evict_stragglers(self):
        """The straggler detector fired: swap the slow nodes for spares (they go to repair) and restart."""
        nodes = self.slow_nodes
        self.by_category[EVICTION.category] += 1
        self.by_name[EVICTION.name] += 1
        self._to_repair(self.now, nodes)
        if self.record:
            self._log("failure", self.now, self.now + 1e-9, cause=EVICTION.name, category=EVICTION.category,
                      nodes=nodes)
        yield from self._recover(EVICTION)

    # --- the job -----------------------------------------------------------------------------
    def job(self):
        try:
            yield from self._train()
        except _Stop:
            return

    def _train(self):
        p, ledger = self.p, self.ledger
        self._pop()
        next_ckpt = p.interval_s
        aligned = True  # the job stands at a checkpoint (or a restart): whole cycles lie ahead
        while True:
            ledger.durable_at(self.now)  # prune finished persists
            if self.now >= self.evict_at:
                yield from self._evict_stragglers()
                ledger.anchor()
                next_ckpt = ledger.progress + p.interval_s
                aligned = True
                continue
            factor, change = self._pace()
            change = min(change, self.evict_at)  # the pace changes when the slow nodes are evicted
            quiet = self._quiet_cycles(factor, change) if aligned else None
            if quiet is not None:
                k, duration, waits, first, cycle = quiet
                self.now += duration  # ends before the next failure, pace change or limit: never interrupted
                self.checkpoints += k
                self.losses["checkpoint"] += k * p.stall_s + waits
                self._slow_losses(k * p.interval_s / (self.speed * factor), factor)
                ledger.quiet(self.now - duration, self.now, k, first, cycle)
                next_ckpt = ledger.progress + p.interval_s
            seg_start, start_work = self.now, ledger.progress
            pace = self.speed * factor
            target = min(next_ckpt, p.work_s)
            compute = (target - start_work) / pace
            cut = seg_start + compute > change  # the pace changes first: train up to then, save nothing
            if cut:
                compute = change - seg_start
                target = start_work + compute * pace
            saves = target < p.work_s and not cut
            # a save waits for the previous persist (one checkpoint in flight, as DCP async does)
            stall = p.stall_s + ledger.persist_wait(self.now + compute) if saves else 0.0
            self.segment = (seg_start, start_work, compute, pace)
            end = seg_start + compute + stall
            cause = None if self._reached(end) else (yield from self._until(end))
            self.segment = None
            if cause is not None:
                ran = min(self.now - seg_start, compute)
                ledger.progress = start_work + ran * pace
                self._slow_losses(ran, factor)
                self.losses["checkpoint"] += max(0.0, self.now - seg_start - compute)
                if self.record:
                    self._log("train", seg_start, seg_start + ran, work_s=ran * pace)
                yield from self._recover(cause)
                ledger.anchor()
                next_ckpt = ledger.progress + p.interval_s
                aligned = True
                continue
            ledger.progress = target
            self._slow_losses(compute, factor)
            if self.record:
                self._log("train", seg_start, seg_start + compute, work_s=target - start_work)
            aligned = not cut
            if cut:
                continue
            if target >= p.work_s:
                self.done = True
                yield self.env.timeout(self.now - self.env.now)
                return
            self.losses["checkpoint"] += stall
            if self.record:
                self._log("checkpoint", self.now - stall, self.now, work_s=target)
            self.checkpoints += 1
            ledger.saved(self.now, target)
            next_ckpt = target + p.interval_s

    def _quiet_cycles(self, factor: float, change: float) -> tuple[int, float, float, float, float] | None:
        """Whole checkpoint cycles that end before the next failure (or pace change at ``change``): (count,
        wall seconds, persist waits, first cycle, later cycles).

        Nothing random happens between failures, so k cycles of (compute, wait for the previous persist,
        stall) can be one timeout; events then grow with failures, not with checkpoints.
        """
        p, ledger = self.p, self.ledger
        interval = p.interval_s
        if self.record or not math.isfinite(interval):
            return None
        cycles_left = math.ceil((p.work_s - ledger.progress) / interval) - 1  # the last segment saves nothing
        if cycles_left < 2:
            return None
        compute = interval / (self.speed * factor)
        first_wait = max(0.0, ledger.pending_end() - (self.now + compute))
        wait = max(0.0, p.persist_s - compute) if p.persist_s > 0 else 0.0
        if ledger.memory:  # snapshots never wait for storage
            first_wait = wait = 0.0
        first, cycle = compute + first_wait + p.stall_s, compute + wait + p.stall_s
        budget = min(self.next_failure, self.limit, change) - self.now - first
        if budget < cycle:
            return None
        k = min(cycles_left, 1 + int(budget // cycle))
        return k, first + (k - 1) * cycle, first_wait + (k - 1) * wait, first, cycle

    def _recover(self, cause: FailureClass):
        """Roll back to the recovery point, restart (again if interrupted), wait for nodes."""
        p, ledger = self.p, self.ledger
        from_memory = False
        self.recovering = True
        while True:
            phase, start = "restart", self.now
            again = None
            if cause.planned and ledger.progress > ledger.durable_at(self.now):
                # maintenance is announced: save (and persist) first, so no work is lost
                phase = "checkpoint"
                end = self.now + p.stall_s + p.persist_s
                again = None if self._reached(end) else (yield from self._until(end))
                if again is None:
                    ledger.forced_save()
                    if self.record:
                        self._log("checkpoint", start, self.now, work_s=ledger.progress, forced=True)
                    self.losses["checkpoint"] += self.now - start
                    phase, start = "restart", self.now
            else:
                from_memory = self._roll_back(cause)
            if again is None:
                phase = "spare_wait"
                self.waiting_for_nodes = True
                if self.pool is not None and self.missing:
                    again = yield from self._acquire_nodes()
                self.waiting_for_nodes = False
            if again is None:
                self.losses["spare_wait"] += self.now - start
                if self.record:
                    self._log("spare_wait", start, self.now, missing=self.missing)
                phase, start = "restart", self.now
                end = self.now + self.recovery.restart_s(cause, from_memory)
                again = None if self._reached(end) else (yield from self._until(end))
            if again is None:
                self.losses["restart"] += self.now - start
                if self.record:
                    self._log("restart", start, self.now, cause=cause.name, from_memory=from_memory)
                self.lost_nodes = 0  # the snapshots are whole again
                self.recovering = False
                if self.standby is not None:
                    self.standby.recovered()
                self._draw_speed(evicted=cause is EVICTION)
                return
            self.losses[phase] += self.now - start
            if self.record:
                self._log(phase, start, self.now, cause=cause.name, interrupted=True)
            cause = again

    def _roll_back(self, cause: FailureClass) -> bool:
        """Lose the work since the policy's recovery point (and past a corruption found late); whether the
        job resumes from peers' memory."""
        ledger = self.ledger
        before = ledger.progress
        level, from_memory = self.recovery.restore(ledger, self.now, cause, self.sdc_work is not None,
                                                   self.lost_nodes, self.fleet_rng)
        self.losses["lost_work"] += ledger.progress - level
        if self.standby is not None and self.standby.switching:
            ledger.step_back(level)  # the job did not die: its persists go on
        else:
            ledger.roll_back(level)
        if self.sdc_work is not None:
            # a found corruption: back to the last checkpoint taken before it happened
            clean = ledger.clean_checkpoint(min(self.sdc_work, ledger.durable))
            self.losses["silent_corruption"] += ledger.durable - clean
            ledger.progress = ledger.durable = ledger.memory_work = clean
            self.sdc_work = None
        if self.corrupt:  # reloading a checkpoint from before a corruption erases it
            self.corrupt = {k: w for k, w in self.corrupt.items() if w < ledger.progress}
        if before > ledger.progress and self.record:
            self._log("rollback", self.now, self.now + 1e-9, lost_work_s=before - ledger.progress,
                      work_s=ledger.progress)
        return from_memory

    def _acquire_nodes(self):
        """Take replacements from the spare pool (nodes are missing); wait for repairs unless the job may shrink.
        The interrupting class if an interruption comes first (nothing more is taken then), else None."""
        pool = self.pool
        assert pool is not None
        self.missing -= pool.take(self.now, self.missing)
        # shrinking keeps at least one replica: wait for the nodes beyond what the survivors can spare
        tolerable = math.floor((self.p.dp_replicas - 1) / self._replicas_per_node()) if self.p.shrink else 0
        if self.missing > tolerable:
            wanted = self.missing - tolerable
            end = pool.ready_at(self.now, wanted)
            again = None if self._reached(end) else (yield from self._until(end))
            if again is not None:
                return again
            pool.take(self.now, wanted)
            self.missing = tolerable
        return None

    def _replicas_per_node(self) -> float:
        """DP replicas one missing node takes out (several when a replica is smaller than a node)."""
        return max(1.0, 1 / self.p.nodes_per_replica)

    def run(self) -> ReplicaResult:
        p = self.p
        self._draw_speed()
        job = self.env.process(self.job())
        self.limit = p.horizon_s if p.horizon_s is not None else p.work_s * p.max_wall_factor
        self.env.run(until=simpy.AnyOf(self.env, [job, self.env.timeout(self.limit)]))
        wall = self.env.now
        work = p.work_s if self.done else self._work_at(wall)  # a stop at the horizon may fall inside a segment
        return ReplicaResult(wall, work, self.done, dict(self.by_category), dict(self.by_name), self.losses,
                             self.checkpoints, tuple(self.events), tuple(self.repairs),
                             self.recovery.memory_recoveries, self.recovery.storage_fallbacks,
                             self.standby.switch_overs if self.standby is not None else 0)


def simulate_run(params: RunParams, rng: np.random.Generator, record: bool = False) -> ReplicaResult:
    """One replica of the run; ``record`` keeps the timeline of events (for traces and plots)."""
    if params.work_s <= 0:
        return ReplicaResult(0.0, 0.0, True, {}, {}, dict.fromkeys(LOSSES, 0.0), 0)
    return Replica(params, rng, record).run()
