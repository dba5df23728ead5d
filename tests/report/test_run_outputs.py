"""Run-level outputs: the run trace of replica 0, goodput over time, the days distribution, the report's
run section."""

from __future__ import annotations

from collections import Counter, defaultdict
from dataclasses import dataclass, field, replace

import pytest

from sim.analysis.evaluate import evaluate
from sim.analysis.runlevel import RunSummary, simulate_run_level
from sim.report import plots
from sim.report.html import report_html, run_level
from sim.report.trace import POINT_KINDS, run_trace, summary_trace
from sim.specs.reliability import CheckpointSpec, FailureSpec
from sim.units import DAY, HOUR

from .conftest import assert_not_empty, small_scenario
from .test_trace import format_problems


def failing_scenario():
    """The small scenario trained for ~5 h (4e9 tokens at ~0.04 s per 8,192-token step), checkpointing
    every 30 min, with two injected failures (the Llama 3 rates alone rarely hit 8 GPUs in 5 h) and one
    hot spare, so the second failure waits for a repaired node."""
    s = small_scenario()
    return replace(s, training=replace(s.training, tokens=4e9),
                   failures=FailureSpec(restart_minutes=10, hot_spares=1, inject_hours=(1.5, 3.0)),
                   checkpoint=CheckpointSpec(interval_minutes=30))


@pytest.fixture(scope="module")
def run() -> RunSummary:
    s = failing_scenario()
    ev = evaluate(s)
    assert ev.step is not None
    return simulate_run_level(s, ev.step.step_time_s, replicas=4, seed=1, record=True)


def test_only_the_first_replica_keeps_its_events(run):
    assert run.replicas[0].events and all(not r.events for r in run.replicas[1:])
    kinds = {e.kind for e in run.replicas[0].events}
    assert {"train", "checkpoint", "failure", "rollback", "restart", "spare_wait"} <= kinds


def test_run_trace_is_valid_and_its_busy_time_per_kind_is_the_events(run):
    trace = summary_trace(run, "small")
    assert format_problems(trace) == []
    names = {e["tid"]: e["args"]["name"].split(" #")[0] for e in trace["traceEvents"] if e["name"] == "thread_name"}
    body = [e for e in trace["traceEvents"] if e["ph"] != "M"]
    busy: dict[str, float] = defaultdict(float)
    for e in body:
        if e["ph"] == "X":
            busy[names[e["tid"]]] += e["dur"] / 1e6
    instants = Counter(names[e["tid"]] for e in body if e["ph"] == "i")
    expected: dict[str, float] = defaultdict(float)
    for e in run.replicas[0].events:
        if e.kind not in POINT_KINDS:
            expected[e.kind] += e.end_s - e.start_s
    assert set(busy) == set(expected)
    for kind, seconds in expected.items():
        assert busy[kind] == pytest.approx(seconds, rel=1e-9), kind
    assert instants == Counter(e.kind for e in run.replicas[0].events if e.kind in POINT_KINDS)
    assert instants["failure"] == run.replicas[0].interruption_count
    # the training segments add up to the work of the run plus the work lost to rollbacks
    lost = sum(e.args["lost_work_s"] for e in run.replicas[0].events if e.kind == "rollback")
    assert busy["train"] == pytest.approx(run.plan.params.work_s + lost, rel=1e-9)
    assert trace["otherData"]["days"] == pytest.approx(run.replicas[0].wall_s / DAY)


def test_run_trace_needs_recorded_events(run):
    bare = replace(run, replicas=tuple(replace(r, events=()) for r in run.replicas))
    with pytest.raises(ValueError, match="record=True"):
        summary_trace(bare)


def test_point_kinds_become_instants_and_threads_follow_the_run_order():
    trace = run_trace([("restart", 10.0, 20.0, {}), ("failure", 10.0, 10.0 + 1e-9, {"cause": "gpu"}),
                       ("train", 0.0, 10.0, {"work_s": 10.0})])
    meta = [e["args"]["name"] for e in trace["traceEvents"] if e["name"] == "thread_name"]
    assert meta == ["train", "failure", "restart"]
    assert [e["ph"] for e in trace["traceEvents"] if e["name"] == "failure"] == ["i"]


@dataclass(frozen=True)
class Event:
    kind: str
    start_s: float
    end_s: float
    args: dict = field(default_factory=dict)


def test_goodput_curve_by_hand():
    """Train 10 h, checkpoint 1 h, train 10 h, fail: roll back 10 h of work, restart 9 h, train 10 h."""
    h = HOUR
    events = [Event("train", 0, 10 * h, {"work_s": 10 * h}), Event("checkpoint", 10 * h, 11 * h),
              Event("train", 11 * h, 21 * h, {"work_s": 10 * h}), Event("failure", 21 * h, 21 * h + 1e-9),
              Event("rollback", 21 * h, 21 * h + 1e-9, {"work_s": 10 * h}), Event("restart", 21 * h, 30 * h),
              Event("train", 30 * h, 40 * h, {"work_s": 10 * h})]
    days, goodput = plots.goodput_curve(events)
    assert [round(d * 24, 9) for d in days] == [10, 11, 21, 21, 21, 30, 40]
    assert goodput == pytest.approx([1, 10 / 11, 20 / 21, 20 / 21, 10 / 21, 10 / 30, 20 / 40])


def test_goodput_curve_ends_at_the_replicas_goodput(run):
    days, goodput = plots.goodput_curve(run.replicas[0].events)
    assert days[-1] == pytest.approx(run.replicas[0].wall_s / DAY, rel=1e-9)
    assert goodput[-1] == pytest.approx(run.replicas[0].goodput, rel=1e-9)
    assert all(0 < g <= 1 + 1e-12 for g in goodput)


def test_run_plots_are_not_empty(run):
    figures = plots.run_plots(run, "small")
    assert sorted(figures) == ["days_distribution.png", "goodput_over_time.png"]
    for png in figures.values():
        assert_not_empty(png)


def test_report_run_section_from_the_run_block(run, small_eval):
    level = run_level(run)
    assert level.summary["days_p50"] == pytest.approx(run.days_p50, rel=1e-3)
    assert level.days_samples == pytest.approx(list(run.days))
    page = report_html(small_eval, run=level)
    assert "<h2>Training run</h2>" in page and "days P50" in page and "interruptions_by_category" in page
    assert page.count("<img") == len(plots.step_plots(small_eval)) + 2
