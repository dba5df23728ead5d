"""Validation against published training runs (``trainsim validate``).

The rows ship inside the package (``catalog/validation``: published_runs.yaml with each row's
source, and the vTrain measured A100 iteration times under their MIT licence). Each published figure
is converted to a step time with the *source's own* FLOP convention, then compared with the simulated
step time. Where a row leaves a layout choice open, the rules below make it, the same for every row:

- micro-batch size unknown: 1 with pipeline parallelism (Megatron's practice: fewer bubbles), else
  the largest of 8, 4, 2, 1 that divides the per-replica batch and fits in memory;
- recompute unknown: none if it fits, else selective, else full;
- sequence parallelism unknown: on for Megatron-Core with TP > 1;
- attention kernel: unfused before FlashAttention (Megatron 2021-2022, Megatron-DeepSpeed), fused
  (flash/cuDNN) for Megatron-Core 2024; dropout on for the Megatron GPT family (its default 0.1).
"""

from __future__ import annotations

import math
import statistics
from collections import defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, Literal

from sim import catalog
from sim.analysis.evaluate import evaluate, fits_in_memory
from sim.costs.flops import narayanan_flops_per_iteration
from sim.errors import TrainsimError
from sim.specs.scenario import Scenario, scenario_from_mapping

#: Sources whose rows calibrate the model (the acceptance set); the rest are held out. The ZeRO-3 rows of
#: Narayanan et al. 2021 set DeepSpeed 0.3's per-rank collective cost (catalog/frameworks.yaml).
CALIBRATION_SOURCES = ("narayanan2021", "narayanan2021-zero3", "korthikanti2022", "mcore-h100", "vtrain")

#: ``fit``: a constant was set from the row (benchmarks/calibrate.py, or a catalog entry whose source names
#: it), so matching it shows consistency; ``check``: no constant was, so matching it is evidence of accuracy.
Tag = Literal["fit", "check"]
TAGS: tuple[Tag, ...] = ("fit", "check")


@dataclass(frozen=True)
class Row:
    """One published measurement and the scenario that reproduces it. Every registration states its ``tag``."""

    id: str
    source: str
    mapping: dict[str, Any]
    published_step_s: float
    how: str
    choices: tuple[str, ...] = ()
    tag: Tag = field(kw_only=True)

    def __post_init__(self) -> None:
        if self.tag not in TAGS:
            raise ValueError(f"validation row {self.id}: tag {self.tag!r} is not one of {', '.join(TAGS)}")


@dataclass(frozen=True)
class Outcome:
    row: Row
    simulated_step_s: float | None
    note: str = ""
    scenario: Scenario | None = field(default=None, repr=False)
    """The scenario simulated (open choices filled), for the coverage catalog."""

    @property
    def error(self) -> float | None:
        if self.simulated_step_s is None:
            return None
        return (self.simulated_step_s - self.row.published_step_s) / self.row.published_step_s


def _source_of(row_id: str) -> str:
    if row_id.startswith("narayanan2021-t2-zero3"):
        return "narayanan2021-zero3"
    if row_id.startswith("narayanan2021-f12"):
        return "narayanan2021-fig12"  # interleaved vs non-interleaved, no constant set from it
    for prefix, source in (("narayanan2021", "narayanan2021"), ("korthikanti2022", "korthikanti2022"),
                           ("mcore-r0.8-h100", "mcore-h100"), ("megatron-readme", "megatron-readme-2021"),
                           ("bloom", "bloom"), ("mtnlg", "mtnlg"), ("llama1", "llama1"), ("opt", "opt")):
        if row_id.startswith(prefix):
            return source
    return row_id


def _gpu(text: str) -> tuple[str, str]:
    if "H100" in text:
        return "H100-SXM-80GB", "dgx-h100-superpod"
    return "A100-SXM-80GB", "dgx-a100-superpod"


#: Megatron's GPT vocabulary (GPT-2's 50,257 padded), used where a row does not state one.
DEFAULT_VOCAB = 51200


def _model(m: dict[str, Any], megatron_gpt: bool) -> dict[str, Any]:
    h = m["hidden_size"]
    return {
        "num_layers": m["num_layers"], "hidden_size": h, "ffn_hidden_size": m["ffn_hidden_size"] or 4 * h,
        "num_attention_heads": m["num_attention_heads"],
        "num_kv_heads": m["num_kv_heads"] or m["num_attention_heads"],
        "vocab_size": m["vocab_size"] or DEFAULT_VOCAB, "seq_len": m["seq_len"], "activation": "gelu",
        "tied_embeddings": True, "dropout": megatron_gpt,
    }


