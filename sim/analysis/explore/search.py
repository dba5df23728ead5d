"""``trainsim search``: every valid layout of a scenario, the best simulated, ranked.

1. :func:`~sim.analysis.explore.space.enumerate_space` lists every layout and rejects those the spec
   validation rejects (divisibility, heads, batch, interleaving), counted by reason.
2. :func:`~sim.analysis.explore.prescreen.prescreen` estimates step time and memory of the rest;
   clearly out-of-memory layouts are rejected, the others ordered by estimated step time.
3. The best ``simulate`` of them (by the estimate) are evaluated exactly (memory model, then the step
   simulation) in worker processes on all cores, more being taken while some turn out not to fit.
   The scenario's own layout is always simulated (index :data:`OWN` when the space does not hold it).
4. The ``run_top`` fastest simulated layouts get run figures (the run level's Monte Carlo: days, cost)
   when the scenario has ``training.tokens``; with the ``days`` or ``cost`` objective they are ranked by
   them (for one cluster, days follow the step time closely; the run level prices the differences).
The ranking shown is by the simulated figures only; how well the pre-screen ordered what was simulated
is its Spearman rank correlation with the simulated step times (``prescreen_spearman``). Every simulated
layout carries the features validation does not cover (``unvalidated``: ``sim.analysis.coverage``);
``validated_only`` ranks only the covered ones.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import numpy as np

from sim.analysis.coverage import uncovered
from sim.analysis.evaluate import evaluate
from sim.analysis.explore import pool
from sim.analysis.explore.objective import run_capped, run_figures, run_row, step_row
from sim.analysis.explore.prescreen import Estimate, prescreen
from sim.analysis.explore.space import Enumeration, Layout, SearchSpace, enumerate_space
from sim.errors import TrainsimError
from sim.specs.scenario import ClusterSpec, Scenario
from sim.units import GIB

#: Objective name -> the figures column it ranks by (smaller is better).
OBJECTIVES = {"step": "step_time_s", "days": "days", "cost": "cost_usd"}

#: Row key of the scenario's own layout when the searched space does not hold it.
OWN = -1

#: Layouts simulated by default.
DEFAULT_SIMULATE = 512

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
    own: int
    """Row key of the scenario's own layout: its candidate index, or :data:`OWN`."""
    validated_only: bool = False
    """Rank only layouts whose every feature validation covers."""

    def layout(self, i: int) -> Layout:
        return Layout.of(self.enumeration.base) if i == OWN else self.enumeration.valid.layout(i)

    def own_rank(self) -> int | None:
        """Rank of the scenario's own layout among the simulated ones (None if it does not fit)."""
        order = self._order()
        return order.index(self.own) + 1 if self.own in order else None

    @property
    def num_ranked(self) -> int:
        return len(self._order())

    def _simulated_pairs(self) -> list[tuple[float, float]]:
        return [(float(self.estimate.step_s[i]), r["step_time_s"]) for i, r in self.rows.items()
                if i != OWN and r["step_time_s"] is not None]

    @property
    def simulated_in_space(self) -> int:
        """Simulated layouts of the searched space (the scenario's own counts when the space holds it)."""
        return len(self._simulated_pairs())

    def prescreen_spearman(self) -> float | None:
        """Spearman rank correlation of the pre-screen's step estimate with the simulated step time, over
        the simulated layouts of the space (None with fewer than 3)."""
        pairs = self._simulated_pairs()
        if len(pairs) < 3:
            return None
        est, sim = np.array(pairs).T
        return spearman(est, sim)

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

    @property
    def over_budget(self) -> int:
        """Fitting layouts not simulated because one step's pipeline work exceeds the work budget."""
        within = self.estimate.within_budget
        return 0 if within is None else int((self.estimate.plausible & ~within).sum())

    def ranked(self) -> list[tuple[Layout, dict]]:
        """Simulated layouts, best first: those with the objective's figure by it, then the others by step
        time (ties by enumeration order)."""
        return [(self.layout(i), self.rows[i]) for i in self._order()]

    def _order(self) -> list[int]:
        """Ranked layouts; one whose run hit the cap (figures only lower bounds) is never ranked."""
        key = OBJECTIVES[self.objective]
        simulated = [(i, r) for i, r in self.rows.items() if r["step_time_s"] is not None and not run_capped(r)
                     and not (self.validated_only and r["unvalidated"])]
        # The scenario's own layout gets run figures even when it is not among the fastest; it is ranked by them
        # only if it is as fast as the slowest other layout that has them (else by step, among those without).
        others = [r["step_time_s"] for i, r in simulated if r[key] is not None and i != self.own]
        own = self.rows.get(self.own)
        own_by_step = own is not None and own[key] is not None and own["step_time_s"] > max(others, default=-1.0)

        def unranked(i: int, r: dict) -> bool:
            return r[key] is None or (i == self.own and own_by_step)

        return [i for *_, i in sorted((unranked(i, r), r["step_time_s"] if unranked(i, r) else r[key],
                                       r["step_time_s"], i) for i, r in simulated)]

    def table(self) -> Iterator[dict]:
        """Every layout that passed the validation: layout, pre-screen estimate, status, exact figures."""
        est, valid = self.estimate, self.enumeration.valid
        rank = {i: k + 1 for k, i in enumerate(self._order())}
        blank = dict.fromkeys(next(iter(self.rows.values()), {}))
        for i in range(len(valid)):
            row = self.rows.get(i)
            if row is not None and run_capped(row):
                status = "unfinished (run hit the cap: lower bounds)"
            elif row is not None:
                status = "simulated" if row["step_time_s"] is not None else "out of memory"
            elif not est.plausible[i]:
                status = "out of memory (pre-screen)"
            elif est.within_budget is not None and not est.within_budget[i]:
                status = "over the work budget (--allow-large)"
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
    scenario = base if item[0] == OWN else item[1].apply(base, cluster)  # the own layout exactly as written
    return {**step_row(evaluate(scenario)), "unvalidated": "; ".join(uncovered(scenario))}


