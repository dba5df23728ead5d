"""What goes wrong: failures and checkpoints (consumed by the run level)."""

from __future__ import annotations

from dataclasses import dataclass

from sim.errors import Issue
from sim.specs._schema import Spec, spec_field


@dataclass(frozen=True, slots=True, kw_only=True)
class FailureSpec(Spec):
    """Failure arrivals and the restart pipeline."""

    model: str = spec_field("llama3", doc="packaged rate set (llama3 | meta-rsc) or 'custom'")
    rates: dict[str, float] | None = spec_field(None, doc="failures per component-hour, by component")
    restart_minutes: float = spec_field(15.0, doc="detection to training resumed, minutes", ge=0)
    hot_spares: int = spec_field(0, doc="spare nodes", ge=0)

    def _issues(self) -> list[Issue]:
        if self.model not in ("llama3", "meta-rsc", "custom"):
            return [Issue("model", f"{self.model!r} is not a packaged rate set (llama3, meta-rsc) or 'custom'")]
        if self.rates:
            bad = {k: v for k, v in self.rates.items() if v < 0}
            if bad:
                return [Issue("rates", f"rates must be >= 0: {bad}")]
        return []


@dataclass(frozen=True, slots=True, kw_only=True)
class CheckpointSpec(Spec):
    """Checkpoint cadence and storage."""

    interval_minutes: float | str = spec_field(60.0, doc="minutes, or 'young-daly'")
    storage_write_gbyte_s: float = spec_field(100.0, doc="aggregate write bandwidth, GB/s", gt=0)
    storage_read_gbyte_s: float | None = spec_field(None, doc="aggregate read bandwidth, GB/s", gt=0)
    async_: bool = spec_field(True, doc="asynchronous (background) persist", key="async")

    def _issues(self) -> list[Issue]:
        iv = self.interval_minutes
        if isinstance(iv, str) and iv != "young-daly":
            return [Issue("interval_minutes", f"{iv!r}: expected minutes (> 0) or 'young-daly'")]
        if isinstance(iv, float) and iv <= 0:
            return [Issue("interval_minutes", f"{iv} must be > 0")]
        return []
