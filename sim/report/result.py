"""The ``--json`` result contract (spec/result.md) and the readable summary."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from sim import __version__
from sim.analysis.estimate import ASSUMED_MFU, estimate_6nd_days
from sim.analysis.evaluate import Evaluation
from sim.costs import flops
from sim.network.crossings import crossings
from sim.specs.scenario import Scenario
from sim.units import GIB

if TYPE_CHECKING:  # the run level (its SimPy engine, numpy) is imported only when a run was simulated
    from sim.analysis.runlevel import RunSummary


def _round(x: float | None, digits: int = 6) -> float | None:
    return None if x is None else float(f"{x:.{digits}g}")


def run_block(run: RunSummary, step_mfu: float | None = None) -> dict[str, Any]:
    """The ``run`` object of spec/result.md: the contract's fields first, then the details; ``step_mfu`` (the
    step's MFU) gives the effective MFU."""
    plan, ck = run.plan, run.plan.checkpoint
    params = plan.params
    return {
        "days_p50": _round(run.days_p50), "days_p90": _round(run.days_p90),
        "gpu_hours": _round(run.gpu_hours), "cost_usd": _round(run.cost_usd),
        "energy_mwh": _round(run.energy_mwh), "co2_tonnes": _round(run.co2_tonnes),
        "interruptions_mean": _round(run.interruptions_mean), "goodput": _round(run.goodput),
        "training_pace": _round(run.training_pace),
        "mfu_effective": _round(step_mfu * run.training_pace) if step_mfu is not None else None,
        "days_mean": _round(run.days_mean), "failure_free_days": _round(run.failure_free_days),
        "steps": plan.steps, "replicas": len(run.replicas), "unfinished_replicas": run.unfinished,
        "days_are_lower_bounds": run.days_are_lower_bounds,
        "failures_modelled": run.failures_modelled,
        "interruptions_by_category": {k: _round(v) for k, v in run.interruptions_by_category().items()},
        "loss_days": {k: _round(v) for k, v in run.loss_days().items()},
        "dominant_loss": run.dominant_loss,
        "mtbi_hours": _round(run.mtbi_hours_simulated),
        "mtbi_hours_expected": _round(plan.mtbi_s / 3600) if plan.mtbi_s != float("inf") else None,
        "nodes_down_mean": _round(run.nodes_down_mean), "nodes_down_max": run.nodes_down_max,
        "share_time_nodes_down_at_least": {str(k): _round(v) for k, v in run.share_nodes_down_at_least().items()},
        "suggested_spare_nodes": run.suggested_spares, "spare_wait_days": _round(run.spare_wait_days),
        "recoveries_from_memory_mean": _round(run.recoveries_from_memory) if ck and ck.memory_replicas else None,
        "storage_fallbacks_mean": _round(run.storage_fallbacks) if ck and ck.memory_replicas else None,
        "standby_gpus": run.standby_gpus,
        "standby_switch_overs_mean": _round(run.standby_switch_overs) if params.standby_nodes else None,
        "failure_trace": None if params.trace is None else {
            "file": params.trace.file, "mode": "resample" if params.trace.resample else "replay",
            "faults": params.trace.faults, "events": len(params.trace.events),
            "fleet_nodes": params.trace.fleet_nodes,
            "trace_hours_per_job_hour": _round(params.trace.trace_hours_per_job_hour)},
        "checkpoint": None if ck is None else {
            "size_tb": _round(ck.size_bytes / 1e12), "interval_rule": plan.interval_rule,
            "interval_minutes": _round(params.interval_s / 60) if params.interval_s != float("inf") else None,
            "stall_s": _round(params.stall_s), "persist_s": _round(params.persist_s), "load_s": _round(ck.load_s),
            "shard_gb_per_gpu": _round(ck.shard_bytes / 1e9), "host_copy_gbyte_s": _round(ck.host_copy_gbyte_s),
            "in_memory_replicas": ck.memory_replicas,
            "memory_load_s": _round(ck.memory_load_s) if ck.memory_replicas else None},
        "gpu_power_w": run.gpu_power_w, "host_power_w_per_gpu": run.host_power_w,
        "costs_assumed": run.costs_assumed, "notes": list(plan.notes),
    }


