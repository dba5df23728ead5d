"""Unit tests of the scenario schema (sim/specs): presets, re-validation on replace, immutability, the
``async`` key, topology references, number parsing and the catalog lookups the loader does."""

from __future__ import annotations

import dataclasses
import json
import shutil
from pathlib import Path

import pytest
import yaml

from sim import catalog
from sim.errors import Issue, ScenarioError
from sim.specs._schema import parse_number
from sim.specs.enums import Precision, Schedule
from sim.specs.layout import ParallelismSpec
from sim.specs.reliability import CheckpointSpec
from sim.specs.scenario import Scenario, load_scenario, scenario_from_mapping
from sim.specs.topology import TopologySpec

from .conftest import base_mapping

REPO = Path(__file__).resolve().parents[2]
PRESET = catalog.preset_table()["llama3-8b"]
MODEL_FIELDS = ("num_layers", "hidden_size", "ffn_hidden_size", "num_attention_heads", "num_kv_heads",
                "vocab_size", "seq_len")


@pytest.fixture
def scenario(base) -> Scenario:
    return scenario_from_mapping(base)


def _paths(err: ScenarioError) -> set[str]:
    return {i.path for i in err.issues}


# ---- presets ----------------------------------------------------------------------------------------------


def test_preset_fills_every_model_field(scenario):
    m = scenario.model
    assert m.preset == "llama3-8b"
    for name in MODEL_FIELDS:
        assert getattr(m, name) == PRESET[name], name
    assert m.activation.value == PRESET["activation"]
    assert m.tied_embeddings is PRESET["tied_embeddings"]
    assert m.moe is None


def test_explicit_fields_override_the_preset(base):
    base["model"].update(num_layers=16, seq_len=4096, tied_embeddings=True)
    m = scenario_from_mapping(base).model
    assert (m.num_layers, m.seq_len, m.tied_embeddings) == (16, 4096, True)
    assert m.hidden_size == PRESET["hidden_size"]  # untouched fields still come from the preset
    assert m.num_kv_heads == PRESET["num_kv_heads"]


def test_override_is_validated_against_preset_fields(base):
    base["model"]["num_attention_heads"] = 30  # 4096 (from the preset) is not divisible by 30
    with pytest.raises(ScenarioError) as info:
        scenario_from_mapping(base)
    assert "model.hidden_size" in _paths(info.value)


def test_explicit_model_without_preset(base):
    base["model"] = {name: PRESET[name] for name in MODEL_FIELDS}
    s = scenario_from_mapping(base)
    assert s.model.preset is None
    assert s.model == dataclasses.replace(scenario_from_mapping(base_mapping()).model, preset=None)


@pytest.mark.parametrize("name", sorted(catalog.preset_table()))
def test_every_preset_builds_a_model(base, name):
    base["model"] = {"preset": name}
    base["parallelism"].update(tensor=1, pipeline=1, data=16)
    base["parallelism"]["schedule"] = "1f1b"
    try:
        s = scenario_from_mapping(base)
    except ScenarioError as err:  # layout problems only (e.g. seq_len), never the model itself
        assert not any(i.path.startswith("model") for i in err.issues), err
    else:
        assert s.model.preset == name


# ---- defaults and derived values --------------------------------------------------------------------------


def test_optional_sections_default(base):
    for key in ("failures", "checkpoint", "costs", "simulation", "name"):
        del base[key]
    s = scenario_from_mapping(base)
    assert s.failures is None and s.checkpoint is None and s.costs is None
    assert s.simulation.seed == 0 and s.simulation.monte_carlo >= 1
    assert s.name  # a default name
    p = s.parallelism
    assert (p.context, p.expert, p.virtual_pipeline) == (1, 1, 1)


def test_null_optional_sections_are_absent(base):
    base["failures"] = base["checkpoint"] = base["costs"] = None
    s = scenario_from_mapping(base)
    assert s.failures is None and s.checkpoint is None and s.costs is None


def test_derived_quantities(scenario):
    assert scenario.num_microbatches == 32 // (4 * 1)
    assert scenario.tokens_per_step == 32 * PRESET["seq_len"]
    assert scenario.parallelism.num_gpus == scenario.cluster.num_gpus == 16
    assert scenario.gpu.name == "H100-SXM-80GB"


