"""``trainsim search``: every valid layout of a scenario, the best simulated, ranked.

1. :func:`~sim.analysis.explore.space.enumerate_space` lists every layout and rejects those the spec
   validation rejects (divisibility, heads, batch, interleaving), counted by reason.
2. :func:`~sim.analysis.explore.prescreen.prescreen` estimates step time and memory of the rest;
   clearly out-of-memory layouts are rejected, the others ordered by estimated step time.
3. The best ``simulate`` of them (by the estimate) are evaluated exactly (memory model, then the step
   simulation) in worker processes on all cores, more being taken while some turn out not to fit.
4. The ``run_top`` fastest simulated layouts get run figures (the run level's Monte Carlo: days, cost)
   when the scenario has ``training.tokens``; with the ``days`` or ``cost`` objective they are ranked by
   them (for one cluster, days follow the step time closely; the run level prices the differences).
The ranking shown is by the simulated figures only.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import numpy as np

from sim.analysis.evaluate import evaluate
from sim.analysis.explore import pool
from sim.analysis.explore.objective import run_figures, run_row, step_row
from sim.analysis.explore.prescreen import Estimate, prescreen
from sim.analysis.explore.space import Enumeration, Layout, SearchSpace, enumerate_space
from sim.errors import TrainsimError
from sim.specs.scenario import ClusterSpec, Scenario
from sim.units import GIB

#: Objective name -> the figures column it ranks by (smaller is better).
OBJECTIVES = {"step": "step_time_s", "days": "days", "cost": "cost_usd"}

Progress = Callable[[int, int], None]


@dataclass
class SearchResult:
    """What a search found. ``rows`` maps a candidate index to its exact figures (``step_row``, plus
    ``run_row`` for the fastest)."""

    enumeration: Enumeration
    estimate: Estimate
    objective: str
    rows: dict[int, dict]
    timings_s: dict[str, float]
    workers: int

    @property
    def elapsed_s(self) -> float:
        return sum(self.timings_s.values())

    @property
    def simulated(self) -> int:
        return sum(1 for r in self.rows.values() if r["step_time_s"] is not None)

    @property
    def out_of_memory(self) -> int:
        """Rejected by the exact memory model (after passing the pre-screen)."""
        return sum(1 for r in self.rows.values() if not r["fits"])

    @property
    def screened_out_of_memory(self) -> int:
        """Rejected by the pre-screen's memory estimate."""
        return int((~self.estimate.plausible).sum())

    def ranked(self) -> list[tuple[Layout, dict]]:
        """Simulated layouts, best first: those with the objective's figure by it, then the others by step
        time (ties by enumeration order)."""
        return [(self.enumeration.valid.layout(i), self.rows[i]) for i in self._order()]

    def _order(self) -> list[int]:
        key = OBJECTIVES[self.objective]
        simulated = [(i, r) for i, r in self.rows.items() if r["step_time_s"] is not None]
        return [i for *_, i in sorted((r[key] is None, r["step_time_s"] if r[key] is None else r[key],
                                       r["step_time_s"], i) for i, r in simulated)]

    def table(self) -> Iterator[dict]:
        """Every layout that passed the validation: layout, pre-screen estimate, status, exact figures."""
        est, valid = self.estimate, self.enumeration.valid
        rank = {i: k + 1 for k, i in enumerate(self._order())}
        blank = dict.fromkeys(next(iter(self.rows.values()), {}))
        for i in range(len(valid)):
            row = self.rows.get(i)
            if row is not None:
                status = "simulated" if row["step_time_s"] is not None else "out of memory"
            elif not est.plausible[i]:
                status = "out of memory (pre-screen)"
            else:
                status = "not simulated"
            yield {"rank": rank.get(i), **valid.layout(i).row(), "status": status,
                   "est_step_time_s": float(est.step_s[i]), "est_memory_gib": float(est.memory_bytes[i] / GIB),
                   **(row or blank)}


def default_objective(s: Scenario) -> str:
    """Run days when failures are configured and the tokens are known, else step time."""
    return "days" if s.failures is not None and s.training.tokens is not None else "step"


def _evaluate_indexed(item: tuple[int, Layout]) -> dict:
    base, cluster, _ = pool.shared()
    return step_row(evaluate(item[1].apply(base, cluster)))


def _run_indexed(item: tuple[int, Layout, float]) -> dict:
    base, cluster, replicas = pool.shared()
    return run_row(run_figures(item[1].apply(base, cluster), item[2], replicas))


def search(base: Scenario, space: SearchSpace | None = None, *, cluster: ClusterSpec | None = None,
           simulate: int = 32, run_top: int = 10, replicas: int | None = None, objective: str | None = None,
           workers: int | None = None, progress: Progress | None = None) -> SearchResult:
    """Search the layouts of ``base`` (on ``cluster``, default its own) and simulate the ``simulate`` best.

    Parameters
    ----------
    base
        Model, training job and the layout options not searched (sequence parallel, overlaps...).
    space
        Values tried per axis (default :class:`SearchSpace`).
    simulate
        How many layouts that fit in memory to simulate, best pre-screen estimate first.
    run_top
        How many of the fastest simulated layouts get run figures (with ``training.tokens``).
    replicas
        Monte Carlo replicas of the run level (default ``simulation.monte_carlo``).
    objective
        ``step``, ``days`` or ``cost`` (default :func:`default_objective`).
    workers
        Worker processes (default: all cores; 1 runs in this process).
    progress
        ``callback(done, total)`` after each simulation.
    """
    start = time.perf_counter()
    objective = objective or default_objective(base)
    if objective not in OBJECTIVES:
        raise TrainsimError(f"objective {objective!r}: use one of {', '.join(OBJECTIVES)}")
    if objective != "step" and base.training.tokens is None:
        raise TrainsimError(f"objective {objective!r} needs training.tokens in the scenario")
    enum = enumerate_space(base, space or SearchSpace(), cluster)
    timings = {"enumerate": time.perf_counter() - start}
    est = prescreen(enum)
    order = screen_order(est)
    timings["prescreen"] = time.perf_counter() - start - timings["enumerate"]
    rows: dict[int, dict] = {}
    fitting, pos, total = 0, 0, 0
    with pool.Pool((base, enum.cluster, replicas), workers) as workers_pool:
        while fitting < simulate and pos < len(order):
            batch = order[pos:pos + simulate - fitting]
            pos += len(batch)
            total += len(batch)
            items = [(int(i), enum.valid.layout(int(i))) for i in batch]
            for (i, _), row in workers_pool.imap_unordered(_evaluate_indexed, items):
                rows[i] = row
                fitting += row["step_time_s"] is not None
                if progress is not None:
                    progress(len(rows), total)
        timings["simulate"] = time.perf_counter() - start - sum(timings.values())
        if base.training.tokens is not None:
            fastest = sorted((r["step_time_s"], i) for i, r in rows.items() if r["step_time_s"] is not None)
            items = [(i, enum.valid.layout(i), t) for t, i in fastest[:run_top]]
            for (i, *_), run in workers_pool.imap_unordered(_run_indexed, items):
                rows[i].update(run)
        timings["run level"] = time.perf_counter() - start - sum(timings.values())
    return SearchResult(enum, est, objective, rows, timings, workers_pool.workers)


def screen_order(est: Estimate) -> np.ndarray:
    """Indices of the candidates not clearly out of memory, best estimated step time first."""
    ok = np.flatnonzero(est.plausible)
    return ok[np.lexsort((ok, est.step_s[ok]))]
