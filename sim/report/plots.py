"""Plots of a step, a layout search, a cluster sizing and a training run, as PNG bytes.

Each function takes plain data (numbers, mappings, the step timeline's intervals) and returns the PNG;
callers write it to a file, embed it in HTML or show it in a notebook. matplotlib is imported inside
the functions (headless Agg canvas, no pyplot state), so importing this module costs nothing.
"""

from __future__ import annotations

import io
from collections.abc import Iterable, Mapping, Sequence, Sized
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from sim.costs.memory import stage_memory
from sim.parallelism.schedules import Phase
from sim.units import DAY

if TYPE_CHECKING:
    import numpy as np

    from sim.analysis.evaluate import Evaluation
    from sim.analysis.runlevel import RunSummary

DPI = 110

#: Colours per step-breakdown category and per timeline stream (matplotlib's tab10 palette).
COLORS = {
    "compute": "#1f77b4", "tp_comm": "#ff7f0e", "cp_comm": "#8c564b", "ep_comm": "#bcbd22", "pp_comm": "#9467bd",
    "dp_comm": "#d62728", "contention": "#e377c2", "optimizer": "#2ca02c", "bubble": "#c7c7c7",
    "forward": "#1f77b4", "backward": "#ff7f0e",
    "parameters": "#1f77b4", "gradients": "#ff7f0e", "activations": "#17becf", "buffers": "#9467bd",
    "reserve": "#c7c7c7",
}
_OTHER = "#7f7f7f"

#: Gantt row kind of each communication stream of sim/engine/step.py (others keep their stream name).
_STREAM_KIND = {"pp_send_fwd": "pp_comm", "pp_send_bwd": "pp_comm", "dp_gather": "dp_comm", "dp_reduce": "dp_comm",
                "edp_reduce": "dp_comm"}
_GANTT_ORDER = ("forward", "backward", "optimizer", "pp_comm", "dp_comm")


class _Span(Protocol):
    @property
    def rank(self) -> int: ...
    @property
    def stream(self) -> str: ...
    @property
    def name(self) -> str: ...
    @property
    def start(self) -> float: ...
    @property
    def end(self) -> float: ...


def _figure(width: float, height: float) -> Any:
    """A headless figure (matplotlib.figure.Figure; typed Any so matplotlib stays a function-level import)."""
    from matplotlib.figure import Figure

    return Figure(figsize=(width, height), dpi=DPI, layout="constrained")


def _png(fig: Any) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=DPI)
    return buf.getvalue()


def _require(data: Sized, what: str) -> None:
    if len(data) == 0:
        raise ValueError(f"nothing to plot: {what} is empty")


def pipeline_gantt(intervals: Iterable[_Span], stages: int, title: str = "") -> bytes:
    """Gantt chart of a step: one row per pipeline stage, forward / backward / optimizer blocks on
    the compute stream and the stage's PP and DP transfers in a thin band under them.

    Parameters
    ----------
    intervals
        Timeline intervals (``sim.engine.streams.Interval``: rank, stream, name, start, end in s).
    stages
        Pipeline stages (rows).
    """
    spans = list(intervals)
    _require(spans, "intervals")
    rows: dict[tuple[int, str], list[tuple[float, float]]] = {}
    for i in spans:
        kind = _STREAM_KIND.get(i.stream, i.stream)
        if i.stream == "compute":
            forward = i.name.startswith(Phase.FORWARD)
            kind = "optimizer" if i.name == "optimizer" else "forward" if forward else "backward"
        rows.setdefault((i.rank, kind), []).append((i.start, i.end - i.start))
    fig = _figure(11, 1.0 + 0.42 * stages)
    ax = fig.subplots()
    labels: set[str] = set()
    order = {k: n for n, k in enumerate(_GANTT_ORDER)}
    for (rank, kind), bars in sorted(rows.items(), key=lambda kv: (order.get(kv[0][1], len(order)), kv[0])):
        compute = kind in ("forward", "backward", "optimizer")
        y = (rank - 0.35, 0.5) if compute else (rank + 0.2, 0.15)
        label = None if kind in labels else kind
        labels.add(kind)
        ax.broken_barh(bars, y, facecolors=COLORS.get(kind, _OTHER), edgecolor="white", linewidth=0.3, label=label)
    ax.set_ylim(stages - 0.5, -0.6)
    ax.set_yticks(range(stages), [f"stage {r}" for r in range(stages)])
    ax.set_xlabel("time in the step (s)")
    ax.set_title(title or "pipeline timeline")
    ax.legend(loc="upper left", bbox_to_anchor=(1.0, 1.0), fontsize=8, frameon=False)
    return _png(fig)


