"""The ``--json`` result contract (spec/result.md) and the readable summary."""

from __future__ import annotations

from typing import Any

from sim import __version__
from sim.analysis.estimate import ASSUMED_MFU, estimate_6nd_days
from sim.analysis.evaluate import Evaluation
from sim.costs import flops
from sim.units import GIB


def _round(x: float | None, digits: int = 6) -> float | None:
    return None if x is None else float(f"{x:.{digits}g}")


def result_dict(ev: Evaluation) -> dict[str, Any]:
    """The JSON object of spec/result.md (plus extra fields, never renamed)."""
    s, step = ev.scenario, ev.step
    step_block: dict[str, Any] = {
        "step_time_s": None, "tokens_per_step": s.tokens_per_step, "tokens_per_s_per_gpu": None,
        "model_tflops_per_gpu": None, "mfu": None, "hfu": None, "bubble_fraction": None,
        "exposed_comm_fraction": None, "breakdown_s": None, "num_microbatches": s.num_microbatches,
    }
    if step is not None:
        t = step.step_time_s
        step_block.update({
            "step_time_s": _round(t),
            "tokens_per_s_per_gpu": _round(s.tokens_per_step / t / s.cluster.num_gpus),
            "model_tflops_per_gpu": _round(step.model_flops_per_step / t / s.cluster.num_gpus / 1e12),
            "mfu": _round(step.mfu), "hfu": _round(step.hfu),
            "bubble_fraction": _round(step.bubble_fraction),
            "exposed_comm_fraction": _round(step.exposed_comm_fraction),
            "breakdown_s": {k: _round(v) for k, v in step.breakdown_s.items()},
        })
    days = estimate_6nd_days(s)
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
        "run": None,
        "estimate_6nd": {"days_at_assumed_mfu": _round(days), "assumed_mfu": ASSUMED_MFU},
        "model": {"params": flops.total_params(s.model),
                  "model_flops_per_token": flops.model_flops_per_token(s.model)},
    }


def summary_text(ev: Evaluation) -> str:
    """A readable summary of one evaluation."""
    s, step, mem = ev.scenario, ev.step, ev.memory
    p = s.parallelism
    lines = [
        f"{s.name}: {s.model.preset or 'model'} ({flops.total_params(s.model) / 1e9:.1f}B params) on "
        f"{s.cluster.num_gpus:,} x {s.gpu.name}",
        f"layout  TP{p.tensor} PP{p.pipeline}{f'x{p.virtual_pipeline}' if p.virtual_pipeline > 1 else ''} "
        f"CP{p.context} DP{p.data}  ZeRO-{p.zero_stage}  {p.schedule.value}  micro-batch {p.micro_batch_size} "
        f"x {s.num_microbatches}  recompute {p.activation_recompute.value}  SP {p.sequence_parallel}",
        "",
        f"memory  {mem.total / GIB:.1f} / {s.gpu.memory_gib:.0f} GiB per GPU (stage {mem.stage}) "
        f"{'fits' if ev.fits else 'OUT OF MEMORY'}",
        "        " + "  ".join(f"{k} {v:.1f}" for k, v in mem.gib().items()),
    ]
    if step is None:
        lines.append("\nstep    not simulated: the layout does not fit in memory")
        return "\n".join(lines)
    t = step.step_time_s
    lines += [
        "",
        f"step    {t:.3f} s   MFU {step.mfu:.1%}   HFU {step.hfu:.1%}   "
        f"{s.tokens_per_step / t / s.cluster.num_gpus:,.0f} tokens/s/GPU   "
        f"{step.model_flops_per_step / t / s.cluster.num_gpus / 1e12:.0f} TFLOP/s/GPU",
        "where the step went (critical pipeline stage):",
    ]
    for key, value in step.breakdown_s.items():
        if value > 0:
            lines.append(f"  {key:<11} {value:9.3f} s  {value / t:6.1%}")
    days = estimate_6nd_days(s)
    if days is not None:
        sim_days = s.training.tokens / s.tokens_per_step * t / 86400
        lines += ["", f"training {s.training.tokens:.3g} tokens: {sim_days:.1f} days of steps (no failures); "
                  f"6ND at {ASSUMED_MFU:.0%} MFU says {days:.1f} days"]
    return "\n".join(lines)
