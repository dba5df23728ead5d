"""The MoE validation rows (sim/analysis/validation_moe.py): every row with a layout is mapped, the published
figures are converted with Megatron-Core's FLOP count, and Megatron layout strings are parsed."""

from __future__ import annotations

import pytest

from sim import catalog
from sim.analysis import validation, validation_moe
from sim.costs import flops
from sim.specs._schema import build
from sim.specs.model import ModelSpec


def test_every_row_with_a_layout_and_a_throughput_is_a_validation_row():
    raw = validation_moe.raw_rows()
    with_layout = [r["id"] for r in raw if all(r["parallel"][k] is not None for k in ("tp", "pp", "dp"))
                   and r["model"]["name"] in validation_moe.PRESETS]
    assert len(with_layout) == 15
    assert [r.id for r in validation_moe.rows() if r.source == "moe"] == with_layout
    assert {"moe", "mbridge-dense"} <= set(validation.source_names())


def test_rows_keep_their_sources():
    for r in validation_moe.raw_rows() + validation_moe.dense_raw_rows():
        assert r["source"]["title"] and r["source"]["url"]


def test_dense_megatron_fsdp_row():
    """Megatron-Bridge 25.11, Llama 3 8B on one DGX H100 with Megatron-FSDP (optim_grads_params = ZeRO-3) over all 8
    GPUs: 128 x 8,192 tokens at 14,451 tokens/s/GPU = 9.07 s a step; bf16 gradient reduction, fp8 current scaling."""
    (row,) = [r for r in validation_moe.rows() if r.source == "mbridge-dense"]
    assert row.id == "mbridge-25.11-llama3-8b-h100-8gpu-fsdp-fp8cs" and row.tag == "check"
    assert row.published_step_s == pytest.approx(128 * 8192 / (14451 * 8), rel=1e-3)
    par = row.mapping["parallelism"]
    assert (par["tensor"], par["data"], par["zero_stage"], par["micro_batch_size"]) == (1, 8, 3, 1)
    assert par["grad_reduce_dtype"] == "bf16" and "expert_tensor" not in par and "framework" not in par
    assert row.mapping["model"] == {"preset": "llama3-8b", "seq_len": 8192}
    assert row.mapping["training"]["fp8_recipe"] == "tensorwise"


def test_deepseek_v3_layout_string():
    layout = validation_moe.parse_pipeline_layout("Et|(tt|)*30L (32 virtual stages: embedding+1 layer | ...)")
    assert layout == [1] + [2] * 30 + [0]
    assert validation_moe.parse_pipeline_layout("Et*3|(tt|)*29m|L") == [3] + [2] * 29 + [0, 0]


def test_megatron_core_flops_halve_the_causal_scores_and_drop_the_router():
    data = {k: v for k, v in catalog.preset_table()["qwen3-235b-a22b"].items() if k not in ("name", "source", "note")}
    m = build(ModelSpec, data)
    ours = flops.model_flops_per_token(m)
    scores = 3 * 94 * 2.0 * 4096 * 64 * (128 + 128)
    router = 3 * 2 * 4096 * 128 * 94
    assert validation_moe.megatron_core_flops_per_token(m) == pytest.approx(ours - scores / 2 - router)
    # The ModelZoo row gives both figures: 245 TFLOP/s/GPU and 19.7 s per 2048 x 4096-token step on 256 GPUs.
    assert pytest.approx(validation_moe.megatron_core_flops_per_token(m),
                                                              rel=0.01) == 245e12 * 256 * 19.7 / (2048 * 4096)


def test_row_mapping_rules():
    by_id = {r.id: r for r in validation_moe.rows()}
    dsv3 = by_id["mcore-dsv3-gb200-256gpu-mxfp8-baseline"].mapping
    assert dsv3["model"]["mtp_layers"] == 0
    assert dsv3["training"] == {"global_batch_size": 2048, "attention": "flash", "precision": "fp8",
                                "fp8_recipe": "mxfp8", "cuda_graphs": [], "mxfp8_zeroed_scales": True}
    assert dsv3["parallelism"]["moe_router_fusion"] is False
    final = by_id["mcore-dsv3-gb200-256gpu-mxfp8-optimized"].mapping
    assert final["training"]["cuda_graphs"] == ["attn", "moe_router", "moe_preprocess"]
    assert "mxfp8_zeroed_scales" not in final["training"] and final["parallelism"]["moe_router_fusion"] is True
    assert by_id["modelzoo-qwen3-235b-h100-256gpu-bf16-ep32-pp8"].mapping["training"]["cuda_graphs"] == []
    assert dsv3["parallelism"]["pipeline_layout"] == [1] + [2] * 30 + [0]
    qwen = by_id["modelzoo-qwen3-235b-h100-256gpu-bf16-ep32-pp8"].mapping["parallelism"]
    assert qwen["account_for_embedding_in_pipeline_split"] and qwen["account_for_loss_in_pipeline_split"]
    assert qwen["moe_dispatcher"] == "deepep" and qwen["expert"] == 32
    drop = by_id["mbridge-25.09-qwen3-30b-a3b-h100-16gpu-tokendrop"].mapping
    assert drop["model"]["moe"]["capacity_factor"] == 1.0
    assert by_id["modelzoo-mixtral-8x22b-h100-128gpu-bf16-dropless"].mapping["model"]["moe"]["routing"] == "natural"
    assert by_id["modelzoo-mixtral-8x22b-h100-128gpu-bf16-forcebalance"].mapping["model"]["moe"]["routing"] == \
        "balanced"
    assert all(r.tag in ("fit", "check") for r in by_id.values())