def test_enums_are_parsed(scenario):
    assert scenario.parallelism.schedule is Schedule.ONE_F_ONE_B
    assert scenario.training.precision is Precision.BF16


@pytest.mark.parametrize("alias", ["H100", "h100-sxm-80gb", "H100-SXM5-80GB"])
def test_gpu_aliases(base, alias):
    base["cluster"]["gpu"] = alias
    assert scenario_from_mapping(base).gpu.name == "H100-SXM-80GB"


# ---- dataclasses.replace re-validates ---------------------------------------------------------------------


def test_valid_replace(scenario):
    p = dataclasses.replace(scenario.parallelism, tensor=4, data=2)
    s2 = dataclasses.replace(scenario, parallelism=p)
    assert s2.parallelism.tensor == 4 and s2.num_microbatches == 16
    assert scenario.parallelism.tensor == 2  # the original is unchanged


def test_invalid_replace_of_a_field_raises(scenario):
    with pytest.raises(ScenarioError) as info:
        dataclasses.replace(scenario.parallelism, tensor=0)
    assert _paths(info.value) == {"tensor"}
    with pytest.raises(ScenarioError) as info:
        dataclasses.replace(scenario.parallelism, zero_stage=4)
    assert _paths(info.value) == {"zero_stage"}
    with pytest.raises(ScenarioError) as info:
        dataclasses.replace(scenario.model, hidden_size=4097)
    assert _paths(info.value) == {"hidden_size"}
    with pytest.raises(ScenarioError):
        dataclasses.replace(scenario.parallelism, schedule=Schedule.INTERLEAVED)  # virtual_pipeline 1


def test_replace_that_breaks_a_cross_section_rule_raises(scenario):
    """Each part is valid alone; the scenario re-checks the layout against the model and cluster."""
    with pytest.raises(ScenarioError) as info:
        dataclasses.replace(scenario, parallelism=dataclasses.replace(scenario.parallelism, data=8))
    assert "parallelism" in _paths(info.value)  # 2*2*1*8 != 16
    with pytest.raises(ScenarioError) as info:
        dataclasses.replace(scenario, training=dataclasses.replace(scenario.training, global_batch_size=30))
    assert _paths(info.value) == {"training.global_batch_size"}
    with pytest.raises(ScenarioError) as info:
        dataclasses.replace(scenario, training=dataclasses.replace(scenario.training, precision=Precision.FP8),
                            cluster=dataclasses.replace(scenario.cluster, gpu="A100-SXM-80GB"))
    assert _paths(info.value) == {"training.precision"}
    with pytest.raises(ScenarioError) as info:
        dataclasses.replace(scenario.cluster, gpu="H100-SXM-90GB")
    assert _paths(info.value) == {"gpu"}


def test_direct_construction_validates():
    with pytest.raises(ScenarioError) as info:
        ParallelismSpec(tensor=0, data=-1)
    assert _paths(info.value) == {"tensor", "data"}  # all at once
    assert ParallelismSpec().num_gpus == 1


# ---- frozen ------------------------------------------------------------------------------------------------


def test_specs_are_frozen(scenario):
    with pytest.raises(dataclasses.FrozenInstanceError):
        scenario.name = "other"
    with pytest.raises(dataclasses.FrozenInstanceError):
        scenario.parallelism.tensor = 4
    with pytest.raises(dataclasses.FrozenInstanceError):
        scenario.model.num_layers = 1
    with pytest.raises(dataclasses.FrozenInstanceError):
        scenario.cluster.topology.node.gpus = 4
    with pytest.raises((AttributeError, TypeError)):
        scenario.new_attribute = 1  # slots: no stray attributes either


def test_specs_are_hashable_and_comparable(base):
    a, b = scenario_from_mapping(base), scenario_from_mapping(base_mapping())
    assert a == b
    assert a.parallelism == b.parallelism and hash(a.parallelism) == hash(b.parallelism)


# ---- checkpoint --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("value", [True, False])
def test_async_key_maps_to_async_(base, value):
    base["checkpoint"]["async"] = value
    assert scenario_from_mapping(base).checkpoint.async_ is value


