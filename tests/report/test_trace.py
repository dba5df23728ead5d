"""Trace export (sim/report/trace.py): the trace-event format, and the trace agrees with the simulator."""

from __future__ import annotations

import dataclasses
import json
from collections import defaultdict

import pytest

from sim.engine.simulate import simulate_step
from sim.engine.streams import Timeline
from sim.report.trace import run_trace, step_trace, write_step_trace, write_trace
from sim.specs.enums import Fidelity

from .conftest import small_scenario

REQUIRED = {"X": ("name", "ph", "pid", "tid", "ts", "dur"), "B": ("name", "ph", "pid", "tid", "ts"),
            "E": ("ph", "pid", "tid", "ts"), "i": ("name", "ph", "pid", "tid", "ts"),
            "M": ("name", "ph", "pid", "args")}
#: Timestamps are float microseconds: back-to-back intervals may overlap by rounding (far below 1 ns).
TOLERANCE_US = 1e-3


def format_problems(trace: dict) -> list[str]:
    """Violations of the trace-event format (Chrome 'Trace Event Format' document): required fields
    per phase, non-negative durations, timestamps monotonic per thread, complete events on one thread
    nested or disjoint, every B matched by an E, every used process and thread named."""
    problems: list[str] = []
    events = trace.get("traceEvents")
    if not isinstance(events, list):
        return ["traceEvents is not a list"]
    per_thread: dict[tuple, list[dict]] = defaultdict(list)
    named_pids, named_threads = set(), set()
    for n, e in enumerate(events):
        ph = e.get("ph")
        if ph not in REQUIRED:
            problems.append(f"event {n}: unknown phase {ph!r}")
            continue
        missing = [f"event {n} ({ph}): missing {f}" for f in REQUIRED[ph] if f not in e]
        if missing:
            problems += missing
            continue
        if ph == "M":
            if e["name"] == "process_name":
                named_pids.add(e["pid"])
            if e["name"] == "thread_name":
                named_threads.add((e["pid"], e.get("tid")))
            continue
        if ph == "X" and e.get("dur", 0) < 0:
            problems.append(f"event {n}: negative dur")
        per_thread[e["pid"], e["tid"]].append(e)
    for key, evs in per_thread.items():
        if key[0] not in named_pids or key not in named_threads:
            problems.append(f"thread {key} has no process_name / thread_name")
        ts = [e["ts"] for e in evs]
        if ts != sorted(ts):
            problems.append(f"thread {key}: timestamps not monotonic")
        open_b, ends = [], []  # B/E stack; ends of enclosing X events
        for e in sorted(evs, key=lambda e: e["ts"]):
            if e["ph"] == "B":
                open_b.append(e)
            elif e["ph"] == "E":
                if not open_b:
                    problems.append(f"thread {key}: E at {e['ts']} without a B")
                else:
                    open_b.pop()
            elif e["ph"] == "X":
                while ends and ends[-1] <= e["ts"] + TOLERANCE_US:
                    ends.pop()
                end = e["ts"] + e["dur"]
                if ends and end > ends[-1] + TOLERANCE_US:
                    problems.append(f"thread {key}: X {e['name']} at {e['ts']} overlaps its neighbour")
                ends.append(end)
        problems += [f"thread {key}: B {b['name']} never ends" for b in open_b]
    return problems


def busy_s(trace: dict) -> dict[tuple[int, str], float]:
    names = {(e["pid"], e["tid"]): e["args"]["name"] for e in trace["traceEvents"]
             if e["ph"] == "M" and e["name"] == "thread_name"}
    out: dict[tuple[int, str], float] = defaultdict(float)
    for e in trace["traceEvents"]:
        if e["ph"] == "X":
            out[e["pid"], names[e["pid"], e["tid"]]] += e["dur"] / 1e6
    return out


META = [{"name": "process_name", "ph": "M", "pid": 0, "args": {"name": "p"}},
        {"name": "thread_name", "ph": "M", "pid": 0, "tid": 0, "args": {"name": "t"}}]


def on_thread(*events: dict) -> dict:
    """A trace of ``events`` on the named thread (0, 0)."""
    return {"traceEvents": [*META, *({"pid": 0, "tid": 0, **e} for e in events)]}


def test_the_validator_catches_broken_traces():
    good = on_thread({"name": "a", "ph": "B", "ts": 0}, {"ph": "E", "ts": 5},
                     {"name": "b", "ph": "X", "ts": 6, "dur": 2}, {"name": "c", "ph": "X", "ts": 6.5, "dur": 1})
    assert format_problems(good) == []
    unmatched = on_thread({"name": "a", "ph": "B", "ts": 0})
    backwards = on_thread({"name": "a", "ph": "X", "ts": 5, "dur": 1}, {"name": "b", "ph": "X", "ts": 1, "dur": 1})
    overlap = on_thread({"name": "a", "ph": "X", "ts": 0, "dur": 5}, {"name": "b", "ph": "X", "ts": 3, "dur": 5})
    missing = on_thread({"name": "a", "ph": "X", "ts": 0})
    unnamed = {"traceEvents": [{"name": "a", "ph": "X", "pid": 1, "tid": 0, "ts": 0, "dur": 1}]}
    for bad in (unmatched, backwards, overlap, missing, unnamed):
        assert format_problems(bad), bad


