"""Fuzzing the scenario loader: whatever the input, the only outcomes are a valid Scenario or a ScenarioError
(through the CLI: exit 0 with JSON on stdout, or exit 2 with the problems on stderr) — never another
exception, i.e. never a traceback for the user.

Inputs are random mutations of the valid base scenario (``conftest.BASE``, with the topology given by name
and inline): keys deleted, values replaced by random JSON-like values (None, bools, ints, floats incl.
nan/inf, strings, lists, mappings, plus plausible field values so that many mutants stay valid and get
simulated), and random keys inserted at random depths. Arbitrary text and bytes are also fed to the CLI as
the scenario file.
"""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import io
import json
import math
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sim.cli import main
from sim.errors import ScenarioError
from sim.specs.scenario import Scenario, scenario_from_mapping

from .conftest import base_mapping

REPO = Path(__file__).resolve().parents[2]

FUZZ = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _inline_base() -> dict[str, Any]:
    data = base_mapping()
    data["cluster"]["topology"] = yaml.safe_load(
        (REPO / "topologies" / "dgx-h100-superpod.yaml").read_text(encoding="utf-8"))
    return data


BASES = {"named-topology": base_mapping(), "inline-topology": _inline_base()}

def _all_keys(node: Any) -> set[str]:
    out: set[str] = set()
    if isinstance(node, dict):
        for k, v in node.items():
            out.add(str(k))
            out |= _all_keys(v)
    elif isinstance(node, list):
        for v in node:
            out |= _all_keys(v)
    return out


# Field names of every section, so that inserted keys are sometimes real fields in the wrong place.
KNOWN_KEYS = sorted(_all_keys(BASES["inline-topology"]) | {
    "moe", "num_experts", "top_k", "expert_ffn_hidden_size", "async_", "rates", "expert", "dropout",
    "grad_bucket_mparams", "account_for_embedding_in_pipeline_split", "storage_read_gbyte_s", "preset",
})

# Values a user could plausibly write: keep many mutants valid (so they are simulated) or nearly valid.
PLAUSIBLE = st.sampled_from([
    0, 1, 2, 3, 4, 8, 16, 32, 64, 128, 4096, -1, 0.5, 1.0, 1e-9, 1e12, 10**20, 2**63,
    "1f1b", "interleaved-1f1b", "gpipe", "bf16", "fp16", "fp8", "full", "selective", "none", "symmetric",
    "young-daly", "llama3", "llama3-70b", "gpt3-175b", "H100", "A100", "V100-SXM-32GB", "MI300X", "B200",
    "dgx-a100-superpod", "gb200-nvl72", "pcie-h100", "nvswitch", "pcie", "15.6e12", "1_000", "16", "0x10",
    "", " ", "~", "null", "true", "../topologies/dgx-b200.yaml", "/dev/null", "/", ".", "x" * 300,
    float("nan"), float("inf"), float("-inf"), -0.0, True, False, None, [], {},
])

SCALARS = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.integers(min_value=-3, max_value=300)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=12)
    | PLAUSIBLE
)

VALUES = st.recursive(
    SCALARS,
    lambda children: st.lists(children, max_size=3) | st.dictionaries(
        st.text(max_size=8) | st.sampled_from(KNOWN_KEYS), children, max_size=3),
    max_leaves=8,
)

NEW_KEYS = st.sampled_from(KNOWN_KEYS) | st.text(min_size=1, max_size=10) | st.integers() | st.booleans() | st.none()


_STRINGS = st.sampled_from([v for v in PLAUSIBLE.elements if isinstance(v, str)])  # type: ignore[attr-defined]


