"""The engine's outputs are those pinned before its refactor (tests/run/golden_engine.py)."""

from __future__ import annotations

import json

import pytest

from tests.run.golden_engine import PATH, outputs


def test_engine_matches_the_pinned_outputs():
    pinned = json.loads(PATH.read_text())
    now = outputs()
    assert now.keys() == pinned.keys()
    for name, rows in pinned.items():
        for got, want in zip(now[name], rows, strict=True):
            assert got["finished"] == want["finished"], name
            assert got["interruptions_by_name"] == want["interruptions_by_name"], name
            assert got["checkpoints"] == want["checkpoints"], name
            assert got["wall_s"] == pytest.approx(want["wall_s"], rel=1e-9), name
            assert got["work_s"] == pytest.approx(want["work_s"], rel=1e-9), name
            for k, v in want["losses_s"].items():
                assert got["losses_s"][k] == pytest.approx(v, rel=1e-9, abs=1e-6), (name, k)