def step_breakdown(breakdown_s: Mapping[str, float], step_time_s: float, title: str = "") -> bytes:
    """Where the step went on the bottleneck (busiest) stage: seconds and share per category (compute, exposed
    communication by dimension, contention, optimizer, bubble)."""
    items = [(k, v) for k, v in breakdown_s.items() if v > 0]
    _require(items, "breakdown_s (no positive category)")
    fig = _figure(8, 0.6 + 0.4 * len(items))
    ax = fig.subplots()
    names = [k for k, _ in items]
    values = [v for _, v in items]
    bars = ax.barh(names, values, color=[COLORS.get(k, _OTHER) for k in names])
    ax.bar_label(bars, [f"{v:.3g} s  {v / step_time_s:.1%}" for v in values], padding=3, fontsize=8)
    ax.invert_yaxis()
    ax.set_xlim(0, max(values) * 1.35)
    ax.set_xlabel("seconds per step")
    ax.set_title(title or f"step {step_time_s:.3f} s")
    return _png(fig)


def memory_breakdown(stages: Sequence[Mapping[str, float]], capacity_gib: float, title: str = "") -> bytes:
    """Memory per GPU of each pipeline stage, stacked by kind (GiB), against the GPU's capacity.

    Parameters
    ----------
    stages
        One mapping per stage, kind -> GiB (``MemoryBreakdown.gib()``).
    capacity_gib
        The GPU's memory, drawn as a dashed line.
    """
    _require(stages, "stages")
    fig = _figure(8, 4)
    ax = fig.subplots()
    x = list(range(len(stages)))
    bottom = [0.0] * len(stages)
    for kind in stages[0]:
        values = [st.get(kind, 0.0) for st in stages]
        ax.bar(x, values, bottom=bottom, color=COLORS.get(kind, _OTHER), label=kind, width=0.8)
        bottom = [b + v for b, v in zip(bottom, values, strict=True)]
    ax.axhline(capacity_gib, color="black", linestyle="--", linewidth=1, label=f"capacity {capacity_gib:g} GiB")
    ax.set_xticks(x, [str(i) for i in x])
    ax.set_xlabel("pipeline stage")
    ax.set_ylabel("GiB per GPU")
    ax.set_ylim(0, max([*bottom, capacity_gib]) * 1.1)
    ax.set_title(title or "memory per GPU")
    ax.legend(loc="upper left", bbox_to_anchor=(1.0, 1.0), fontsize=8, frameon=False)
    return _png(fig)


def layout_comparison(rows: Sequence[tuple[str, float, float]], title: str = "") -> bytes:
    """Step time and MFU per layout, side by side.

    Parameters
    ----------
    rows
        ``(label, step_time_s, mfu)`` per layout, in the order to show.
    """
    _require(rows, "rows")
    labels = [r[0] for r in rows]
    fig = _figure(max(7, 0.5 * len(rows) + 3), 4.5)
    time_ax, mfu_ax = fig.subplots(1, 2, sharey=True)
    time_bars = time_ax.barh(labels, [r[1] for r in rows], color=COLORS["compute"])
    time_ax.bar_label(time_bars, [f"{r[1]:.2f}" for r in rows], padding=2, fontsize=8)
    time_ax.set_xlabel("step time (s)")
    time_ax.invert_yaxis()
    mfu_bars = mfu_ax.barh(labels, [100 * r[2] for r in rows], color=COLORS["optimizer"])
    mfu_ax.bar_label(mfu_bars, [f"{r[2]:.1%}" for r in rows], padding=2, fontsize=8)
    mfu_ax.set_xlabel("MFU (%)")
    for ax, values in ((time_ax, [r[1] for r in rows]), (mfu_ax, [100 * r[2] for r in rows])):
        ax.set_xlim(0, max(values) * 1.25)
    fig.suptitle(title or "layouts")
    return _png(fig)