def _naive_block(ev: Evaluation, run: RunSummary | None) -> dict[str, Any]:
    days = estimate_6nd_days(ev.scenario)
    block: dict[str, Any] = {"days_at_assumed_mfu": _round(days), "assumed_mfu": ASSUMED_MFU}
    if days is not None and run is not None:
        gpu_hours = days * 24 * ev.scenario.cluster.num_gpus
        from sim.analysis.runlevel import energy_mwh

        energy = energy_mwh(run.costs, run.gpu_power_w, run.host_power_w, gpu_hours)
        block.update({"gpu_hours": _round(gpu_hours), "cost_usd": _round(gpu_hours * run.costs.usd_per_gpu_hour),
                      "energy_mwh": _round(energy), "co2_tonnes": _round(energy * run.costs.grid_kgco2_per_kwh)})
    return block


def result_dict(ev: Evaluation, run: RunSummary | None = None) -> dict[str, Any]:
    """The JSON object of spec/result.md (plus extra fields, never renamed)."""
    s, step = ev.scenario, ev.step
    step_block: dict[str, Any] = {
        "step_time_s": None, "tokens_per_step": s.tokens_per_step, "tokens_per_s_per_gpu": None,
        "model_tflops_per_gpu": None, "mfu": None, "hfu": None, "bubble_fraction": None,
        "exposed_comm_fraction": None, "breakdown_s": None, "num_microbatches": s.num_microbatches,
        "bottleneck_stage": None,
    }
    if step is not None:
        step_block.update({
            "step_time_s": _round(step.step_time_s),
            "tokens_per_s_per_gpu": _round(step.tokens_per_s_per_gpu),
            "model_tflops_per_gpu": _round(step.model_tflops_per_gpu),
            "mfu": _round(step.mfu), "hfu": _round(step.hfu),
            "bubble_fraction": _round(step.bubble_fraction),
            "exposed_comm_fraction": _round(step.exposed_comm_fraction),
            "breakdown_s": {k: _round(v) for k, v in step.breakdown_s.items()},
            "bottleneck_stage": step.bottleneck_stage,
        })
    return {
        "scenario": s.name,
        "trainsim_version": __version__,
        "step": step_block,
        "memory": {
            "fits": ev.fits,
            "peak_gib_per_gpu": _round(ev.memory.total / GIB, 4),
            "capacity_gib_per_gpu": s.gpu.memory_gib,
            "breakdown_gib": {k: _round(v, 4) for k, v in ev.memory.gib().items()},
            "peak_stage": ev.memory.stage,
        },
        "run": None if run is None else run_block(run, step.mfu if step is not None else None),
        "estimate_6nd": _naive_block(ev, run),
        "model": {"params": flops.total_params(s.model), "active_params": flops.active_params(s.model),
                  "model_flops_per_token": flops.model_flops_per_token(s.model)},
    }


def _params_text(s: Scenario) -> str:
    total = f"{flops.total_params(s.model) / 1e9:.1f}B params"
    if s.model.moe is None:
        return total
    return f"{total}, {flops.active_params(s.model) / 1e9:.1f}B active"


