"""Chrome trace-event JSON (Perfetto UI, ``chrome://tracing``) of a simulated step or a training run.

The trace-event format: https://docs.google.com/document/d/1CvAClvFfyA5R-PhYUmn5OOQtYMH4h6I0nSsKchNAySU
Complete events (``"ph": "X"``) carry ``ts`` and ``dur`` in microseconds; metadata events (``"ph": "M"``)
name processes and threads. A step trace has one process per simulated pipeline rank (each standing for
its TP, CP and DP peers; under full fidelity one per GPU) and one thread per timeline stream; a run trace has
one process and one thread per event kind, on a time axis of seconds since the start of training (months of
run fit easily: timestamps are float microseconds, about 2 ns resolution at 200 days).
"""

from __future__ import annotations

import json
import re
from collections import defaultdict
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sim.costs import flops
from sim.engine.step import StepResult
from sim.parallelism.schedules import Phase
from sim.parallelism.sharding import chunk_layers
from sim.report import strict_json
from sim.specs.scenario import Scenario
from sim.units import DAY

if TYPE_CHECKING:
    from sim.analysis.runlevel import RunSummary

US = 1e6  # trace timestamps are microseconds

#: Thread order of a step trace: the compute stream first, the TP and CP collectives inside its blocks,
#: then the communication channels of sim/engine/step.py. A stream not listed here still gets its own
#: thread, after these.
STREAM_ORDER = ("compute", "tp_comm", "cp_comm", "ep_comm", "pp_send_fwd", "pp_send_bwd", "dp_gather", "dp_reduce",
                "edp_reduce")
#: Collectives the engine keeps inside a compute block (their exposed seconds are the block's args).
IN_BLOCK = (("tp_comm", "tp_comm_s", "TP"), ("cp_comm", "cp_comm_s", "CP"), ("ep_comm", "ep_comm_s", "EP"))

_PIECE = re.compile(r"\.(?:layer(?P<layer>\d+)|(?P<head>lm_head)|embedding)$")


def _meta(pid: int, tid: int, kind: str, value: str | int) -> dict[str, Any]:
    key = "sort_index" if kind.endswith("sort_index") else "name"
    return {"name": kind, "ph": "M", "pid": pid, "tid": tid, "args": {key: value}}


def _complete(name: str, cat: str, pid: int, tid: int, start_s: float, end_s: float,
              args: Mapping[str, Any]) -> dict[str, Any]:
    return {"name": name, "cat": cat, "ph": "X", "pid": pid, "tid": tid, "ts": start_s * US,
            "dur": end_s * US - start_s * US, "args": dict(args)}


def _forward_flops_per_token(s: Scenario, layers: Iterable[int], head: bool) -> float:
    """Model forward FLOPs per token of a block (sim.costs.flops convention: embedding lookup excluded)."""
    m = s.model
    total = sum(2.0 * flops.layer_matmul_params(m, i) + flops.attention_score_flops_per_token(m) for i in layers)
    if not head:
        return total
    # The last block also runs the MTP modules (sim.engine.step puts them after the LM head).
    mtp = m.mtp_layers * (2.0 * (flops.mtp_matmul_params(m) + m.vocab_size * m.hidden_size)
                          + flops.attention_score_flops_per_token(m))
    return total + 2.0 * m.vocab_size * m.hidden_size + mtp


