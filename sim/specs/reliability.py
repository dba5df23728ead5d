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
    weibull_shape: float | None = spec_field(None, doc="Weibull shape k (< 1: decreasing hazard); default 0.7",
                                             gt=0)
    restart_minutes: float | None = spec_field(
        None, doc="detection to training resumed, minutes (fixed); absent = stage model (detect, diagnose, "
                  "reschedule, collective init, checkpoint load, warm-up)", ge=0)
    hot_spares: int | None = spec_field(None, doc="spare nodes; absent = a replacement is always available", ge=0)
    on_spares_exhausted: SparesExhausted = spec_field(
        SparesExhausted.WAIT, doc="wait (for a repaired node) | shrink (continue with fewer DP replicas)")
    inject_hours: tuple[float, ...] = spec_field((), doc="extra failures at these wall-clock hours (stress tests)")

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
        return issues


@dataclass(frozen=True, slots=True, kw_only=True)
class StragglerSpec(Spec):
    """Fail-slow nodes: a synchronous step runs at the pace of its slowest node."""

    fraction_of_nodes: float = spec_field(0.005, doc="share of nodes that are slow (MegaScale: ~0.5 %)",
                                          ge=0, le=1)
    slowdown: float = spec_field(0.10, doc="how much slower a slow node is (0.10 = 10 %)", ge=0)


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
