"""One run replica: the training job as a SimPy process, interrupted by a failure process.

The job runs compute up to the next checkpoint (or the end), takes the checkpoint's blocking stall, and goes
on; whole checkpoint cycles that end before the next failure are advanced in one step (nothing random
happens between failures). The failure process takes interruptions from the arrivals (sim/engine/run/
arrivals.py; in wall-clock time: components fail whether the job trains or restarts; while it waits for
nodes only hardware failures count, as no software runs) and interrupts the job. On an interruption the
work since the recovery point is lost (sim/engine/run/ledger.py, sim/engine/run/recovery.py), the restart
pipeline runs (and starts over if another failure lands during it), evicted nodes go to repair (lognormal)
and are replaced from the spare pool (a SimPy container) — or the job waits for a repaired node, or shrinks
to fewer data-parallel replicas. Stragglers are drawn per (re)start and fail-slow episodes change the pace
(sim/engine/run/slow.py); correlated bursts and lemon nodes are in sim/engine/run/fleet.py. Silent data
corruption is found only after a detection latency and rolls back to the last checkpoint taken before it.

Events per replica grow with the number of failures (and repairs), never with the number of GPUs; with
``record=True`` every checkpoint is its own event, for the timeline.
"""

from __future__ import annotations

import math
from collections import Counter

import numpy as np
import simpy

from sim.costs.reliability import FailureClass
from sim.engine.run.arrivals import DETECTION, RenewalArrivals
from sim.engine.run.fleet import Lemons, blast
from sim.engine.run.ledger import CheckpointLedger
from sim.engine.run.params import LOSSES, ReplicaResult, RunEvent, RunParams
from sim.engine.run.recovery import recovery_policy
from sim.engine.run.slow import Episodes, straggler_speed