def _tweaks(value: Any) -> st.SearchStrategy:
    if isinstance(value, bool):
        return st.just(not value)
    if isinstance(value, int):
        return st.sampled_from(sorted({1, 2, 4, 8, 16, 32, value + 1, value * 2, max(1, value // 2), 0}))
    if isinstance(value, float):
        return st.sampled_from([value * 0.5, value * 2, value * 10, value + 1, 1.0, 0.0])
    return _STRINGS


def _node_paths(node: Any, prefix: tuple = ()) -> list[tuple]:
    """Paths (tuples of keys/indices) of every node below ``node``, ``()`` being the root."""
    out = [prefix]
    if isinstance(node, dict):
        for k, v in node.items():
            out += _node_paths(v, (*prefix, k))
    elif isinstance(node, list):
        for i, v in enumerate(node):
            out += _node_paths(v, (*prefix, i))
    return out


def _get(root: Any, path: tuple) -> Any:
    for key in path:
        root = root[key]
    return root


def _apply_mutation(data: st.DataObject, root: Any) -> Any:
    op = data.draw(st.sampled_from(["delete", "replace", "replace", "plausible", "tweak", "tweak", "tweak",
                                    "insert"]), label="op")
    paths = _node_paths(root)
    if op == "tweak":  # a same-typed nearby value at a scalar leaf: mutants that often stay valid
        leaves = [p for p in paths if p and not isinstance(_get(root, p), (dict, list))]
        if not leaves:
            return root
        path = data.draw(st.sampled_from(leaves), label="tweak at")
        _get(root, path[:-1])[path[-1]] = data.draw(_tweaks(_get(root, path)), label="value")
        return root
    if op == "delete":
        removable = [p for p in paths if p]
        if not removable:
            return root
        path = data.draw(st.sampled_from(removable), label="delete")
        parent = _get(root, path[:-1])
        del parent[path[-1]]
        return root
    if op in ("replace", "plausible"):
        path = data.draw(st.sampled_from(paths), label="replace at")
        value = data.draw(VALUES if op == "replace" else PLAUSIBLE, label="value")
        if not path:
            return value
        _get(root, path[:-1])[path[-1]] = value
        return root
    containers = [p for p in paths if isinstance(_get(root, p), dict)]
    if not containers:
        return root
    path = data.draw(st.sampled_from(containers), label="insert into")
    key = data.draw(NEW_KEYS, label="key")
    _get(root, path)[key] = data.draw(VALUES, label="value")
    return root


@st.composite
def mutated_scenarios(draw: st.DrawFn) -> Any:
    base = copy.deepcopy(BASES[draw(st.sampled_from(sorted(BASES)), label="base")])
    data = draw(st.data())
    for _ in range(draw(st.sampled_from([1, 1, 1, 2, 3]), label="mutations")):
        base = _apply_mutation(data, base)
    return base


@pytest.fixture(scope="module")
def workdir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("fuzz")


def _check_outcome(mapping: Any, base: Path) -> Scenario | None:
    """Load; return the Scenario, or None after checking the ScenarioError is well-formed."""
    try:
        scenario = scenario_from_mapping(mapping, base, "fuzz.yaml")
    except ScenarioError as err:
        assert err.issues, "a ScenarioError must carry at least one issue"
        for issue in err.issues:
            assert isinstance(issue.path, str) and isinstance(issue.message, str) and issue.message
        assert str(err)
        return None
    assert isinstance(scenario, Scenario)
    p = scenario.parallelism
    assert p.tensor * p.pipeline * p.context * p.data == scenario.cluster.num_gpus
    assert scenario.training.global_batch_size % (p.data * p.micro_batch_size) == 0
    assert dataclasses.replace(scenario) == scenario  # re-validation of a valid spec passes
    return scenario


@FUZZ
@given(mapping=mutated_scenarios())
def test_mapping_mutations_give_scenario_or_scenario_error(mapping, workdir):
    _check_outcome(mapping, workdir)


def _too_big_to_simulate(s: Scenario) -> bool:
    """Valid but expensive mutants (thousands of micro-batches, layers or buckets) are not simulated here."""
    p, m = s.parallelism, s.model
    return (s.num_microbatches > 64 or m.num_layers > 256 or p.virtual_pipeline > 16 or p.pipeline > 64
            or p.grad_bucket_mparams < 10 or s.cluster.num_gpus > 100_000)


def _run_cli(path: Path) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        rc = main(["run", str(path), "--json"])
    return rc, out.getvalue(), err.getvalue()


def _check_cli(rc: int, out: str, err: str) -> None:
    assert rc in (0, 2), (rc, err)
    assert "Traceback" not in err
    if rc == 0:
        result = json.loads(out)
        assert isinstance(result, dict) and "step" in result and "memory" in result
        step_time = (result["step"] or {}).get("step_time_s")
        if result["memory"]["fits"]:  # spec/result.md: a layout that does not fit has null step fields
            assert isinstance(step_time, (int, float)) and math.isfinite(step_time) and step_time > 0, result["step"]
        else:
            assert step_time is None, result["step"]
    else:
        assert out == ""
        assert err.startswith("trainsim: error: "), err


@FUZZ
@given(mapping=mutated_scenarios())
def test_mapping_mutations_through_the_cli(mapping, workdir):
    try:
        text = yaml.safe_dump(mapping, sort_keys=False, allow_unicode=True)
    except yaml.YAMLError:
        return  # not representable as YAML (cannot happen for JSON-like values; kept for safety)
    path = workdir / "mutant.yaml"
    path.write_text(text, encoding="utf-8")
    reloaded = yaml.safe_load(text)
    scenario = _check_outcome(reloaded, workdir)
    if scenario is not None and _too_big_to_simulate(scenario):
        return
    _check_cli(*_run_cli(path))


# Text that looks like YAML: fragments of real scenario lines, indentation, flow syntax and junk.
_FRAGMENTS = st.sampled_from([
    "name: x\n", "model:\n", "  preset: llama3-8b\n", "cluster:\n", "  gpu: H100\n", "  num_gpus: 16\n",
    "  topology: dgx-h100-superpod\n", "parallelism: {tensor: 2, pipeline: 2, data: 4}\n",
    "training: {global_batch_size: 32}\n", "  - ", "- ", ": ", "{", "}", "[", "]", ",", "&a ", "*a", "!!str ",
    "!!binary ", "? ", "|\n", ">\n", "---\n", "...\n", "%YAML 1.1\n", "#", "'", '"', "\t", "\n", "  ",
    "15.6e12", "1_000", "~", ".nan", ".inf", "0x1F", "0o17", "2024-01-01", "1:30", "<<: *a\n",
    "2024-02-30", "2024-13-45", "!!int x", "!!float y", "!!timestamp 2024-1-1", "!!timestamp", "!!int",
    "!!bool x", "1" * 4400,
    "!!python/tuple [1]", "!!set {a}", "!!omap [a: 1]", "\ufeff", "\x00", "\x85", "\u2028",
])

YAMLISH = st.lists(_FRAGMENTS | st.text(max_size=6), max_size=30).map("".join)


@FUZZ
@given(text=st.text(max_size=300) | YAMLISH)
def test_arbitrary_text_through_the_cli(text, workdir):
    path = workdir / "text.yaml"
    try:
        path.write_text(text, encoding="utf-8", errors="surrogatepass")
    except UnicodeEncodeError:
        return
    _check_cli(*_run_cli(path))


@FUZZ
@given(raw=st.binary(max_size=200))
def test_arbitrary_bytes_through_the_cli(raw, workdir):
    path = workdir / "bytes.yaml"
    path.write_bytes(raw)
    _check_cli(*_run_cli(path))


# ---- topologies, sweeps and command lines (issue 14) ---------------------------------------------------------

_TOPOLOGY_BASE = yaml.safe_load((REPO / "topologies" / "dgx-h100-superpod.yaml").read_text(encoding="utf-8"))


@st.composite
def mutated_topologies(draw: st.DrawFn) -> Any:
    root: Any = copy.deepcopy(_TOPOLOGY_BASE)
    data = draw(st.data())
    for _ in range(draw(st.sampled_from([1, 1, 2, 3]), label="mutations")):
        root = _apply_mutation(data, root)
    return root


@FUZZ
@given(mapping=mutated_topologies())
def test_topology_mutations_give_a_topology_or_a_scenario_error(mapping, workdir):
    from sim.specs.topology import TopologySpec, load_topology

    path = workdir / "topology.yaml"
    try:
        path.write_text(yaml.safe_dump(mapping, sort_keys=False, allow_unicode=True), encoding="utf-8")
    except yaml.YAMLError:
        return
    try:
        topology = load_topology(str(path))
    except ScenarioError as err:
        assert err.issues and all(i.message for i in err.issues)
        return
    assert isinstance(topology, TopologySpec)
    assert dataclasses.replace(topology) == topology


_SWEEP_PATHS = st.sampled_from([
    "failures.rate_scale", "checkpoint.interval_minutes", "cluster.num_gpus", "parallelism.data",
    "cluster.num_gpus, parallelism.data", "training.global_batch_size", "simulation.monte_carlo", "model",
    "model.nope", "parallelism", "", " , ", "failures.rates.gpu", "costs.usd_per_gpu_hour",
]) | st.text(max_size=12)


@FUZZ
@given(grid=st.dictionaries(_SWEEP_PATHS, VALUES, max_size=4) | VALUES,
       points=st.none() | st.lists(st.dictionaries(_SWEEP_PATHS, VALUES, max_size=2), max_size=3) | VALUES,
       extra=st.dictionaries(st.text(max_size=6), VALUES, max_size=2))
def test_sweep_files_give_a_sweep_or_a_clean_error(grid, points, extra, workdir):
    from sim.errors import TrainsimError
    from sim.specs.sweep import Sweep, load_sweep

    (workdir / "sweep-base.yaml").write_text(yaml.safe_dump(base_mapping()), encoding="utf-8")
    sweep = {**extra, "base": "sweep-base.yaml", "grid": grid, "points": points}
    path = workdir / "sweep.yaml"
    try:
        path.write_text(yaml.safe_dump(sweep, sort_keys=False, allow_unicode=True), encoding="utf-8")
    except yaml.YAMLError:
        return
    try:
        loaded = load_sweep(path)
    except TrainsimError as err:  # ScenarioError, or the work budget
        assert str(err)
        return
    assert isinstance(loaded, Sweep) and len({p.key for p in loaded.points}) == len(loaded.points)


# Command lines: real commands and options with hostile values; the files named never simulate for long.
_ARG_TOKENS = st.sampled_from([
    "run", "report", "search", "size", "sweep", "placement", "checkpoint-interval", "validate", "presets", "gpus",
    "--json", "--trace", "--plot", "-o", "--replicas", "--seed", "--workers", "--tokens", "--deadline-days",
    "--budget-usd", "--counts", "--gpu", "--price", "--dask", "--points", "--span", "--source", "--top",
    "--simulate", "--zero", "--micro-batches", "--schedules", "--recompute", "--max-virtual", "-q", "-v",
    "--allow-large", "--help", "0", "-1", "1e400", "inf", "nan", "-inf", "1" * 30, "", " ", "H100=inf", "x=1",
    "1,2,,3", "tcp://", "not a url", "/proc/x", "/dev/zero", "/", ".", "..", "/nonexistent", "{empty}", "{dir}",
    "{bomb}", "llama3-8b", "H100", "\x00", "é", "--", "-",
])


@FUZZ
@given(argv=st.lists(_ARG_TOKENS | st.text(max_size=8), min_size=1, max_size=8))
def test_command_lines_never_raise(argv, workdir):
    empty, bomb, folder = workdir / "empty.yaml", workdir / "bomb.yaml", workdir / "folder"
    empty.write_text("", encoding="utf-8")
    bomb.write_text("a: &a [1, 1, 1, 1, 1, 1, 1, 1, 1, 1]\n" + "".join(
        f"{chr(98 + i)}: &{chr(98 + i)} [{', '.join(['*' + chr(97 + i)] * 10)}]\n" for i in range(8)),
        encoding="utf-8")
    folder.mkdir(exist_ok=True)
    args = [a.replace("{empty}", str(empty)).replace("{dir}", str(folder)).replace("{bomb}", str(bomb))
            for a in argv if "\x00" not in a]
    if not args or args[0] in ("collectives",) or ("validate" in args[:1] and "--source" not in args):
        return  # these run real (minutes-long) work when given valid defaults
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            rc = main(args)
        except SystemExit as exit_:  # argparse: usage errors and --help
            rc = exit_.code if isinstance(exit_.code, int) else 2
    assert rc in (0, 2), (args, rc, err.getvalue()[-500:])
    assert "Traceback" not in err.getvalue()
