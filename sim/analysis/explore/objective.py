"""Step and run figures of one evaluated layout, as flat table columns.

:func:`run_figures` is the one place the search, sizing and sweeps get days, GPU-hours and cost from:
the run level's Monte Carlo (``sim.analysis.runlevel``: failures, checkpoints, restarts, spares and
stragglers as the scenario configures them; without them, the failure-free run).
"""

from __future__ import annotations

from dataclasses import dataclass

from sim.analysis.evaluate import Evaluation
from sim.analysis.runlevel import simulate_run_level
from sim.specs.scenario import Scenario
from sim.units import GIB


@dataclass(frozen=True, slots=True)
class RunFigures:
    """Mean and P90 wall-clock days to train ``training.tokens``, goodput, GPU-hours and their price;
    ``unfinished`` replicas hit the wall-time or failure cap (the figures are then lower bounds)."""

    days: float
    days_p90: float
    goodput: float
    gpu_hours: float
    cost_usd: float
    unfinished: int = 0


def run_figures(s: Scenario, step_time_s: float | None, replicas: int | None = None) -> RunFigures | None:
    """Run figures of ``s`` at ``step_time_s``; None without a step time or ``training.tokens``.

    ``replicas`` Monte Carlo runs (default ``simulation.monte_carlo``) from ``simulation.seed``, so
    layouts compared on one scenario see the same failure draws. GPU-hours = GPUs x mean hours; cost =
    GPU-hours x ``costs.usd_per_gpu_hour`` (the CostsSpec default when the scenario has no costs).
    """
    if step_time_s is None or s.training.tokens is None:
        return None
    run = simulate_run_level(s, step_time_s, replicas=replicas)
    return RunFigures(days=run.days_mean, days_p90=run.days_p90, goodput=run.goodput,
                      gpu_hours=run.gpu_hours, cost_usd=run.cost_usd, unfinished=run.unfinished)


#: Columns of :func:`step_row` and :func:`run_row`, in order.
STEP_COLUMNS = ("fits", "memory_gib", "step_time_s", "mfu", "tokens_per_s_per_gpu", "bubble_fraction",
                "exposed_comm_fraction")
RUN_COLUMNS = ("days", "days_p90", "goodput", "gpu_hours", "cost_usd", "unfinished")
FIGURE_COLUMNS = STEP_COLUMNS + RUN_COLUMNS


def step_row(ev: Evaluation) -> dict[str, float | bool | None]:
    """Memory and step figures (None where the layout was not simulated); run columns empty."""
    step = ev.step
    row: dict[str, float | bool | None] = dict.fromkeys(FIGURE_COLUMNS)
    row.update(fits=ev.fits, memory_gib=ev.memory.total / GIB)
    if step is not None:
        row.update(step_time_s=step.step_time_s, mfu=step.mfu,
                   tokens_per_s_per_gpu=step.tokens_per_s_per_gpu,
                   bubble_fraction=step.bubble_fraction, exposed_comm_fraction=step.exposed_comm_fraction)
    return row


def run_row(figures: RunFigures | None) -> dict[str, float | None]:
    """The run columns (None without run figures)."""
    if figures is None:
        return dict.fromkeys(RUN_COLUMNS)
    return {"days": figures.days, "days_p90": figures.days_p90, "goodput": figures.goodput,
            "gpu_hours": figures.gpu_hours, "cost_usd": figures.cost_usd, "unfinished": figures.unfinished}


def run_capped(row: dict) -> bool:
    """A row whose run figures are lower bounds (a replica hit the cap): never ranked, chosen or ok."""
    return bool(row.get("unfinished"))
