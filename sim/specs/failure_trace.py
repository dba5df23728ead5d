"""A failure trace: one row per node fault (time, node, category, repair time), read from a CSV or given inline.

The CSV (``failures.trace: faults.csv``, relative to the scenario file) has the header
``time_hours,node,category,repair_hours`` (any order), one fault per line, ``#`` comment lines and blank
lines allowed. Every problem is reported with its line (``faults.csv line 7: time_hours -3 must be >= 0``);
the rules are the same for an inline trace, reported by row (``failures.trace.time_hours[5]``).

Bounded work: a file is at most :data:`MAX_BYTES` and :data:`MAX_ROWS` rows; at most :data:`MAX_REPORTED`
problems are listed.
"""

from __future__ import annotations

import csv
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from sim import catalog
from sim.catalog.yamlio import YamlError, read_text
from sim.errors import Issue
from sim.specs._schema import Spec, parse_number, short_repr, spec_field

COLUMNS = ("time_hours", "node", "category", "repair_hours")
MAX_BYTES = 16 * 2**20
MAX_ROWS = 200_000
MAX_REPORTED = 8


def categories() -> dict[str, dict]:
    """The categories a trace row may name: the custom failure components (sim/catalog/reliability.yaml)."""
    return catalog.reliability_table()["custom_components"]


def row_problems(time_hours: Sequence[float], node: Sequence[str], category: Sequence[str],
                 repair_hours: Sequence[float]) -> list[tuple[int, str, str]]:
    """(row index, column, message) of every rule a trace breaks: times finite, >= 0 and in order; a known
    category; repair times finite and >= 0, and 0 for a category that does not take the node out (the job
    restarts on the same nodes)."""
    known = categories()
    out: list[tuple[int, str, str]] = []
    previous = 0.0
    for i, (t, n, c, r) in enumerate(zip(time_hours, node, category, repair_hours, strict=True)):
        if not math.isfinite(t) or t < 0:
            out.append((i, "time_hours", f"{t:g} must be a finite number >= 0"))
        elif t < previous:
            out.append((i, "time_hours", f"{t:g} is before the previous row's {previous:g}: rows must be in "
                                         "time order"))
        else:
            previous = t
        if not n.strip():
            out.append((i, "node", "empty node id"))
        if c not in known:
            out.append((i, "category", f"{short_repr(c)} is not a failure category; known: {', '.join(known)}"))
        if not math.isfinite(r) or r < 0:
            out.append((i, "repair_hours", f"{r:g} must be a finite number >= 0"))
        elif c in known and known[c]["blast"] == 0 and r > 0:
            out.append((i, "repair_hours", f"{r:g} must be 0 for category {c!r}, which restarts the job on the "
                                           "same nodes (a node taken out of service: category 'node')"))
        if len(out) > MAX_REPORTED:
            break
    if not out and not time_hours:
        out.append((0, "time_hours", "the trace has no rows"))
    return out


@dataclass(frozen=True, slots=True, kw_only=True)
class FailureTraceSpec(Spec):
    """Node faults as columns, one entry per fault, in time order (a CSV path in the scenario is read into this)."""

    file: str | None = spec_field(None, doc="the CSV the rows were read from, as written in the scenario")
    time_hours: tuple[float, ...] = spec_field(doc="hours from the start of the trace, non-decreasing")
    node: tuple[str, ...] = spec_field(doc="node id (any text); rows at the same time are one event")
    category: tuple[str, ...] = spec_field(
        doc="failure category: gpu, hbm, node, host, nic, switch (a node fault) or software, nccl, storage, job "
            "(the job restarts on the same nodes), sdc (silent data corruption)")
    repair_hours: tuple[float, ...] = spec_field(doc="hours the node is out of service (0 for job-level "
                                                     "categories)")

    def _issues(self) -> list[Issue]:
        lengths = {len(self.time_hours), len(self.node), len(self.category), len(self.repair_hours)}
        if len(lengths) > 1:
            return [Issue("", "time_hours, node, category and repair_hours must have one entry per fault "
                              f"(lengths {len(self.time_hours)}, {len(self.node)}, {len(self.category)}, "
                              f"{len(self.repair_hours)})")]
        if len(self.time_hours) > MAX_ROWS:
            return [Issue("time_hours", f"{len(self.time_hours):,} rows: at most {MAX_ROWS:,}")]
        found = row_problems(self.time_hours, self.node, self.category, self.repair_hours)
        return [Issue(f"{column}[{i}]" if self.time_hours else column, message)
                for i, column, message in found[:MAX_REPORTED]]

    @property
    def distinct_nodes(self) -> int:
        return len(set(self.node))

    def event_times(self) -> list[float]:
        """The distinct fault times, hours (rows at the same time are one event, a burst)."""
        return sorted(set(self.time_hours))

    def span_hours(self) -> float:
        """The window the trace covers, one replay cycle: hour 0 to its last fault (the next cycle's first fault
        comes the trace's first gap after it, so a cycle keeps the trace's mean gap)."""
        return max(self.time_hours)