class _RunEvent(Protocol):
    @property
    def kind(self) -> str: ...
    @property
    def start_s(self) -> float: ...
    @property
    def end_s(self) -> float: ...
    @property
    def args(self) -> Mapping[str, Any]: ...


def goodput_curve(events: Iterable[_RunEvent]) -> tuple[list[float], list[float]]:
    """Goodput so far along one replica's timeline: work done net of rollbacks / wall time.

    Parameters
    ----------
    events
        The replica's events (sim/engine/run.py ``RunEvent``): a ``train`` segment adds its ``work_s``
        over its span; a ``rollback`` sets the work done back to its ``work_s`` (the durable checkpoint).

    Returns
    -------
    (days, goodput)
        One point at each start and end of a training segment and at each rollback (t > 0), in days
        since the start. The last point is the replica's goodput (failure-free compute / wall clock).
    """
    days: list[float] = []
    goodput: list[float] = []
    work = 0.0

    def point(t: float) -> None:
        if t > 0:
            days.append(t / DAY)
            goodput.append(work / t)

    for e in sorted(events, key=lambda e: (e.start_s, e.end_s)):
        if e.kind == "train":
            point(e.start_s)
            work += e.args["work_s"]
            point(e.end_s)
        elif e.kind == "rollback":
            point(e.start_s)
            work = e.args["work_s"]
            point(e.start_s)
    return days, goodput


def goodput_over_time(days: Sequence[float], goodput: Sequence[float], title: str = "",
                      unfinished: bool = False) -> bytes:
    """Goodput (useful fraction of wall-clock time so far) against days since the start, with its final
    value marked; ``unfinished``: the replica stopped at the cap, marked where the curve ends."""
    _require(days, "days")
    if len(days) != len(goodput):
        raise ValueError(f"days ({len(days)}) and goodput ({len(goodput)}) differ in length")
    fig = _figure(8, 3.5)
    ax = fig.subplots()
    ax.plot(days, goodput, color=COLORS["compute"], linewidth=1.2)
    ax.axhline(goodput[-1], color="black", linestyle="--", linewidth=1, label=f"at the end {goodput[-1]:.1%}")
    # zoom on the range the curve covers (goodput near 1 would be a flat line on 0..1)
    low = min(goodput)
    ax.set_ylim(max(0.0, low - 0.1 * (1 - low) - 0.005), 1.0 + 0.05 * (1 - low) + 0.001)
    ax.set_xlim(0, max(days))
    if unfinished:
        ax.axvline(days[-1], color="red", linewidth=1.5, label="stopped at the cap: the run did not finish")
    ax.set_xlabel("days since start")
    ax.set_ylabel("goodput")
    ax.grid(alpha=0.3)
    ax.legend(loc="lower right", fontsize=8, frameon=False)
    ax.set_title(title or "goodput over time")
    return _png(fig)


