"""The run level of a scenario: its run parameters, Monte Carlo over seeds, and the checkpoint-interval search.

The step level gives the step time; this module turns a scenario into ``RunParams`` (work, checkpoint
times, failure populations, restart pipeline, spares, stragglers), simulates ``simulation.monte_carlo``
replicas with independent child generators of ``simulation.seed``, and summarises days, goodput,
interruptions, GPU-hours, cost, energy and CO2. Different seeds change this level only.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from sim import catalog
from sim.costs.failure_trace import TraceSchedule, trace_schedule
from sim.costs.reliability import (
    CheckpointTimes,
    checkpoint_times,
    daly_interval,
    failure_classes,
    repair_lognormal,
    restart_stages,
)
from sim.engine.run import LOSSES, ReplicaResult, RunParams, simulate_run
from sim.rng import make_rng, spawn
from sim.specs import budget
from sim.specs.enums import FailureDistribution, SparesExhausted
from sim.specs.pricing import CostsSpec
from sim.specs.reliability import CheckpointSpec
from sim.specs.scenario import Scenario
from sim.units import DAY, HOUR

Progress = Callable[[int, int], None]

LOSS_LABELS = {"lost_work": "recomputing work lost since the last durable checkpoint",
               "restart": "restarts (detection, diagnosis, rescheduling, init, checkpoint load)",
               "spare_wait": "waiting for replacement nodes", "checkpoint": "checkpoint stalls",
               "slowdown": "stragglers and shrunk replicas",
               "silent_corruption": "recomputing work rolled back past a silent data corruption found late",
               "fail_slow": "transient fail-slow episodes"}


@dataclass(frozen=True, slots=True)
class RunPlan:
    """What the run level derives from the scenario before drawing anything."""

    params: RunParams
    checkpoint: CheckpointTimes | None
    interval_rule: str  # "fixed" | "young-daly" | "none"
    steps: int
    mtbi_s: float  # expected time between interruptions (inf without failures)
    notes: tuple[str, ...]


def steps_to_train(s: Scenario) -> int:
    """Optimizer steps to consume ``training.tokens``."""
    return math.ceil((s.training.tokens or 0) / s.tokens_per_step)


def run_plan(s: Scenario, step_time_s: float) -> RunPlan:
    """The scenario's run as ``RunParams`` (pure: no random draw)."""
    notes: list[str] = []
    steps = steps_to_train(s)
    gpn = s.cluster.topology.node.gpus
    nodes = max(1, s.cluster.num_gpus // gpn)
    table = catalog.reliability_table()
    fail = s.failures
    classes = failure_classes(fail, s.cluster.num_gpus, gpn) if fail else ()
    trace = trace_schedule(fail, nodes) if fail else None
    total_rate = sum(c.rate_per_s for c in classes) + (trace.rate_per_s if trace else 0.0)
    mtbi = 1 / total_rate if total_rate > 0 else math.inf

    if trace is not None:
        notes.append(f"failure trace {trace.file or '(inline)'} ({'resampled' if trace.resample else 'replayed'}): "
                     f"{trace.faults} faults in {len(trace.events)} events of a {trace.fleet_nodes}-node fleet over "
                     f"{trace.cycle_s * trace.trace_hours_per_job_hour / HOUR:,.0f} h; this {nodes}-node job sees "
                     f"them at {trace.trace_hours_per_job_hour:.3g}x the fleet's pace (one event every "
                     f"{1 / trace.rate_per_s / HOUR:.2f} h)")
    ck_spec = s.checkpoint
    if ck_spec is None and fail is not None:
        ck_spec = CheckpointSpec()
        notes.append(f"no checkpoint block: assumed every {ck_spec.interval_minutes:g} min at "
                     f"{ck_spec.storage_write_gbyte_s:g} GB/s, asynchronous")
    ck = checkpoint_times(s, ck_spec) if ck_spec is not None else None
    interval, rule = math.inf, "none"
    if ck_spec is not None and ck is not None:
        if ck_spec.interval_minutes == "young-daly":
            rule = "young-daly"
            interval = daly_interval(ck.stall_s, mtbi) if math.isfinite(mtbi) else math.inf
        else:
            rule, interval = "fixed", float(ck_spec.interval_minutes) * 60
        if ck.persist_s > interval:
            notes.append(f"a checkpoint persists in {ck.persist_s:.0f} s, longer than the {interval:.0f} s "
                         "interval: saves wait for the previous persist")

    restart_s = stages = None
    spares, shrink = None, False
    weibull = None
    repair_mu, repair_sigma = repair_lognormal(fail.repair_hours if fail else None)
    inject: tuple[float, ...] = ()
    realism: dict[str, Any] = {}
    if fail is not None and fail.warm_standby is not None:
        switch = fail.warm_standby.switch_over_s
        realism.update(standby_nodes=fail.warm_standby.nodes, standby_switch_s=(
            table["warm_standby"]["switch_over_s"]["value"] if switch is None else switch))
    if fail is not None:
        if fail.restart_minutes is not None:
            restart_s = fail.restart_minutes * 60
        else:
            stages = restart_stages(s.cluster.num_gpus, ck.load_s if ck else 0.0, fail.restart)
        spares, shrink = fail.hot_spares, fail.on_spares_exhausted is SparesExhausted.SHRINK
        if fail.distribution is FailureDistribution.WEIBULL:
            weibull = fail.weibull_shape or table["weibull_shape_default"]["value"]
        inject = tuple(h * HOUR for h in fail.inject_hours)
        bursts, lemons = table["bursts"], table["lemons"]
        realism.update(burst_fraction=fail.burst_fraction, burst_continue=bursts["continue_probability"]["value"],
                       burst_max_nodes=bursts["max_nodes"]["value"], lemon_fraction=fail.lemon_fraction,
                       lemon_multiplier=fail.lemon_rate_multiplier or lemons["rate_multiplier"]["value"],
                       sdc_detection_s=fail.sdc_detection_hours * HOUR)
    replica_gpus = s.parallelism.tensor * s.parallelism.pipeline * s.parallelism.context
    st = s.stragglers
    if st is not None and st.episodes_per_day > 0:
        ep = table["fail_slow_episodes"]
        median_min = st.episode_median_minutes or ep["median_minutes"]["value"]
        realism.update(episode_rate_per_s=st.episodes_per_day / DAY, episode_mu_ln_s=math.log(median_min * 60),
                       episode_sigma_ln=ep["sigma_ln"]["value"] if st.episode_sigma_ln is None else st.episode_sigma_ln,
                       episode_slowdown=ep["slowdown"]["value"] if st.episode_slowdown is None else st.episode_slowdown)
    params = RunParams(
        work_s=steps * step_time_s, interval_s=interval,
        stall_s=ck.stall_s if ck else 0.0, persist_s=ck.persist_s if ck else 0.0,
        failures=classes, trace=trace, step_s=step_time_s, weibull_shape=weibull, inject_s=inject,
        restart_s=restart_s, stages=stages,
        nodes=nodes, spares=spares,
        repair_mu_ln_s=repair_mu, repair_sigma_ln=repair_sigma, shrink=shrink,
        memory_replicas=ck.memory_replicas if ck else 0, memory_load_s=ck.memory_load_s if ck else 0.0,
        dp_replicas=s.parallelism.data, nodes_per_replica=replica_gpus / gpn,
        straggler_fraction=st.fraction_of_nodes if st else 0.0, straggler_slowdown=st.slowdown if st else 0.0,
        straggler_count=st.count if st else None,
        straggler_evict_s=st.evict_after_minutes * 60 if st and st.evict_after_minutes is not None else None,
        **realism)
    return RunPlan(params, ck, rule, steps, mtbi, tuple(notes))


def check_run_budget(params: RunParams, replicas: int, record: bool) -> None:
    """Refuse (sim/specs/budget.py) a run level whose replicas x expected events would take hours: events are
    interruptions and fail-slow episodes over the failure-free time, and every checkpoint when recorded."""
    rate = sum(c.rate_per_s for c in params.failures) + params.episode_rate_per_s + _trace_rate(params.trace)
    events = params.work_s * rate + len(params.inject_s)
    if record and params.interval_s > 0:
        events += params.work_s / params.interval_s
    budget.check_run(replicas, params.work_s / DAY, events)


def _trace_rate(trace: TraceSchedule | None) -> float:
    return trace.rate_per_s if trace is not None else 0.0


def host_power_w(costs: CostsSpec, gpu: str) -> float:
    """Host power per GPU: the scenario's, else the catalog's for the GPU's node (sim/catalog/reliability.yaml)."""
    if costs.host_power_w_per_gpu is not None:
        return costs.host_power_w_per_gpu
    table = catalog.reliability_table()["host_power_w_per_gpu"]
    return float(table["by_gpu"].get(gpu, table["default"]))


def energy_mwh(costs: CostsSpec, gpu_power_w: float, host_w: float, gpu_hours: float,
               idle_gpu_hours: float = 0.0) -> float:
    """GPU-hours x (GPU W + host W per GPU) x PUE (the LLaMA papers' formula plus the hosts); ``idle_gpu_hours``
    of them draw ``costs.idle_gpu_power_w`` when one is given."""
    idle_w = costs.idle_gpu_power_w if costs.idle_gpu_power_w is not None else gpu_power_w
    watt_hours = (gpu_hours - idle_gpu_hours) * gpu_power_w + idle_gpu_hours * idle_w + gpu_hours * host_w
    return watt_hours * costs.pue / 1e6


def nodes_down_histogram(repairs: Sequence[tuple[float, float]], wall_s: float) -> np.ndarray:
    """Seconds of ``[0, wall_s]`` with exactly k nodes out of service, by k (repairs as (start, end))."""
    if not repairs or wall_s <= 0:
        return np.array([max(wall_s, 0.0)])
    spans = np.clip(np.asarray(repairs, dtype=float), 0.0, wall_s)
    times = np.concatenate([spans[:, 0], spans[:, 1], [0.0, wall_s]])
    steps = np.concatenate([np.ones(len(spans)), -np.ones(len(spans)), [0.0, 0.0]])
    order = np.lexsort((-steps, times))  # ties make zero-length intervals, which carry no time
    times, steps = times[order], steps[order]
    level = np.cumsum(steps).astype(int)
    durations = np.diff(times)
    return np.bincount(level[:-1], weights=durations, minlength=int(level.max()) + 1)


@dataclass(frozen=True, slots=True)
class RunSummary:
    """Monte Carlo of the run: distributions and means over replicas."""

    plan: RunPlan
    replicas: tuple[ReplicaResult, ...]
    num_gpus: int
    costs: CostsSpec
    gpu_power_w: float
    costs_assumed: bool  # the scenario had no costs block: defaults used
    host_power_w: float = 0.0  # per GPU
    failures_modelled: bool = True  # the scenario has a failures block
    standby_gpus: int = 0  # GPUs of warm standby nodes, paid and powered (idle) for the whole run

    @property
    def replica_days(self) -> np.ndarray:
        """Days per replica; for one cut at the wall-time or failure cap, a lower bound: its wall time plus
        the work it had left at failure-free speed."""
        work = self.plan.params.work_s
        return np.array([(r.wall_s + (0.0 if r.finished else max(0.0, work - r.work_s))) / DAY
                         for r in self.replicas])

    @property
    def days(self) -> np.ndarray:
        return self.replica_days

    @property
    def days_are_lower_bounds(self) -> bool:
        """Some replica hit the cap: every figure from days (P50, P90, mean, cost, energy) is a lower bound."""
        return self.unfinished > 0

    @property
    def days_mean(self) -> float:
        return float(np.mean(self.days))

    @property
    def days_p50(self) -> float:
        return float(np.percentile(self.days, 50))

    @property
    def days_p90(self) -> float:
        return float(np.percentile(self.days, 90))

    @property
    def failure_free_days(self) -> float:
        return self.plan.params.work_s / DAY

    @property
    def goodput(self) -> float:
        return float(np.mean([r.goodput for r in self.replicas]))

    @property
    def training_pace(self) -> float:
        """Share of the training time at full speed: failure-free compute over the time spent training,
        stragglers and fail-slow episodes included (restarts, saves and lost work are not training), mean over
        replicas. The step's MFU times this is the effective MFU."""
        def pace(r: ReplicaResult) -> float:
            slow = r.losses_s["slowdown"] + r.losses_s["fail_slow"]
            trained = r.work_s + r.losses_s["lost_work"] + r.losses_s["silent_corruption"]
            return trained / (trained + slow) if trained + slow > 0 else 1.0
        return float(np.mean([pace(r) for r in self.replicas]))

    @property
    def interruptions_mean(self) -> float:
        return float(np.mean([r.interruption_count for r in self.replicas]))

    @property
    def mtbi_hours_simulated(self) -> float | None:
        """Wall hours per interruption over every replica (None without interruptions)."""
        count = sum(r.interruption_count for r in self.replicas)
        return sum(r.wall_s for r in self.replicas) / count / 3600 if count else None

    def nodes_down_seconds(self) -> np.ndarray:
        """Seconds with exactly k nodes out of service, summed over replicas, by k."""
        hists = [nodes_down_histogram(r.repairs, r.wall_s) for r in self.replicas]
        out = np.zeros(max(len(h) for h in hists))
        for h in hists:
            out[:len(h)] += h
        return out

    @property
    def nodes_down_mean(self) -> float:
        hist = self.nodes_down_seconds()
        return float(np.dot(np.arange(len(hist)), hist) / hist.sum()) if hist.sum() > 0 else 0.0

    @property
    def nodes_down_max(self) -> int:
        hist = self.nodes_down_seconds()
        return int(np.flatnonzero(hist > 0).max()) if (hist > 0).any() else 0

    def share_nodes_down_at_least(self) -> dict[int, float]:
        """Share of wall time with >= k nodes out of service, for k = 1 .. max."""
        hist = self.nodes_down_seconds()
        total = hist.sum()
        if total <= 0:
            return {}
        tail = np.cumsum(hist[::-1])[::-1] / total
        return {k: float(tail[k]) for k in range(1, len(hist))}

    @property
    def suggested_spares(self) -> int:
        """Spare nodes that cover the nodes in repair 95 % of the time (the 95th percentile of nodes down)."""
        shares = self.share_nodes_down_at_least()
        return next((k - 1 for k, share in shares.items() if share <= 0.05), len(shares))

    @property
    def spare_wait_days(self) -> float:
        return self.loss_days()["spare_wait"]

    @property
    def recoveries_from_memory(self) -> float:
        return float(np.mean([r.memory_recoveries for r in self.replicas]))

    @property
    def storage_fallbacks(self) -> float:
        return float(np.mean([r.storage_fallbacks for r in self.replicas]))

    @property
    def unfinished(self) -> int:
        return sum(not r.finished for r in self.replicas)

    def interruptions_by_category(self) -> dict[str, float]:
        cats = sorted({c for r in self.replicas for c in r.interruptions})
        n = len(self.replicas)
        means = {c: sum(r.interruptions.get(c, 0) for r in self.replicas) / n for c in cats}
        return dict(sorted(means.items(), key=lambda kv: -kv[1]))

    def loss_days(self) -> dict[str, float]:
        n = len(self.replicas)
        return {k: sum(r.losses_s[k] for r in self.replicas) / n / DAY for k in LOSSES}

    @property
    def dominant_loss(self) -> str | None:
        losses = self.loss_days()
        key = max(losses, key=losses.__getitem__)
        return key if losses[key] > 0 else None

    @property
    def gpu_hours(self) -> float:
        """The job's GPUs and its warm standbys' for the mean wall time."""
        return self.days_mean * 24 * (self.num_gpus + self.standby_gpus)

    @property
    def standby_switch_overs(self) -> float:
        return float(np.mean([r.standby_switch_overs for r in self.replicas]))

    @property
    def cost_usd(self) -> float:
        return self.gpu_hours * self.costs.usd_per_gpu_hour

    @property
    def energy_mwh(self) -> float:
        """Hours spent restarting or waiting for nodes draw the idle GPU power (see :func:`energy_mwh`), and
        so do warm standbys all along."""
        n = len(self.replicas)
        idle_h = sum(r.losses_s["restart"] + r.losses_s["spare_wait"] for r in self.replicas) / n / 3600
        standby_h = self.days_mean * 24 * self.standby_gpus
        return energy_mwh(self.costs, self.gpu_power_w, self.host_power_w, self.gpu_hours,
                          min(idle_h * self.num_gpus + standby_h, self.gpu_hours))

    @property
    def co2_tonnes(self) -> float:
        return self.energy_mwh * self.costs.grid_kgco2_per_kwh  # MWh x kg/kWh = t


def simulate_run_level(s: Scenario, step_time_s: float, replicas: int | None = None, seed: int | None = None,
                       progress: Progress | None = None, record: bool = False) -> RunSummary:
    """``replicas`` runs (default ``simulation.monte_carlo``) from ``seed`` (default ``simulation.seed``).

    ``record`` keeps the event timeline of the first replica (traces, plots).
    """
    plan = run_plan(s, step_time_s)
    n = replicas if replicas is not None else s.simulation.monte_carlo
    check_run_budget(plan.params, n, record)
    rngs = spawn(make_rng(s.simulation.seed if seed is None else seed), n)
    results = []
    for i, rng in enumerate(rngs):
        results.append(simulate_run(plan.params, rng, record=record and i == 0))
        if progress:
            progress(i + 1, n)
    costs = s.costs or CostsSpec()
    power = costs.gpu_power_w if costs.gpu_power_w is not None else s.gpu.tdp_w
    return RunSummary(plan, tuple(results), s.cluster.num_gpus, costs, power, s.costs is None,
                      host_power_w(costs, s.gpu.name), s.failures is not None,
                      plan.params.standby_nodes * s.cluster.topology.node.gpus)


@dataclass(frozen=True, slots=True)
class IntervalSearch:
    """ETTR against the checkpoint interval, and the optimum the simulation finds."""

    intervals_s: tuple[float, ...]
    goodput: tuple[float, ...]  # mean over replicas, same seeds for every interval
    best_s: float  # vertex of a parabola in log(interval) around the best grid point
    daly_s: float


def search_interval(params: RunParams, stall_s: float, mtbi_s: float, intervals_s: Sequence[float],
                    replicas: int, seed: int, progress: Progress | None = None) -> IntervalSearch:
    """Simulate every interval on the same seeds (common random numbers) and locate the optimum."""
    taus = tuple(sorted(intervals_s))
    check_run_budget(params, replicas * len(taus), record=False)
    good = []
    total = len(taus) * replicas
    for i, tau in enumerate(taus):
        p = replace(params, interval_s=tau)
        rngs = spawn(make_rng(seed), replicas)
        good.append(float(np.mean([simulate_run(p, rng).goodput for rng in rngs])))
        if progress:
            progress((i + 1) * replicas, total)
    # The ETTR curve is flat at its top, so the grid's best point alone is noisy: fit a parabola in
    # log(interval) through the best point and two neighbours on each side, and take its vertex.
    k = int(np.argmax(good))
    lo, hi = max(0, k - 2), min(len(taus), k + 3)
    best = taus[k]
    if hi - lo >= 3:
        a, b, _ = np.polyfit(np.log(taus[lo:hi]), good[lo:hi], 2)
        vertex = -b / (2 * a) if a < 0 else None
        if vertex is not None and np.log(taus[lo]) <= vertex <= np.log(taus[hi - 1]):
            best = float(np.exp(vertex))
    return IntervalSearch(taus, tuple(good), best, daly_interval(stall_s, mtbi_s))
