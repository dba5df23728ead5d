"""docs/ is generated from the code (sim/report/docs.py) and must match it; the result contract documents
exactly the fields ``trainsim run --json`` prints; the worked examples of docs/examples.md load."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from sim.costs.memory import MemoryBreakdown
from sim.engine.step import CATEGORIES
from sim.report.docs import REGENERATE, generated_docs, stale_docs
from sim.report.result_contract import BREAKDOWN_DOC, MEMORY_DOC, RESULT_FIELDS
from sim.specs.scenario import scenario_from_mapping

ROOT = Path(__file__).resolve().parents[2]
DOCS = ROOT / "docs"


def test_docs_folder_matches_the_code():
    stale = stale_docs(DOCS)
    assert stale == [], (f"docs/{', docs/'.join(stale)} differ from what the code generates (a spec field, its "
                         f"doc or range, or the result contract changed); regenerate with `{REGENERATE}` from "
                         "the repository root and commit docs/")


def test_generated_docs_name_every_scenario_block_and_field():
    text = generated_docs()["scenario.md"]
    for block in ("model", "model.moe", "cluster", "parallelism", "training", "failures", "checkpoint",
                  "stragglers", "costs", "simulation"):
        assert f"## `{block}`" in text
    assert "| `async` |" in text  # the YAML spelling, not the attribute name (async_)
    assert "| `num_layers` | integer | required (or from the preset) | >= 1, <= 100000 |" in text
    assert "## `scale_out.tiers[]`" in generated_docs()["topology.md"]


def _leaves(value: Any, path: str, maps: set[str]) -> set[str]:
    """Dotted paths of a JSON object: every object key, not descending into documented maps."""
    if not isinstance(value, dict) or path in maps:
        return set()
    out = set()
    for key, child in value.items():
        sub = f"{path}.{key}" if path else key
        out |= {sub} | _leaves(child, sub, maps)
    return out


def test_result_contract_documents_exactly_the_json(base, write_scenario, run_cli):
    """Both ways: a field printed but not documented, or documented (not planned) but not printed, fails."""
    res = run_cli("run", write_scenario(base), "--json", "--replicas", "2")
    assert res.rc == 0, res.err
    printed = json.loads(res.out)
    assert printed["run"]["checkpoint"] is not None and printed["run"]["mtbi_hours"] is not None
    maps = {o.path for o in RESULT_FIELDS if o.kind.startswith("map")}
    produced = _leaves(printed, "", maps)
    documented = {o.path for o in RESULT_FIELDS if not o.planned}
    planned = {o.path for o in RESULT_FIELDS if o.planned}
    hint = f"; edit RESULT_FIELDS in sim/report/result_contract.py, then run `{REGENERATE}`"
    assert produced - documented - planned == set(), "printed by --json but not documented" + hint
    assert documented - produced == set(), "documented but not printed by --json" + hint
    assert produced & planned == set(), "produced now: drop planned=True" + hint
    assert set(printed["step"]["breakdown_s"]) <= set(BREAKDOWN_DOC), "a breakdown category lacks its doc" + hint
    assert set(printed["memory"]["breakdown_gib"]) == set(MEMORY_DOC), "memory kinds changed" + hint


def test_every_engine_category_and_memory_kind_is_documented():
    assert set(CATEGORIES) <= set(BREAKDOWN_DOC)
    assert set(MemoryBreakdown.__dataclass_fields__) - {"stage"} == set(MEMORY_DOC)


def _examples() -> list[tuple[str, dict[str, Any]]]:
    """The complete scenarios of docs/examples.md: each ```yaml block that starts with ``name:``."""
    text = (DOCS / "examples.md").read_text(encoding="utf-8")
    blocks = re.findall(r"```yaml\n(.*?)```", text, flags=re.S)
    return [(b.split("\n", 1)[0], yaml.safe_load(b)) for b in blocks if b.startswith("name:")]


def test_examples_page_has_examples():
    assert len(_examples()) >= 6


@pytest.mark.parametrize(("title", "mapping"), _examples(), ids=[t for t, _ in _examples()])
def test_worked_example_loads(title, mapping):
    """Every worked example is a complete scenario the loader accepts (bundled topology names resolve)."""
    scenario_from_mapping(mapping, ROOT / "scenarios", title)