def summary_text(ev: Evaluation, run: RunSummary | None = None) -> str:
    """A readable summary of one evaluation (and of its run, when simulated)."""
    s, step, mem = ev.scenario, ev.step, ev.memory
    p = s.parallelism
    lines = [
        f"{s.name}: {s.model.preset or 'model'} ({_params_text(s)}) on "
        f"{s.cluster.num_gpus:,} x {s.gpu.name}",
        f"layout  TP{p.tensor} PP{p.pipeline}{f'x{p.virtual_pipeline}' if p.virtual_pipeline > 1 else ''} "
        f"CP{p.context} DP{p.data}  ZeRO-{p.zero_stage}  {p.schedule.value}  micro-batch {p.micro_batch_size} "
        f"x {s.num_microbatches}  recompute {p.activation_recompute.value}  SP {p.sequence_parallel}",
        "",
        f"memory  {mem.total / GIB:.1f} / {s.gpu.memory_gib:.0f} GiB per GPU (stage {mem.stage}) "
        f"{'fits' if ev.fits else 'OUT OF MEMORY'}",
        "        " + "  ".join(f"{k} {v:.1f}" for k, v in mem.gib().items()),
        "",
        *_placement_lines(s),
    ]
    if step is None:
        lines.append("\nstep    not simulated: the layout does not fit in memory")
        return "\n".join(lines)
    t = step.step_time_s
    lines += [
        "",
        f"step    {t:.3f} s   MFU {step.mfu:.1%}   HFU {step.hfu:.1%}   "
        f"{step.tokens_per_s_per_gpu:,.0f} tokens/s/GPU   {step.model_tflops_per_gpu:.0f} TFLOP/s/GPU",
        f"where the step went (bottleneck pipeline stage {step.bottleneck_stage}: the busiest compute):",
    ]
    for key, value in step.breakdown_s.items():
        if value > 0:
            lines.append(f"  {key:<11} {value:9.3f} s  {value / t:6.1%}")
    if run is not None:
        lines += ["", *_run_lines(ev, run)]
    return "\n".join(lines)


def _placement_lines(s: Scenario) -> list[str]:
    """Which fabric levels each kind of group crosses (``trainsim placement`` has the full table)."""
    groups = [g for g in crossings(s.cluster.topology, s.gpu, s.parallelism) if g.size > 1]
    lines = [f"network placement {s.parallelism.placement_order} (innermost first) on {s.cluster.topology.name}:"]
    for g in groups:
        bw = g.path.p2p_bw if g.kind == "pp" else g.path.busbw
        where = f"crosses {', '.join(g.crosses)}" if g.crosses else "stays in its scale-up domain"
        lines.append(f"        {g.kind.upper():<3} x{g.size:<5} {where}  ({bw / 1e9:.0f} GB/s "
                     f"{'point-to-point' if g.kind == 'pp' else 'bus bandwidth'})")
    return lines


