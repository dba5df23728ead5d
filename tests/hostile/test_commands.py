"""Hostile command lines: output paths that cannot be written (checked before any work), options that ask for
unbounded work, and values no command should accept."""

from __future__ import annotations

from pathlib import Path

import pytest

from sim.specs.sweep import load_sweep

from .conftest import REPO, assert_refused, base_mapping, run_in_process

SCENARIO = REPO / "scenarios" / "llama3-70b-1k-h100.yaml"
SWEEP = REPO / "scenarios" / "sweeps" / "llama3-70b-failures-checkpoint-gpus.yaml"


@pytest.fixture
def existing_file(tmp_path: Path) -> Path:
    path = tmp_path / "a-file"
    path.write_text("x", encoding="utf-8")
    return path


# (arguments, text the error names): {tmp} is a writable folder, {file} an existing plain file.
OUTPUT_PATHS = {
    "run-trace-proc": (["run", SCENARIO, "--trace", "/proc/x.json"], "--trace"),
    "run-trace-folder": (["run", SCENARIO, "--trace", "{tmp}"], "is a folder"),
    "run-trace-under-a-file": (["run", SCENARIO, "--trace", "{file}/x.json"], "not a folder"),
    "run-plot-proc": (["run", SCENARIO, "--plot", "/proc/x"], "--plot"),
    "run-plot-onto-a-file": (["run", SCENARIO, "--plot", "{file}"], "is a file"),
    "report-o-folder": (["report", SCENARIO, "-o", "{tmp}"], "is a folder"),
    "report-o-proc": (["report", SCENARIO, "-o", "/proc/x.html"], "-o"),
    "report-o-empty": (["report", SCENARIO, "-o", ""], "-o"),
    "sweep-o-folder": (["sweep", SWEEP, "-o", "{tmp}"], "is a folder"),
    "sweep-o-proc": (["sweep", SWEEP, "-o", "/proc/x.csv"], "-o"),
    "search-o-folder": (["search", SCENARIO, "-o", "{tmp}"], "is a folder"),
    "search-plot-proc": (["search", SCENARIO, "--plot", "/proc/x"], "--plot"),
    "search-plot-onto-a-file": (["search", SCENARIO, "--plot", "{file}"], "is a file"),
    "size-plot-proc": (["size", SCENARIO, "--tokens", "1e12", "--deadline-days", "30", "--plot", "/proc/x"],
                       "--plot"),
}


@pytest.mark.parametrize("case", sorted(OUTPUT_PATHS))
def test_unwritable_output_paths_are_refused_before_any_work(tmp_path, existing_file, case):
    args, needle = OUTPUT_PATHS[case]
    args = [str(a).replace("{tmp}", str(tmp_path)).replace("{file}", str(existing_file)) for a in args]
    assert_refused(run_in_process(*args), needle)


OPTIONS = {
    "search-workers-100000": (["search", SCENARIO, "--workers", "100000"], "--workers"),
    "size-workers-100000": (["size", SCENARIO, "--tokens", "1e12", "--deadline-days", "30", "--workers", "100000"],
                            "--workers"),
    "sweep-workers-100000": (["sweep", SWEEP, "--workers", "100000", "-o", "{tmp}/r.csv"], "--workers"),
    "search-replicas-1e7": (["search", SCENARIO, "--replicas", "10000000"], "--replicas"),
    "size-tokens-inf": (["size", SCENARIO, "--tokens", "inf", "--deadline-days", "30"], "--tokens"),
    "size-tokens-nan": (["size", SCENARIO, "--tokens", "nan", "--deadline-days", "30"], "--tokens"),
    "size-deadline-inf": (["size", SCENARIO, "--tokens", "1e12", "--deadline-days", "inf"], "--deadline-days"),
    "size-counts-huge": (["size", SCENARIO, "--tokens", "1e12", "--deadline-days", "30", "--counts",
                          "99999999999"], "--counts"),
    "size-price-inf": (["size", SCENARIO, "--tokens", "1e12", "--deadline-days", "30", "--price", "H100=inf"],
                       "--price"),
    "sweep-dask-not-a-url": (["sweep", SWEEP, "--dask", "not a url", "-o", "{tmp}/r.csv"], "--dask"),
    "collectives-gpus-1e9": (["collectives", "--gpus", "1000000000", "--op", "all-reduce"], "--gpus"),
    "collectives-gpus-text": (["collectives", "--gpus", "many"], "--gpus"),
    "collectives-missing-topology": (["collectives", "--topology", "/nonexistent.yaml", "--gpus", "8"], "topology"),
    "checkpoint-points-1e9": (["checkpoint-interval", SCENARIO, "--points", "1000000000"], "--points"),
    "checkpoint-span-inf": (["checkpoint-interval", SCENARIO, "--span", "inf"], "--span"),
    "checkpoint-span-nan": (["checkpoint-interval", SCENARIO, "--span", "nan"], "--span"),
    "validate-unknown-source": (["validate", "--source", "nope"], "known: "),
    "run-replicas-zero": (["run", SCENARIO, "--replicas", "0"], "--replicas"),
    "run-seed-negative": (["run", SCENARIO, "--seed", "-1"], "--seed"),
    "run-missing-file": (["run", "/nonexistent/scenario.yaml"], "no such file"),
    "unknown-command": (["frobnicate"], "invalid choice"),
    "search-zero-stage-9": (["search", SCENARIO, "--zero", "9"], "--zero"),
    "size-unknown-preset": (["size", "llama9-1t", "--tokens", "1e12", "--deadline-days", "30"], "preset"),
}


