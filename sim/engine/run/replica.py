"""One run replica: the training job as one process that meets its interruptions in time order.

The job runs compute up to the next checkpoint (or the end), takes the checkpoint's blocking stall, and goes
on; whole checkpoint cycles that end before the next failure are advanced in one step (nothing random
happens between failures). Interruptions come from the arrivals (sim/engine/run/arrivals.py), in wall-clock
time: components fail whether the job trains or restarts; while it waits for nodes only hardware failures
count, as no software runs. The next one is always known, so every phase of the job (a training segment,
a forced save, a spare wait, a restart) runs to its end or to the next interruption, whichever comes first:
no interrupt, no second process. With nothing to interact with, the job needs no event queue (SimPy's queue
was ~6 % of the run's CPU): its clock jumps from one event to the next. On an interruption the work since
the recovery point is lost (sim/engine/run/ledger.py, sim/engine/run/recovery.py), the restart pipeline runs
(and starts over if another failure lands during it), evicted nodes go to repair (lognormal) and are replaced
from the spare pool — or the job waits for a repaired node, or shrinks to fewer data-parallel replicas
(sim/engine/run/fleet.py, with correlated bursts and lemon nodes). Stragglers are drawn per (re)start and fail-slow
episodes change the pace (sim/engine/run/slow.py). Silent data corruption is found only after a detection
latency and rolls back to the last checkpoint taken before it.

Events per replica grow with the number of failures, never with the number of GPUs or repairs; with
``record=True`` every checkpoint is its own event, for the timeline.
"""

from __future__ import annotations

import contextlib
import math

import numpy as np

from sim.costs.reliability import FailureClass
from sim.engine.run.arrivals import DETECTION, RenewalArrivals
from sim.engine.run.fleet import Lemons, SparePool, blast
from sim.engine.run.ledger import CheckpointLedger
from sim.engine.run.params import LOSSES, ReplicaResult, RunEvent, RunParams
from sim.engine.run.recovery import StorageReload, recovery_policy
from sim.engine.run.slow import Episodes, straggler_speed
from sim.engine.run.standby import WarmStandby
from sim.engine.run.traced import TracedArrivals

#: Swapping slow nodes for spares: announced by the straggler detector, so a save comes first and no detection
#: or diagnosis is paid (a planned stop's restart).
EVICTION = FailureClass("straggler_eviction", "straggler", 0.0, 0, False, planned=True)


class _Stop(Exception):
    """The replica ends unfinished where it stands: the wall-time limit is reached, or the failure budget
    (``max_failures``) is spent."""