class _FlopCounter:
    """Model FLOPs per GPU of each compute interval (forward x1, backward x2, recompute not counted).

    A compute interval is a whole virtual-stage block (``vs`` in its args; split evenly into gradient
    buckets on the last backward) or, under ZeRO-3, one piece named ``...layerN`` / ``...lm_head`` /
    ``...embedding``. Intervals of neither kind (the optimizer) carry no model FLOPs. Counted on the recorded
    intervals (a rank standing for others has their blocks).
    """

    def __init__(self, step: StepResult) -> None:
        s = self.s = step.scenario
        p = s.parallelism
        self.chunks = chunk_layers(s)
        self.tokens_per_gpu = p.micro_batch_size * s.model.seq_len / (p.tensor * p.context)
        self.parts: dict[tuple[int, str, Any, Any], int] = defaultdict(int)
        for i in step.timeline.recorded:
            if i.stream == "compute" and "vs" in i.args:
                self.parts[self._block_key(i.rank, i.name, i.args)] += 1
        #: forward FLOPs per token by (layers, head): every block of a virtual stage asks the same
        self.per_token: dict[tuple[tuple[int, ...], bool], float] = {}

    @staticmethod
    def _block_key(rank: int, name: str, args: Mapping[str, Any]) -> tuple[int, str, Any, Any]:
        return rank, name[:1], args["vs"], args.get("microbatch")

    def _per_token(self, layers: Iterable[int], head: bool) -> float:
        key = (tuple(layers), head)
        if key not in self.per_token:
            self.per_token[key] = _forward_flops_per_token(self.s, key[0], head)
        return self.per_token[key]

    def __call__(self, rank: int, name: str, args: Mapping[str, Any]) -> float | None:
        phase = name[:1]  # compute labels start with the pass (``F3.vs1``); others are not blocks
        if phase not in (Phase.FORWARD, Phase.BACKWARD):
            return None
        if "vs" in args:
            vs = args["vs"]
            per_token = self._per_token(self.chunks[vs], vs == len(self.chunks) - 1)
            share = 1 / self.parts[self._block_key(rank, name, args)]
        else:
            piece = _PIECE.search(name)
            if piece is None:
                return None
            layers = [int(piece["layer"])] if piece["layer"] else []
            per_token, share = self._per_token(layers, piece["head"] is not None), 1.0
        return per_token * self.tokens_per_gpu * (1 if phase == Phase.FORWARD else 2) * share


def _streams(step: StepResult) -> list[str]:
    recorded = step.timeline.recorded
    seen = {i.stream for i in recorded}
    seen |= {thread for i in recorded for thread, key, _ in IN_BLOCK if i.args.get(key, 0) > 0}
    return [s for s in STREAM_ORDER if s in seen] + sorted(seen - set(STREAM_ORDER))


def _in_block_events(i, layers: int, tids: Mapping[str, int]) -> list[dict[str, Any]]:
    """The TP, CP and EP collectives of a compute block on threads of their own.

    The engine costs them on the layer's critical path inside the block (``tp_comm_s`` / ``cp_comm_s``
    exposed seconds), not as separate intervals; here each layer's share is drawn inside that layer's
    slice of the block (CP at its start, where the K/V ring exchange runs, TP at its end, EP just before
    TP: the combine ends the MoE block), so the threads
    show where the block waited on them and their busy time is exactly the engine's.
    """
    out = []
    window = (i.end - i.start) / layers
    for thread, key, label in IN_BLOCK:
        exposed = i.args.get(key, 0.0) / layers
        if exposed <= 0:
            continue
        for k in range(layers):
            lo = i.start + k * window
            start = lo if thread == "cp_comm" else lo + window - exposed
            if thread == "ep_comm":
                start -= i.args.get("tp_comm_s", 0.0) / layers
            out.append(_complete(f"{i.name} {label}", thread, i.rank, tids[thread], start, start + exposed,
                                 {"exposed_s": exposed, "layer_in_block": k}))
    return out