def days_distribution(samples: Sequence[float] | np.ndarray, title: str = "", unfinished: int = 0) -> bytes:
    """Histogram of wall-clock days over Monte Carlo replicas, with P50 and P90 marked; ``unfinished``
    replicas (at the cap) make the days lower bounds, said in the title and legend."""
    import numpy as np

    _require(samples, "samples")
    # replicas equal up to rounding (a few ulps apart) would make bins too narrow for numpy: ~0.1 ms suffices
    values = np.round(np.asarray(samples, dtype=float), 9)
    fig = _figure(8, 3.5)
    ax = fig.subplots()
    ax.hist(values, bins=min(30, max(5, len(values) // 2)), color=COLORS["compute"], edgecolor="white")
    at_least = "\u2265 " if unfinished else ""
    for q, style in ((50, "-"), (90, "--")):
        v = float(np.percentile(values, q))
        ax.axvline(v, color="black", linestyle=style, linewidth=1,
                   label=f"P{q} {at_least}{v:.1f} days")
    if unfinished:
        ax.plot([], [], " ", label=f"{unfinished} replica(s) cut at the cap: lower bounds")
    ax.set_xlabel("wall-clock days")
    ax.set_ylabel("replicas")
    ax.legend(fontsize=8, frameon=False)
    ax.set_title(title or f"days to train ({len(values)} replicas)")
    return _png(fig)


def cost_vs_gpus(rows: Sequence[tuple[int, float, float]], title: str = "") -> bytes:
    """Days and cost against GPU count.

    Parameters
    ----------
    rows
        ``(gpus, days, cost_usd)`` per cluster size.
    """
    _require(rows, "rows")
    ordered = sorted(rows)
    gpus = [r[0] for r in ordered]
    fig = _figure(8, 4)
    days_ax = fig.subplots()
    days_ax.plot(gpus, [r[1] for r in ordered], "o-", color=COLORS["compute"], label="days")
    days_ax.set_xscale("log", base=2)
    days_ax.set_xticks(gpus, [f"{g:,}" for g in gpus])
    days_ax.minorticks_off()
    days_ax.set_xlabel("GPUs")
    days_ax.set_ylabel("days", color=COLORS["compute"])
    cost_ax = days_ax.twinx()
    cost_ax.plot(gpus, [r[2] / 1e6 for r in ordered], "s--", color=COLORS["dp_comm"], label="cost")
    cost_ax.set_ylabel("cost (million USD)", color=COLORS["dp_comm"])
    days_ax.grid(alpha=0.3)
    days_ax.set_title(title or "days and cost vs GPU count")
    return _png(fig)


def step_plots(ev: Evaluation) -> dict[str, bytes]:
    """The step-level plots of one evaluation, by file name: the memory breakdown always; the step
    breakdown when the layout fits (and the step was simulated), and the pipeline timeline when its
    timeline was recorded (``evaluate(..., record=True)``)."""
    s = ev.scenario
    out = {}
    if ev.step is not None:
        step = ev.step
        rows = step.timeline.by_stage()
        if rows:
            out["pipeline_timeline.png"] = pipeline_gantt(rows, s.parallelism.pipeline, f"{s.name}: one step")
        out["step_breakdown.png"] = step_breakdown(step.breakdown_s, step.step_time_s,
                                                   f"{s.name}: step {step.step_time_s:.3f} s, MFU {step.mfu:.1%}")
    stages = [stage_memory(s, r).gib() for r in range(s.parallelism.pipeline)]
    out["memory_breakdown.png"] = memory_breakdown(stages, s.gpu.memory_gib, f"{s.name}: memory per GPU")
    return out


def run_plots(run: RunSummary, name: str = "") -> dict[str, bytes]:
    """The run-level plots, by file name: the days distribution over replicas always; goodput over time
    of the first replica when it was simulated with ``record=True``."""
    head = f"{name}: " if name else ""
    out = {}
    events = run.replicas[0].events
    if events:
        days, goodput = goodput_curve(events)
        cut = not run.replicas[0].finished
        out["goodput_over_time.png"] = goodput_over_time(
            days, goodput, f"{head}goodput over time (replica 0 of {len(run.replicas)}"
                           f"{', unfinished at the cap' if cut else ''})", unfinished=cut)
    out["days_distribution.png"] = days_distribution(
        run.days, f"{head}days to train ({len(run.replicas)} replicas"
                  f"{f', {run.unfinished} unfinished: lower bounds' if run.unfinished else ''})", run.unfinished)
    return out


def save_plots(plots: Mapping[str, bytes], folder: str | Path) -> list[Path]:
    """Write PNGs by file name into ``folder`` (created); returns the paths."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for name, png in plots.items():
        path = folder / name
        path.write_bytes(png)
        paths.append(path)
    return paths