LAYOUTS = {"interleaved zero1": {}, "1f1b zero0": {"virtual_pipeline": 1, "schedule": "1f1b", "zero_stage": 0},
           "zero3": {"zero_stage": 3, "virtual_pipeline": 1, "schedule": "1f1b"},
           "no overlap": {"overlap_grad_reduce": False, "overlap_param_gather": False},
           "context parallel": {"context": 2}}


@pytest.fixture(scope="module", params=list(LAYOUTS))
def step(request):
    return simulate_step(small_scenario(**LAYOUTS[request.param]), record=True)


def test_step_trace_is_valid_trace_event_json(step, tmp_path):
    path = write_trace(step_trace(step), tmp_path / "out" / "step.json")
    trace = json.loads(path.read_text())  # survives a JSON round trip
    assert format_problems(trace) == []
    timeline_streams = {i.stream for i in step.timeline.intervals}
    assert sum(e["ph"] == "X" and e["cat"] in timeline_streams for e in trace["traceEvents"]) == \
        len(step.timeline.intervals)


def test_trace_busy_time_equals_the_simulators(step):
    """Busy time per (stage, stream) in the trace = the timeline's; compute busy time minus the
    optimizer = the simulator's per-stage compute time (StepResult.stage_compute_s)."""
    trace = step_trace(step)
    busy = busy_s(trace)
    streams = {(i.rank, i.stream) for i in step.timeline.intervals}
    assert set(busy) - streams <= {(r, t) for r, _ in streams for t in ("tp_comm", "cp_comm")}
    for rank, stream in streams:
        assert busy[rank, stream] == pytest.approx(step.timeline.busy(rank, stream), rel=1e-12)
    for rank in range(step.scenario.parallelism.pipeline):
        optimizer = sum(e["dur"] / 1e6 for e in trace["traceEvents"]
                        if e["ph"] == "X" and e["pid"] == rank and e["name"] == "optimizer")
        assert optimizer > 0
        assert busy[rank, "compute"] - optimizer == pytest.approx(step.stage_compute_s[rank], rel=1e-9)
    # the critical stage ends at the step time
    assert max(e["ts"] + e["dur"] for e in trace["traceEvents"] if e["ph"] == "X") / 1e6 == \
        pytest.approx(step.step_time_s, rel=1e-12)


def test_tp_and_cp_threads_hold_the_exposed_collectives_inside_their_blocks(step):
    """The tp_comm / cp_comm threads' busy time = the tp_comm_s / cp_comm_s the engine put in the compute
    blocks, and every such event lies inside a compute block of its stage."""
    trace = step_trace(step)
    busy = busy_s(trace)
    p = step.scenario.parallelism
    for rank in range(p.pipeline):
        blocks = [i for i in step.timeline.intervals if i.rank == rank and i.stream == "compute"]
        for thread, key in (("tp_comm", "tp_comm_s"), ("cp_comm", "cp_comm_s")):
            expected = sum(i.args.get(key, 0.0) for i in blocks)
            assert busy.get((rank, thread), 0.0) == pytest.approx(expected, rel=1e-9)
        inside = [e for e in trace["traceEvents"] if e["ph"] == "X" and e["pid"] == rank
                  and e["cat"] in ("tp_comm", "cp_comm")]
        for e in inside:
            assert any(b.start * 1e6 - 1e-3 <= e["ts"] and e["ts"] + e["dur"] <= b.end * 1e6 + 1e-3 for b in blocks)
    if p.tensor > 1:
        assert any(busy.get((r, "tp_comm"), 0) > 0 for r in range(p.pipeline))
    if p.context > 1:
        assert any(busy.get((r, "cp_comm"), 0) > 0 for r in range(p.pipeline))


def test_trace_args_carry_bytes_and_model_flops(step):
    """Transfers carry their bytes; the model FLOPs of the compute events, times the GPUs each
    simulated rank stands for (TP x CP x DP), add up to the step's model FLOPs."""
    trace = step_trace(step)
    p = step.scenario.parallelism
    xs = [e for e in trace["traceEvents"] if e["ph"] == "X"]
    transfers = [e for e in xs if e["cat"] not in ("compute", "tp_comm", "cp_comm")]
    assert all(e["args"]["bytes"] > 0 for e in transfers)
    assert sum(e["args"]["bytes"] for e in transfers) == pytest.approx(
        sum(i.args["bytes"] for i in step.timeline.intervals if i.stream != "compute"), rel=1e-12)
    model_flops = sum(e["args"].get("model_flops", 0.0) for e in xs)
    assert model_flops * p.tensor * p.context * p.data == pytest.approx(step.model_flops_per_step, rel=1e-12)
    assert all("model_flops" in e["args"] for e in xs if e["cat"] == "compute" and e["name"] != "optimizer")