class _StepEvents:
    """The parts of a step trace: the metadata events, the events of each recorded slot (process: the slot)
    with the ranks it stands for (``Timeline.groups``), and the trace's ``otherData``. Each slot's events
    are made once, however many ranks share them (full fidelity's classes of alike ranks)."""

    def __init__(self, step: StepResult) -> None:
        s = step.scenario
        p = s.parallelism
        tids = {name: t for t, name in enumerate(_streams(step))}
        timeline = step.timeline
        count = _FlopCounter(step)
        self.slots: list[list[dict[str, Any]]] = []
        #: (rank, index into ``slots``) of every rank with intervals, in rank order: the processes of the trace
        self.ranks: list[tuple[int, int]] = []
        stages = []  # of each entry of ``slots``
        for k, (slot, intervals, ranks) in enumerate(timeline.groups()):
            events: list[dict[str, Any]] = []
            # the order of one rank's events in a trace sorted by (rank, thread, start, end), stable
            for i in sorted(intervals, key=lambda i: (tids[i.stream], i.start, i.end)):
                args = dict(i.args)
                if i.stream == "compute":
                    model_flops = count(i.rank, i.name, i.args)
                    if model_flops is not None:
                        args["model_flops"] = model_flops
                    events += _in_block_events(i, len(count.chunks[i.args["vs"]]) if "vs" in i.args else 1, tids)
                events.append(_complete(i.name, i.stream, i.rank, tids[i.stream], i.start, i.end, args))
            self.slots.append(events)
            stages.append(timeline.stage(slot))
            self.ranks += [(g, k) for g in ranks]
        self.ranks.sort()
        if timeline.members is None:  # a process per pipeline stage, standing for its peers
            peers = p.tensor * p.context * p.data
            processes = [(rank, f"pipeline stage {rank} (x{peers} GPUs: TP x CP x DP)") for rank in range(p.pipeline)]
        else:  # full fidelity: a process per GPU
            processes = [(rank, f"GPU {rank}: pipeline stage {stages[k]}") for rank, k in self.ranks]
        self.meta: list[dict[str, Any]] = []
        for rank, name in processes:
            self.meta.append(_meta(rank, 0, "process_name", name))
            self.meta.append(_meta(rank, 0, "process_sort_index", rank))
            for thread, tid in tids.items():
                self.meta.append(_meta(rank, tid, "thread_name", thread))
                self.meta.append(_meta(rank, tid, "thread_sort_index", tid))
        self.other = {"scenario": s.name, "step_time_s": step.step_time_s, "mfu": step.mfu,
                      "gpus": s.cluster.num_gpus,
                      "simulated_ranks": p.pipeline if timeline.members is None else len(timeline.members)}


def step_trace(step: StepResult) -> dict[str, Any]:
    """The trace-event JSON object of one simulated step.

    Parameters
    ----------
    step
        A simulated step (``sim.engine.step.simulate_step``).

    Returns
    -------
    dict
        ``{"traceEvents": [...], "displayTimeUnit": "ms", "otherData": {...}}``. Every interval of
        ``step.timeline`` becomes one complete event on process ``rank`` and the thread of its stream,
        with the interval's figures as args (``bytes`` of transfers; ``compute_s``, ``tp_comm_s``,
        ``cp_comm_s`` and ``ep_comm_s`` of compute blocks) plus ``model_flops`` per GPU for compute blocks.
        TP, CP and EP collectives sit inside the layer blocks (on their critical path): they get threads
        ``tp_comm`` / ``cp_comm`` / ``ep_comm`` with each layer's exposed share drawn inside the block (see
        ``_in_block_events``).
    """
    parts = _StepEvents(step)
    events = list(parts.meta)
    for rank, k in parts.ranks:
        events += [{**e, "pid": rank, "args": dict(e["args"])} for e in parts.slots[k]]
    return {"traceEvents": events, "displayTimeUnit": "ms", "otherData": parts.other}


#: A string no event holds, standing for what is filled in after encoding (``write_step_trace``).
_MARK = "\x00trainsim-mark\x00"


def write_step_trace(step: StepResult, path: str | Path) -> Path:
    """Write ``step_trace(step)`` as ``write_trace`` does (the same bytes), encoding each recorded slot's events
    once: the ranks it stands for differ only in ``pid``, filled into the slot's text. Returns the path."""
    parts = _StepEvents(step)
    if not parts.ranks:
        return write_trace(step_trace(step), path)
    mark = json.dumps(_MARK)
    head, _, tail = strict_json.dumps({"traceEvents": [*parts.meta, _MARK], "displayTimeUnit": "ms",
                                       "otherData": parts.other}).partition(mark)
    pieces = []
    for events in parts.slots:
        text = strict_json.dumps([{**e, "pid": _MARK} for e in events])[1:-1]
        piece = text.split(f'"pid": {mark}')
        assert len(piece) == len(events) + 1, "an event holds the mark"
        pieces.append(piece)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8") as out:
        out.write(head)
        for n, (rank, k) in enumerate(parts.ranks):
            if n:
                out.write(", ")
            out.write(f'"pid": {rank}'.join(pieces[k]))
        out.write(tail)
    return path


def _lanes(spans: list[tuple[float, float]]) -> list[int]:
    """Greedy lane per span (sorted by start) so that spans sharing a lane never overlap."""
    ends: list[float] = []
    out = []
    for start, end in spans:
        lane = next((k for k, e in enumerate(ends) if e <= start), len(ends))
        if lane == len(ends):
            ends.append(end)
        ends[lane] = end
        out.append(lane)
    return out


