"""The run simulation: a whole training run as SimPy processes, advanced in segments between events.

One process trains: it runs compute up to the next checkpoint (or the end), takes the checkpoint's
blocking stall, and goes on; whole checkpoint cycles that end before the next failure are advanced in one
step (nothing random happens between failures). A second process draws failure arrivals (per
population, exponential or Weibull renewal, in wall-clock time: components fail whether the job trains
or restarts; while it waits for nodes only hardware failures count, as no software runs) and interrupts
it. On an interruption the work since the last *durable* checkpoint is lost (an asynchronous checkpoint
is durable only once its background persist has finished), the restart pipeline runs (and starts over if
another failure lands during it), evicted nodes go to repair (lognormal) and are replaced from the spare
pool (a SimPy container) — or the job waits for a repaired node, or shrinks to fewer data-parallel
replicas. Stragglers are drawn per (re)start: the job runs at the pace of its slowest node, so only
whether *any* node is slow matters (an order statistic, not a loop over nodes).

Optional realism (each off by default): a share of node-evicting events are correlated bursts that evict
several nodes; lemon nodes, as two node classes whose counts in the job change when a failed node is
swapped for an average one (the hardware rates follow by a time change of the arrival clock, not a loop
over nodes); silent data corruption found only after a detection latency, which rolls back to the last
durable checkpoint taken before the corruption (found arithmetically from the checkpoint cadence); and
transient fail-slow episodes, whose starts and ends cut training segments (speed changes are events).

Events per replica grow with the number of failures (and repairs), never with the number of GPUs; with
``record=True`` every checkpoint is its own event, for the timeline.
"""

from __future__ import annotations

import bisect
import heapq
import math
from collections import Counter
from dataclasses import dataclass, field

import numpy as np
import simpy

from sim.costs.reliability import FailureClass, RestartStages

LOSSES = ("lost_work", "restart", "spare_wait", "checkpoint", "slowdown", "silent_corruption", "fail_slow")


@dataclass(frozen=True, slots=True, kw_only=True)
class RunParams:
    """Everything one run replica needs, in seconds (built from a scenario by sim.analysis.runlevel)."""

    work_s: float  # failure-free compute time of the whole run (steps x step time)
    interval_s: float = math.inf  # compute time between checkpoints (τ)
    stall_s: float = 0.0  # blocking part of a checkpoint (δ)
    persist_s: float = 0.0  # background persist after the stall; 0 = durable at the end of the stall
    failures: tuple[FailureClass, ...] = ()
    weibull_shape: float | None = None  # None = exponential inter-arrivals
    inject_s: tuple[float, ...] = ()  # extra failures at these wall-clock times
    restart_s: float | None = None  # fixed detection-to-resumed time; None = ``stages``
    stages: RestartStages | None = None
    nodes: int = 1
    spares: int | None = None  # None = a replacement node is always available
    repair_mu_ln_s: float = 0.0  # lognormal repair time of an evicted node (ln seconds)
    repair_sigma_ln: float = 0.0
    shrink: bool = False  # continue with fewer DP replicas instead of waiting for nodes
    dp_replicas: int = 1
    nodes_per_replica: float = 1.0  # nodes one DP replica occupies (< 1: several replicas per node)
    straggler_fraction: float = 0.0
    straggler_slowdown: float = 0.0
    burst_fraction: float = 0.0  # share of node-evicting events that evict several nodes at once
    burst_continue: float = 0.5  # burst size: 2 nodes, then each further one with this probability
    burst_max_nodes: int = 8
    lemon_fraction: float = 0.0  # fleet share of lemon nodes (0: every node fails at the mean rate)
    lemon_multiplier: float = 1.0  # a lemon's hardware failure rate over the fleet mean
    sdc_detection_s: float = 0.0  # silent corruption found this long after it happens (0: at once)
    episode_rate_per_s: float = 0.0  # transient fail-slow episodes of the job
    episode_mu_ln_s: float = 0.0  # lognormal episode length (ln seconds)
    episode_sigma_ln: float = 0.0
    episode_slowdown: float = 0.0  # the job runs 1 / (1 + this) as fast while an episode lasts
    memory_replicas: int = 0  # in-memory checkpoints held by this many nodes each (0: storage only)
    memory_load_s: float = 0.0  # checkpoint load from peers' host memory (replaces the stages' load_s)
    horizon_s: float | None = None  # stop at this wall-clock time (a window of the run)
    max_wall_factor: float = 20.0  # give up (unfinished) past this many times ``work_s``
    max_failures: int = 1_000_000  # give up (unfinished) past this many failures (a runaway rate)

    def restart_time(self, cls: FailureClass, from_memory: bool = False) -> float:
        """Detection to resumed; from memory the stages' storage load is the peers' load."""
        if self.restart_s is not None:
            return self.restart_s
        assert self.stages is not None, "RunParams needs restart_s or stages"
        total = self.stages.total(cls.hang, cls.planned)
        return total - self.stages.load_s + self.memory_load_s if from_memory else total