def read_trace_csv(ref: str, base: Path | None, field: str) -> tuple[dict | None, list[Issue]]:
    """The trace at ``ref`` (relative to ``base``) as a :class:`FailureTraceSpec` mapping, or the problems
    found, each naming ``field`` and the file's line."""
    path = Path(ref)
    if not path.is_absolute() and base is not None:
        path = base / path
    if not path.is_file():
        where = f" (relative to {base})" if base is not None and not Path(ref).is_absolute() else ""
        return None, [Issue(field, f"{ref!r} is not a readable file{where}")]
    try:
        text = read_text(path, MAX_BYTES).removeprefix("\ufeff")  # a spreadsheet's byte-order mark
    except YamlError as err:
        return None, [Issue(field, f"{ref}: {err}")]
    if "\x00" in text:
        return None, [Issue(field, f"{ref}: contains NUL bytes (not a CSV text file)")]
    return _parse(text, ref, field)


def _cells(line: str) -> list[str] | None:
    try:
        return [c.strip() for c in next(csv.reader([line], strict=True))]
    except (csv.Error, StopIteration):
        return None


def _parse(text: str, ref: str, field: str) -> tuple[dict | None, list[Issue]]:
    lines = [(n, line) for n, line in enumerate(text.splitlines(), start=1)
             if line.strip() and not line.lstrip().startswith("#")]
    if not lines:
        return None, [Issue(field, f"{ref}: no header line; expected {','.join(COLUMNS)}")]
    header_no, header_line = lines[0]
    header = _cells(header_line) or []
    missing = [c for c in COLUMNS if c not in header]
    unknown = [h for h in header if h not in COLUMNS]
    if missing or unknown or len(set(header)) != len(header):
        what = "; ".join(filter(None, [f"missing {', '.join(missing)}" if missing else "",
                                       f"unknown {', '.join(map(short_repr, unknown[:4]))}" if unknown else "",
                                       "a repeated column" if len(set(header)) != len(header) else ""]))
        return None, [Issue(field, f"{ref} line {header_no}: header must name {','.join(COLUMNS)} ({what})")]
    rows = lines[1:]
    if not rows:
        return None, [Issue(field, f"{ref}: no fault rows after the header line {header_no}")]
    if len(rows) > MAX_ROWS:
        return None, [Issue(field, f"{ref}: {len(rows):,} rows, at most {MAX_ROWS:,}")]
    index = {c: header.index(c) for c in COLUMNS}
    cols: dict[str, list] = {c: [] for c in COLUMNS}
    line_of: list[int] = []
    issues: list[Issue] = []
    for n, line in rows:
        cells = _cells(line)
        if cells is None:
            issues.append(Issue(field, f"{ref} line {n}: not a CSV line"))
        elif len(cells) != len(header):
            issues.append(Issue(field, f"{ref} line {n}: {len(cells)} fields, the header has {len(header)}"))
        else:
            time_h, repair_h = (parse_number(cells[index[c]]) for c in ("time_hours", "repair_hours"))
            if time_h is None or repair_h is None:
                issues += [Issue(field, f"{ref} line {n}: {c} {short_repr(cells[index[c]])} is not a number")
                           for c, v in (("time_hours", time_h), ("repair_hours", repair_h)) if v is None]
            else:
                cols["time_hours"].append(float(time_h))
                cols["repair_hours"].append(float(repair_h))
                cols["node"].append(cells[index["node"]])
                cols["category"].append(cells[index["category"]])
                line_of.append(n)
        if len(issues) >= MAX_REPORTED:
            break
    if not issues:
        issues = [Issue(field, f"{ref} line {line_of[i]}: {column} {message}")
                  for i, column, message in row_problems(cols["time_hours"], cols["node"], cols["category"],
                                                         cols["repair_hours"])]
    if issues:
        return None, issues[:MAX_REPORTED]
    return {"file": ref, **cols}, []
