"""What goes wrong: failures, restarts, stragglers and checkpoints (consumed by the run level)."""

from __future__ import annotations

from dataclasses import dataclass

from sim import catalog
from sim.errors import Issue
from sim.specs._schema import Spec, spec_field
from sim.specs.enums import FailureDistribution, SparesExhausted


@dataclass(frozen=True, slots=True, kw_only=True)
class FailureSpec(Spec):
    """Failure arrivals and the restart pipeline."""

    model: str = spec_field("llama3", doc="packaged rate set (llama3 | meta-rsc) or 'custom' (only `rates`)")
    rates: dict[str, float] | None = spec_field(
        None, doc="failures per component-hour by component (gpu, hbm, node, host, nic, switch, software, nccl, "
                  "storage, job); added to the packaged set, or alone with model: custom")
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
        return issues

    def _has_silent_population(self) -> bool:
        table = catalog.reliability_table()
        sets = table["rate_sets"]
        packaged = sets[self.model]["components"].values() if self.model in sets else ()
        custom = (table["custom_components"].get(name, {}) for name in (self.rates or {}))
        return any(entry.get("silent", False) for entry in (*packaged, *custom))


def _lemon_multiplier_default() -> float:
    return float(catalog.reliability_table()["lemons"]["rate_multiplier"]["value"])


@dataclass(frozen=True, slots=True, kw_only=True)
class StragglerSpec(Spec):
    """Fail-slow nodes: a synchronous step runs at the pace of its slowest node."""

    fraction_of_nodes: float = spec_field(0.005, doc="share of nodes that are slow (MegaScale: ~0.5 %)",
                                          ge=0, le=1)
    slowdown: float = spec_field(0.10, doc="how much slower a slow node is (0.10 = 10 %)", ge=0)
    episodes_per_day: float = spec_field(
        0.0, doc="transient fail-slow episodes per day of the job (0 = none); the job runs slower while one lasts",
        ge=0)
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
class CheckpointSpec(Spec):
    """Checkpoint cadence and storage."""

    interval_minutes: float | str = spec_field(60.0, doc="minutes of training between checkpoints, or "
                                                         "'young-daly' (Daly's higher-order optimum)")
    storage_write_gbyte_s: float = spec_field(100.0, doc="aggregate write bandwidth, GB/s", gt=0)
    storage_read_gbyte_s: float | None = spec_field(None, doc="aggregate read bandwidth, GB/s (default: write)",
                                                    gt=0)
    async_: bool = spec_field(True, doc="asynchronous (background) persist", key="async")
    stall_seconds: float | None = spec_field(
        None, doc="blocking part of a save, s (default: async snapshot figure, or size / write bandwidth)", ge=0)

    def _issues(self) -> list[Issue]:
        iv = self.interval_minutes
        if isinstance(iv, str) and iv != "young-daly":
            return [Issue("interval_minutes", f"{iv!r}: expected minutes (> 0) or 'young-daly'")]
        if isinstance(iv, float) and iv <= 0:
            return [Issue("interval_minutes", f"{iv} must be > 0")]
        return []
