"""Sweep files: a base scenario and the fields to vary by dotted path, loaded and checked like a scenario.

A sweep file names a base scenario and the fields to vary::

    base: ../llama3-8b-64-h100.yaml                  # relative to the sweep file
    grid:                                            # every combination
      failures.rate_scale: [1, 2]
      checkpoint.interval_minutes: [30, 120]
      cluster.num_gpus, parallelism.data: [[64, 8], [128, 16]]   # fields that change together
    points:                                          # optional: a list (crossed with the grid if both)
      - {parallelism.zero_stage: 0}

Each point gets a stable key (a hash of its assignments and of the base scenario as loaded, its preset and
topology resolved), so a results table can be resumed, and a point is recomputed when the base changed. The
number of points is checked against the work budget (sim/specs/budget.py) before the grid is built.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sim.catalog.yamlio import YamlError, read_yaml_file
from sim.errors import Issue, ScenarioError
from sim.specs import budget
from sim.specs._schema import parse_number
from sim.specs.scenario import Scenario, load_scenario
from sim.specs.variants import check_path


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
    source: Path | None = None  # the base scenario's file


#: The keys of a sweep file and what each holds (the loader's check and docs/sweep.md read this).
SWEEP_KEYS = {
    "base": "path of the base scenario, relative to the sweep file (required)",
    "grid": "mapping of field path -> list of values; every combination is a point. Fields that change "
            "together share one key, comma-separated (`cluster.num_gpus, parallelism.data`), and each value "
            "is then a list with one value per field",
    "points": "list of mappings field path -> value, each one point; crossed with the grid when both are given",
}


def point_key(assignments: dict[str, Any], base: str = "") -> str:
    """A stable key of a point: the hash of its assignments (order-independent) and of ``base`` (the digest
    of the base scenario, :func:`base_digest`)."""
    text = json.dumps(assignments, sort_keys=True, default=str) + base
    return hashlib.sha1(text.encode()).hexdigest()[:12]


def base_digest(base: Scenario) -> str:
    """The content of a validated scenario (every field, the preset and topology resolved) as a hash: the
    repr of frozen dataclasses of numbers, strings and enums is deterministic."""
    return hashlib.sha1(repr(base).encode()).hexdigest()


def load_sweep(path: str | Path) -> Sweep:
    """Read and check a sweep file; raises ScenarioError naming every problem."""
    path = Path(path)
    try:
        data = read_yaml_file(path)
    except YamlError as err:
        raise ScenarioError([Issue("", str(err))], str(path)) from None
    if not isinstance(data, dict):
        raise ScenarioError([Issue("", "a sweep is a mapping with base, grid and/or points")], str(path))
    issues = [Issue(str(k)[:60], f"unknown key; use {', '.join(SWEEP_KEYS)}") for k in data if k not in SWEEP_KEYS]
    if not isinstance(data.get("base"), str):
        issues.append(Issue("base", "required: the path of the base scenario (relative to the sweep file)"))
    axes = _grid_axes(data.get("grid"), issues)
    listed = _listed_points(data.get("points"), issues)
    if not axes and not listed:
        issues.append(Issue("grid", "a sweep needs a grid or a list of points"))
    if not issues:
        count = math.prod(len(axis) for axis in axes) * max(1, len(listed))
        budget.check("sweep points (grid x points)", count, budget.LIMITS.sweep_points)
    if issues:
        raise ScenarioError(issues, str(path))
    source = path.parent / data["base"]
    base = load_scenario(source)
    budget.check_scenario(base)
    digest = base_digest(base)
    combos = [dict(itertools.chain.from_iterable(a.items() for a in c)) for c in itertools.product(*axes)]
    assignments = [{**c, **p} for c in combos for p in (listed or [{}])]
    fields = tuple(dict.fromkeys(k for a in assignments for k in a))
    for a in assignments:
        _check_point_budget(base, a)
    points = tuple(Point(point_key(a, digest), a) for a in assignments)
    dupes = len(points) - len({p.key for p in points})
    if dupes:
        raise ScenarioError([Issue("points", f"{dupes} point(s) repeat another point")], str(path))
    return Sweep(base, fields, points, source)


#: The fields the step budget reads (sim/specs/budget.py), by dotted path.
_BUDGET_FIELDS = ("cluster.num_gpus", "training.global_batch_size", "parallelism.data", "parallelism.micro_batch_size",
                  "parallelism.pipeline", "parallelism.virtual_pipeline", "simulation.monte_carlo")


def _check_point_budget(base: Scenario, assignments: dict[str, Any]) -> None:
    """The step budget of one point, from the base and the point's numbers, before anything is simulated (an
    invalid value is left to the point's own validation)."""
    values: dict[str, int] = {}
    for path in _BUDGET_FIELDS:
        section, field = path.split(".")
        value = parse_number(assignments.get(path, getattr(getattr(base, section), field)))
        if value is None or not math.isfinite(value) or value < 1:
            return
        values[field] = int(value)
    micro = values["global_batch_size"] // (values["data"] * values["micro_batch_size"])
    budget.check_step(values["num_gpus"], micro, values["pipeline"], values["virtual_pipeline"],
                      values["monte_carlo"])


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