def _zero(text: str | None) -> int:
    text = (text or "none").lower()
    if "zero-3" in text or "fsdp" in text:
        return 3
    if "zero-1" in text or "distributed optimizer" in text:
        return 1
    return 0


def _recompute(text: str | None) -> str | None:
    if text is None:
        return None
    text = text.lower()
    return "full" if text.startswith("full") else "selective" if text.startswith("selective") else "none"


def _published_step(r: dict[str, Any]) -> tuple[float, str] | None:
    res, par, m = r["result"], r["parallel"], r["model"]
    gpus = r["hardware"]["num_gpus"]
    if res.get("iteration_time_s"):
        return float(res["iteration_time_s"]), "iteration time as published"
    if not res.get("tflops_per_gpu"):
        return None
    rate = res["tflops_per_gpu"] * 1e12 * gpus
    if r["id"].startswith("mcore"):
        # Megatron-Core's num_floating_point_operations: 3 x forward, attention counted in full and
        # LM head included = trainsim's model-FLOP convention.
        from sim.costs.flops import model_flops_per_token
        from sim.specs.model import ModelSpec

        spec = ModelSpec(**{k: v for k, v in _model(m, False).items()})
        flops = model_flops_per_token(spec) * par["global_batch_size"] * m["seq_len"]
        return flops / rate, "Megatron-Core model FLOPs / published TFLOP/s"
    flops = narayanan_flops_per_iteration(par["global_batch_size"], m["seq_len"], m["num_layers"],
                                          m["hidden_size"], m["vocab_size"] or DEFAULT_VOCAB)
    return flops / rate, "Narayanan eq. 3 FLOPs (with recompute) / published TFLOP/s"


#: Layouts the source leaves out, assumed as stated (the row is simulated with them; the note says why).
ASSUMED_LAYOUTS: dict[str, dict[str, Any]] = {
    # OPT-175B (Zhang et al. 2022 §2.3: FSDP + Megatron TP 8 on 992 A100 80GB, no pipeline parallelism;
    # 2M-token batches): DP = 992 / 8 = 124; 2M tokens of 2,048 is 1,024 sequences, not a multiple of 124,
    # so 992 (8 per replica, 2.03M tokens) is assumed; metaseq trained with activation checkpointing.
    "opt-175b-992gpu": {"pp": 1, "dp": 124, "global_batch_size": 992, "activation_recompute": "full",
                        "sequence_parallel": False},
}


def published_rows() -> list[Row]:
    """Rows of published_runs.yaml that have a layout (or an assumed one) and a measured throughput."""
    rows = []
    for r in catalog.read_yaml("validation/published_runs.yaml"):
        par, hw = {**r["parallel"], **ASSUMED_LAYOUTS.get(r["id"], {})}, r["hardware"]
        if any(par[k] is None for k in ("tp", "pp", "dp", "global_batch_size")):
            continue  # no layout to simulate (LLaMA-1, OPT)
        step = _published_step({**r, "parallel": par})
        if step is None:
            continue
        mcore = r["id"].startswith("mcore")
        gpu, topo = _gpu(hw["gpu_type"])
        vpp = par["vpp"] or 1
        layout = {
            "tensor": par["tp"], "pipeline": par["pp"], "context": par["cp"] or 1, "data": par["dp"],
            "zero_stage": _zero(par["fsdp_zero"]),
            "sequence_parallel": bool(par["sequence_parallel"]) if par["sequence_parallel"] is not None
            else (mcore and par["tp"] > 1),
            "virtual_pipeline": vpp, "schedule": "interleaved-1f1b" if vpp > 1 else "1f1b",
            "tp_comm_overlap": mcore,
            # Megatron before 2023 reduced gradients after the backward pass, not overlapped.
            "overlap_grad_reduce": mcore,
            # BLOOM's partition counts the tied embedding as a layer on the first and last stage.
            "account_for_embedding_in_pipeline_split": r["id"].startswith("bloom"),
            "account_for_loss_in_pipeline_split": r["id"].startswith("bloom"),
        }
        if r["id"].startswith("opt"):
            # metaseq's FSDP (FairScale: flat parameters, gathered into one buffer; fp16 reduce-scatter,
            # fp32_reduce_scatter off by default), resharded after forward: Megatron-FSDP's semantics.
            layout |= {"grad_reduce_dtype": "bf16", "overlap_grad_reduce": True}
        if "deepspeed" in (par["framework"] or "").lower() and layout["zero_stage"] == 3:
            # DeepSpeed ZeRO-3 reduces gradients in the model's 16-bit dtype (communication_data_type
            # defaults to it: deepspeed/runtime/engine.py communication_data_type). Narayanan et al. (arXiv
            # 2104.04473, April 2021) ran the ZeRO-3 of DeepSpeed 0.3.x (released March 2021 with 0.3.13; its
            # blocking per-tensor gathers were reworked from June 2021, DeepSpeed PR 1188).
            layout |= {"framework": "deepspeed", "grad_reduce_dtype": "bf16"}
            if r["id"].startswith("narayanan2021"):
                layout["framework_version"] = "0.3"
        if par["micro_batch_size"]:
            layout["micro_batch_size"] = par["micro_batch_size"]
        if _recompute(par["activation_recompute"]):
            layout["activation_recompute"] = _recompute(par["activation_recompute"])
        mapping = {
            "name": r["id"], "model": _model(r["model"], megatron_gpt=True),
            "cluster": {"gpu": gpu, "num_gpus": hw["num_gpus"], "topology": topo},
            "parallelism": layout,
            "training": {"global_batch_size": par["global_batch_size"], "precision": "bf16",
                         "attention": "flash" if mcore else "unfused"},
        }
        source = _source_of(r["id"])
        rows.append(Row(r["id"], source, mapping, step[0], step[1],
                        tag="fit" if source in CALIBRATION_SOURCES else "check"))
    return rows