def test_async_defaults_true(base):
    del base["checkpoint"]["async"]
    assert scenario_from_mapping(base).checkpoint.async_ is True


def test_checkpoint_async_attribute_via_constructor():
    assert CheckpointSpec(async_=False).async_ is False


@pytest.mark.parametrize(("value", "expected"), [(60, 60.0), ("90", 90.0), (2.5, 2.5), ("young-daly", "young-daly")])
def test_checkpoint_interval(base, value, expected):
    base["checkpoint"]["interval_minutes"] = value
    assert scenario_from_mapping(base).checkpoint.interval_minutes == expected


def test_failure_rates_are_numbers(base):
    base["failures"]["rates"] = {"gpu": "1e-5", "host": 0}
    rates = scenario_from_mapping(base).failures.rates
    assert rates == {"gpu": 1e-5, "host": 0.0}


# ---- topology references --------------------------------------------------------------------------------


def _topology_mapping(name: str = "dgx-h100-superpod") -> dict:
    return yaml.safe_load((REPO / "topologies" / f"{name}.yaml").read_text(encoding="utf-8"))


def test_topology_by_name(scenario):
    assert isinstance(scenario.cluster.topology, TopologySpec)
    assert scenario.cluster.topology.name == "dgx-h100-superpod"
    assert scenario.cluster.topology.node.gpus == 8


def test_topology_inline_mapping_equals_named(base, scenario):
    base["cluster"]["topology"] = _topology_mapping()
    assert scenario_from_mapping(base).cluster.topology == scenario.cluster.topology


def test_topology_inline_mapping_minimal(base):
    base["cluster"]["topology"] = {
        "name": "tiny",
        "node": {"gpus": 8, "scale_up": {"kind": "nvswitch", "bandwidth_gbyte_s_per_gpu": 450, "domain_gpus": 8},
                 "nics": 8, "nic_bandwidth_gbit_s": 400},
        "scale_out": {"tiers": [{"name": "leaf", "radix": 64}]},
    }
    topo = scenario_from_mapping(base).cluster.topology
    assert topo.name == "tiny" and topo.scale_out.tiers[0].oversubscription == 1.0


def _scenario_with_topology_file(tmp_path: Path, ref_of) -> Path:
    """Scenario in tmp_path/job/, topology file in tmp_path/job/fabric/; ``ref_of(file)`` is the reference."""
    job = tmp_path / "job"
    (job / "fabric").mkdir(parents=True)
    topo = _topology_mapping()
    topo["name"] = "my-fabric"
    topo_file = job / "fabric" / "my-fabric.yaml"
    topo_file.write_text(yaml.safe_dump(topo), encoding="utf-8")
    data = base_mapping()
    data["cluster"]["topology"] = ref_of(topo_file)
    scenario_file = job / "scenario.yaml"
    scenario_file.write_text(yaml.safe_dump(data), encoding="utf-8")
    return scenario_file


def test_topology_relative_path_is_relative_to_the_scenario_file(tmp_path, monkeypatch):
    path = _scenario_with_topology_file(tmp_path, lambda f: "fabric/my-fabric.yaml")
    monkeypatch.chdir(tmp_path)  # not the scenario's folder: the path must not be read from the cwd
    s = load_scenario(path)
    assert s.cluster.topology.name == "my-fabric"
    assert s.cluster.topology == dataclasses.replace(
        scenario_from_mapping(base_mapping()).cluster.topology, name="my-fabric")


def test_topology_dot_relative_and_absolute_paths(tmp_path):
    rel = _scenario_with_topology_file(tmp_path / "a", lambda f: "./fabric/my-fabric.yaml")
    assert load_scenario(rel).cluster.topology.name == "my-fabric"
    absolute = _scenario_with_topology_file(tmp_path / "b", lambda f: str(f))
    assert load_scenario(absolute).cluster.topology.name == "my-fabric"


def test_topology_relative_path_through_cli(tmp_path, monkeypatch, run_cli):
    path = _scenario_with_topology_file(tmp_path, lambda f: "fabric/my-fabric.yaml")
    monkeypatch.chdir(tmp_path)
    res = run_cli("run", path.relative_to(tmp_path), "--json")
    assert res.rc == 0, res.err
    assert json.loads(res.out)["scenario"] == base_mapping()["name"]


