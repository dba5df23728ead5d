"""Result tables to files: CSV, or Parquet when the name ends in ``.parquet`` and pyarrow is installed."""

from __future__ import annotations

import csv
from collections.abc import Iterable, Sequence
from pathlib import Path

from sim.errors import TrainsimError


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