@dataclass(frozen=True, slots=True)
class RunEvent:
    """One interval of the run's timeline (for traces and plots)."""

    kind: str  # train | checkpoint | restart | spare_wait | failure | corruption | rollback (args: lost_work_s)
    start_s: float
    end_s: float
    args: dict = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class ReplicaResult:
    """One simulated run."""

    wall_s: float
    work_s: float
    finished: bool
    interruptions: dict[str, int]  # by category
    interruptions_by_name: dict[str, int]
    losses_s: dict[str, float]  # LOSSES -> wall seconds
    checkpoints: int
    events: tuple[RunEvent, ...] = ()
    repairs: tuple[tuple[float, float], ...] = ()  # (start, end) wall seconds of every node out of service
    memory_recoveries: int = 0  # recoveries from peers' host memory (in-memory checkpoints)
    storage_fallbacks: int = 0  # recoveries from storage because every holder of a lost shard had failed

    @property
    def goodput(self) -> float:
        """Effective training time ratio: failure-free compute / wall clock (Llama 3's ETTR)."""
        return self.work_s / self.wall_s if self.wall_s > 0 else 1.0

    @property
    def interruption_count(self) -> int:
        return sum(self.interruptions.values())


_DETECTION = -(2**40)  # heap keys at or below this are detections of silent corruption


def _hardware(cls: FailureClass) -> bool:
    """Failures of the job's nodes themselves (their rate follows the nodes' lemon mix)."""
    return cls.blast_nodes > 0 and not cls.planned


class _Arrivals:
    """Merged renewal processes of every failure class, plus injected events and pending detections of
    silent corruption; the next one first. ``scale`` multiplies the hardware classes' rates: a change is a
    time change of their clocks (the residual time to each one's next event shrinks or stretches)."""

    def __init__(self, params: RunParams, rng: np.random.Generator, scale: float = 1.0) -> None:
        self.rng, self.k = rng, params.weibull_shape
        self.scale, self.scaled = scale, params.lemon_fraction > 0
        # Weibull scale such that the mean inter-arrival is 1/rate: mean = scale * Γ(1 + 1/k).
        self.gamma = math.gamma(1 + 1 / self.k) if self.k else 1.0
        self.heap: list[tuple[float, int, FailureClass]] = []
        for i, cls in enumerate(params.failures):
            heapq.heappush(self.heap, (self._gap(cls), i, cls))
        injected = FailureClass("injected", "injected", 0.0, 1, False)
        for j, t in enumerate(params.inject_s):
            heapq.heappush(self.heap, (t, -1 - j, injected))
        self.detections = 0

    def _gap(self, cls: FailureClass) -> float:
        # Planned maintenance is a schedule, not wear: always Poisson.
        if self.k is None or cls.planned:
            gap = self.rng.exponential(1 / cls.rate_per_s)
        else:
            gap = self.rng.weibull(self.k) / (cls.rate_per_s * self.gamma)
        return gap / self.scale if self.scaled and _hardware(cls) else gap

    def peek(self) -> float:
        return self.heap[0][0] if self.heap else math.inf

    def pop(self) -> tuple[float, FailureClass, int] | None:
        """The next event: (time, class, key); key <= _DETECTION marks the detection of a corruption."""
        if not self.heap:
            return None
        t, i, cls = heapq.heappop(self.heap)
        if i >= 0:
            heapq.heappush(self.heap, (t + self._gap(cls), i, cls))
        return t, cls, i

    def push_detection(self, t: float, cls: FailureClass) -> int:
        self.detections += 1
        key = _DETECTION - self.detections
        heapq.heappush(self.heap, (t, key, cls))
        return key

    def rescale(self, now: float, scale: float) -> None:
        """The hardware rates become ``scale`` x nominal from ``now`` on."""
        ratio = self.scale / scale
        self.heap = [(now + (t - now) * ratio, i, c) if i >= 0 and _hardware(c) else (t, i, c)
                     for t, i, c in self.heap]
        heapq.heapify(self.heap)
        self.scale = scale


