"""What goes wrong: failures, restarts, stragglers and checkpoints (consumed by the run level)."""

from __future__ import annotations

from dataclasses import dataclass

from sim import catalog
from sim.errors import Issue
from sim.specs._schema import Spec, spec_field
from sim.specs.enums import FailureDistribution, RatesMode, SparesExhausted, TraceMode
from sim.specs.failure_trace import FailureTraceSpec

#: Above this many interruptions per minute of wall time a rate is almost surely a unit mistake.
MAX_INTERRUPTIONS_PER_MINUTE = 1.0


@dataclass(frozen=True, slots=True)
class Population:
    """One failure population of a job: what fails, how often (whole job, per hour) and its catalog entry."""

    name: str
    rate_per_h: float
    entry: dict


@dataclass(frozen=True, slots=True, kw_only=True)
class RepairSpec(Spec):
    """Time until an evicted node is back in the spare pool (lognormal by its median and mean)."""

    median: float = spec_field(doc="median repair or replacement time, hours", gt=0)
    mean: float = spec_field(doc="mean repair or replacement time, hours (>= median; = median: always the median)",
                             gt=0)

    def _issues(self) -> list[Issue]:
        if self.mean < self.median:
            return [Issue("mean", f"{self.mean:g} must be >= median {self.median:g} (a lognormal's mean is at "
                                  "least its median)")]
        return []


@dataclass(frozen=True, slots=True, kw_only=True)
class RestartSpec(Spec):
    """Restart stages, seconds (absent ones: the catalog's); NCCL init and checkpoint load are computed."""

    detect_s: float | None = spec_field(None, doc="an explicit error found (default 30 s, ByteRobust)", ge=0)
    hang_detect_s: float | None = spec_field(None, doc="a hang found by the collective watchdog (default 600 s)",
                                             ge=0)
    diagnose_s: float | None = spec_field(None, doc="diagnosis and localisation (default 300 s, MegaScale)", ge=0)
    reschedule_s: float | None = spec_field(None, doc="rescheduling, containers (default 120 s, assumed)", ge=0)
    warmup_s: float | None = spec_field(None, doc="first steps, compilation (default 60 s, assumed)", ge=0)


@dataclass(frozen=True, slots=True, kw_only=True)
class StandbySpec(Spec):
    """Warm standby nodes beside the job (TrainMover): a node fault is handled by switching to one."""

    nodes: int = spec_field(1, doc="warm standby nodes, kept loaded and paid for (their GPUs count in GPU-hours, "
                                   "cost and energy, at idle power)", ge=1)
    switch_over_s: float | None = spec_field(
        None, doc="failure to training resumed on a standby, s (default: the catalog's, TrainMover ~20 s at 1,024 "
                  "GPUs); replaces detection, restart stages and checkpoint load; only the step in flight is lost",
        ge=0)