class Replica:
    def __init__(self, params: RunParams, rng: np.random.Generator, record: bool) -> None:
        self.p, self.rng, self.record = params, rng, record
        self.limit = math.inf
        self.env = simpy.Environment()
        self.pool = simpy.Container(self.env, init=params.spares) if params.spares is not None else None
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
        self.arrivals = RenewalArrivals(params, rng, self.lemons.scale())
        self.episodes = Episodes(params, rng.spawn(1)[0]) if params.episode_rate_per_s > 0 else None
        # fleet draws (repairs without a spare pool, which shards a burst takes) come from a generator of their
        # own, so turning them on leaves the failure draws alone (common random numbers across recoveries)
        self.fleet_rng = rng.spawn(1)[0]
        self.repairs: list[tuple[float, float]] = []
        self.recovery = recovery_policy(params)
        self.lost_nodes = 0  # nodes evicted since the last completed recovery (their snapshots are gone)
        self.corrupt: dict[int, float] = {}  # undetected corruptions: detection key -> work when it happened
        self.sdc_work: float | None = None  # a found corruption: roll back to a checkpoint at or before this work
        self.next_failure = self.arrivals.peek()  # wall time of the next failure (inf: none)
        self.failure_count = 0
        self.waiting_for_nodes = False
        self.stop = self.env.event()  # triggered when the event budget is spent
        self.segment: tuple[float, float, float, float] | None = None  # (start, work at start, compute s, pace)

    # --- bookkeeping -------------------------------------------------------------------------
    def _log(self, kind: str, start: float, end: float, **args) -> None:
        if self.record and end > start:
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
        factor = self.episodes.factor(self.env.now)
        return factor, self.episodes.next_change()

    def _slow_losses(self, ran: float, factor: float) -> None:
        """Split ``ran`` wall seconds of training at ``speed x factor`` into work and the two slow losses."""
        self.losses["slowdown"] += ran * factor * (1 - self.speed)
        self.losses["fail_slow"] += ran * (1 - factor)

    def _draw_speed(self) -> None:
        p = self.p
        speed = straggler_speed(p, self.rng)
        if p.shrink and self.missing:
            lost = min(p.dp_replicas, math.ceil(self.missing * self._replicas_per_node()))
            speed *= (p.dp_replicas - lost) / p.dp_replicas
        self.speed = speed

    # --- processes ---------------------------------------------------------------------------
    def failures(self, job: simpy.Process):
        while not self.done:
            nxt = self.arrivals.pop()
            if nxt is None:
                self.next_failure = math.inf
                return
            t, cls, key = nxt
            self.next_failure = t
            yield self.env.timeout(max(0.0, t - self.env.now))
            if self.done:
                return
            if cls.silent and self.p.sdc_detection_s > 0 and key > DETECTION:
                # the state is corrupted now; the job trains on until the corruption is found
                found = self.arrivals.push_detection(t + self.p.sdc_detection_s, cls)
                self.corrupt[found] = self._work_at(t)
                self._log("corruption", t, t + 1e-9, cause=cls.name, work_s=self.corrupt[found])
                continue
            if key <= DETECTION:
                work = self.corrupt.pop(key, None)
                if work is None:
                    continue  # a rollback to a checkpoint before the corruption already erased it
                self.sdc_work = work if self.sdc_work is None else min(self.sdc_work, work)
            self.failure_count += 1
            if self.failure_count > self.p.max_failures:
                self.stop.succeed()
                return
            if self.waiting_for_nodes and not cls.blast_nodes:
                continue  # a stopped job has no software to crash and no maintenance to interrupt
            self.by_category[cls.category] += 1
            self.by_name[cls.name] += 1
            evicted = blast(self.p, cls, self.rng)
            if evicted and self.lemons.on:
                self.arrivals.rescale(t, self.lemons.swap(evicted, self.rng))
            self.lost_nodes += evicted
            if evicted and self.pool is not None:
                self.missing += evicted
                for _ in range(evicted):
                    self.env.process(self.repair())
            elif evicted:  # replacements are always there; the fleet still has the node in repair
                p = self.p
                self.repairs += [(t, t + float(self.fleet_rng.lognormal(p.repair_mu_ln_s, p.repair_sigma_ln)))
                                 for _ in range(evicted)]
            self._log("failure", t, t + 1e-9, cause=cls.name, category=cls.category, nodes=evicted)
            job.interrupt(cls)

    def repair(self):
        assert self.pool is not None
        duration = float(self.rng.lognormal(self.p.repair_mu_ln_s, self.p.repair_sigma_ln))
        self.repairs.append((self.env.now, self.env.now + duration))
        yield self.env.timeout(duration)
        self.pool.put(1)

    def job(self):
        p, env, ledger = self.p, self.env, self.ledger
        next_ckpt = p.interval_s
        aligned = True  # the job stands at a checkpoint (or a restart): whole cycles lie ahead
        while True:
            ledger.durable_at(env.now)  # prune finished persists
            factor, change = self._pace()
            quiet = self._quiet_cycles(factor, change) if aligned else None
            if quiet is not None:
                k, duration, waits, first, cycle = quiet
                yield env.timeout(duration)  # ends before the next failure or pace change: never interrupted
                self.checkpoints += k
                self.losses["checkpoint"] += k * p.stall_s + waits
                self._slow_losses(k * p.interval_s / (self.speed * factor), factor)
                ledger.quiet(env.now - duration, env.now, k, first, cycle)
                next_ckpt = ledger.progress + p.interval_s
            seg_start, start_work = env.now, ledger.progress
            pace = self.speed * factor
            target = min(next_ckpt, p.work_s)
            compute = (target - start_work) / pace
            cut = seg_start + compute > change  # the pace changes first: train up to then, save nothing
            if cut:
                compute = change - seg_start
                target = start_work + compute * pace
            saves = target < p.work_s and not cut
            # a save waits for the previous persist (one checkpoint in flight, as DCP async does)
            stall = p.stall_s + ledger.persist_wait(env.now + compute) if saves else 0.0
            self.segment = (seg_start, start_work, compute, pace)
            try:
                yield env.timeout(compute + stall)
            except simpy.Interrupt as intr:
                self.segment = None
                ran = min(env.now - seg_start, compute)
                ledger.progress = start_work + ran * pace
                self._slow_losses(ran, factor)
                self.losses["checkpoint"] += max(0.0, env.now - seg_start - compute)
                self._log("train", seg_start, seg_start + ran, work_s=ran * pace)
                yield from self._recover(intr.cause)
                ledger.anchor()
                next_ckpt = ledger.progress + p.interval_s
                aligned = True
                continue
            self.segment = None
            ledger.progress = target
            self._slow_losses(compute, factor)
            self._log("train", seg_start, seg_start + compute, work_s=target - start_work)
            aligned = not cut
            if cut:
                continue
            if target >= p.work_s:
                self.done = True
                return
            self.losses["checkpoint"] += stall
            self._log("checkpoint", env.now - stall, env.now, work_s=target)
            self.checkpoints += 1
            ledger.saved(env.now, target)
            next_ckpt = target + p.interval_s

    def _quiet_cycles(self, factor: float, change: float) -> tuple[int, float, float, float, float] | None:
        """Whole checkpoint cycles that end before the next failure (or pace change at ``change``): (count,
        wall seconds, persist waits, first cycle, later cycles).

        Nothing random happens between failures, so k cycles of (compute, wait for the previous persist,
        stall) can be one timeout; events then grow with failures, not with checkpoints.
        """
        p, env, ledger = self.p, self.env, self.ledger
        interval = p.interval_s
        if self.record or not math.isfinite(interval):
            return None
        cycles_left = math.ceil((p.work_s - ledger.progress) / interval) - 1  # the last segment saves nothing
        if cycles_left < 2:
            return None
        compute = interval / (self.speed * factor)
        first_wait = max(0.0, ledger.pending_end() - (env.now + compute))
        wait = max(0.0, p.persist_s - compute) if p.persist_s > 0 else 0.0
        if ledger.memory:  # snapshots never wait for storage
            first_wait = wait = 0.0
        first, cycle = compute + first_wait + p.stall_s, compute + wait + p.stall_s
        budget = min(self.next_failure, self.limit, change) - env.now - first
        if budget < cycle:
            return None
        k = min(cycles_left, 1 + int(budget // cycle))
        return k, first + (k - 1) * cycle, first_wait + (k - 1) * wait, first, cycle

    def _recover(self, cause: FailureClass):
        """Roll back to the recovery point, restart (again if interrupted), wait for nodes."""
        p, env, ledger = self.p, self.env, self.ledger
        from_memory = False
        while True:
            phase, start = "restart", env.now
            try:
                if cause.planned and ledger.progress > ledger.durable_at(env.now):
                    # maintenance is announced: save (and persist) first, so no work is lost
                    phase = "checkpoint"
                    yield env.timeout(p.stall_s + p.persist_s)
                    ledger.forced_save()
                    self._log("checkpoint", start, env.now, work_s=ledger.progress, forced=True)
                    self.losses["checkpoint"] += env.now - start
                    phase, start = "restart", env.now
                else:
                    from_memory = self._roll_back(cause)
                phase = "spare_wait"
                self.waiting_for_nodes = True
                yield from self._acquire_nodes()
                self.waiting_for_nodes = False
                self.losses["spare_wait"] += env.now - start
                self._log("spare_wait", start, env.now, missing=self.missing)
                phase, start = "restart", env.now
                yield env.timeout(self.recovery.restart_s(cause, from_memory))
                self.losses["restart"] += env.now - start
                self._log("restart", start, env.now, cause=cause.name, from_memory=from_memory)
                self.lost_nodes = 0  # the snapshots are whole again
                self._draw_speed()
                return
            except simpy.Interrupt as again:
                self.waiting_for_nodes = False
                self.losses[phase] += env.now - start
                self._log(phase, start, env.now, cause=cause.name, interrupted=True)
                cause = again.cause

    def _roll_back(self, cause: FailureClass) -> bool:
        """Lose the work since the policy's recovery point (and past a corruption found late); whether the
        job resumes from peers' memory."""
        env, ledger = self.env, self.ledger
        before = ledger.progress
        level, from_memory = self.recovery.restore(ledger, env.now, cause, self.sdc_work is not None,
                                                   self.lost_nodes, self.fleet_rng)
        self.losses["lost_work"] += ledger.progress - level
        ledger.roll_back(level)
        if self.sdc_work is not None:
            # a found corruption: back to the last checkpoint taken before it happened
            clean = ledger.clean_checkpoint(min(self.sdc_work, ledger.durable))
            self.losses["silent_corruption"] += ledger.durable - clean
            ledger.progress = ledger.durable = ledger.memory_work = clean
            self.sdc_work = None
        if self.corrupt:  # reloading a checkpoint from before a corruption erases it
            self.corrupt = {k: w for k, w in self.corrupt.items() if w < ledger.progress}
        if before > ledger.progress:
            self._log("rollback", env.now, env.now + 1e-9, lost_work_s=before - ledger.progress,
                      work_s=ledger.progress)
        return from_memory

    def _acquire_nodes(self):
        """Take replacements from the spare pool; wait for repairs unless the job may shrink."""
        if self.pool is None or not self.missing:
            return
        take = min(self.missing, self.pool.level)
        if take:
            yield self.pool.get(take)
            self.missing -= take
        # shrinking keeps at least one replica: wait for the nodes beyond what the survivors can spare
        tolerable = math.floor((self.p.dp_replicas - 1) / self._replicas_per_node()) if self.p.shrink else 0
        if self.missing > tolerable:
            request = self.pool.get(self.missing - tolerable)
            try:
                yield request
            except simpy.Interrupt:
                request.cancel()
                raise
            self.missing = tolerable

    def _replicas_per_node(self) -> float:
        """DP replicas one missing node takes out (several when a replica is smaller than a node)."""
        return max(1.0, 1 / self.p.nodes_per_replica)

    def run(self) -> ReplicaResult:
        p = self.p
        self._draw_speed()
        job = self.env.process(self.job())
        self.env.process(self.failures(job))
        self.limit = p.horizon_s if p.horizon_s is not None else p.work_s * p.max_wall_factor
        self.env.run(until=simpy.AnyOf(self.env, [job, self.env.timeout(self.limit), self.stop]))
        wall = self.env.now
        work = p.work_s if self.done else self._work_at(wall)  # a stop at the horizon may fall inside a segment
        return ReplicaResult(wall, work, self.done, dict(self.by_category), dict(self.by_name), self.losses,
                             self.checkpoints, tuple(self.events), tuple(self.repairs),
                             self.recovery.memory_recoveries, self.recovery.storage_fallbacks)


def simulate_run(params: RunParams, rng: np.random.Generator, record: bool = False) -> ReplicaResult:
    """One replica of the run; ``record`` keeps the timeline of events (for traces and plots)."""
    if params.work_s <= 0:
        return ReplicaResult(0.0, 0.0, True, {}, {}, dict.fromkeys(LOSSES, 0.0), 0)
    return Replica(params, rng, record).run()