class _Episodes:
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


class _Run:
    def __init__(self, params: RunParams, rng: np.random.Generator, record: bool) -> None:
        self.p, self.rng, self.record = params, rng, record
        self.limit = math.inf
        self.env = simpy.Environment()
        self.pool = simpy.Container(self.env, init=params.spares) if params.spares is not None else None
        self.progress = 0.0  # work done (s of failure-free compute)
        self.durable = 0.0  # work covered by a durable checkpoint
        self.pending: list[tuple[float, float]] = []  # (persist end time, work) of async checkpoints
        self.missing = 0  # evicted nodes not yet replaced
        self.speed = 1.0
        self.losses = dict.fromkeys(LOSSES, 0.0)
        self.by_category: Counter[str] = Counter()
        self.by_name: Counter[str] = Counter()
        self.checkpoints = 0
        self.events: list[RunEvent] = []
        self.done = False
        # lemons in the job (the rest are average-fleet nodes of the other class); 0 when the feature is off
        self.lemons = int(rng.binomial(params.nodes, params.lemon_fraction)) if params.lemon_fraction > 0 else 0
        self.arrivals = _Arrivals(params, rng, self._lemon_scale())
        self.episodes = _Episodes(params, rng.spawn(1)[0]) if params.episode_rate_per_s > 0 else None
        # fleet draws (repairs without a spare pool, which shards a burst takes) come from a generator of their
        # own, so turning them on leaves the failure draws alone (common random numbers across recoveries)
        self.fleet_rng = rng.spawn(1)[0]
        self.repairs: list[tuple[float, float]] = []
        self.memory = params.memory_replicas > 0
        self.memory_work = 0.0  # work held by the last in-memory snapshot
        self.lost_nodes = 0  # nodes evicted since the last completed recovery (their snapshots are gone)
        self.memory_recoveries = self.storage_fallbacks = 0
        self.corrupt: dict[int, float] = {}  # undetected corruptions: detection key -> work when it happened
        self.sdc_work: float | None = None  # a found corruption: roll back to a checkpoint at or before this work
        self.anchors = [0.0]  # work levels where the current line of checkpoints restarted its cadence
        self.next_failure = self.arrivals.peek()  # wall time of the next failure (inf: none)
        self.failure_count = 0
        self.waiting_for_nodes = False
        self.stop = self.env.event()  # triggered when the event budget is spent
        self.segment: tuple[float, float, float, float] | None = None  # (start, work at start, compute s, pace)

    # --- bookkeeping -------------------------------------------------------------------------
    def _log(self, kind: str, start: float, end: float, **args) -> None:
        if self.record and end > start:
            self.events.append(RunEvent(kind, start, end, args))

    def _durable_at(self, now: float) -> float:
        done = [w for t, w in self.pending if t <= now]
        if done:
            self.durable = max(self.durable, *done)
            self.pending = [(t, w) for t, w in self.pending if t > now]
        return self.durable

    def _normal_multiplier(self) -> float:
        """A non-lemon node's hardware rate over the fleet mean (the two classes average to 1)."""
        p = self.p
        return (1 - p.lemon_fraction * p.lemon_multiplier) / (1 - p.lemon_fraction)

    def _lemon_scale(self) -> float:
        """The job's hardware failure rate over the fleet mean, from its lemon count."""
        p = self.p
        if p.lemon_fraction <= 0:
            return 1.0
        return (self.lemons * p.lemon_multiplier + (p.nodes - self.lemons) * self._normal_multiplier()) / p.nodes

    def _swap_lemons(self, evicted: int, now: float) -> None:
        """Evicted nodes leave the job and average fleet nodes take their place: the job's rate changes.

        The node that failed is a lemon in proportion to the lemons' share of the job's hardware rate; the
        others of a burst are its neighbours, drawn by headcount.
        """
        p, rng = self.p, self.rng
        n, lem = p.nodes, self.lemons
        evicted = min(evicted, n)
        out = int(rng.random() * self._lemon_scale() * n < lem * p.lemon_multiplier)
        if evicted > 1:
            out += int(rng.hypergeometric(lem - out, n - lem - (1 - out), evicted - 1))
        self.lemons = lem - out + int(rng.binomial(evicted, p.lemon_fraction))
        self.arrivals.rescale(now, self._lemon_scale())

    def _blast(self, cls: FailureClass) -> int:
        """Nodes this event evicts: its class's blast radius, or a correlated burst."""
        p, blast = self.p, cls.blast_nodes
        if blast and not cls.planned and p.burst_fraction > 0 and self.rng.random() < p.burst_fraction:
            size = 1 + int(self.rng.geometric(1 - p.burst_continue))  # 2, 3, ... with ratio burst_continue
            blast = max(blast, min(p.burst_max_nodes, size))
        return blast

    def _work_at(self, now: float) -> float:
        """Work done by wall time ``now`` (inside a training segment, or where the job stands)."""
        if self.segment is None:
            return self.progress
        start, at, compute, pace = self.segment
        return at + min(now - start, compute) * pace

    def _clean_checkpoint(self, work: float) -> float:
        """The last checkpoint of the current line at or before ``work``: from the anchor below it, one
        every ``interval_s`` of work (arithmetic, so no event per checkpoint is kept)."""
        a = self.anchors[bisect.bisect_right(self.anchors, work) - 1]
        interval = self.p.interval_s
        if not math.isfinite(interval):
            return a
        return min(work, a + math.floor((work - a) / interval + 1e-9) * interval)

    def _anchor(self) -> None:
        """After a recovery the cadence restarts from the work the job resumes at."""
        while self.anchors[-1] > self.progress:
            self.anchors.pop()
        if self.anchors[-1] < self.progress:
            self.anchors.append(self.progress)

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
        speed = 1.0
        slow = p.straggler_fraction > 0 and p.straggler_slowdown > 0
        if slow and self.rng.binomial(p.nodes, p.straggler_fraction) > 0:
            speed = 1 / (1 + p.straggler_slowdown)
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
            if cls.silent and self.p.sdc_detection_s > 0 and key > _DETECTION:
                # the state is corrupted now; the job trains on until the corruption is found
                found = self.arrivals.push_detection(t + self.p.sdc_detection_s, cls)
                self.corrupt[found] = self._work_at(t)
                self._log("corruption", t, t + 1e-9, cause=cls.name, work_s=self.corrupt[found])
                continue
            if key <= _DETECTION:
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
            blast = self._blast(cls)
            if blast and self.p.lemon_fraction > 0:
                self._swap_lemons(blast, t)
            self.lost_nodes += blast
            if blast and self.pool is not None:
                self.missing += blast
                for _ in range(blast):
                    self.env.process(self.repair())
            elif blast:  # replacements are always there; the fleet still has the node in repair
                p = self.p
                self.repairs += [(t, t + float(self.fleet_rng.lognormal(p.repair_mu_ln_s, p.repair_sigma_ln)))
                                 for _ in range(blast)]
            self._log("failure", t, t + 1e-9, cause=cls.name, category=cls.category, nodes=blast)
            job.interrupt(cls)

    def repair(self):
        assert self.pool is not None
        duration = float(self.rng.lognormal(self.p.repair_mu_ln_s, self.p.repair_sigma_ln))
        self.repairs.append((self.env.now, self.env.now + duration))
        yield self.env.timeout(duration)
        self.pool.put(1)

    def _memory_survives(self) -> bool:
        """Whether every lost node's snapshot is still held by a peer: nodes hold each other's snapshots in
        groups of ``memory_replicas``; the nodes lost since the last recovery are a uniform draw of the job's."""
        r, lost, n = self.p.memory_replicas, self.lost_nodes, self.p.nodes
        if lost < r:
            return True
        if lost >= n:
            return False
        group = self.fleet_rng.choice(n, size=lost, replace=False) // r
        counts = np.bincount(group, minlength=(n + r - 1) // r)
        sizes = np.full(counts.size, r)
        sizes[-1] = n - r * (counts.size - 1)
        return not bool((counts >= sizes).any())

    def _save_done(self, now: float, work: float) -> None:
        """A save's stall ended at ``now`` holding ``work``: in memory at once; on storage after the persist
        (with an in-memory tier the persist takes the newest snapshot whenever storage is free)."""
        p = self.p
        self.memory_work = work
        if p.persist_s <= 0:
            self.durable = work
        elif not self.pending:
            self.pending.append((now + p.persist_s, work))

    def _quiet_persists(self, start: float, first: float, cycle: float, k: int, work0: float) -> None:
        """The storage ledger after ``k`` quiet cycles with an in-memory tier: saves never wait; persist j
        starts at the first save at or after the previous one's end (arithmetic, no event per save)."""
        p = self.p
        self.memory_work = work0 + k * p.interval_s
        if p.persist_s <= 0:
            self.durable = self.memory_work
            return
        t1 = start + first
        busy = max((t for t, _ in self.pending), default=-math.inf)
        j1 = 1 + max(0, math.ceil((busy - t1) / cycle)) if busy > t1 else 1
        if j1 > k:
            return
        step = max(1, math.ceil(p.persist_s / cycle))
        starts = 1 + (k - j1) // step
        last = j1 + (starts - 1) * step
        self.durable = max([self.durable, *(w for _, w in self.pending)])  # the one in flight ended by save j1
        if starts >= 2:
            self.durable = max(self.durable, work0 + (last - step) * p.interval_s)
        self.pending = [(t1 + (last - 1) * cycle + p.persist_s, work0 + last * p.interval_s)]

    def job(self):
        p, env = self.p, self.env
        next_ckpt = p.interval_s
        aligned = True  # the job stands at a checkpoint (or a restart): whole cycles lie ahead
        while True:
            self._durable_at(env.now)  # prune finished persists
            factor, change = self._pace()
            quiet = self._quiet_cycles(factor, change) if aligned else None
            if quiet is not None:
                k, duration, waits, *quiet_shape = quiet
                yield env.timeout(duration)  # ends before the next failure or pace change: never interrupted
                self.progress += k * p.interval_s
                self.checkpoints += k
                self.losses["checkpoint"] += k * p.stall_s + waits
                self._slow_losses(k * p.interval_s / (self.speed * factor), factor)
                if self.memory:
                    first, cycle = quiet_shape
                    self._quiet_persists(env.now - duration, first, cycle, k, self.progress - k * p.interval_s)
                elif p.persist_s > 0:  # the one before the last has persisted (a cycle outlasts a persist)
                    self.durable = self.progress - p.interval_s
                    self.pending = [(env.now + p.persist_s, self.progress)]
                else:
                    self.durable = self.progress
                next_ckpt = self.progress + p.interval_s
            seg_start, start_work = env.now, self.progress
            pace = self.speed * factor
            target = min(next_ckpt, p.work_s)
            compute = (target - start_work) / pace
            cut = seg_start + compute > change  # the pace changes first: train up to then, save nothing
            if cut:
                compute = change - seg_start
                target = start_work + compute * pace
            saves = target < p.work_s and not cut
            wait_persist = 0.0
            if saves and self.pending and not self.memory:
                # a save waits for the previous persist (one checkpoint in flight, as DCP async does)
                wait_persist = max(0.0, max(t for t, _ in self.pending) - (env.now + compute))
            stall = p.stall_s + wait_persist if saves else 0.0
            self.segment = (seg_start, start_work, compute, pace)
            try:
                yield env.timeout(compute + stall)
            except simpy.Interrupt as intr:
                self.segment = None
                ran = min(env.now - seg_start, compute)
                self.progress = start_work + ran * pace
                self._slow_losses(ran, factor)
                self.losses["checkpoint"] += max(0.0, env.now - seg_start - compute)
                self._log("train", seg_start, seg_start + ran, work_s=ran * pace)
                yield from self._recover(intr.cause)
                self._anchor()
                next_ckpt = self.progress + p.interval_s
                aligned = True
                continue
            self.segment = None
            self.progress = target
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
            if self.memory:
                self._durable_at(env.now)
                self._save_done(env.now, target)
            elif p.persist_s > 0:
                self.pending.append((env.now + p.persist_s, target))
            else:
                self.durable = target
            next_ckpt = target + p.interval_s

    def _quiet_cycles(self, factor: float, change: float) -> tuple[int, float, float, float, float] | None:
        """Whole checkpoint cycles that end before the next failure (or pace change at ``change``): (count,
        wall seconds, persist waits, first cycle, later cycles).

        Nothing random happens between failures, so k cycles of (compute, wait for the previous persist,
        stall) can be one timeout; events then grow with failures, not with checkpoints.
        """
        p, env = self.p, self.env
        interval = p.interval_s
        if self.record or not math.isfinite(interval):
            return None
        cycles_left = math.ceil((p.work_s - self.progress) / interval) - 1  # the last segment saves nothing
        if cycles_left < 2:
            return None
        compute = interval / (self.speed * factor)
        pending_end = max((t for t, _ in self.pending), default=-math.inf)
        first_wait = max(0.0, pending_end - (env.now + compute))
        wait = max(0.0, p.persist_s - compute) if p.persist_s > 0 else 0.0
        if self.memory:  # snapshots never wait for storage
            first_wait = wait = 0.0
        first, cycle = compute + first_wait + p.stall_s, compute + wait + p.stall_s
        budget = min(self.next_failure, self.limit, change) - env.now - first
        if budget < cycle:
            return None
        k = min(cycles_left, 1 + int(budget // cycle))
        return k, first + (k - 1) * cycle, first_wait + (k - 1) * wait, first, cycle

    def _recover(self, cause):
        """Roll back to the durable checkpoint, restart (again if interrupted), wait for nodes."""
        p, env = self.p, self.env
        from_memory = False
        while True:
            phase, start = "restart", env.now
            try:
                if cause.planned and self.progress > self._durable_at(env.now):
                    # maintenance is announced: save (and persist) first, so no work is lost
                    phase = "checkpoint"
                    yield env.timeout(p.stall_s + p.persist_s)
                    self.durable, self.pending = self.progress, []
                    self.memory_work = self.progress
                    self._log("checkpoint", start, env.now, work_s=self.progress, forced=True)
                    self.losses["checkpoint"] += env.now - start
                    phase, start = "restart", env.now
                else:
                    # in-flight persists die with the job: only finished ones count
                    before = self.progress
                    storage = self._durable_at(env.now)
                    # a corruption found late needs a checkpoint older than the newest snapshot: storage
                    from_memory = (self.memory and not cause.planned and self.sdc_work is None
                                   and self._memory_survives())
                    level = self.memory_work if from_memory else storage
                    if self.memory and not cause.planned:
                        self.memory_recoveries += from_memory
                        self.storage_fallbacks += not from_memory
                    self.losses["lost_work"] += self.progress - level
                    self.progress, self.pending = level, []
                    self.memory_work = level  # every node holds the state it resumes from
                    if self.sdc_work is not None:
                        # a found corruption: back to the last checkpoint taken before it happened
                        clean = self._clean_checkpoint(min(self.sdc_work, self.durable))
                        self.losses["silent_corruption"] += self.durable - clean
                        self.progress = self.durable = self.memory_work = clean
                        self.sdc_work = None
                    if self.corrupt:  # reloading a checkpoint from before a corruption erases it
                        self.corrupt = {k: w for k, w in self.corrupt.items() if w < self.progress}
                    if before > self.progress:
                        self._log("rollback", env.now, env.now + 1e-9, lost_work_s=before - self.progress,
                                  work_s=self.progress)
                phase = "spare_wait"
                self.waiting_for_nodes = True
                yield from self._acquire_nodes()
                self.waiting_for_nodes = False
                self.losses["spare_wait"] += env.now - start
                self._log("spare_wait", start, env.now, missing=self.missing)
                phase, start = "restart", env.now
                yield env.timeout(p.restart_time(cause, from_memory))
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
                             self.checkpoints, tuple(self.events), tuple(self.repairs), self.memory_recoveries,
                             self.storage_fallbacks)


def simulate_run(params: RunParams, rng: np.random.Generator, record: bool = False) -> ReplicaResult:
    """One replica of the run; ``record`` keeps the timeline of events (for traces and plots)."""
    if params.work_s <= 0:
        return ReplicaResult(0.0, 0.0, True, {}, {}, dict.fromkeys(LOSSES, 0.0), 0)
    return _Run(params, rng, record).run()