def test_topology_relative_path_without_base_is_an_error(tmp_path):
    data = base_mapping()
    data["cluster"]["topology"] = "fabric/does-not-exist.yaml"
    with pytest.raises(ScenarioError) as info:
        scenario_from_mapping(data, tmp_path)
    assert _paths(info.value) == {"cluster.topology"}


def test_topology_file_errors_carry_nested_paths(tmp_path):
    topo = _topology_mapping()
    topo["node"]["scale_up"]["bandwidth_gbyte_s_per_gpu"] = -1
    (tmp_path / "t.yaml").write_text(yaml.safe_dump(topo), encoding="utf-8")
    data = base_mapping()
    data["cluster"]["topology"] = "t.yaml"
    with pytest.raises(ScenarioError) as info:
        scenario_from_mapping(data, tmp_path)
    assert _paths(info.value) == {"cluster.topology.node.scale_up.bandwidth_gbyte_s_per_gpu"}


@pytest.mark.parametrize("name", catalog.topology_names())
def test_bundled_topologies_load(name):
    topo = _topology_mapping(name)
    from sim.specs._schema import build

    spec = build(TopologySpec, topo, "topology")
    assert spec.name == name


# ---- numbers, errors, shipped scenarios ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [("15.6e12", 15.6e12), ("1.56e+13", 1.56e13), ("15_600_000_000_000", 15_600_000_000_000), ("16", 16),
     (" 32 ", 32), ("-3", -3), ("+2.5", 2.5), (".5", 0.5), ("1E3", 1000.0), (7, 7), (2.5, 2.5)],
)
def test_parse_number_accepts(text, expected):
    value = parse_number(text)
    assert value == expected
    assert type(value) is type(expected)


@pytest.mark.parametrize("text", [True, False, None, "", "abc", "1e", "0x10", "1.2.3", "nan", "inf", "1 000", [1]])
def test_parse_number_rejects(text):
    assert parse_number(text) is None


def test_scenario_error_carries_issues_and_source():
    err = ScenarioError([Issue("a.b", "bad"), Issue("", "worse")], "f.yaml")
    assert err.issues == [Issue("a.b", "bad"), Issue("", "worse")]
    assert err.source == "f.yaml"
    assert "f.yaml" in str(err) and "a.b: bad" in str(err) and "2 problem(s)" in str(err)
    assert str(Issue("", "worse")) == "worse"


def test_load_scenario_error_names_the_file(tmp_path):
    data = base_mapping()
    data["parallelism"]["tensor"] = 3
    path = tmp_path / "s.yaml"
    path.write_text(yaml.safe_dump(data), encoding="utf-8")
    with pytest.raises(ScenarioError) as info:
        load_scenario(path)
    assert info.value.source == str(path)


def test_non_mapping_input():
    for data in (None, [], "x", 3):
        with pytest.raises(ScenarioError):
            scenario_from_mapping(data)


@pytest.mark.parametrize("path", sorted((REPO / "scenarios").glob("*.yaml")), ids=lambda p: p.name)
def test_shipped_scenarios_load(path, tmp_path):
    s = load_scenario(path)
    assert s.parallelism.num_gpus == s.cluster.num_gpus
    # the same file copied elsewhere loads the same (bundled topology names do not depend on the folder)
    copy = tmp_path / path.name
    shutil.copy(path, copy)
    assert load_scenario(copy) == s


def test_405b_scenario_fields():
    s = load_scenario(REPO / "scenarios" / "llama3-405b-16k-h100-tp8-pp16-dp128.yaml")
    assert s.model.num_layers == 126 and s.model.num_attention_heads == 128
    assert s.cluster.num_gpus == 16384
    assert s.parallelism.schedule is Schedule.INTERLEAVED and s.parallelism.virtual_pipeline == 4
    assert s.training.tokens == 15.6e12  # written 15.6e12 (a string to PyYAML)
    assert s.checkpoint is not None and s.checkpoint.async_ is True
    assert s.num_microbatches == 16
