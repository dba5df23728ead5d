"""``trainsim schema``: a JSON Schema (draft 2020-12) that a stock validator (``jsonschema``) checks every
bundled scenario and topology against, and that rejects what the loader rejects field by field."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from sim.errors import ScenarioError
from sim.specs.jsonschema import scenario_schema, topology_schema
from sim.specs.scenario import scenario_from_mapping
from tests.specs.conftest import base_mapping

ROOT = Path(__file__).resolve().parents[2]
SCENARIOS = sorted((ROOT / "scenarios").glob("*.yaml"))
TOPOLOGIES = sorted((ROOT / "topologies").glob("*.yaml"))
VALIDATOR = jsonschema.Draft202012Validator(scenario_schema())


def _errors(data: Any, validator: jsonschema.Draft202012Validator = VALIDATOR) -> list[str]:
    return [f"{'.'.join(map(str, e.absolute_path))}: {e.message}" for e in validator.iter_errors(data)]


def test_schemas_are_valid_draft_2020_12():
    jsonschema.Draft202012Validator.check_schema(scenario_schema())
    jsonschema.Draft202012Validator.check_schema(topology_schema())
    assert scenario_schema()["$schema"] == "https://json-schema.org/draft/2020-12/schema"


def test_the_command_prints_the_schema(run_cli):
    res = run_cli("schema")
    assert res.rc == 0 and json.loads(res.out) == scenario_schema()
    res = run_cli("schema", "--topology")
    assert res.rc == 0 and json.loads(res.out) == topology_schema()


@pytest.mark.parametrize("path", SCENARIOS, ids=[p.name for p in SCENARIOS])
def test_every_bundled_scenario_validates(path):
    assert SCENARIOS, "no bundled scenarios found"
    assert _errors(yaml.safe_load(path.read_text(encoding="utf-8"))) == []


@pytest.mark.parametrize("path", TOPOLOGIES, ids=[p.name for p in TOPOLOGIES])
def test_every_bundled_topology_validates(path):
    validator = jsonschema.Draft202012Validator(topology_schema())
    assert _errors(yaml.safe_load(path.read_text(encoding="utf-8")), validator) == []


def test_a_scenario_with_an_inline_topology_validates():
    data = base_mapping()
    data["cluster"]["topology"] = yaml.safe_load((ROOT / "topologies" / "dgx-h100-superpod.yaml").read_text())
    assert _errors(data) == []


def test_numbers_written_as_strings_are_accepted_like_the_loader_does():
    data = base_mapping()
    data["training"]["tokens"] = "15.6e12"  # what PyYAML returns for `tokens: 15.6e12`
    data["training"]["global_batch_size"] = "3_2"
    assert _errors(data) == []
    assert scenario_from_mapping(data, ROOT / "scenarios").training.tokens == 15.6e12


def _set(data: dict[str, Any], path: str, value: Any) -> dict[str, Any]:
    *parents, leaf = path.split(".")
    node = data
    for key in parents:
        node = node[key]
    node[leaf] = value
    return data


BAD = [
    ("unknown field", "parallelism.tensr", 2),
    ("unknown enum value", "parallelism.schedule", "1f2b"),
    ("out of range", "parallelism.tensor", 0),
    ("above the maximum", "parallelism.zero_stage", 4),
    ("not a boolean", "parallelism.sequence_parallel", "yes"),
    ("not a number", "training.tokens", "lots"),
    ("a fraction for an integer", "training.global_batch_size", 32.5),
    ("empty string", "cluster.gpu", ""),
    ("wrong block type", "costs", [1, 2]),
]


@pytest.mark.parametrize(("what", "path", "value"), BAD, ids=[b[0] for b in BAD])
def test_bad_values_are_rejected_by_schema_and_loader(what, path, value):
    data = _set(base_mapping(), path, value)
    assert _errors(data), f"schema accepted {what}"
    with pytest.raises(ScenarioError):
        scenario_from_mapping(data, ROOT / "scenarios")


def test_a_missing_required_block_is_rejected():
    data = base_mapping()
    del data["training"]
    assert any("training" in e for e in _errors(data))


def test_a_model_needs_a_preset_or_its_shape():
    data = base_mapping()
    data["model"] = {"num_layers": 4}
    assert _errors(data)
    data["model"] = {"preset": "llama3-8b", "num_layers": 4}
    assert _errors(data) == []
