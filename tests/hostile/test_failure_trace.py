"""Hostile failure traces (``failures.trace``): every bad CSV or inline trace is refused at load with exit 2, one
message naming the field and the CSV line, never a traceback; the bundled sample trace loads."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from .conftest import REPO, assert_clean, assert_refused, base_mapping, run_in_process

HEADER = "time_hours,node,category,repair_hours\n"

#: (CSV text, what stderr must say): each must be refused.
BAD_CSVS = {
    "empty-file": ("", "no header line"),
    "comments-only": ("# nothing\n\n", "no header line"),
    "header-only": (HEADER, "no fault rows"),
    "missing-column": ("time_hours,node,category\n1,a,gpu\n", "line 1: header must name"),
    "unknown-column": (HEADER.strip() + ",colour\n1,a,gpu,2,red\n", "unknown 'colour'"),
    "repeated-column": ("time_hours,node,category,repair_hours,node\n1,a,gpu,2,b\n", "a repeated column"),
    "negative-time": (HEADER + "1,a,gpu,2\n-3,b,gpu,2\n", "line 3: time_hours -3 must be a finite number >= 0"),
    "non-monotonic": (HEADER + "5,a,gpu,2\n4,b,gpu,2\n", "line 3: time_hours 4 is before the previous row's 5"),
    "unknown-category": (HEADER + "1,a,toaster,2\n", "line 2: category 'toaster' is not a failure category"),
    "negative-repair": (HEADER + "1,a,gpu,-2\n", "line 2: repair_hours -2 must be"),
    "repair-on-job-category": (HEADER + "1,a,software,3\n", "must be 0 for category 'software'"),
    "not-a-number": (HEADER + "1,a,gpu,soon\n", "line 2: repair_hours 'soon' is not a number"),
    "nan-time": (HEADER + "nan,a,gpu,1\n", "line 2: time_hours"),
    "too-few-fields": (HEADER + "1,a,gpu\n", "line 2: 3 fields, the header has 4"),
    "empty-node": (HEADER + "1, ,gpu,1\n", "line 2: node empty node id"),
    "all-at-zero": (HEADER + "0,a,gpu,1\n", "every fault is at hour 0"),
    "nul-bytes": (HEADER + "1,a,gpu,1\x00\n", "NUL bytes"),
}


def _scenario(write, csv_text: str | bytes | None, **edits) -> Path:
    if csv_text is not None:
        write(csv_text, "faults.csv")
    return write(base_mapping(**{"failures.trace": "faults.csv", **edits}))


@pytest.mark.parametrize("case", sorted(BAD_CSVS))
def test_a_bad_trace_csv_is_refused_naming_the_field_and_line(write, case):
    text, needle = BAD_CSVS[case]
    assert_refused(run_in_process("run", _scenario(write, text), "--json"), "failures.trace", needle)


def test_a_missing_trace_file_is_refused(write):
    assert_refused(run_in_process("run", _scenario(write, None), "--json"), "failures.trace",
                   "'faults.csv' is not a readable file")


def test_a_binary_trace_is_refused(write):
    assert_refused(run_in_process("run", _scenario(write, b"\xff\xfe\x00garbage"), "--json"), "failures.trace")


def test_many_bad_rows_are_reported_bounded(write):
    text = HEADER + "".join(f"{-i},n{i},gpu,1\n" for i in range(1, 5000))
    assert_refused(run_in_process("run", _scenario(write, text), "--json"), "line 2:")


@pytest.mark.parametrize(("edits", "needle"), [
    ({"failures.trace_nodes": 1}, "failures.trace_nodes: 1 is fewer than the trace's 2 distinct node ids"),
    ({"failures.trace_mode": "bootstrap"}, "failures.trace_mode"),
    ({"failures.lemon_fraction": 0.1}, "failures.lemon_fraction: not with a trace"),
    ({"failures.burst_fraction": 0.1}, "failures.burst_fraction: not with a trace"),
    ({"failures.node_failures_per_1000_node_days": 4}, "failures.node_failures_per_1000_node_days: not with"),
    ({"failures.distribution": "weibull"}, "failures.distribution: not with a trace"),
])
def test_trace_rules_across_fields(write, edits, needle):
    path = _scenario(write, HEADER + "1,a,gpu,2\n3,b,node,1\n", **edits)
    assert_refused(run_in_process("run", path, "--json"), needle)


def test_resample_needs_two_fault_times(write):
    path = _scenario(write, HEADER + "1,a,gpu,2\n1,b,gpu,2\n", **{"failures.trace_mode": "resample"})
    assert_refused(run_in_process("run", path, "--json"), "failures.trace_mode: resample needs")


def test_trace_mode_without_a_trace_is_refused(write):
    path = write(base_mapping(**{"failures.trace_mode": "replay"}))
    assert_refused(run_in_process("run", path, "--json"), "failures.trace_mode: only meaningful with a trace")


def test_an_inline_trace_is_checked_by_row(write):
    path = write(base_mapping(**{"failures.trace": {"time_hours": [1, 0.5], "node": ["a", "b"],
                                                    "category": ["gpu", "gpu"], "repair_hours": [1, 1]}}))
    assert_refused(run_in_process("run", path, "--json"), "failures.trace.time_hours[1]: 0.5 is before")


def test_an_inline_trace_with_uneven_columns_is_refused(write):
    path = write(base_mapping(**{"failures.trace": {"time_hours": [1, 2], "node": ["a"],
                                                    "category": ["gpu", "gpu"], "repair_hours": [1, 1]}}))
    assert_refused(run_in_process("run", path, "--json"), "failures.trace: time_hours, node, category")


def test_an_extreme_trace_rate_is_refused(write):
    """10 faults in 36 s of a 2-node fleet, on a 2-node job: ~17 interruptions a minute."""
    text = HEADER + "".join(f"{i / 1000:.3f},n{i % 2},gpu,0.001\n" for i in range(1, 11))
    assert_refused(run_in_process("run", _scenario(write, text), "--json"), "failures.trace:",
                   "interruptions per minute")


def test_the_bundled_sample_trace_loads_relative_to_the_scenario(tmp_path):
    """The scenario sits in another folder than the CSV: the path is taken relative to the scenario file."""
    import yaml

    folder = tmp_path / "deep" / "er"
    folder.mkdir(parents=True)
    csv = REPO / "scenarios" / "traces" / "sample-node-faults.csv"
    rel = Path("..", "..", "trace.csv")
    (tmp_path / "trace.csv").write_text(csv.read_text(encoding="utf-8"), encoding="utf-8")
    scenario = folder / "s.yaml"
    scenario.write_text(yaml.safe_dump(base_mapping(**{"failures.trace": str(rel), "failures.trace_nodes": 64})),
                        encoding="utf-8")
    res = run_in_process("run", scenario, "--json")
    assert_clean(res)
    trace = json.loads(res.out)["run"]["failure_trace"]
    # the 16-GPU base job is 2 of the sample's 64 nodes: it runs through the trace at 2/64 of its pace
    assert trace == {"file": str(rel), "mode": "replay", "faults": 55, "events": 49, "fleet_nodes": 64,
                     "trace_hours_per_job_hour": 0.03125}