def test_recompute_and_expert_tensor_rules():
    by_id = {r.id: r.mapping["parallelism"] for r in validation_moe.rows()}
    qwen = by_id["modelzoo-qwen3-235b-h100-256gpu-bf16-ep32-pp8"]  # "selective: norm, act"
    assert qwen["activation_recompute"] == "selective" and qwen["recompute_modules"] == ["layernorm", "moe_act"]
    assert by_id["modelzoo-qwen3-235b-h100-256gpu-bf16-seq16k"]["recompute_modules"] == ["layernorm", "moe"]
    assert by_id["mcore-dsv3-gb200-256gpu-mxfp8-baseline"]["recompute_modules"] == ["mlp", "mla_up_proj"]
    assert by_id["modelzoo-qwen3-235b-h100-256gpu-bf16-ep8-fsdp"]["activation_recompute"] == "full"
    assert by_id["modelzoo-qwen3-235b-h100-256gpu-bf16-tp4-pp8-ep8"]["activation_recompute"] == "none"
    unstated = by_id["mbridge-25.09-qwen3-30b-a3b-h100-16gpu-tokendrop"]  # chosen; its selective rung's modules
    assert "activation_recompute" not in unstated and unstated["recompute_modules"] == ["layernorm", "moe_act"]
    assert by_id["mbridge-25.09-qwen3-235b-a22b-h100-256gpu-tokendrop"]["expert_tensor"] == 1  # etp not stated
    assert by_id["modelzoo-qwen3-235b-h100-256gpu-bf16-ep8-fsdp"]["zero_stage"] == 3


def test_gb200_rows_keep_each_ep_group_inside_one_nvlink_domain():
    by_id = {r.id: r.mapping for r in validation_moe.rows()}
    cluster = by_id["mcore-dsv3-gb200-256gpu-mxfp8-baseline"]["cluster"]
    assert cluster["topology"]["node"]["scale_up"]["domain_gpus"] == 64
    assert cluster["topology"]["node"]["scale_up"]["domain_gpus"] % by_id[
        "mcore-dsv3-gb200-256gpu-mxfp8-baseline"]["parallelism"]["expert"] == 0


def test_moe_check_rows_accuracy():
    """Check rows (no constant set from them): MAPE <= 15 % and every row within 30 % (issue 10's target; measured
    12.0 %, the worst row the GB200 final software state at -25.0 %). The fit row (the natural-routing Mixtral
    row the imbalance was fitted on) is held to 30 % as well."""
    outcomes = [validation.simulate_row(r) for r in validation_moe.rows() if r.source == "moe"]
    check = [o for o in outcomes if o.row.tag == "check"]
    errors = {o.row.id: o.error for o in check}
    assert all(e is not None for e in errors.values())
    assert sum(abs(e) for e in errors.values()) / len(errors) <= 0.15
    assert {k: e for k, e in errors.items() if abs(e) > 0.30} == {}
    fit = [o for o in outcomes if o.row.tag == "fit"]
    assert [o.row.id for o in fit] == list(validation_moe.FIT_ROWS) and abs(fit[0].error) <= 0.30


def test_gb200_software_state_moves_the_step_the_way_the_report_measured():
    """The GB200 report's baseline and final rows share one layout; the software state alone (eager, unfused
    router, zero-filled MXFP8 scales, NCCL all-to-all, up-projection recompute vs partial CUDA graphs, fused
    router, HybridEP) makes the baseline 1.96x slower. The simulated ratio is 2.18 (13.80 / 6.33 s)."""
    by_id = {r.id: r for r in validation_moe.rows()}
    base = validation.simulate_row(by_id["mcore-dsv3-gb200-256gpu-mxfp8-baseline"]).simulated_step_s
    final = validation.simulate_row(by_id["mcore-dsv3-gb200-256gpu-mxfp8-optimized"]).simulated_step_s
    assert 1.5 < base / final < 2.5
