"""The bundled scenarios' results are pinned (tests/golden/*.json): speed work must not move them.

A modelling change that moves them on purpose regenerates the files with ``python scripts/regen_golden.py``
and says in its commit message what moved and why."""

from __future__ import annotations

import importlib.util
import json
import math
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[1]
REGEN = "python scripts/regen_golden.py"
REL = 1e-9


def _regen_module():
    spec = importlib.util.spec_from_file_location("regen_golden", ROOT / "scripts" / "regen_golden.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


REGEN_MODULE = _regen_module()


def _diffs(pinned: Any, now: Any, where: str = "") -> list[str]:
    """Paths where ``now`` differs from ``pinned`` (numbers beyond REL relative)."""
    if isinstance(pinned, dict) and isinstance(now, dict):
        out = [f"{where}.{k}: missing now" for k in pinned.keys() - now.keys()]
        out += [f"{where}.{k}: new" for k in now.keys() - pinned.keys()]
        for k in pinned.keys() & now.keys():
            out += _diffs(pinned[k], now[k], f"{where}.{k}")
        return out
    if isinstance(pinned, list) and isinstance(now, list):
        if len(pinned) != len(now):
            return [f"{where}: length {len(pinned)} -> {len(now)}"]
        return [d for i, (a, b) in enumerate(zip(pinned, now, strict=True)) for d in _diffs(a, b, f"{where}[{i}]")]
    if isinstance(pinned, (int, float)) and isinstance(now, (int, float)) and not isinstance(pinned, bool):
        if math.isclose(pinned, now, rel_tol=REL, abs_tol=0.0) or pinned == now:
            return []
        return [f"{where}: {pinned!r} -> {now!r}"]
    return [] if pinned == now else [f"{where}: {pinned!r} -> {now!r}"]


@pytest.mark.parametrize("scenario", REGEN_MODULE.scenarios(), ids=lambda p: p.stem)
def test_bundled_scenario_matches_golden(scenario: Path):
    path = ROOT / "tests" / "golden" / f"{scenario.stem}.json"
    assert path.exists(), f"no golden output for {scenario.name}; create it with `{REGEN}`"
    pinned = json.loads(path.read_text())
    now = json.loads(json.dumps(REGEN_MODULE.golden(scenario)))
    diffs = _diffs(pinned, now)
    assert not diffs, (f"{scenario.name} moved from its golden output ({len(diffs)} field(s)):\n  "
                       + "\n  ".join(sorted(diffs)[:20])
                       + f"\nIf this change is an intended modelling change, regenerate with `{REGEN}` "
                         "and say in the commit message what moved and why.")


def test_diff_finds_a_change_beyond_tolerance():
    assert _diffs({"a": [1.0, 2.0]}, {"a": [1.0, 2.0 * (1 + 1e-12)]}) == []
    assert _diffs({"a": [1.0, 2.0]}, {"a": [1.0, 2.0 * (1 + 1e-6)]}) == [f".a[1]: 2.0 -> {2.0 * (1 + 1e-6)!r}"]
    assert _diffs({"a": 1}, {"b": 1}) == [".a: missing now", ".b: new"]