def _run_lines(ev: Evaluation, run: RunSummary) -> list[str]:
    from sim.analysis.runlevel import LOSS_LABELS

    s, plan = ev.scenario, run.plan
    naive = _naive_block(ev, run)
    lines = [f"run     {s.training.tokens:.3g} tokens = {plan.steps:,} steps; {len(run.replicas)} Monte Carlo "
             f"replicas (seed {s.simulation.seed})"]
    ck = plan.checkpoint
    if ck is not None:
        interval = plan.params.interval_s
        every = f"every {interval / 60:.1f} min ({plan.interval_rule})" if interval != float("inf") else "never"
        lines.append(f"        checkpoint {ck.size_bytes / 1e12:.2f} TB {every}: stall {plan.params.stall_s:.2f} s, "
                     f"persist {plan.params.persist_s:.1f} s, load {ck.load_s:.1f} s")
        if ck.memory_replicas:
            lines.append(f"        in memory: each snapshot on {ck.memory_replicas} nodes, reload from a peer "
                         f"{ck.memory_load_s:.2f} s; {run.recoveries_from_memory:.0f} recoveries from memory, "
                         f"{run.storage_fallbacks:.1f} from storage (every holder of a shard lost)")
    if plan.params.standby_nodes:
        lines.append(f"        warm standby: {plan.params.standby_nodes} node(s) ({run.standby_gpus} GPUs, paid and "
                     f"powered), switch-over {plan.params.standby_switch_s:g} s; {run.standby_switch_overs:.1f} "
                     "switch-overs per run")
    if not run.failures_modelled:
        lines.append("        no failures modelled (no failures block): the run is failure-free; add "
                     "`failures: {model: llama3}` for interruptions")
    elif plan.mtbi_s != float("inf"):
        simulated = run.mtbi_hours_simulated
        lines.append(f"        one interruption every {plan.mtbi_s / 3600:.2f} h expected"
                     + (f", {simulated:.2f} h simulated" if simulated is not None else ""))
    at_least = "\u2265 " if run.days_are_lower_bounds else ""
    rows = [("days", f"{at_least}{run.days_p50:.1f} P50 / {at_least}{run.days_p90:.1f} P90",
             f"{naive['days_at_assumed_mfu']:.1f}"),
            ("goodput (ETTR)", f"{run.goodput:.1%}", "100% (assumed)"),
            ("interruptions", f"{run.interruptions_mean:.0f}", "0"),
            ("GPU-hours", f"{at_least}{run.gpu_hours / 1e6:.2f} M", f"{naive['gpu_hours'] / 1e6:.2f} M"),
            ("cost", f"{at_least}${run.cost_usd / 1e6:.1f} M", f"${naive['cost_usd'] / 1e6:.1f} M"),
            ("energy", f"{at_least}{run.energy_mwh:,.0f} MWh", f"{naive['energy_mwh']:,.0f} MWh"),
            ("CO2", f"{at_least}{run.co2_tonnes:,.0f} tCO2e", f"{naive['co2_tonnes']:,.0f} tCO2e")]
    lines.append(f"        {'':<16} {'simulated':>20} {f'6ND at {ASSUMED_MFU:.0%} MFU':>18}")
    lines += [f"        {name:<16} {sim:>20} {est:>18}" for name, sim, est in rows]
    lines.append(f"        failure-free steps alone: {run.failure_free_days:.1f} days")
    if ev.step is not None and run.training_pace < 1:
        lines.append(f"        effective MFU {ev.step.mfu * run.training_pace:.1%} while training (step "
                     f"{ev.step.mfu:.1%} x pace {run.training_pace:.1%}: stragglers, shrunk replicas, fail-slow "
                     "episodes)")
    losses = run.loss_days()
    lost = sum(losses.values())
    if lost > 0:
        lines.append(f"        time lost: {lost:.1f} days; by cause:")
        for key, days in sorted(losses.items(), key=lambda kv: -kv[1]):
            if days > 0:
                lines.append(f"          {days:7.2f} d  {days / lost:6.1%}  {LOSS_LABELS[key]}")
        dominant = run.dominant_loss
        assert dominant is not None
        lines.append(f"        dominated by {LOSS_LABELS[dominant]}")
    cats = run.interruptions_by_category()
    if cats:
        lines.append("        interruptions by cause: " + ", ".join(f"{k} {v:.0f}" for k, v in cats.items()))
    if run.nodes_down_max:
        spares = plan.params.spares
        lines.append(f"        fleet: on average {run.nodes_down_mean:.1f} nodes in repair, at most "
                     f"{run.nodes_down_max}; {run.suggested_spares} spares cover 95 % of the time "
                     f"(spares {'unlimited' if spares is None else spares}; waiting for nodes "
                     f"{run.spare_wait_days:.2f} d)")
    if run.unfinished:
        lines.append(f"        WARNING: {run.unfinished} of {len(run.replicas)} replica(s) did not finish within "
                     f"{plan.params.max_wall_factor:g}x the failure-free time (or hit the failure cap): days, "
                     "GPU-hours, cost and energy are lower bounds (\u2265)")
    if run.costs_assumed:
        lines.append(f"        no costs block: ${run.costs.usd_per_gpu_hour:g}/GPU-h, PUE {run.costs.pue:g}, "
                     f"{run.costs.grid_kgco2_per_kwh:g} kgCO2e/kWh assumed")
    lines += [f"        note: {n}" for n in plan.notes]
    return lines
