"""``trainsim sweep``: the points of a sweep file (sim/specs/sweep.py) evaluated into one resumable table.

Each point is the base with its assignments applied by ``dataclasses.replace`` (sim/specs/variants.py).
Results go to a results table (the CSV of ``sim.report.tables.ResultsFile``, one flushed row per finished
point, keyed by the point's key); running the same sweep again skips the keys already in it, so an
interrupted sweep (Ctrl-C, a killed process or worker) resumes without redoing or losing finished points.
Points run on all local cores, or on a Dask cluster (``distributed``, imported only then).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, Protocol

from sim.analysis.evaluate import evaluate
from sim.analysis.explore import pool
from sim.analysis.explore.objective import FIGURE_COLUMNS, run_capped, run_figures, run_row, step_row
from sim.errors import ScenarioError, TrainsimError
from sim.specs.scenario import Scenario
from sim.specs.sweep import Point, Sweep
from sim.specs.variants import apply_assignments

#: A point lost with its worker is resubmitted this many times before the sweep stops (a point that
#: keeps killing workers, e.g. by exhausting their memory, would otherwise loop forever).
MAX_RESUBMITS = 3


class ResultsTable(Protocol):
    """Where finished points go: the rows already there (by point key), and one more per finished point."""

    rows: dict[str, dict[str, str]]

    def append(self, point: Point, result: dict[str, Any]) -> None: ...


def sweep_columns(sweep: Sweep) -> tuple[str, ...]:
    """The results table's columns: key, the varied fields, status, then every figure."""
    return ("key", *sweep.fields, "status", "reason", *FIGURE_COLUMNS)


def evaluate_point(base: Scenario, assignments: dict[str, Any]) -> dict[str, Any]:
    """Status, step and run figures of one point; an invalid variant is a result (status ``invalid``)."""
    try:
        s = apply_assignments(base, assignments)
        ev = evaluate(s)
        run = run_figures(s, ev.step.step_time_s if ev.step else None)
    except ScenarioError as err:
        return {"status": "invalid", "reason": "; ".join(str(i) for i in err.issues)}
    except TrainsimError as err:
        return {"status": "infeasible", "reason": str(err)}
    status = "ok" if ev.step is not None else "out of memory"
    row = {**step_row(ev), **run_row(run)}
    if run_capped(row):
        return {"status": "unfinished", "reason": f"{row['unfinished']} replica(s) hit the wall-time or failure cap: "
                "run figures are lower bounds", **row}
    return {"status": status, "reason": "", **row}


def _evaluate_shared(point: Point) -> dict[str, Any]:
    (base,) = pool.shared()
    return evaluate_point(base, point.assignments)


@dataclass(frozen=True, slots=True)
class SweepOutcome:
    """How a sweep run went: rows of every point in sweep order (from the results file)."""

    total: int
    already_done: int
    computed: int
    rows: list[dict[str, str]]


def run_sweep(sweep: Sweep, results: ResultsTable, *, dask: str | None = None, workers: int | None = None,
              progress: Callable[[int, int], None] | None = None, connect_timeout_s: float = 20.0) -> SweepOutcome:
    """Evaluate the points of ``sweep`` not yet in ``results``; locally, or on the Dask scheduler ``dask``."""
    pending = [p for p in sweep.points if p.key not in results.rows]
    already = len(sweep.points) - len(pending)
    if dask is not None:
        stream = _dask_results(dask, sweep.base, pending, connect_timeout_s)
    else:
        stream = _local_results(sweep.base, pending, workers)
    computed = 0
    for point, result in stream:
        results.append(point, result)
        computed += 1
        if progress is not None:
            progress(computed, len(pending))
    rows = [results.rows[p.key] for p in sweep.points if p.key in results.rows]
    return SweepOutcome(len(sweep.points), already, computed, rows)


def _local_results(base: Scenario, points: list[Point], workers: int | None) -> Iterator[tuple[Point, dict]]:
    with pool.Pool((base,), workers) as local:
        yield from local.imap_unordered(_evaluate_shared, points)


def check_dask_address(address: str) -> None:
    """A scheduler address must look like one (``tcp://host:8786``, ``host:8786``) before the sweep starts."""
    if not _ADDRESS.match(address):
        raise TrainsimError(f"--dask {address!r}: not a scheduler address; use tcp://HOST:PORT "
                            "(or tls://, ws://, inproc://)")


_ADDRESS = re.compile(r"^(?:(?:tcp|tls|ws|wss|ucx|inproc)://)?[A-Za-z0-9_.\-\[\]:%]+(?::\d{1,5})?(?:/[\w./-]*)?$")


def _dask_results(address: str, base: Scenario, points: list[Point],
                  timeout_s: float) -> Iterator[tuple[Point, dict]]:
    """Submit every point to the Dask cluster at ``address``; resubmit points whose worker died."""
    try:
        from distributed import Client, as_completed
        from distributed.scheduler import KilledWorker
    except ImportError:
        raise TrainsimError("--dask needs the 'distributed' package: pip install 'trainsim[dask]'") from None
    try:
        client = Client(address, timeout=timeout_s)
    except (OSError, TimeoutError, ValueError, TypeError) as err:  # ValueError: an address it cannot parse
        raise TrainsimError(f"cannot reach the Dask scheduler at {address}: {err}") from None
    with client:
        def submit(point: Point):
            return client.submit(evaluate_point, base, point.assignments, pure=False)

        futures = {submit(p): (p, 0) for p in points}
        stream = as_completed(list(futures))
        for fut in stream:
            point, tries = futures.pop(fut)
            # Waits while the future is "lost": its result died with its worker before it was collected (the
            # future had finished) and the scheduler recomputes it. Its status is not "finished" meanwhile, and
            # it is no failure either: None once it finished.
            failure = fut.exception()
            if failure is None and not fut.cancelled():
                yield point, fut.result()
                continue
            if isinstance(failure, KilledWorker) and tries < MAX_RESUBMITS:
                again = submit(point)
                futures[again] = (point, tries + 1)
                stream.add(again)
                continue
            raise TrainsimError(f"point {point.key} {point.assignments} failed on Dask: "
                                f"{'cancelled' if failure is None else repr(failure)}")