class Replica:
    def __init__(self, params: RunParams, rng: np.random.Generator, record: bool) -> None:
        self.p, self.rng, self.record = params, rng, record
        self.limit = math.inf
        self.pool = SparePool(params.spares) if params.spares is not None else None
        self.ledger = CheckpointLedger(params)
        self.missing = 0  # evicted nodes not yet replaced
        self.speed = 1.0
        self.losses = dict.fromkeys(LOSSES, 0.0)
        self.by_category: dict[str, int] = {}  # interruptions (plain dicts: a Counter's += is slower)
        self.by_name: dict[str, int] = {}
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
        # an evicted node's repair time (lognormal): from the job's generator with a pool (the job may wait for it)
        self.repair_draw = (rng if self.pool is not None else self.fleet_rng).lognormal
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
        # a per-node share: the slow nodes are drawn anew at each (re)start (an order statistic: only whether any
        # node is slow matters, so one binomial draw, not a loop over nodes)
        self.redraw_slow = (params.straggler_count is None and params.straggler_fraction > 0
                            and params.straggler_slowdown > 0)
        self.evict_at = math.inf  # when the straggler detector swaps the slow nodes out
        self.bursts = params.burst_fraction > 0
        # missing nodes the job runs without when it may shrink: it keeps at least one replica
        self.tolerable = math.floor((params.dp_replicas - 1) / self._replicas_per_node()) if params.shrink else 0
        self.slow_speed = straggler_speed(params, 1)  # the job's speed while any node is slow
        self.now = 0.0  # the job's clock (wall seconds)

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

    def _draw_speed(self, evicted: bool = False) -> None:
        """The job's speed from this (re)start: stragglers (none just after an eviction; an exact count
        stays, a per-node probability is drawn anew) and the replicas lost when shrunk."""
        p = self.p
        if evicted:
            self.slow_nodes = 0
        elif self.redraw_slow:
            self.slow_nodes = self.rng.binomial(p.nodes, p.straggler_fraction)
        slow = self.slow_nodes > 0
        speed = self.slow_speed if slow else 1.0
        if p.shrink and self.missing:
            lost = min(p.dp_replicas, math.ceil(self.missing * self._replicas_per_node()))
            speed *= (p.dp_replicas - lost) / p.dp_replicas
        self.speed = speed
        evict_s = p.straggler_evict_s
        self.evict_at = self.now + evict_s if slow and evict_s is not None and p.straggler_slowdown > 0 else math.inf

    # --- interruptions -----------------------------------------------------------------------
    def _count(self, cls: FailureClass) -> None:
        """One interruption of ``cls``."""
        by_category, by_name = self.by_category, self.by_name
        by_category[cls.category] = by_category.get(cls.category, 0) + 1
        by_name[cls.name] = by_name.get(cls.name, 0) + 1

    def _pop(self) -> None:
        """Draw the next interruption (its class's next gap is drawn now: the draws stay in time order)."""
        event = self.next_event = self.arrivals.pop()
        self.next_failure = event[0] if event is not None else math.inf

    def _until(self, end: float) -> FailureClass | None:
        """Advance the job's clock to ``end`` or the next interruption, whichever comes first; the interrupting
        class, or None once ``end`` is reached. Events that do not interrupt (a corruption happening, a software
        failure while the job waits for nodes) are applied on the way.

        A replica is one process with nothing to interact with, so its clock simply jumps from one event to the
        next (no event queue): a phase that ends before the next interruption is reached at once (nothing random
        happens in between), unless it runs past the wall-time limit, where the run stops.
        """
        while self.next_failure < end:
            t = self.next_failure
            if t > self.limit:
                self._stop_at_limit()
            if t > self.now:
                self.now = t
            cause = self._apply()
            if cause is not None:
                return cause
        if end > self.limit:
            self._stop_at_limit()
        self.now = end
        return None

    def _stop_at_limit(self) -> None:
        """The run stops at the wall-time limit, in the middle of whatever the job was doing."""
        self.now = self.limit
        raise _Stop

    def _apply(self) -> FailureClass | None:
        """Apply the event due now and draw the next one; its class if it interrupts the job."""
        assert self.next_event is not None
        t, cls, key = self.next_event
        p = self.p
        if key <= DETECTION:
            work = self.corrupt.pop(key, None)
            if work is None:
                self._pop()
                return None  # a rollback to a checkpoint before the corruption already erased it
            self.sdc_work = work if self.sdc_work is None else min(self.sdc_work, work)
        elif cls.silent and p.sdc_detection_s > 0:
            # the state is corrupted now; the job trains on until the corruption is found
            found = self.arrivals.push_detection(t + p.sdc_detection_s, cls)
            self.corrupt[found] = self._work_at(t)
            if self.record:
                self._log("corruption", t, t + 1e-9, cause=cls.name, work_s=self.corrupt[found])
            self._pop()
            return None
        self.failure_count += 1
        if self.failure_count > p.max_failures:
            raise _Stop
        evicted = cls.blast_nodes
        if self.waiting_for_nodes and not evicted:
            self._pop()
            return None  # a stopped job has no software to crash and no maintenance to interrupt
        self._count(cls)
        if evicted:
            if self.bursts:
                evicted = blast(p, cls, self.rng)
            if self.lemons.on:
                self.arrivals.rescale(t, self.lemons.swap(evicted, self.rng))
            self.lost_nodes += evicted
        self._pop()
        # warm standbys cover the evicted nodes if enough are there (the pool then owes the standbys, not the job)
        covered = self.standby is not None and self.standby.take(evicted, cls, self.recovering, self.pool, t,
                                                                          self.missing > 0)
        if evicted:
            self._to_repair(t, evicted, covered, cls.repair_s)
        if self.record:
            self._log("failure", t, t + 1e-9, cause=cls.name, category=cls.category, nodes=evicted)
        return cls

    def _to_repair(self, t: float, nodes: int, covered: bool = False, durations: tuple[float, ...] = ()) -> None:
        """``nodes`` leave the job at ``t`` for repair (for ``durations``, a trace's, else drawn from the law);
        with a pool the job needs as many replacements, unless warm standbys ``covered`` them. Without a pool
        replacements are always there, and the fleet still has the node in repair (drawn from the fleet's
        generator)."""
        pool, repairs = self.pool, self.repairs
        if pool is not None and nodes and not covered:
            self.missing += nodes
        draw, p = self.repair_draw, self.p
        for i in range(min(nodes, len(durations)) if durations else nodes):
            end = t + (durations[i] if durations else draw(p.repair_mu_ln_s, p.repair_sigma_ln))
            repairs.append((t, end))
            if pool is not None:
                pool.repaired_at(end)

    def _evict_stragglers(self) -> None:
        """The straggler detector fired: swap the slow nodes for spares (they go to repair) and restart."""
        nodes = self.slow_nodes
        self._count(EVICTION)
        self._to_repair(self.now, nodes)
        if self.record:
            self._log("failure", self.now, self.now + 1e-9, cause=EVICTION.name, category=EVICTION.category,
                      nodes=nodes)
        self._recover(EVICTION)

    # --- the job -----------------------------------------------------------------------------
    def _train(self) -> None:
        """The job: training segments up to the next checkpoint, the end, a pace change or an interruption.

        Whole checkpoint cycles that end before the next failure (or pace change) are advanced in one step:
        nothing random happens between failures, so k cycles of (compute, wait for the previous persist, stall)
        are arithmetic, and events grow with failures, not with checkpoints. This loop runs once or twice per
        interruption, so it keeps what it reads in locals.
        """
        p, ledger, losses, episodes, record = self.p, self.ledger, self.losses, self.episodes, self.record
        interval, work_s, stall_s, persist_s = p.interval_s, p.work_s, p.stall_s, p.persist_s
        memory = ledger.memory  # snapshots to host memory never wait for storage
        cycles = not record and math.isfinite(interval)  # with record=True every checkpoint is its own event
        # the fail-slow factor on the job's speed, valid until the episodes next change it; the shares of
        # training time lost to it and to stragglers or shrinking (a loss term that is exactly 0 is not added)
        factor, factor_until = 1.0, -math.inf if episodes is not None else math.inf
        fail_loss, slow_loss = 0.0, 1 - self.speed
        self._pop()
        next_ckpt = interval
        aligned = True  # the job stands at a checkpoint (or a restart): whole cycles lie ahead
        while True:
            now, evict_at = self.now, self.evict_at
            if now >= evict_at:
                self._evict_stragglers()
                slow_loss = 1 - self.speed
                ledger.anchor()
                next_ckpt = ledger.progress + interval
                aligned = True
                continue
            if now >= factor_until:
                assert episodes is not None  # factor_until is finite only with episodes
                factor = episodes.factor(now)
                factor_until = episodes.next_change()
                fail_loss = 1 - factor
            change = evict_at if evict_at < factor_until else factor_until  # the pace changes then
            pace = self.speed * factor
            if aligned and cycles:
                # cycles before the end: ceil(left) - 1 (the last segment saves nothing), compared without ceil
                left = (work_s - ledger.progress) / interval
                if left > 2.0:
                    compute = interval / pace
                    if memory:
                        first = cycle = compute + stall_s
                        first_wait = wait = 0.0
                    else:
                        first_wait = ledger.persist_wait(now + compute)
                        wait = max(0.0, persist_s - compute) if persist_s > 0 else 0.0
                        first, cycle = compute + first_wait + stall_s, compute + wait + stall_s
                    horizon = self.next_failure
                    if self.limit < horizon:
                        horizon = self.limit
                    if change < horizon:
                        horizon = change
                    budget = horizon - now - first
                    if budget >= cycle:
                        k = 1 + int(budget // cycle)
                        if left <= k:
                            k = math.ceil(left) - 1
                        duration = first + (k - 1) * cycle
                        now = self.now = now + duration  # ends before the next failure, pace change or limit
                        self.checkpoints += k
                        # the persist waits are 0 with snapshots in memory (a term of 0 is not added)
                        losses["checkpoint"] += k * stall_s if memory else k * stall_s + (first_wait + (k - 1) * wait)
                        if slow_loss or fail_loss:
                            self._slowed(k * interval / pace, factor, slow_loss, fail_loss)
                        ledger.quiet(now - duration, now, k, first, cycle)
                        next_ckpt = ledger.progress + interval
            seg_start = now
            start_work = ledger.progress
            target = work_s if work_s < next_ckpt else next_ckpt
            compute = (target - start_work) / pace
            cut = seg_start + compute > change  # the pace changes first: train up to then, save nothing
            if cut:
                compute = change - seg_start
                target = start_work + compute * pace
            if target < work_s and not cut:
                # a save waits for the previous persist (one checkpoint in flight, as DCP async does)
                stall = stall_s if memory else stall_s + ledger.persist_wait(seg_start + compute)
            else:
                stall = 0.0
            end = seg_start + compute + stall
            if self.next_failure < end or end > self.limit:
                self.segment = (seg_start, start_work, compute, pace)  # for the work done when an event comes
                cause = self._until(end)
                self.segment = None
            else:  # nothing in between (the common case): no loop over events
                self.now, cause = end, None
            if cause is not None:
                ran = self.now - seg_start
                if compute < ran:
                    ran = compute
                ledger.progress = start_work + ran * pace
                if slow_loss or fail_loss:
                    self._slowed(ran, factor, slow_loss, fail_loss)
                stalled = self.now - seg_start - compute  # interrupted during the save's stall
                if stalled > 0.0:
                    losses["checkpoint"] += stalled
                if record:
                    self._log("train", seg_start, seg_start + ran, work_s=ran * pace)
                self._recover(cause)
                slow_loss = 1 - self.speed
                ledger.anchor()
                next_ckpt = ledger.progress + interval
                aligned = True
                continue
            ledger.progress = target
            if slow_loss or fail_loss:
                self._slowed(compute, factor, slow_loss, fail_loss)
            if record:
                self._log("train", seg_start, seg_start + compute, work_s=target - start_work)
            aligned = not cut
            if cut:
                continue
            if target >= work_s:
                self.done = True
                return
            losses["checkpoint"] += stall
            if record:
                self._log("checkpoint", end - stall, end, work_s=target)
            self.checkpoints += 1
            ledger.saved(end, target)
            next_ckpt = target + interval

    def _slowed(self, ran: float, factor: float, slow_loss: float, fail_loss: float) -> None:
        """Training time lost in ``ran`` s of training at fail-slow ``factor``: to stragglers or shrinking
        (``slow_loss``, the share of the job's speed they take) and to fail-slow episodes (``fail_loss``).
        A loss that is exactly 0 is not added (the sums stay as they were without the feature)."""
        losses = self.losses
        if slow_loss:
            losses["slowdown"] += ran * factor * slow_loss
        if fail_loss:
            losses["fail_slow"] += ran * fail_loss

    def _recover(self, cause: FailureClass) -> None:
        """Roll back to the recovery point, restart (again if interrupted), wait for nodes."""
        p, ledger, losses, record = self.p, self.ledger, self.losses, self.record
        from_memory = False
        self.recovering = True
        while True:
            phase, start = "restart", self.now
            again = None
            if cause.planned and ledger.progress > ledger.durable_at(start):
                # maintenance is announced: save (and persist) first, so no work is lost
                phase = "checkpoint"
                again = self._until(start + p.stall_s + p.persist_s)
                if again is None:
                    ledger.forced_save()
                    if record:
                        self._log("checkpoint", start, self.now, work_s=ledger.progress, forced=True)
                    losses["checkpoint"] += self.now - start
                    phase, start = "restart", self.now
            else:
                from_memory = self._roll_back(cause)
            if again is None and self.missing and self.pool is not None:
                phase = "spare_wait"
                self.waiting_for_nodes = True
                again = self._acquire_nodes()
                self.waiting_for_nodes = False
                if again is None:
                    losses["spare_wait"] += self.now - start
                    if record:
                        self._log("spare_wait", start, self.now, missing=self.missing)
                    phase, start = "restart", self.now
            if again is None:
                again = self._until(start + self.recovery.restart_s(cause, from_memory))
            if again is None:
                losses["restart"] += self.now - start
                if record:
                    self._log("restart", start, self.now, cause=cause.name, from_memory=from_memory)
                self.lost_nodes = 0  # the snapshots are whole again
                self.recovering = False
                if self.standby is not None:
                    self.standby.recovered()
                self._draw_speed(evicted=cause is EVICTION)
                return
            losses[phase] += self.now - start
            if record:
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

    def _acquire_nodes(self) -> FailureClass | None:
        """Take replacements from the spare pool (nodes are missing); wait for repairs unless the job may shrink.
        The interrupting class if an interruption comes first (nothing more is taken then), else None."""
        pool = self.pool
        assert pool is not None
        self.missing -= pool.take(self.now, self.missing)
        tolerable = self.tolerable
        if self.missing > tolerable:
            wanted = self.missing - tolerable
            again = self._until(pool.ready_at(self.now, wanted))
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
        self.limit = p.horizon_s if p.horizon_s is not None else p.work_s * p.max_wall_factor
        with contextlib.suppress(_Stop):  # the run stops unfinished where it stands
            self._train()
        wall = self.now
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