@pytest.mark.parametrize("case", sorted(OPTIONS))
def test_hostile_options_are_refused(tmp_path, case):
    args, needle = OPTIONS[case]
    assert_refused(run_in_process(*[str(a).replace("{tmp}", str(tmp_path)) for a in args]), needle)


def _write_sweep(tmp_path: Path, grid: dict, base: dict | None = None) -> Path:
    import yaml

    (tmp_path / "base.yaml").write_text(yaml.safe_dump(base or base_mapping()), encoding="utf-8")
    path = tmp_path / "sweep.yaml"
    path.write_text(yaml.safe_dump({"base": "base.yaml", "grid": grid}), encoding="utf-8")
    return path


def test_a_sweep_of_1e10_points_is_refused_before_the_grid_is_built(tmp_path):
    grid = {f"{field}": list(range(1, 11)) for field in (
        "failures.rate_scale", "simulation.seed", "checkpoint.interval_minutes", "failures.restart_minutes",
        "failures.hot_spares", "failures.planned_per_day", "failures.burst_fraction", "costs.pue",
        "costs.usd_per_gpu_hour", "checkpoint.storage_write_gbyte_s")}
    path = _write_sweep(tmp_path, grid)
    assert_refused(run_in_process("sweep", path, "-o", tmp_path / "r.csv"), "10,000,000,000", "sweep points")


@pytest.mark.parametrize("grid", [{"simulation.monte_carlo": [2, 10**7]},
                                  {"cluster.num_gpus, parallelism.data": [[16, 4], [2**24, 2**22]]},
                                  {"training.global_batch_size": [32, 2**30]}])
def test_a_sweep_point_over_the_budget_is_refused_before_any_point_runs(tmp_path, grid):
    path = _write_sweep(tmp_path, grid)
    assert_refused(run_in_process("sweep", path, "-o", tmp_path / "r.csv", "--workers", "1", "-q"), "--allow-large")
    assert not (tmp_path / "r.csv").exists()


def test_the_resume_key_changes_with_the_base_scenario(tmp_path):
    path = _write_sweep(tmp_path, {"failures.rate_scale": [1, 2]})
    before = {p.key for p in load_sweep(path).points}
    _write_sweep(tmp_path, {"failures.rate_scale": [1, 2]}, base_mapping(**{"training.tokens": 2e9}))
    after = {p.key for p in load_sweep(path).points}
    assert before.isdisjoint(after)


def test_the_resume_key_ignores_comments_in_the_base(tmp_path):
    path = _write_sweep(tmp_path, {"failures.rate_scale": [1, 2]})
    before = {p.key for p in load_sweep(path).points}
    base = tmp_path / "base.yaml"
    base.write_text("# a comment\n" + base.read_text(encoding="utf-8"), encoding="utf-8")
    assert {p.key for p in load_sweep(path).points} == before


@pytest.mark.parametrize("command", [["run", "{s}", "--trace", "{s}"], ["report", "{s}", "-o", "{s}"],
                                     ["search", "{s}", "-o", "{s}"]])
def test_an_output_that_is_the_input_is_refused(tmp_path, command):
    scenario = tmp_path / "s.yaml"
    scenario.write_text(SCENARIO.read_text(encoding="utf-8"), encoding="utf-8")
    before = scenario.read_text(encoding="utf-8")
    assert_refused(run_in_process(*[a.replace("{s}", str(scenario)) for a in command]), "input file")
    assert scenario.read_text(encoding="utf-8") == before


def test_a_sweep_output_that_is_its_base_scenario_is_refused(tmp_path):
    path = _write_sweep(tmp_path, {"failures.rate_scale": [1, 2]})
    assert_refused(run_in_process("sweep", path, "-o", tmp_path / "base.yaml"), "input file")


@pytest.mark.parametrize("command", ["run", "size", "search", "placement", "sweep", "report"])
def test_a_file_name_the_system_refuses(command):
    args = [command, "a" * 5000]
    if command == "size":
        args += ["--tokens", "1e12", "--deadline-days", "30"]
    assert_refused(run_in_process(*args))


def test_terminal_control_sequences_in_a_file_are_not_echoed(write):
    res = run_in_process("run", write('model:\n  "\\e[2J\\e[31mred": 1\n'))
    assert_refused(res, "unknown field")
    assert "\x1b" not in res.err
