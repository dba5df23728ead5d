"""One self-contained HTML page per scenario: summary, plots (PNG data URIs), assumptions with sources.

Nothing on the page is fetched: CSS is inline and every image is embedded, so the file opens offline.
Sections that need the run level or a layout search / cluster sizing appear only when their data are
passed (``None`` leaves them out).
"""

from __future__ import annotations

import base64
import html
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sim import __version__, catalog
from sim.analysis.evaluate import Evaluation
from sim.report import plots
from sim.report.result import result_dict, run_block, summary_text
from sim.specs.scenario import Scenario

if TYPE_CHECKING:
    from sim.analysis.runlevel import RunSummary


@dataclass(frozen=True, slots=True, kw_only=True)
class RunLevel:
    """What the run level hands the report (every field optional but ``summary``)."""

    summary: Mapping[str, Any]
    """Key figures, e.g. the ``run`` block of the result JSON (days_p50, goodput, cost_usd, ...)."""
    goodput_days: Sequence[float] | None = None
    """Days since the start of one replica's timeline (x of the goodput plot)."""
    goodput: Sequence[float] | None = None
    """Goodput at those days."""
    days_samples: Sequence[float] | None = None
    """Wall-clock days of every Monte Carlo replica."""


def run_level(run: RunSummary) -> RunLevel:
    """The report's run section from a simulated run level: the JSON ``run`` block, goodput over time of
    replica 0 (when simulated with ``record=True``) and the days of every replica."""
    curve = plots.goodput_curve(run.replicas[0].events) if run.replicas[0].events else (None, None)
    return RunLevel(summary=run_block(run), goodput_days=curve[0], goodput=curve[1],
                    days_samples=[float(d) for d in run.days])


@dataclass(frozen=True, slots=True)
class Assumption:
    """One figure the result rests on, and where it comes from."""

    group: str
    name: str
    value: str
    source: str


_CSS = """
body { font-family: system-ui, -apple-system, 'Segoe UI', sans-serif; margin: 2em auto; max-width: 1150px;
       color: #222; background: #fff; padding: 0 1em; }
h1 { font-size: 1.6em; margin-bottom: 0.2em; } h2 { border-bottom: 2px solid #1f77b4; padding-bottom: 0.2em; }
.meta { color: #666; } pre { background: #f5f5f5; padding: 1em; overflow-x: auto; font-size: 0.85em; }
table { border-collapse: collapse; width: 100%; font-size: 0.85em; margin-bottom: 1.5em; }
th, td { border: 1px solid #ddd; padding: 4px 8px; text-align: left; vertical-align: top; }
th { background: #eef3f8; } td.num { text-align: right; font-variant-numeric: tabular-nums; }
figure { margin: 1em 0 2em 0; } figure img { max-width: 100%; border: 1px solid #eee; }
figcaption { color: #555; font-size: 0.9em; }
.kpis { display: flex; flex-wrap: wrap; gap: 1em; margin: 1em 0; }
.kpi { background: #eef3f8; border-radius: 6px; padding: 0.6em 1em; min-width: 9em; }
.kpi b { display: block; font-size: 1.4em; color: #1f77b4; }
"""


def _esc(value: Any) -> str:
    return html.escape(str(value))


def _figure(png: bytes, caption: str) -> str:
    data = base64.b64encode(png).decode("ascii")
    return (f'<figure><img alt="{_esc(caption)}" src="data:image/png;base64,{data}">'
            f"<figcaption>{_esc(caption)}</figcaption></figure>")


