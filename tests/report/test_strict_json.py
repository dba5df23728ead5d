"""Strict JSON (sim/report/strict_json.py): non-finite numbers become null, anything else is json.dumps's text."""

from __future__ import annotations

import json
import math

from sim.report import strict_json


def test_non_finite_numbers_become_null_at_any_depth():
    obj = {"a": [1.5, math.nan, (math.inf, {"b": -math.inf})], "c": "x"}
    assert strict_json.dumps(obj) == '{"a": [1.5, null, [null, {"b": null}]], "c": "x"}'
    assert strict_json.dumps(obj, indent=1) == json.dumps(strict_json.finite(obj), indent=1)


def test_finite_objects_get_json_dumps_text():
    obj = {"a": [1.5, 2, (3.25, {"b": None})], "c": "x", "d": 1e300}
    assert strict_json.dumps(obj) == json.dumps(obj)
    assert strict_json.dumps(obj, indent=2, sort_keys=True) == json.dumps(obj, indent=2, sort_keys=True)
