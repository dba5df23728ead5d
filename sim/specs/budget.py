"""The work budget: what one command may ask the simulator for before it refuses (exit 2) instead of running
for hours or exhausting memory.

Every limit is a count the simulator's cost grows with, sized so that a scenario at the limit still runs
in about a minute on one core (measured on scenarios/llama3-70b-1k-h100.yaml: ~0.5 ms per pipeline work
item of the step, ~0.3-2 ms per run-level interruption; ~15 s for the step of 262,144 GPUs), and well
above every bundled scenario and published validation row (the largest: 24,576 GPUs; 39,200 pipeline
work items). ``--allow-large`` on any command, or ``TRAINSIM_ALLOW_LARGE=1`` in the environment (which
the workers of a pool inherit), lifts the budget deliberately; the hard ranges of the spec fields stay.
"""

from __future__ import annotations

import contextlib
import math
import os
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING

from sim.errors import TrainsimError

if TYPE_CHECKING:
    from sim.specs.scenario import Scenario

ENV = "TRAINSIM_ALLOW_LARGE"
FLAG = "--allow-large"


@dataclass(frozen=True, slots=True)
class Limits:
    """The default budget (README "Limits")."""

    #: GPUs in one job, in a collectives test or a size count (the largest published runs: ~100k).
    gpus: int = 262_144
    #: GPUs in one ``collectives`` test: every message size re-solves the flows of every GPU (~8 s of CPU for
    #: 16,384 GPUs on dgx-h100-superpod, growing at least linearly).
    collective_gpus: int = 65_536
    #: Pipeline work items of one step: micro-batches x pipeline stages x model chunks per stage.
    pipeline_items: int = 131_072
    #: Monte Carlo replicas of the run level (simulation.monte_carlo, --replicas).
    replicas: int = 10_000
    #: Run-level events over all replicas: expected interruptions and fail-slow episodes (plus every
    #: checkpoint when the timeline is recorded for --trace, --plot or report).
    run_events: int = 200_000
    #: Failure-free training days of the run (the run level simulates the whole wall-clock span).
    run_days: float = 36_500.0
    #: Points of one sweep, counted before the grid is built.
    sweep_points: int = 10_000
    #: Worker processes per core (search, size and sweep pools).
    workers_per_core: int = 4
    #: Intervals of one checkpoint-interval search.
    interval_points: int = 1_000


LIMITS = Limits()


class BudgetError(TrainsimError):
    """A request beyond the work budget; the message names the field, the value and the limit."""

    def __init__(self, what: str, value: float, limit: float, unit: str = "") -> None:
        self.what = what
        super().__init__(f"{what}: {_fmt(value)}{unit} is more than the limit of {_fmt(limit)}{unit}; "
                         f"lower it, or pass {FLAG} to run it anyway")


def _fmt(x: float) -> str:
    if isinstance(x, float) and not math.isfinite(x):
        return str(x)
    return f"{x:,.0f}" if 1 <= float(x) < 1e15 or x == 0 else f"{x:.3g}"


def allowed() -> bool:
    """Whether the budget is lifted (``--allow-large`` or ``TRAINSIM_ALLOW_LARGE=1``)."""
    return os.environ.get(ENV, "") not in ("", "0")


@contextlib.contextmanager
def allowing(allow: bool) -> Iterator[None]:
    """Lift the budget while the block runs (and in the processes it starts) when ``allow``; restore after."""
    if not allow:
        yield
        return
    saved = os.environ.get(ENV)
    os.environ[ENV] = "1"
    try:
        yield
    finally:
        if saved is None:
            os.environ.pop(ENV, None)
        else:
            os.environ[ENV] = saved


def check(what: str, value: float, limit: float, unit: str = "") -> None:
    """Raise :class:`BudgetError` when ``value`` exceeds ``limit`` (a NaN counts as over) and the budget is on."""
    if not value <= limit and not allowed():
        raise BudgetError(what, value, limit, unit)


def check_workers(requested: int, cores: int) -> None:
    check("--workers", requested, max(LIMITS.workers_per_core * cores, LIMITS.workers_per_core))


def check_step(num_gpus: int, microbatches: int, pipeline: int, virtual: int, replicas: int) -> None:
    """The step-level budget of a scenario (call before building anything per GPU)."""
    check("cluster.num_gpus", num_gpus, LIMITS.gpus)
    check("training.global_batch_size: micro-batches x pipeline x virtual_pipeline per step",
          microbatches * pipeline * virtual, LIMITS.pipeline_items)
    check("simulation.monte_carlo", replicas, LIMITS.replicas)


def check_scenario(s: Scenario) -> None:
    """:func:`check_step` of a loaded scenario."""
    p = s.parallelism
    check_step(s.cluster.num_gpus, s.num_microbatches, p.pipeline, p.virtual_pipeline, s.simulation.monte_carlo)


def check_run(replicas: int, work_days: float, events_per_replica: float) -> None:
    """The run-level budget: replicas, simulated days, and expected events over all replicas."""
    check("replicas (simulation.monte_carlo or --replicas)", replicas, LIMITS.replicas)
    check("training.tokens: failure-free training time", work_days, LIMITS.run_days, " days")
    check("run-level events (replicas x expected interruptions, episodes and recorded checkpoints; "
          "training.tokens, failures.rate_scale, stragglers.episodes_per_day)",
          replicas * events_per_replica, LIMITS.run_events)
