"""``trainsim sweep``: a grid (or list) of scenario variants, evaluated into one resumable table.

A sweep file names a base scenario and the fields to vary by dotted path::

    base: ../llama3-8b-64-h100.yaml                  # relative to the sweep file
    grid:                                            # every combination
      failures.rate_scale: [1, 2]
      checkpoint.interval_minutes: [30, 120]
      cluster.num_gpus, parallelism.data: [[64, 8], [128, 16]]   # fields that change together
    points:                                          # optional: a list (crossed with the grid if both)
      - {parallelism.zero_stage: 0}

Each point is the base with its assignments applied by ``dataclasses.replace`` (see ``variants``).
Results are appended to a CSV file, one flushed row per finished point, keyed by a hash of the point's
assignments; running the same sweep again skips the keys already in the file, so an interrupted sweep
(Ctrl-C, a killed process or worker) resumes without redoing or losing finished points. Points run on
all local cores, or on a Dask cluster (``distributed``, imported only then).
"""

from __future__ import annotations

import csv
import hashlib
import itertools
import json
import os
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from sim.analysis.evaluate import evaluate
from sim.analysis.explore import pool
from sim.analysis.explore.objective import FIGURE_COLUMNS, run_figures, run_row, step_row
from sim.analysis.explore.variants import apply_assignments, check_path
from sim.errors import Issue, ScenarioError, TrainsimError
from sim.specs.scenario import Scenario, load_scenario

#: A point lost with its worker is resubmitted this many times before the sweep stops (a point that
#: keeps killing workers, e.g. by exhausting their memory, would otherwise loop forever).
MAX_RESUBMITS = 3


@dataclass(frozen=True, slots=True)
class Point:
    """One variant: its stable key and the field assignments (dotted path -> YAML value)."""

    key: str
    assignments: dict[str, Any]


@dataclass(frozen=True, slots=True)
class Sweep:
    base: Scenario
    fields: tuple[str, ...]
    points: tuple[Point, ...]

    @property
    def columns(self) -> tuple[str, ...]:
        return ("key", *self.fields, "status", "reason", *FIGURE_COLUMNS)


def point_key(assignments: dict[str, Any]) -> str:
    """A stable key of a point: the hash of its assignments (order-independent)."""
    text = json.dumps(assignments, sort_keys=True, default=str)
    return hashlib.sha1(text.encode()).hexdigest()[:12]


def load_sweep(path: str | Path) -> Sweep:
    """Read and check a sweep file; raises ScenarioError naming every problem."""
    path = Path(path)
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as err:
        raise ScenarioError([Issue("", f"cannot read sweep: {err.strerror}")], str(path)) from None
    except Exception as err:  # PyYAML constructors raise several exception types
        raise ScenarioError([Issue("", f"not valid YAML: {err}")], str(path)) from None
    if not isinstance(data, dict):
        raise ScenarioError([Issue("", "a sweep is a mapping with base, grid and/or points")], str(path))
    issues = [Issue(k, "unknown key; use base, grid, points") for k in data if k not in ("base", "grid", "points")]
    if not isinstance(data.get("base"), str):
        issues.append(Issue("base", "required: the path of the base scenario (relative to the sweep file)"))
    axes = _grid_axes(data.get("grid"), issues)
    listed = _listed_points(data.get("points"), issues)
    if not axes and not listed:
        issues.append(Issue("grid", "a sweep needs a grid or a list of points"))
    if issues:
        raise ScenarioError(issues, str(path))
    base = load_scenario(path.parent / data["base"])
    combos = [dict(itertools.chain.from_iterable(a.items() for a in c)) for c in itertools.product(*axes)]
    assignments = [{**c, **p} for c in combos for p in (listed or [{}])]
    fields = tuple(dict.fromkeys(k for a in assignments for k in a))
    points = tuple(Point(point_key(a), a) for a in assignments)
    dupes = len(points) - len({p.key for p in points})
    if dupes:
        raise ScenarioError([Issue("points", f"{dupes} point(s) repeat another point")], str(path))
    return Sweep(base, fields, points)


def _grid_axes(grid: Any, issues: list[Issue]) -> list[list[dict[str, Any]]]:
    """Each grid entry as a list of assignment dicts (linked fields set together)."""
    if grid is None:
        return []
    if not isinstance(grid, dict):
        issues.append(Issue("grid", "expected a mapping of field path -> list of values"))
        return []
    axes = []
    for key, values in grid.items():
        paths = [p.strip() for p in str(key).split(",")]
        bad = [i for p in paths for i in check_path(p)]
        issues += [Issue(f"grid.{i.path}", i.message) for i in bad]
        if not isinstance(values, list) or not values:
            issues.append(Issue(f"grid.{key}", "expected a non-empty list of values"))
            continue
        if len(paths) > 1 and not all(isinstance(v, list) and len(v) == len(paths) for v in values):
            issues.append(Issue(f"grid.{key}", f"linked fields: each value is a list of {len(paths)}"))
            continue
        axes.append([dict(zip(paths, v if len(paths) > 1 else [v], strict=True)) for v in values])
    return axes