def _run_indexed(item: tuple[int, Layout, float]) -> dict:
    base, cluster, replicas = pool.shared()
    scenario = base if item[0] == OWN else item[1].apply(base, cluster)
    return run_row(run_figures(scenario, item[2], replicas))


def search(base: Scenario, space: SearchSpace | None = None, *, cluster: ClusterSpec | None = None,
           simulate: int = DEFAULT_SIMULATE, run_top: int = 10, replicas: int | None = None,
           objective: str | None = None, workers: int | None = None, validated_only: bool = False,
           progress: Progress | None = None) -> SearchResult:
    """Search the layouts of ``base`` (on ``cluster``, default its own) and simulate the ``simulate`` best.

    Parameters
    ----------
    base
        Model, training job and the layout options not searched (sequence parallel, overlaps...).
    space
        Values tried per axis (default :class:`SearchSpace`).
    simulate
        How many layouts that fit in memory to simulate, best pre-screen estimate first (the scenario's
        own layout is simulated besides, when the search runs on its own cluster).
    run_top
        How many of the fastest simulated layouts get run figures (with ``training.tokens``).
    replicas
        Monte Carlo replicas of the run level (default ``simulation.monte_carlo``).
    objective
        ``step``, ``days`` or ``cost`` (default :func:`default_objective`).
    workers
        Worker processes (default: all cores; 1 runs in this process).
    validated_only
        Rank only layouts whose every feature validation covers (the others stay in ``rows`` and the
        table, unranked).
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
    own = _own_index(base, enum)
    first: list[int] = [] if own is None else [own]
    if own is not None:
        order = order[order != own]
    with pool.Pool((base, enum.cluster, replicas), workers) as workers_pool:
        while (fitting < simulate and pos < len(order)) or first:
            batch = first + [int(i) for i in order[pos:pos + simulate - fitting]]
            pos += len(batch) - len(first)
            total += len(batch)
            items = [(i, Layout.of(base) if i == OWN else enum.valid.layout(i)) for i in batch]
            first = []
            for (i, _), row in workers_pool.imap_unordered(_evaluate_indexed, items):
                rows[i] = row
                fitting += row["step_time_s"] is not None and i != own
                if progress is not None:
                    progress(len(rows), total)
        timings["simulate"] = time.perf_counter() - start - sum(timings.values())
        if base.training.tokens is not None:
            fastest = sorted((r["step_time_s"], i) for i, r in rows.items() if r["step_time_s"] is not None
                             and not (validated_only and r["unvalidated"]))
            chosen = fastest[:run_top]
            own_step = None if own is None else rows[own]["step_time_s"]
            if own is not None and own_step is not None and (own_step, own) not in chosen:
                chosen.append((own_step, own))
            runs = [(i, Layout.of(base) if i == OWN else enum.valid.layout(i), t) for t, i in chosen]
            for (i, *_), run in workers_pool.imap_unordered(_run_indexed, runs):
                rows[i].update(run)
        timings["run level"] = time.perf_counter() - start - sum(timings.values())
    return SearchResult(enum, est, objective, rows, timings, workers_pool.workers,
                        OWN if own is None else own, validated_only)


def _own_index(base: Scenario, enum: Enumeration) -> int | None:
    """Row key of the scenario's own layout: its index in the space if the space holds it exactly (same
    layout on the scenario's own cluster, one pipeline-split flag for both ends), else :data:`OWN`;
    None when searching another cluster (the scenario's layout does not apply)."""
    if enum.cluster != base.cluster:
        return None
    p = base.parallelism
    if p.account_for_embedding_in_pipeline_split == p.account_for_loss_in_pipeline_split:
        found = enum.valid.find(Layout.of(base))
        if found is not None:
            return found
    return OWN


def spearman(a: np.ndarray, b: np.ndarray) -> float:
    """Spearman's rank correlation (ties get their average rank)."""
    ra, rb = _ranks(a), _ranks(b)
    if ra.std() == 0 or rb.std() == 0:
        return float("nan")
    return float(np.corrcoef(ra, rb)[0, 1])


def _ranks(x: np.ndarray) -> np.ndarray:
    order = np.argsort(x, kind="stable")
    ranks = np.empty(len(x))
    ranks[order] = np.arange(len(x), dtype=float)
    _, inverse, counts = np.unique(x, return_inverse=True, return_counts=True)
    sums = np.bincount(inverse, weights=ranks)
    return (sums / counts)[inverse]


def screen_order(est: Estimate) -> np.ndarray:
    """Indices of the candidates not clearly out of memory and within the work budget, best estimated step time
    first."""
    ok = np.flatnonzero(est.plausible if est.within_budget is None else est.plausible & est.within_budget)
    return ok[np.lexsort((ok, est.step_s[ok]))]
