"""Result tables to files: CSV (or Parquet when the name ends in ``.parquet`` and pyarrow is installed),
and the resumable CSV of a sweep, one flushed row per finished point."""

from __future__ import annotations

import csv
import json
import os
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from sim.analysis.explore.sweep import sweep_columns
from sim.errors import TrainsimError
from sim.specs.sweep import Point, Sweep


def write_table(path: str | Path, rows: Iterable[dict], columns: Sequence[str]) -> int:
    """Write ``rows`` (dicts keyed by ``columns``) to ``path``; returns the number of rows."""
    path = Path(path)
    if path.suffix == ".parquet":
        return _write_parquet(path, list(rows), columns)
    count = 0
    try:
        with path.open("w", newline="", encoding="utf-8") as fh:
            writer = csv.DictWriter(fh, fieldnames=list(columns), extrasaction="ignore")
            writer.writeheader()
            for row in rows:
                writer.writerow(row)
                count += 1
    except OSError as err:
        raise TrainsimError(f"cannot write {path}: {err.strerror}") from None
    return count


def _write_parquet(path: Path, rows: list[dict], columns: Sequence[str]) -> int:
    try:
        import pyarrow as pa
        import pyarrow.parquet as pq
    except ImportError:
        raise TrainsimError(f"{path}: writing Parquet needs pyarrow (pip install pyarrow), or use a .csv name") \
            from None
    table = pa.table({c: [r.get(c) for r in rows] for c in columns})
    try:
        pq.write_table(table, path)
    except OSError as err:
        raise TrainsimError(f"cannot write {path}: {err}") from None
    return len(rows)


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


def sweep_results(sweep: Sweep, path: str | Path) -> ResultsFile:
    """The results file of ``sweep`` at ``path`` (resumed when it holds this sweep's earlier rows)."""
    return ResultsFile(path, sweep_columns(sweep))
