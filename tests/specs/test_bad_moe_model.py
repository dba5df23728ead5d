"""Invalid MoE-era model and pipeline fields (issue 10): exit status 2, the field path named.

Mutations of the valid base scenario of ``conftest.BASE`` (Llama 3 8B, 32 layers, on 16 H100, TP2 PP2 DP4).
"""

from __future__ import annotations

from typing import Any

import pytest

from tests.specs.test_bad_scenarios import Mutation, _all, _assert_rejected, _set

_MLA = {"q_lora_rank": 1536, "kv_lora_rank": 512, "qk_nope_head_dim": 128, "qk_rope_head_dim": 64,
        "v_head_dim": 128}
_MOE: dict[str, Any] = {"num_experts": 8, "top_k": 2, "expert_ffn_hidden_size": 1024}

CASES: list[tuple[str, Mutation, str, tuple[str, ...]]] = [
    ("mla-ranks-missing", _set("model.attention", "mla"), "model.mla", ("required with attention: mla",)),
    ("mla-kv-rank-missing",
     _all(_set("model.attention", "mla"), _set("model.mla", {k: v for k, v in _MLA.items() if k != "kv_lora_rank"})),
     "model.mla.kv_lora_rank", ("required field is missing",)),
    ("mla-without-attention-mla", _set("model.mla", _MLA), "model.mla", ("attention is gqa",)),
    ("attention-unknown", _set("model.attention", "mqa"), "model.attention", ("gqa, mla",)),
    ("head-dim-zero", _set("model.head_dim", 0), "model.head_dim", (">= 1",)),
    ("hidden-not-divisible-without-head-dim", _set("model.hidden_size", 4100), "model.hidden_size",
     ("num_attention_heads (32)", "head_dim")),
    ("mtp-layers-negative", _set("model.mtp_layers", -1), "model.mtp_layers", (">= 0",)),
    ("capacity-factor-zero", _set("model.moe", {**_MOE, "capacity_factor": 0}), "model.moe.capacity_factor",
     ("> 0",)),
    ("routing-unknown", _set("model.moe", {**_MOE, "routing": "random"}), "model.moe.routing",
     ("balanced, natural",)),
    ("first-dense-layers-all", _set("model.moe", {**_MOE, "first_dense_layers": 32}),
     "model.moe.first_dense_layers", ("no MoE layer", "32")),
    ("shared-expert-width-zero", _set("model.moe", {**_MOE, "shared_experts": 1, "shared_expert_ffn_hidden_size": 0}),
     "model.moe.shared_expert_ffn_hidden_size", (">= 1",)),
    ("pipeline-layout-wrong-sum", _set("parallelism.pipeline_layout", [16, 15]), "parallelism.pipeline_layout",
     ("sums to 31", "num_layers (32)")),
    ("pipeline-layout-wrong-length", _set("parallelism.pipeline_layout", [10, 11, 11]),
     "parallelism.pipeline_layout", ("3 entries", "= 2")),
    ("pipeline-layout-negative", _set("parallelism.pipeline_layout", [33, -1]), "parallelism.pipeline_layout",
     (">= 0",)),
    ("pipeline-layout-with-first-stage",
     _all(_set("parallelism.pipeline_layout", [16, 16]), _set("parallelism.first_stage_layers", 16)),
     "parallelism.pipeline_layout", ("first/last_stage_layers",)),
    ("first-stage-layers-too-large", _set("parallelism.first_stage_layers", 33), "parallelism.first_stage_layers",
     ("model.num_layers (32)",)),
    ("first-stage-layers-uneven-rest",
     _all(_set("parallelism.pipeline", 4), _set("parallelism.data", 2), _set("parallelism.first_stage_layers", 3)),
     "parallelism.first_stage_layers", ("29 remaining layers", "3 other")),
    ("last-stage-layers-without-pipeline",
     _all(_set("parallelism.pipeline", 1), _set("parallelism.data", 8), _set("parallelism.last_stage_layers", 4)),
     "parallelism.last_stage_layers", ("pipeline >= 2",)),
    ("recompute-modules-without-selective", _set("parallelism.recompute_modules", ["layernorm"]),
     "parallelism.recompute_modules", ("needs activation_recompute: selective", "got none")),
    ("recompute-module-unknown",
     _all(_set("parallelism.activation_recompute", "selective"), _set("parallelism.recompute_modules", ["attn"])),
     "parallelism.recompute_modules[0]", ("core_attn",)),
    ("recompute-module-duplicate",
     _all(_set("parallelism.activation_recompute", "selective"),
          _set("parallelism.recompute_modules", ["layernorm", "layernorm"])),
     "parallelism.recompute_modules", ("layernorm more than once",)),
    ("recompute-modules-empty",
     _all(_set("parallelism.activation_recompute", "selective"), _set("parallelism.recompute_modules", [])),
     "parallelism.recompute_modules", ("is empty",)),
    ("recompute-moe-act-on-dense-model",
     _all(_set("parallelism.activation_recompute", "selective"), _set("parallelism.recompute_modules", ["moe_act"])),
     "parallelism.recompute_modules", ("moe_act needs model.moe",)),
    ("recompute-moe-on-dense-model",
     _all(_set("parallelism.activation_recompute", "selective"), _set("parallelism.recompute_modules", ["moe"])),
     "parallelism.recompute_modules", ("moe needs model.moe",)),
    ("recompute-mla-up-proj-without-mla",
     _all(_set("parallelism.activation_recompute", "selective"),
          _set("parallelism.recompute_modules", ["mla_up_proj"])),
     "parallelism.recompute_modules", ("mla_up_proj needs model.attention: mla",)),
    ("recompute-mlp-every-layer-moe",
     _all(_set("model.moe", _MOE), _set("parallelism.activation_recompute", "selective"),
          _set("parallelism.recompute_modules", ["mlp"])),
     "parallelism.recompute_modules", ("mlp needs a dense layer",)),
    ("recompute-shared-experts-without-shared",
     _all(_set("model.moe", _MOE), _set("parallelism.activation_recompute", "selective"),
          _set("parallelism.recompute_modules", ["shared_experts"])),
     "parallelism.recompute_modules", ("shared_experts needs model.moe.shared_experts > 0",)),
    ("recompute-modules-torchtitan",
     _all(_set("parallelism.framework", "torchtitan"), _set("parallelism.zero_stage", 3),
          _set("parallelism.activation_recompute", "selective"), _set("parallelism.recompute_modules", ["layernorm"])),
     "parallelism.recompute_modules", ("Megatron-Core's option",)),
    ("fp8-activation-cache-without-fp8", _set("training.fp8_activation_cache", True),
     "training.fp8_activation_cache", ("needs training.precision: fp8",)),
    ("fp8-activation-cache-dense",
     _all(_set("training.precision", "fp8"), _set("training.fp8_activation_cache", True)),
     "training.fp8_activation_cache", ("needs model.moe",)),
    ("cuda-graphs-unknown-scope", _set("training.cuda_graphs", ["layer"]), "training.cuda_graphs[0]",
     ("attn, mlp, moe_router",)),
    ("cuda-graphs-duplicate", _set("training.cuda_graphs", ["attn", "attn"]), "training.cuda_graphs",
     ("attn more than once",)),
    ("cuda-graphs-preprocess-without-router",
     _all(_set("model.moe", _MOE), _set("training.cuda_graphs", ["attn", "moe_preprocess"])), "training.cuda_graphs",
     ("moe_preprocess needs moe_router",)),
    ("cuda-graphs-moe-router-on-dense-model", _set("training.cuda_graphs", ["moe_router"]), "training.cuda_graphs",
     ("moe_router needs model.moe",)),
    ("cuda-graphs-moe-on-dropless-moe", _all(_set("model.moe", _MOE), _set("training.cuda_graphs", ["moe"])),
     "training.cuda_graphs", ("moe needs a token-drop MoE", "capacity_factor")),
    ("cuda-graphs-mlp-every-layer-moe", _all(_set("model.moe", _MOE), _set("training.cuda_graphs", ["mlp"])),
     "training.cuda_graphs", ("mlp needs a dense layer",)),
    ("cuda-graphs-torchtitan",
     _all(_set("parallelism.framework", "torchtitan"), _set("parallelism.zero_stage", 3),
          _set("training.cuda_graphs", ["attn"])),
     "training.cuda_graphs", ("Megatron-Core's --cuda-graph-scope",)),
    ("router-fusion-off-on-dense-model", _set("parallelism.moe_router_fusion", False),
     "parallelism.moe_router_fusion", ("needs model.moe",)),
    # An expert rule, not a CUDA-graph one: still named when the CUDA-graph rules stop at a non-Megatron framework.
    ("router-fusion-off-on-dense-model-with-rejected-cuda-graphs",
     _all(_set("parallelism.framework", "torchtitan"), _set("parallelism.zero_stage", 3),
          _set("training.cuda_graphs", ["attn"]), _set("parallelism.moe_router_fusion", False)),
     "parallelism.moe_router_fusion", ("false needs model.moe", "Megatron-Core's --cuda-graph-scope")),
    ("mxfp8-zeroed-scales-without-mxfp8",
     _all(_set("training.precision", "fp8"), _set("training.mxfp8_zeroed_scales", True)),
     "training.mxfp8_zeroed_scales", ("fp8_recipe mxfp8", "got delayed")),
    ("first-stage-layers-with-embedding-split",
     _all(_set("parallelism.first_stage_layers", 15),
          _set("parallelism.account_for_embedding_in_pipeline_split", True)),
     "parallelism.first_stage_layers", ("account_for_embedding",)),
]


@pytest.mark.parametrize(("mutate", "path", "expected"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_invalid_moe_model_field_exits_2_naming_it(base, write_scenario, run_cli, mutate, path, expected):
    mutate(base)
    res = run_cli("run", write_scenario(base), "--json")
    _assert_rejected(res, path, *expected)