def _listed_points(points: Any, issues: list[Issue]) -> list[dict[str, Any]]:
    if points is None:
        return []
    if not isinstance(points, list) or not all(isinstance(p, dict) and p for p in points):
        issues.append(Issue("points", "expected a list of non-empty mappings field path -> value"))
        return []
    for i, p in enumerate(points):
        issues += [Issue(f"points[{i}].{x.path}", x.message) for k in p for x in check_path(str(k))]
    return [{str(k): v for k, v in p.items()} for p in points]


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
    return {"status": status, "reason": "", **step_row(ev), **run_row(run)}


def _evaluate_shared(point: Point) -> dict[str, Any]:
    (base,) = pool.shared()
    return evaluate_point(base, point.assignments)


class ResultsFile:
    """The sweep's CSV: one row per finished point, appended and flushed as each finishes."""

    def __init__(self, path: str | Path, columns: Sequence[str]) -> None:
        self.path, self.columns = Path(path), list(columns)
        if self.path.suffix == ".parquet":
            raise TrainsimError(f"{self.path}: sweep results are appended as points finish; use a .csv name")
        self.rows: dict[str, dict[str, str]] = {}
        if self.path.exists() and self.path.stat().st_size > 0:
            self._read()
        else:
            self._write_header()

    def _read(self) -> None:
        text = self.path.read_text(encoding="utf-8")
        if not text.endswith("\n"):  # a row cut short by a kill: drop it, the point runs again
            text = text[:text.rfind("\n") + 1]
            self.path.write_text(text, encoding="utf-8")
        reader = csv.reader(text.splitlines())
        header = next(reader, None)
        if header != self.columns:
            raise TrainsimError(f"{self.path} holds another sweep's results (columns differ); "
                                "use another -o or remove it")
        for values in reader:
            if len(values) == len(self.columns):
                row = dict(zip(self.columns, values, strict=True))
                self.rows[row["key"]] = row

    def _write_header(self) -> None:
        with self.path.open("w", newline="", encoding="utf-8") as fh:
            csv.writer(fh).writerow(self.columns)

    def append(self, point: Point, result: dict[str, Any]) -> None:
        """Add a finished point (ignored if its key is already there)."""
        if point.key in self.rows:
            return
        row = {"key": point.key, **{k: _cell(v) for k, v in point.assignments.items()},
               **{k: _cell(v) for k, v in result.items()}}
        row = {c: row.get(c, "") for c in self.columns}
        with self.path.open("a", newline="", encoding="utf-8") as fh:
            csv.writer(fh).writerow([row[c] for c in self.columns])
            fh.flush()
            os.fsync(fh.fileno())
        self.rows[point.key] = row


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:.6g}"
    if isinstance(value, (list, dict)):
        return json.dumps(value)
    return str(value)


@dataclass(frozen=True, slots=True)
class SweepOutcome:
    """How a sweep run went: rows of every point in sweep order (from the results file)."""

    total: int
    already_done: int
    computed: int
    rows: list[dict[str, str]]


def run_sweep(sweep: Sweep, out: str | Path, *, dask: str | None = None, workers: int | None = None,
              progress: Callable[[int, int], None] | None = None, connect_timeout_s: float = 20.0) -> SweepOutcome:
    """Evaluate the points of ``sweep`` not yet in ``out``; locally, or on the Dask scheduler ``dask``."""
    results = ResultsFile(out, sweep.columns)
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
    except (OSError, TimeoutError) as err:
        raise TrainsimError(f"cannot reach the Dask scheduler at {address}: {err}") from None
    with client:
        def submit(point: Point):
            return client.submit(evaluate_point, base, point.assignments, pure=False)

        futures = {submit(p): (p, 0) for p in points}
        stream = as_completed(list(futures))
        for fut in stream:
            point, tries = futures.pop(fut)
            if fut.status == "finished":
                yield point, fut.result()
                continue
            err = fut.exception()
            if isinstance(err, KilledWorker) and tries < MAX_RESUBMITS:
                again = submit(point)
                futures[again] = (point, tries + 1)
                stream.add(again)
                continue
            raise TrainsimError(f"point {point.key} {point.assignments} failed on Dask: {err!r}")