def _vtrain_topology() -> dict[str, Any]:
    """DGX A100 nodes as vTrain's validation configs describe them: 4 x 200 Gb/s HDR per node."""
    topo = catalog.topology_mapping("dgx-a100-superpod")
    topo["node"]["nics"] = 4
    topo["name"] = "vtrain-dgx-a100-4xhdr"
    return topo


def vtrain_rows(limit: int | None = None) -> list[Row]:
    """vTrain's measured iteration times (single node and 64-GPU rows)."""
    rows, topo = [], _vtrain_topology()
    for fname in ("ground_truth_single.csv", "ground_truth_multi_64gpu.csv"):
        for i, rec in enumerate(catalog.read_csv(f"validation/vtrain/{fname}")):
            h, heads, layers = int(rec["hidden size"]), int(rec["attention heads"]), int(rec["# layers"])
            mapping = {
                "name": f"vtrain-{fname.split('_')[2].split('.')[0]}-{i}",
                "model": {"num_layers": layers, "hidden_size": h, "ffn_hidden_size": 4 * h,
                          "num_attention_heads": heads, "num_kv_heads": heads, "vocab_size": 51200,
                          "seq_len": int(rec["sequence length"]), "activation": "gelu",
                          "tied_embeddings": True, "dropout": True},
                "cluster": {"gpu": "A100-SXM-80GB", "num_gpus": int(rec["# GPUs"]), "topology": topo},
                "parallelism": {"tensor": int(rec["tensor parallelism"]),
                                "pipeline": int(rec["pipeline parallelism"]),
                                "data": int(rec["data parallelism"]), "zero_stage": 0,
                                "sequence_parallel": False, "micro_batch_size": int(rec["micro batch"]),
                                "activation_recompute": "full", "overlap_grad_reduce": False},
                "training": {"global_batch_size": int(rec["global batch"]), "precision": "bf16",
                             "attention": "unfused"},
            }
            rows.append(Row(str(mapping["name"]), "vtrain", mapping,
                            float(rec["iteration time (ms)"]) / 1e3, "iteration time as published", tag="fit"))
    return rows[:limit] if limit else rows


def _fill_open_choices(row: Row) -> tuple[Scenario, tuple[str, ...]]:
    """Apply the module's rules for choices a row leaves open; returns the scenario and the choices."""
    base = row.mapping
    layout = base["parallelism"]
    mb_options = [layout["micro_batch_size"]] if "micro_batch_size" in layout else (
        [1] if layout["pipeline"] > 1 else [8, 4, 2, 1])
    rc_options = [layout["activation_recompute"]] if "activation_recompute" in layout else \
        ["none", "selective", "full"]
    per_replica = base["training"]["global_batch_size"] // layout["data"]
    fallback = None
    for mb in mb_options:
        if per_replica % mb:
            continue
        for rc in rc_options:
            par = {**layout, "micro_batch_size": mb, "activation_recompute": rc}
            if rc != "selective":
                par.pop("recompute_modules", None)  # a row's selective modules (validation_moe) need selective
            mapping = {**base, "parallelism": par}
            s = scenario_from_mapping(mapping)
            fallback = fallback or s
            if fits_in_memory(s):
                choices = tuple(c for c, open_ in ((f"micro_batch_size={mb}", len(mb_options) > 1),
                                                   (f"recompute={rc}", len(rc_options) > 1)) if open_)
                return s, choices
    assert fallback is not None
    return fallback, ("nothing fits: simulated anyway",)