def test_step_trace_threads_and_processes(step):
    trace = step_trace(step)
    meta = [e for e in trace["traceEvents"] if e["ph"] == "M"]
    assert {e["pid"] for e in meta if e["name"] == "process_name"} == set(range(step.scenario.parallelism.pipeline))
    threads = {e["args"]["name"] for e in meta if e["name"] == "thread_name"}
    assert threads - {"tp_comm", "cp_comm"} == {i.stream for i in step.timeline.intervals}
    assert {"compute", "tp_comm", "pp_send_fwd", "dp_reduce"} <= threads  # TP 2 in these layouts


def test_written_step_trace_is_the_step_trace_byte_for_byte(step, tmp_path):
    fast = write_step_trace(step, tmp_path / "fast.json").read_bytes()
    assert fast == write_trace(step_trace(step), tmp_path / "plain.json").read_bytes()


@pytest.fixture(scope="module")
def full_step():
    """Full fidelity on 16 GPUs: each simulated rank stands for the 8 alike ranks of its stage."""
    s = small_scenario(data=4)
    full = dataclasses.replace(s, simulation=dataclasses.replace(s.simulation, fidelity=Fidelity.FULL))
    step = simulate_step(full, record=True)
    members = step.timeline.members
    assert members is not None and len(members) == 2 and all(len(m) == 8 for m in members)
    return step


def test_full_fidelity_trace_is_every_ranks_own(full_step, tmp_path):
    """A trace made from the simulated ranks, each standing for its class, is the trace of every rank's own
    copied intervals (the timeline each rank would have recorded), and is written to the same bytes."""
    timeline = full_step.timeline
    stage_of = {g: timeline.stage(slot) for slot, ranks in enumerate(timeline.members) for g in ranks}
    flat = Timeline()
    flat.recorded = timeline.intervals  # every rank's intervals, each rank its own slot
    flat.stand_for([[g] for g in range(16)], [stage_of[g] for g in range(16)])
    every = step_trace(dataclasses.replace(full_step, timeline=flat))
    trace = step_trace(full_step)
    assert every["traceEvents"][-1]["pid"] == 15
    assert trace["traceEvents"] == every["traceEvents"]
    assert write_step_trace(full_step, tmp_path / "fast.json").read_bytes() == \
        write_trace(trace, tmp_path / "plain.json").read_bytes()


def test_full_fidelity_trace_names_each_gpu_with_its_stage(full_step):
    """Under full fidelity a process is a GPU (16: TP 2 x DP 4 per stage, stage 1 on GPUs 8-15), named with its
    stage, and every used process and thread is named."""
    trace = step_trace(full_step)
    assert format_problems(trace) == []
    names = {e["pid"]: e["args"]["name"] for e in trace["traceEvents"] if e["name"] == "process_name"}
    assert names == {g: f"GPU {g}: pipeline stage {g // 8}" for g in range(16)}
    assert trace["otherData"]["simulated_ranks"] == 2


def test_a_plot_by_stage_shows_the_lowest_gpu_of_each_stage(full_step, step):
    rows = full_step.timeline.by_stage()
    every = full_step.timeline.intervals
    for stage, gpu in ((0, 0), (1, 8)):
        assert [(i.stream, i.name, i.start, i.end) for i in rows if i.rank == stage] == \
            [(i.stream, i.name, i.start, i.end) for i in every if i.rank == gpu]
    assert step.timeline.by_stage() == step.timeline.intervals  # symmetric: every slot is its stage


DAY = 86400.0


def test_run_trace_from_hand_made_events():
    events = [("training", 0.0, 2 * DAY, {"steps": 1000}),
              ("checkpoint", DAY, DAY + 60, {"bytes": 1e12}),
              ("failure", 1.5 * DAY, 1.5 * DAY, {"component": "gpu"}),
              ("restart", 1.5 * DAY, 1.5 * DAY + 900, {}),
              ("checkpoint", DAY + 30, DAY + 90, {"bytes": 1e12})]  # overlaps the first: second lane
    trace = run_trace(events)
    assert format_problems(trace) == []
    names = {e["tid"]: e["args"]["name"] for e in trace["traceEvents"] if e["name"] == "thread_name"}
    assert sorted(names.values()) == ["checkpoint", "checkpoint #2", "failure", "restart", "training"]
    body = [e for e in trace["traceEvents"] if e["ph"] != "M"]
    instants = [e for e in body if e["ph"] == "i"]
    assert [(e["name"], e["ts"], e["args"]) for e in instants] == [("failure", 1.5 * DAY * 1e6, {"component": "gpu"})]
    spans = sorted((names[e["tid"]], e["ts"] / 1e6, e["dur"] / 1e6) for e in body if e["ph"] == "X")
    assert spans == [("checkpoint", DAY, 60.0), ("checkpoint #2", DAY + 30, 60.0), ("restart", 1.5 * DAY, 900.0),
                     ("training", 0.0, 2 * DAY)]


def test_run_trace_rejects_an_event_that_ends_before_it_starts():
    with pytest.raises(ValueError, match="ends before it starts"):
        run_trace([("checkpoint", 10.0, 5.0, {})])