#: Run-event kinds that mark a moment (sim/engine/run.py logs them 1 ns wide): instant events in a run trace.
POINT_KINDS = frozenset({"failure", "rollback"})

#: Thread order of a run trace: the kinds of sim/engine/run.py in reading order. Other kinds follow,
#: alphabetically.
RUN_KIND_ORDER = ("train", "checkpoint", "failure", "rollback", "restart", "spare_wait")


def _kind_order(kind: str) -> tuple[int, str]:
    return (RUN_KIND_ORDER.index(kind) if kind in RUN_KIND_ORDER else len(RUN_KIND_ORDER), kind)


def run_trace(events: Iterable[tuple[str, float, float, Mapping[str, Any]]], name: str = "training run",
              other: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The trace-event JSON object of a training run's events.

    Parameters
    ----------
    events
        ``(kind, start_s, end_s, args)`` per event, seconds since the start of training: for example
        ``("checkpoint", t, t + write_s, {"bytes": ...})`` or ``("failure", t, t, {"component": "gpu"})``.
        An event with ``end_s == start_s``, or of a kind in :data:`POINT_KINDS`, becomes an instant event.
    name
        The process name.
    other
        Figures for the trace's ``otherData`` (shown by Perfetto's trace info).

    Returns
    -------
    dict
        One process; one thread per kind in :data:`RUN_KIND_ORDER` (more when events of a kind overlap:
        each extra lane is a thread named ``kind #2``, ...), complete events for spans and thread-scoped
        instant events.
    """
    by_kind: dict[str, list[tuple[float, float, Mapping[str, Any]]]] = defaultdict(list)
    for kind, start, end, args in events:
        if end < start:
            raise ValueError(f"run event {kind!r} ends before it starts ({start} > {end})")
        by_kind[kind].append((start, start if kind in POINT_KINDS else end, args))
    out: list[dict[str, Any]] = [_meta(0, 0, "process_name", name)]
    threads: dict[tuple[str, int], int] = {}
    body: list[dict[str, Any]] = []
    for kind in sorted(by_kind, key=_kind_order):
        spans = sorted(by_kind[kind], key=lambda e: (e[0], e[1]))
        for (start, end, args), lane in zip(spans, _lanes([(a, b) for a, b, _ in spans]), strict=True):
            tid = threads.setdefault((kind, lane), len(threads))
            if end > start:
                body.append(_complete(kind, kind, 0, tid, start, end, args))
            else:
                body.append({"name": kind, "cat": kind, "ph": "i", "s": "t", "pid": 0, "tid": tid,
                             "ts": start * US, "args": dict(args)})
    for (kind, lane), tid in threads.items():
        out.append(_meta(0, tid, "thread_name", kind if lane == 0 else f"{kind} #{lane + 1}"))
        out.append(_meta(0, tid, "thread_sort_index", tid))
    return {"traceEvents": out + body, "displayTimeUnit": "ms", "otherData": dict(other or {})}


def summary_trace(run: RunSummary, name: str = "training run") -> dict[str, Any]:
    """The run trace of the first Monte Carlo replica (simulated with ``record=True``).

    Its events (sim/engine/run.py ``RunEvent``): ``train`` segments (``work_s`` done), ``checkpoint``
    stalls, ``failure`` and ``rollback`` instants (cause; work lost), ``restart`` and ``spare_wait``
    spans. Raises ``ValueError`` when the replica kept no events.
    """
    first = run.replicas[0]
    if not first.events:
        raise ValueError("the run level was simulated without record=True: no events to trace")
    other = {"replica": 0, "replicas": len(run.replicas), "days": first.wall_s / DAY, "goodput": first.goodput,
             "interruptions": first.interruption_count, "checkpoints": first.checkpoints}
    return run_trace(((e.kind, e.start_s, e.end_s, e.args) for e in first.events),
                     f"{name}: replica 0 of {len(run.replicas)}", other)


def write_trace(trace: Mapping[str, Any], path: str | Path) -> Path:
    """Write a trace object as JSON; returns the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(strict_json.dumps(trace), encoding="utf-8")
    return path