def simulate_row(row: Row) -> Outcome:
    try:
        scenario, choices = _fill_open_choices(row)
        ev = evaluate(scenario, ignore_memory=True)
    except TrainsimError as err:
        return Outcome(row, None, f"not simulated: {err}")
    assert ev.step is not None
    return Outcome(row, ev.step.step_time_s, ", ".join(choices), scenario)


@dataclass(frozen=True)
class Report:
    outcomes: list[Outcome]

    def by_source(self) -> dict[str, list[Outcome]]:
        groups: dict[str, list[Outcome]] = defaultdict(list)
        for o in self.outcomes:
            groups[o.row.source].append(o)
        return dict(groups)


def error_stats(outcomes: Iterable[Outcome]) -> dict[str, float]:
    """MAPE, median and max absolute error, and the signed mean, over simulated rows."""
    errs = [o.error for o in outcomes if o.error is not None]
    if not errs:
        return {"n": 0, "mape": math.nan, "median": math.nan, "max": math.nan, "bias": math.nan}
    absolute = [abs(e) for e in errs]
    return {"n": len(errs), "mape": statistics.fmean(absolute), "median": statistics.median(absolute),
            "max": max(absolute), "bias": statistics.fmean(errs)}


#: Modules that contribute rows of further sources, each through ``rows() -> list[Row]``.
ROW_MODULES = ("sim.analysis.validation_torchtitan", "sim.analysis.validation_moe")


def module_rows() -> list[Row]:
    """The rows of every module in ROW_MODULES (imported here: they import this module)."""
    import importlib

    return [row for name in ROW_MODULES for row in importlib.import_module(name).rows()]


def source_names() -> list[str]:
    """The sources ``run_validation(sources=...)`` knows (vTrain's rows are the source ``vtrain``)."""
    return sorted({r.source for r in published_rows() + module_rows()} | {"vtrain"})


def run_validation(sources: list[str] | None = None, progress: Callable[[int, int], None] | None = None,
                   vtrain_limit: int | None = None) -> Report:
    """Simulate every published row (optionally only ``sources``); ``progress(done, total)``."""
    rows = published_rows() + vtrain_rows(vtrain_limit) + module_rows()
    if sources:
        rows = [r for r in rows if r.source in sources]
    outcomes = []
    for i, row in enumerate(rows):
        outcomes.append(simulate_row(row))
        if progress is not None:
            progress(i + 1, len(rows))
    return Report(outcomes)


def format_report(report: Report, verbose: bool = False) -> str:
    """Per-row (non-vTrain, or all with ``verbose``) and per-source error tables, each row and source with
    its tag: ``fit`` rows set a constant (matching them is consistency), ``check`` rows did not (accuracy)."""
    lines = [f"{'row':<42} {'tag':<5} {'published s':>11} {'simulated s':>11} {'error':>7}  choices"]
    for o in report.outcomes:
        if o.row.source == "vtrain" and not verbose:
            continue
        sim = f"{o.simulated_step_s:11.3f}" if o.simulated_step_s is not None else f"{'-':>11}"
        err = f"{o.error:+7.1%}" if o.error is not None else f"{'-':>7}"
        lines.append(f"{o.row.id:<42} {o.row.tag:<5} {o.row.published_step_s:11.3f} {sim} {err}  {o.note}")
    lines += ["", f"{'source':<22} {'tag':<9} {'rows':>5} {'MAPE':>7} {'median':>7} {'max':>7} {'bias':>7}"]
    for source, outs in report.by_source().items():
        tags = "+".join(t for t in TAGS if any(o.row.tag == t for o in outs))
        lines.append(_stats_line(source, tags, outs))
    for tag in TAGS:
        outs = [o for o in report.outcomes if o.row.tag == tag]
        if outs:
            what = "consistency: constants set from these" if tag == "fit" else "accuracy: no constant set from these"
            lines.append(_stats_line(f"ALL {tag}", "", outs) + f"  ({what})")
    return "\n".join(lines)


def _stats_line(name: str, tag: str, outcomes: list[Outcome]) -> str:
    st = error_stats(outcomes)
    return (f"{name:<22} {tag:<9} {st['n']:>5} {st['mape']:7.1%} {st['median']:7.1%} {st['max']:7.1%} "
            f"{st['bias']:+7.1%}")
