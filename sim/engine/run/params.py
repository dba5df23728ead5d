"""What one run replica is given (``RunParams``, validated at construction) and what it returns."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from sim.costs.failure_trace import TraceSchedule
from sim.costs.reliability import FailureClass, RestartStages

LOSSES = ("lost_work", "restart", "spare_wait", "checkpoint", "slowdown", "silent_corruption", "fail_slow")


@dataclass(frozen=True, slots=True, kw_only=True)
class RunParams:
    """Everything one run replica needs, in seconds (built from a scenario by sim.analysis.runlevel).

    Checked when built: a bad value raises ``ValueError`` naming the field (scenarios are validated before
    they get here, so this guards the engine's own callers: tests, benchmarks, the interval search).
    """

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
    straggler_count: int | None = None  # exactly this many slow nodes, kept until evicted (None: the fraction)
    straggler_evict_s: float | None = None  # swap slow nodes for spares after this long slow (None: never)
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
    trace: TraceSchedule | None = None  # a failure trace's events, beside ``failures`` (sim/costs/failure_trace.py)
    step_s: float = 0.0  # one optimizer step: what a standby switch-over loses at most (0: nothing)
    standby_nodes: int = 0  # warm standby nodes (0: none)
    standby_switch_s: float = 0.0  # failure to training resumed on a standby
    horizon_s: float | None = None  # stop at this wall-clock time (a window of the run)
    max_wall_factor: float = 20.0  # give up (unfinished) past this many times ``work_s``
    max_failures: int = 1_000_000  # give up (unfinished) past this many failures (a runaway rate)

    def __post_init__(self) -> None:
        problems = _problems(self)
        if problems:
            raise ValueError("RunParams: " + "; ".join(problems))

    def restart_time(self, cls: FailureClass, from_memory: bool = False) -> float:
        """Detection to resumed; from memory the stages' storage load is the peers' load."""
        if self.restart_s is not None:
            return self.restart_s
        assert self.stages is not None, "RunParams needs restart_s or stages"
        total = self.stages.total(cls.hang, cls.planned)
        return total - self.stages.load_s + self.memory_load_s if from_memory else total


_NON_NEGATIVE = ("work_s", "stall_s", "persist_s", "repair_sigma_ln", "straggler_slowdown", "sdc_detection_s",
                 "episode_rate_per_s", "episode_sigma_ln", "episode_slowdown", "memory_load_s", "step_s",
                 "standby_switch_s")
_FRACTIONS = ("straggler_fraction", "burst_fraction", "burst_continue", "lemon_fraction")


def _problems(p: RunParams) -> list[str]:
    """Every field that is out of its range, as 'field: why'."""
    out = [f"{name}: {getattr(p, name)} must be >= 0" for name in _NON_NEGATIVE if not getattr(p, name) >= 0]
    out += [f"{name}: {getattr(p, name)} must be in [0, 1]" for name in _FRACTIONS
            if not 0 <= getattr(p, name) <= 1]
    if not p.interval_s > 0:
        out.append(f"interval_s: {p.interval_s} must be > 0 (inf: no checkpoints)")
    if p.weibull_shape is not None and not p.weibull_shape > 0:
        out.append(f"weibull_shape: {p.weibull_shape} must be > 0")
    if p.restart_s is not None and not p.restart_s >= 0:
        out.append(f"restart_s: {p.restart_s} must be >= 0")
    if (p.failures or p.inject_s or p.trace) and p.restart_s is None and p.stages is None:
        out.append("restart_s: failures need restart_s or stages")
    if any(not c.rate_per_s >= 0 or c.blast_nodes < 0 for c in p.failures):
        out.append("failures: rates and blast radii must be >= 0")
    if any(not t >= 0 for t in p.inject_s):
        out.append("inject_s: times must be >= 0")
    if p.nodes < 1 or p.dp_replicas < 1:
        out.append(f"nodes, dp_replicas: {p.nodes}, {p.dp_replicas} must be >= 1")
    if p.spares is not None and p.spares < 0:
        out.append(f"spares: {p.spares} must be >= 0")
    if not p.nodes_per_replica > 0:
        out.append(f"nodes_per_replica: {p.nodes_per_replica} must be > 0")
    if p.burst_max_nodes < 1:
        out.append(f"burst_max_nodes: {p.burst_max_nodes} must be >= 1")
    if p.lemon_multiplier < 1 or (p.lemon_fraction > 0 and p.lemon_fraction * p.lemon_multiplier >= 1):
        out.append(f"lemon_multiplier: {p.lemon_multiplier} must be >= 1 and x lemon_fraction < 1")
    if p.lemon_fraction >= 1:
        out.append("lemon_fraction: must be < 1 (the other nodes balance the fleet mean)")
    if p.straggler_count is not None and p.straggler_count < 0:
        out.append(f"straggler_count: {p.straggler_count} must be >= 0")
    if p.straggler_evict_s is not None and not p.straggler_evict_s >= 0:
        out.append(f"straggler_evict_s: {p.straggler_evict_s} must be >= 0")
    if p.standby_nodes < 0:
        out.append(f"standby_nodes: {p.standby_nodes} must be >= 0")
    if p.memory_replicas < 0:
        out.append(f"memory_replicas: {p.memory_replicas} must be >= 0")
    if p.horizon_s is not None and not p.horizon_s >= 0:
        out.append(f"horizon_s: {p.horizon_s} must be >= 0")
    if not p.max_wall_factor > 0 or p.max_failures < 0:
        out.append("max_wall_factor, max_failures: must be > 0 and >= 0")
    return out


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
    standby_switch_overs: int = 0  # recoveries by switching to warm standby nodes

    @property
    def goodput(self) -> float:
        """Effective training time ratio: failure-free compute / wall clock (Llama 3's ETTR)."""
        return self.work_s / self.wall_s if self.wall_s > 0 else 1.0

    @property
    def interruption_count(self) -> int:
        return sum(self.interruptions.values())