def _table(header: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    head = "".join(f"<th>{_esc(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{_esc(c)}</td>" for c in row) + "</tr>" for row in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _kpis(pairs: Sequence[tuple[str, str]]) -> str:
    return '<div class="kpis">' + "".join(
        f'<div class="kpi">{_esc(k)}<b>{_esc(v)}</b></div>' for k, v in pairs) + "</div>"


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    if isinstance(value, dict):
        return ", ".join(f"{k} {_fmt(v)}" for k, v in value.items() if v is not None)
    if isinstance(value, list | tuple):
        if value and isinstance(value[0], list | tuple):  # a curve: (x, y) points
            return "[" + ", ".join(" → ".join(map(_fmt, point)) for point in value) + "]"
        return ", ".join(map(_fmt, value))
    return str(value)


# ---- assumptions ---------------------------------------------------------------------------------
_GPU_FIGURES = ("peak_tflops", "memory_gib", "hbm_tbyte_s", "scale_up_gbyte_s", "tdp_w", "gemm_max_fraction",
                "hbm_efficiency")


def _gpu_rows(s: Scenario) -> list[Assumption]:
    entry = catalog.gpu_table()[s.gpu.name]
    source = entry["source"] + (f" Note: {entry['note']}" if entry.get("note") else "")
    figures = "; ".join(f"{key} {_fmt(entry[key])}" for key in _GPU_FIGURES)
    return [Assumption("GPU", s.gpu.name, figures, source)]


def _walk_sourced(node: Any, path: tuple[str, ...]) -> Iterator[tuple[tuple[str, ...], dict[str, Any]]]:
    """Every mapping under ``node`` that carries a ``source``, with its key path."""
    if isinstance(node, dict):
        if "source" in node:
            yield path, node
        for key, value in node.items():
            if isinstance(value, dict):
                yield from _walk_sourced(value, (*path, str(key)))


def _efficiency_rows(s: Scenario) -> list[Assumption]:
    """The efficiency constants that apply to this GPU's architecture (other architectures' curves
    are left out; ``arch_fallback`` maps an architecture without its own curve to the one it borrows)."""
    table = catalog.efficiency_table()
    archs = {str(g["arch"]) for g in catalog.gpu_table().values()}
    rows = []
    for path, entry in _walk_sourced(table, ()):
        section = table.get(path[0], {}) if path else {}
        arch = section.get("arch_fallback", {}).get(s.gpu.arch, s.gpu.arch)
        if any(part in archs and part != arch for part in path):
            continue
        figures = {k: v for k, v in entry.items() if k != "source"}
        if "by_arch" in figures:
            figures = {s.gpu.arch: figures["by_arch"].get(s.gpu.arch, "not listed")}
        rows.append(Assumption("efficiency", ".".join(path), _fmt(figures), str(entry["source"])))
    return rows


def _topology_rows(s: Scenario) -> list[Assumption]:
    topo = s.cluster.topology
    source = (topo.source or "not stated") + (f" Notes: {topo.notes}" if topo.notes else "")
    up = topo.node.scale_up
    rows = [Assumption(f"topology {topo.name}", "node",
                       f"{topo.node.gpus} GPUs, {up.kind.value} {up.bandwidth_gbyte_s_per_gpu:g} GB/s/GPU/dir "
                       f"over {up.domain_gpus} GPUs, NVLS {up.nvls}, {topo.node.nics} x "
                       f"{topo.node.nic_bandwidth_gbit_s:g} Gb/s NICs", source)]
    for tier in topo.scale_out.tiers:
        rows.append(Assumption(f"topology {topo.name}", f"tier {tier.name}",
                               f"radix {tier.radix}, oversubscription {tier.oversubscription:g}, "
                               f"latency {tier.latency_us:g} us, span {tier.span_gpus or 'derived'} GPUs", source))
    return rows


def _model_rows(s: Scenario) -> list[Assumption]:
    preset = catalog.preset(s.model.preset) if s.model.preset else None
    if preset is None:
        return []
    figures = {k: v for k, v in preset.items() if k not in ("name", "source", "note")}
    return [Assumption(f"model {preset['name']}", "architecture", _fmt(figures), str(preset.get("source", "")))]


def assumptions(s: Scenario) -> list[Assumption]:
    """The catalog figures the scenario's result rests on, each with its ``source``: the model preset,
    the GPU, the topology and the efficiency constants of the GPU's architecture."""
    return _model_rows(s) + _gpu_rows(s) + _topology_rows(s) + _efficiency_rows(s)


# ---- sections ------------------------------------------------------------------------------------
def _summary(ev: Evaluation) -> str:
    res = result_dict(ev)
    step, mem = res["step"], res["memory"]
    pairs = [("GPUs", f"{ev.scenario.cluster.num_gpus:,}"),
             ("memory / GPU", f"{mem['peak_gib_per_gpu']:.1f} of {mem['capacity_gib_per_gpu']:g} GiB")]
    if step["step_time_s"] is not None:
        pairs += [("step time", f"{step['step_time_s']:.3f} s"), ("MFU", f"{step['mfu']:.1%}"),
                  ("tokens/s/GPU", f"{step['tokens_per_s_per_gpu']:,.0f}"),
                  ("bubble", f"{step['bubble_fraction']:.1%}"),
                  ("exposed comm", f"{step['exposed_comm_fraction']:.1%}")]
    else:
        pairs.append(("step", "out of memory"))
    return "<h2>Summary</h2>" + _kpis(pairs) + f"<pre>{_esc(summary_text(ev))}</pre>"


_CAPTIONS = {
    "pipeline_timeline.png": "Pipeline timeline: forward and backward blocks per stage, PP and DP transfers "
                             "in the thin band below (trainsim run SCENARIO --trace out.json for every interval)",
    "step_breakdown.png": "Where the step went on the bottleneck stage: compute, exposed communication by "
                          "dimension, SM contention, optimizer, pipeline bubble",
    "memory_breakdown.png": "Memory per GPU of each pipeline stage against the GPU's capacity",
}


def _step_section(ev: Evaluation) -> str:
    figures = "".join(_figure(png, _CAPTIONS[name]) for name, png in plots.step_plots(ev).items())
    return "<h2>Step</h2>" + figures


#: Key figures of the run block shown as tiles (label, key, format).
_RUN_KPIS = (("days P50", "days_p50", "{:.1f}"), ("days P90", "days_p90", "{:.1f}"), ("goodput", "goodput", "{:.1%}"),
             ("interruptions", "interruptions_mean", "{:.0f}"), ("cost", "cost_usd", "${:,.0f}"),
             ("GPU-hours", "gpu_hours", "{:,.0f}"))


def _run_section(run: RunLevel) -> str:
    kpis = [(label, fmt.format(run.summary[key])) for label, key, fmt in _RUN_KPIS
            if isinstance(run.summary.get(key), int | float)]
    parts = ["<h2>Training run</h2>", _kpis(kpis) if kpis else "",
             _table(("figure", "value"), [(k, _fmt(v)) for k, v in run.summary.items() if v != []])]
    if run.goodput_days is not None and run.goodput is not None:
        parts.append(_figure(plots.goodput_over_time(run.goodput_days, run.goodput),
                             "Goodput over time of one replica: work done net of rollbacks / wall-clock time "
                             "(trainsim run SCENARIO --trace out.json writes its events as out.run.json)"))
    if run.days_samples is not None:
        parts.append(_figure(plots.days_distribution(run.days_samples),
                             "Wall-clock days over the Monte Carlo replicas, P50 and P90 marked"))
    return "".join(parts)


def _layouts_section(rows: Sequence[tuple[str, float, float]]) -> str:
    table = _table(("layout", "step time (s)", "MFU"), [(r[0], f"{r[1]:.3f}", f"{r[2]:.1%}") for r in rows])
    return "<h2>Layouts</h2>" + _figure(plots.layout_comparison(rows), "Step time and MFU per layout") + table


def _sizing_section(rows: Sequence[tuple[int, float, float]]) -> str:
    table = _table(("GPUs", "days", "cost (USD)"), [(f"{g:,}", f"{d:.1f}", f"{c:,.0f}") for g, d, c in sorted(rows)])
    return "<h2>Cluster size</h2>" + _figure(plots.cost_vs_gpus(rows), "Days and cost vs GPU count") + table


def _assumptions_section(s: Scenario) -> str:
    rows = [(a.group, a.name, a.value, a.source) for a in assumptions(s)]
    return ("<h2>Assumptions</h2><p>Every figure below is read from trainsim's packaged catalog "
            "(<code>sim/catalog</code>, <code>topologies/</code>) with the source it names.</p>"
            + _table(("group", "figure", "value", "source"), rows))


def report_html(ev: Evaluation, *, run: RunLevel | None = None,
                layouts: Sequence[tuple[str, float, float]] | None = None,
                sizing: Sequence[tuple[int, float, float]] | None = None) -> str:
    """The report page of one evaluation.

    Parameters
    ----------
    ev
        The evaluated scenario (``sim.analysis.evaluate.evaluate``).
    run
        Run-level results; ``None`` leaves the section out.
    layouts
        ``(label, step_time_s, mfu)`` per layout of a search; ``None`` leaves the section out.
    sizing
        ``(gpus, days, cost_usd)`` per cluster size; ``None`` leaves the section out.
    """
    s = ev.scenario
    body = [f"<h1>{_esc(s.name)}</h1>",
            f'<p class="meta">trainsim {_esc(__version__)} &middot; {_esc(s.model.preset or "custom model")} on '
            f"{s.cluster.num_gpus:,} x {_esc(s.gpu.name)} &middot; topology {_esc(s.cluster.topology.name)}</p>",
            _summary(ev), _step_section(ev)]
    if run is not None:
        body.append(_run_section(run))
    if layouts is not None:
        body.append(_layouts_section(layouts))
    if sizing is not None:
        body.append(_sizing_section(sizing))
    body.append(_assumptions_section(s))
    return (f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8"><title>trainsim: {_esc(s.name)}</title>'
            f"<style>{_CSS}</style></head><body>{''.join(body)}</body></html>\n")


def write_report(ev: Evaluation, path: str | Path, **sections: Any) -> Path:
    """Write ``report_html(ev, **sections)`` to ``path``; returns the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(report_html(ev, **sections), encoding="utf-8")
    return path