@dataclass(frozen=True, slots=True, kw_only=True)
class FailureSpec(Spec):
    """Failure arrivals and the restart pipeline."""

    model: str = spec_field("llama3", doc="packaged rate set (llama3 | meta-rsc) or 'custom' (only `rates`)")
    rates: dict[str, float] | None = spec_field(
        None, doc="failures per component-hour by component (gpu, hbm, node, host, nic, switch, software, nccl, "
                  "storage, job); added to the packaged set (rates_mode: add) or instead of its unplanned "
                  "populations (rates_mode: replace), or alone with model: custom")
    rates_mode: RatesMode = spec_field(
        RatesMode.ADD, doc="add: `rates` join the packaged set; replace: only `rates` (and "
                           "node_failures_per_1000_node_days) fail, the set's planned stops stay")
    node_failures_per_1000_node_days: float | None = spec_field(
        None, doc="failures per 1,000 node-days for every node (Kokolis: 6.50 on RSC-1), instead of the packaged "
                  "set's unplanned populations (its planned stops stay; planned_per_day: 0 removes them)", ge=0)
    allow_extreme_rates: bool = spec_field(
        False, doc="accept rates implying more than one interruption per minute of wall time (a unit mistake "
                   "otherwise: rates are per component-hour)")
    repair_hours: RepairSpec | None = spec_field(
        None, doc="time to repair or replace an evicted node, {median, mean} hours (default: StepFun trace, "
                  "20.4 h median, 132 h mean); a cloud replacement in hours: {median: 2, mean: 3}")
    restart: RestartSpec | None = spec_field(
        None, doc="restart stage times {detect_s, hang_detect_s, diagnose_s, reschedule_s, warmup_s} (absent: "
                  "the catalog's); not with restart_minutes")
    rate_scale: float = spec_field(1.0, doc="multiplier on every unplanned rate (what if failures double?)", ge=0)
    planned_per_day: float | None = spec_field(None, doc="planned interruptions per day (default: the rate set's)",
                                               ge=0)
    distribution: FailureDistribution = spec_field(FailureDistribution.EXPONENTIAL,
                                                   doc="inter-arrival law per population: exponential | weibull")
    weibull_shape: float | None = spec_field(None, doc="Weibull shape k (< 1: decreasing hazard); default 0.7; "
                                             "0.1..10 (far below, the mean gap 1/Gamma(1+1/k) overflows)",
                                             ge=0.1, le=10)
    restart_minutes: float | None = spec_field(
        None, doc="detection to training resumed, minutes (fixed); absent = stage model (detect, diagnose, "
                  "reschedule, collective init, checkpoint load, warm-up)", ge=0)
    hot_spares: int | None = spec_field(None, doc="spare nodes; absent = a replacement is always available", ge=0)
    on_spares_exhausted: SparesExhausted = spec_field(
        SparesExhausted.WAIT, doc="wait (for a repaired node) | shrink (continue with fewer DP replicas)")
    inject_hours: tuple[float, ...] = spec_field((), doc="extra failures at these wall-clock hours (stress tests)")
    burst_fraction: float = spec_field(
        0.0, doc="share of node-evicting events that evict several nodes at once (StepFun trace: 0.054); size "
                 "geometric from 2, capped at 8", ge=0, le=1)
    lemon_fraction: float = spec_field(
        0.0, doc="share of fleet nodes that are lemons, failing `lemon_rate_multiplier` times the mean rate "
                 "(StepFun fit: 0.24); a failed node is replaced by an average one", ge=0, le=1)
    lemon_rate_multiplier: float | None = spec_field(
        None, doc="a lemon's hardware failure rate over the fleet mean (default: the StepFun fit, 2.9)", ge=1)
    sdc_detection_hours: float = spec_field(
        0.0, doc="silent data corruption found this long after it happens (0 = at once); the job then rolls "
                 "back to the last durable checkpoint taken before it", ge=0)
    trace: FailureTraceSpec | None = spec_field(
        None, doc="a failure trace instead of the packaged set's unplanned populations (its planned stops stay): a "
                  "CSV path, relative to the scenario file, with columns time_hours,node,category,repair_hours, or "
                  "the columns inline; each row evicts one node for its repair_hours, rows at one time are a burst")
    trace_mode: TraceMode | None = spec_field(
        None, doc="replay (default: the trace's faults in order, cycled if the run outlasts it) | resample (gaps "
                  "between events and the events, with their repair times, drawn from the trace)")
    trace_nodes: int | None = spec_field(
        None, doc="nodes of the traced fleet (default: the distinct node ids; give it when nodes that never failed "
                  "are not in the trace); a job of N nodes sees the fleet's events at N / trace_nodes of its "
                  "rate: trace hours are stretched by trace_nodes / N", ge=1)
    warm_standby: StandbySpec | None = spec_field(
        None, doc="warm standby nodes {nodes, switch_over_s}: a fault evicting at most the standbys available "
                  "costs the switch-over and the step in flight; the used standby is replaced from the spare pool "
                  "(at once without hot_spares)")

    def _issues(self) -> list[Issue]:
        issues = []
        sets = catalog.reliability_table()["rate_sets"]
        if self.model not in (*sets, "custom"):
            issues.append(Issue("model", f"{self.model!r} is not a packaged rate set ({', '.join(sets)}) or "
                                "'custom'"))
        known = catalog.reliability_table()["custom_components"]
        for name, value in (self.rates or {}).items():
            if name not in known:
                issues.append(Issue(f"rates.{name}", f"unknown component; known: {', '.join(known)}"))
            elif value < 0:
                issues.append(Issue(f"rates.{name}", f"{value} must be >= 0"))
        if self.restart is not None and self.restart_minutes is not None:
            issues.append(Issue("restart", "give either restart_minutes (fixed) or restart stages, not both"))
        if self.model == "custom" and self.rates_mode is RatesMode.REPLACE:
            issues.append(Issue("rates_mode", "replace needs a packaged model (custom has nothing to replace)"))
        if self.weibull_shape is not None and self.distribution is not FailureDistribution.WEIBULL:
            issues.append(Issue("weibull_shape", "only meaningful with distribution: weibull"))
        issues += [Issue("inject_hours", f"{h} must be >= 0") for h in self.inject_hours if h < 0]
        if self.lemon_rate_multiplier is not None:
            if self.lemon_fraction == 0:
                issues.append(Issue("lemon_rate_multiplier", "only meaningful with lemon_fraction > 0"))
            elif self.lemon_fraction * self.lemon_rate_multiplier >= 1:
                issues.append(Issue("lemon_rate_multiplier", f"{self.lemon_rate_multiplier} x lemon_fraction "
                                    f"{self.lemon_fraction} must be < 1 (the fleet mean rate is 1); lower either"))
        elif self.lemon_fraction > 0 and self.lemon_fraction >= 1 / _lemon_multiplier_default():
            issues.append(Issue("lemon_fraction", f"{self.lemon_fraction} must be < "
                                f"{1 / _lemon_multiplier_default():.3f} with the default multiplier "
                                f"{_lemon_multiplier_default():g} (the fleet mean rate is 1)"))
        if self.sdc_detection_hours > 0 and not self._has_silent_population():
            issues.append(Issue("sdc_detection_hours", f"rate set {self.model!r} has no silent-data-corruption "
                                "population; add one with rates: {sdc: ...} or use model: llama3"))
        return issues + self._trace_issues()

    def _trace_issues(self) -> list[Issue]:
        if self.trace is None:
            return [Issue(name, "only meaningful with a trace") for name in ("trace_mode", "trace_nodes")
                    if getattr(self, name) is not None]
        issues = []
        if self.trace_nodes is not None and self.trace_nodes < self.trace.distinct_nodes:
            issues.append(Issue("trace_nodes", f"{self.trace_nodes} is fewer than the trace's "
                                f"{self.trace.distinct_nodes} distinct node ids"))
        if max(self.trace.time_hours) <= 0:
            issues.append(Issue("trace", "every fault is at hour 0: a trace needs a fault after its start (its "
                                "span sets the event rate)"))
        if self.trace_mode is TraceMode.RESAMPLE and len(self.trace.event_times()) < 2:
            issues.append(Issue("trace_mode", "resample needs a trace of at least two fault times"))
        conflicts = {"node_failures_per_1000_node_days": self.node_failures_per_1000_node_days is not None,
                     "distribution": self.distribution is not FailureDistribution.EXPONENTIAL,
                     "burst_fraction": self.burst_fraction > 0, "lemon_fraction": self.lemon_fraction > 0}
        issues += [Issue(name, "not with a trace (the trace gives the node faults, their gaps, bursts and "
                               "repeat offenders)") for name, given in conflicts.items() if given]
        return issues

    @property
    def fleet_nodes(self) -> int:
        """Nodes of the traced fleet (``trace_nodes``, else the trace's distinct node ids)."""
        assert self.trace is not None
        return self.trace_nodes or self.trace.distinct_nodes

    def trace_hours_per_job_hour(self, job_nodes: int) -> float:
        """Trace hours one hour of a ``job_nodes`` job covers: the job is job_nodes / fleet_nodes of the traced
        fleet (and ``rate_scale`` speeds the trace up)."""
        return job_nodes * self.rate_scale / self.fleet_nodes

    def trace_events_per_hour(self, job_nodes: int) -> float:
        """Trace events (fault times) per hour of a ``job_nodes`` job (0 without a trace)."""
        if self.trace is None:
            return 0.0
        return len(self.trace.event_times()) / self.trace.span_hours() * self.trace_hours_per_job_hour(job_nodes)

    @property
    def packaged_unplanned(self) -> bool:
        """Whether the packaged set's unplanned populations fail (not custom, not replaced)."""
        return (self.model != "custom" and self.rates_mode is RatesMode.ADD
                and self.node_failures_per_1000_node_days is None and self.trace is None)

    def _has_silent_population(self) -> bool:
        table = catalog.reliability_table()
        sets = table["rate_sets"]
        packaged = sets[self.model]["components"].values() if self.model in sets and self.packaged_unplanned else ()
        custom = (table["custom_components"].get(name, {}) for name in (self.rates or {}))
        return any(entry.get("silent", False) for entry in (*packaged, *custom))

    def populations(self, num_gpus: int, gpus_per_node: int) -> list[Population]:
        """The job's unplanned failure populations with their whole-job rates (``rate_scale`` applied)."""
        table = catalog.reliability_table()
        count = {"gpu": num_gpus, "node": max(1, num_gpus // gpus_per_node), "job": 1}
        out: list[Population] = []

        def add(name: str, rate_per_h: float, entry: dict) -> None:
            rate = rate_per_h * count[entry["per"]] * self.rate_scale
            if rate > 0:
                out.append(Population(name, rate, entry))

        if self.packaged_unplanned and self.model in table["rate_sets"]:
            rate_set = table["rate_sets"][self.model]
            for name, entry in rate_set["components"].items():
                add(name, entry["count"] / rate_set["exposure_component_hours"], entry)
        if self.node_failures_per_1000_node_days is not None:
            add("node", self.node_failures_per_1000_node_days / 24_000, table["custom_components"]["node"])
        for name, rate in (self.rates or {}).items():
            if name in table["custom_components"]:
                add(name, rate, table["custom_components"][name])
        return out

    def planned_rate_per_day(self) -> float:
        """Planned stops per day: ``planned_per_day``, else the packaged set's (none for custom)."""
        if self.planned_per_day is not None:
            return self.planned_per_day
        sets = catalog.reliability_table()["rate_sets"]
        return float(sets[self.model]["planned_per_day"]) if self.model in sets else 0.0

    def job_issues(self, num_gpus: int, gpus_per_node: int) -> list[Issue]:
        """Rules that need the job's size: a rate implying more than one interruption a minute."""
        if self.allow_extreme_rates:
            return []
        traced = self.trace_events_per_hour(max(1, num_gpus // gpus_per_node))
        per_h = (sum(p.rate_per_h for p in self.populations(num_gpus, gpus_per_node)) + traced
                 + self.planned_rate_per_day() / 24)
        if per_h / 60 <= MAX_INTERRUPTIONS_PER_MINUTE:
            return []
        top = max(self.populations(num_gpus, gpus_per_node), key=lambda p: p.rate_per_h, default=None)
        if top is None or traced > top.rate_per_h:
            where = "trace"
        else:
            where = f"rates.{top.name}" if top.name in (self.rates or {}) else (
                "node_failures_per_1000_node_days" if top.name == "node" and self.node_failures_per_1000_node_days
                else "rate_scale")
        return [Issue(where, f"{per_h / 60:.3g} interruptions per minute of wall time for this {num_gpus:,}-GPU "
                      "job: rates are failures per component-hour (per 1,000 node-days: "
                      "node_failures_per_1000_node_days); set allow_extreme_rates: true if meant")]


def _lemon_multiplier_default() -> float:
    return float(catalog.reliability_table()["lemons"]["rate_multiplier"]["value"])


@dataclass(frozen=True, slots=True, kw_only=True)
class StragglerSpec(Spec):
    """Fail-slow nodes: a synchronous step runs at the pace of its slowest node."""

    fraction_of_nodes: float = spec_field(0.005, doc="share of nodes that are slow (MegaScale: ~0.5 %), drawn "
                                          "anew at every (re)start", ge=0, le=1)
    slowdown: float = spec_field(0.10, doc="how much slower a slow node is (0.10 = 10 %)", ge=0)
    count: int | None = spec_field(
        None, doc="exactly this many slow nodes in the job, kept across restarts until evicted (instead of "
                  "fraction_of_nodes)", ge=0)
    evict_after_minutes: float | None = spec_field(
        None, doc="detect-and-evict: after this many minutes of slow training the slow nodes are swapped for "
                  "spares (a save first, then a restart without detection or diagnosis); absent = never", ge=0)
    episodes_per_day: float = spec_field(
        0.0, doc="transient fail-slow episodes per day of the job (0 = none); the job runs slower while one lasts "
                 "(Greyhound's 4-node probes on a shared cluster: 2.47, with episode_median_minutes 7.07 and "
                 "episode_sigma_ln 1.61)", ge=0)
    episode_median_minutes: float | None = spec_field(
        None, doc="median episode length, lognormal (default: FALCON's 30 s .. 10 h range, 17.3 min)", gt=0)
    episode_sigma_ln: float | None = spec_field(None, doc="lognormal sigma of the episode length (default 2.155)",
                                                ge=0)
    episode_slowdown: float | None = spec_field(
        None, doc="how much slower the job runs during an episode (default: FALCON's 1.34x, 0.34)", ge=0)

    def _issues(self) -> list[Issue]:
        if self.episodes_per_day > 0:
            return []
        given = ("episode_median_minutes", "episode_sigma_ln", "episode_slowdown")
        return [Issue(name, "only meaningful with episodes_per_day > 0") for name in given
                if getattr(self, name) is not None]


@dataclass(frozen=True, slots=True, kw_only=True)
class InMemorySpec(Spec):
    """In-memory checkpoints: every node's snapshot held in the host memory of ``replicas`` nodes of its group."""

    replicas: int = spec_field(2, doc="nodes holding each snapshot (its own included; Gemini: 2)", ge=1)
    snapshot_seconds: float | None = spec_field(
        None, doc="blocking part of an in-memory snapshot, s (default: the per-GPU shard over host_copy_gbyte_s)",
        ge=0)


@dataclass(frozen=True, slots=True, kw_only=True)
class CheckpointSpec(Spec):
    """Checkpoint cadence and storage."""

    interval_minutes: float | str = spec_field(60.0, doc="minutes of training between checkpoints, or "
                                                         "'young-daly' (Daly's higher-order optimum)")
    storage_write_gbyte_s: float = spec_field(100.0, doc="aggregate write bandwidth, GB/s", gt=0)
    storage_read_gbyte_s: float | None = spec_field(None, doc="aggregate read bandwidth, GB/s (default: write)",
                                                    gt=0)
    async_: bool = spec_field(True, doc="asynchronous (background) persist", key="async")
    stall_seconds: float | None = spec_field(
        None, doc="blocking part of a save, s (default: async: the largest per-GPU shard / host_copy_gbyte_s; "
                  "sync: size / write bandwidth)", ge=0)
    host_copy_gbyte_s: float | None = spec_field(
        None, doc="device-to-host copy bandwidth per GPU, GB/s (default: the catalog's, PCIe x 0.8)", gt=0)
    in_memory: bool | InMemorySpec = spec_field(
        False, doc="false, true or {replicas, snapshot_seconds}: snapshots in peers' host memory (Gemini); recovery "
                   "from them unless every holder of a lost node's shard failed, then from storage")

    @property
    def memory(self) -> InMemorySpec | None:
        """The in-memory tier (``in_memory: true`` = its defaults), or None."""
        if self.in_memory is True:
            return InMemorySpec()
        return self.in_memory or None

    def _issues(self) -> list[Issue]:
        iv = self.interval_minutes
        if isinstance(iv, str) and iv != "young-daly":
            return [Issue("interval_minutes", f"{iv!r}: expected minutes (> 0) or 'young-daly'")]
        if isinstance(iv, float) and iv <= 0:
            return [Issue("interval_minutes", f"{iv} must be > 0")]
        return []
