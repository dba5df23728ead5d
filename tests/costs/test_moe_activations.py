"""MoE activation memory and Megatron-Core's selective recompute modules (sim/costs/memory.py
layer_activation_parts, sim/costs/layer.py recompute time, sim/costs/flops.py recompute FLOPs), against hand
counts on a small model: GPT_SMALL (h 1024, 16 heads, seq 2048, no dropout here) with SwiGLU and 8 experts of
f 512, top-2, one shared expert of 256; flash attention."""

from __future__ import annotations

import pytest

from sim.costs import flops, kernels, layer, memory
from sim.network.paths import scenario_paths
from tests.costs.conftest import make_scenario

MOE = {"num_experts": 8, "top_k": 2, "expert_ffn_hidden_size": 512, "shared_experts": 1,
       "shared_expert_ffn_hidden_size": 256}
T, H, A = 2048, 1024, 16  # tokens of one micro-batch, hidden size, heads


def moe_model(**moe):
    return {"activation": "swiglu", "dropout": False, "moe": {**MOE, **moe}}


def scen(recompute="none", modules=None, training=None, model=None, **par):
    layout = {"tensor": 2, "data": 4, "expert": 4, "expert_tensor": 1, "activation_recompute": recompute, **par}
    if modules is not None:
        layout["recompute_modules"] = modules
    return make_scenario(model=model or moe_model(), parallelism=layout,
                         training={"attention": "flash", **(training or {})})


def test_moe_layer_terms_by_hand():
    """TP 2 with SP (sp = 2), ETP 1, EP 4, balanced routing: this GPU's experts see the T/2 local tokens x top-2
    x ETP 1 routed rows; each keeps its dispatched input (h), its SwiGLU input (2 f) and output (f), bf16."""
    parts = memory.layer_activation_parts(scen(), moe=True)
    rows = T / 2 * 2 * 1
    assert parts["mlp_input"] == 2 * T * H / 2  # the router's and the shared expert's bf16 input
    assert parts["router"] == pytest.approx(T / 2 * 8 * 5)  # fp32 probabilities + bool routing map per score
    assert parts["expert_input"] == 2 * rows * H  # the top-k dispatched copies
    assert parts["expert_activation_input"] == 2 * rows * 2 * 512
    assert parts["expert_fc2_input"] == 2 * rows * 512
    assert parts["shared_expert"] == 2 * T * 2 * 256 / 2 + 2 * T * 256 / 2  # TP-split up/gate output + act output
    assert parts["scores"] == 4 * T * A / 2  # flash: fp32 log-sum-exp only
    assert "mlp_activation_input" not in parts


def test_routed_rows_follow_etp_and_capacity():
    """ETP 2 gathers each routed row onto both expert-TP ranks (x 2 rows, f / 2 each); a capacity factor below the
    natural imbalance caps the busiest rank's rows."""
    base = memory.layer_activation_parts(scen(), moe=True)
    etp = memory.layer_activation_parts(scen(expert_tensor=2), moe=True)
    assert etp["expert_input"] == 2 * base["expert_input"]
    assert etp["expert_fc2_input"] == base["expert_fc2_input"]  # twice the rows, half the width
    natural = memory.layer_activation_parts(scen(model=moe_model(routing="natural", capacity_factor=1.02)), True)
    assert natural["expert_input"] == pytest.approx(1.02 * base["expert_input"])


def test_dense_layers_of_an_moe_model_keep_their_own_mlp():
    s = scen(model=moe_model(first_dense_layers=1))
    dense = memory.layer_activation_parts(s, moe=False)
    assert dense["mlp_activation_input"] == 4 * T * 4096 / 2 and dense["mlp_fc2_input"] == 2 * T * 4096 / 2
    assert memory.layer_kinds(s) == (False, True)
    assert memory.layer_activation_bytes(s) == max(memory.layer_activation_bytes(s, moe=k) for k in (False, True))


def test_default_selective_is_megatrons_core_attention_and_keeps_every_term():
    """Without a module list, selective is Megatron's default [core_attn]: with flash attention nothing to drop."""
    assert memory.layer_activation_parts(scen("selective"), True) == memory.layer_activation_parts(scen(), True)


@pytest.mark.parametrize(("modules", "dropped"), [
    (["layernorm"], {"qkv_input": 2 * T * H / 2, "mlp_input": 2 * T * H / 2}),
    (["moe_act"], {"expert_fc2_input": 2 * T * 512}),
    (["shared_experts"], {"shared_expert": 2 * T * 256 + T * 256}),
    (["moe"], {"router": T / 2 * 8 * 5, "expert_input": 2 * T * H, "expert_activation_input": 4 * T * 512,
               "expert_fc2_input": 2 * T * 512, "shared_expert": 2 * T * 256 + T * 256}),
])
def test_recompute_modules_drop_exactly_their_tensors(modules, dropped):
    full = memory.layer_activation_parts(scen(), True)
    kept = memory.layer_activation_parts(scen("selective", modules), True)
    assert {k: full[k] - kept[k] for k in full if full[k] != kept[k]} == pytest.approx(dropped)
    assert memory.recompute_working_bytes(scen("selective", modules)) == pytest.approx(sum(dropped.values()))


def test_mlp_module_keeps_only_the_dense_mlps_bf16_input():
    s = scen("selective", ["mlp"], model=moe_model(first_dense_layers=1))
    dense = memory.layer_activation_parts(s, moe=False)
    assert dense["mlp_input"] == 2 * T * H / 2 and dense["mlp_activation_input"] == dense["mlp_fc2_input"] == 0


def test_fp8_keeps_gemm_inputs_in_one_byte_and_the_cache_stores_the_swiglu_input_in_fp8():
    """Blockwise fp8 saves the grouped GEMMs' inputs in fp8 (1 byte); the router's input stays bf16. The
    activation cache stores the SwiGLU input at 1 byte + one fp32 scale per 128 elements."""
    fp8 = {"precision": "fp8", "fp8_recipe": "blockwise"}
    base = memory.layer_activation_parts(scen(), True)
    q = memory.layer_activation_parts(scen(training=fp8), True)
    assert q["expert_input"] == base["expert_input"] / 2 and q["expert_fc2_input"] == base["expert_fc2_input"] / 2
    assert q["mlp_input"] == base["mlp_input"] and q["expert_activation_input"] == base["expert_activation_input"]
    cached = memory.layer_activation_parts(scen(training={**fp8, "fp8_activation_cache": True}), True)
    assert cached["expert_activation_input"] == pytest.approx(base["expert_activation_input"] / 2 * (1 + 4 / 128))


def test_mla_up_projection_module_keeps_latents_and_context():
    mla = {"attention": "mla", "mla": {"q_lora_rank": 256, "kv_lora_rank": 128, "qk_nope_head_dim": 64,
                                       "qk_rope_head_dim": 32, "v_head_dim": 64}}
    full = memory.layer_activation_parts(scen(model={**moe_model(), **mla}), True)
    kept = memory.layer_activation_parts(scen("selective", ["mla_up_proj"], model={**moe_model(), **mla}), True)
    latents = 256 + 128 + 32
    assert full["qkv_context"] == 2 * T * (A * (2 * 96 + 2 * 64) / 2 + latents)
    assert kept["qkv_context"] == 2 * T * (A * 64 / 2 + latents)


def _times(s):
    p = scenario_paths(s.cluster.topology, s.gpu, s.parallelism)
    paths = layer.Paths(tp=p.tp, cp=p.cp, ep=p.ep, etp=p.etp)
    return layer.layer_time(s, s.gpu, paths, moe=True)


def test_recompute_modules_add_their_forward_to_backward(monkeypatch):
    """``moe`` re-runs the MoE block's forward (dispatch and combine included), ``moe_act`` only the experts'
    activation; ``layernorm`` the two norms (memory-bound); the forward never changes. This small layer is
    host-bound, so what the modules add is their kernels' launches; with the host cost at 0, their GPU work."""
    def times():
        return (_times(scen(*a)) for a in (("none",), ("selective", ["moe"]), ("selective", ["moe_act"]),
                                           ("selective", ["layernorm"])))
    c = kernels.host_overhead_s()
    none, moe, act, norm = times()
    assert moe.forward == act.forward == norm.forward == none.forward
    # the whole block: router 31, alltoall dispatch 7, activation 1, 2 local experts x 2 linears, the shared
    # expert's 3; moe_act its activation; layernorm the two norms
    assert moe.backward.total - none.backward.total == pytest.approx((31 + 7 + 1 + 2 * 2 + 3) * c, rel=1e-9)
    assert act.backward.total - none.backward.total == pytest.approx(c, rel=1e-9)
    assert norm.backward.total - none.backward.total == pytest.approx(2 * c, rel=1e-9)
    monkeypatch.setattr(kernels, "host_overhead_s", lambda: 0.0)
    none, moe, act, norm = times()
    s = scen()
    p = scenario_paths(s.cluster.topology, s.gpu, s.parallelism)
    block_fwd, _, _, _ = layer._moe_block(s, s.gpu, layer._Shape(s), layer.Paths(tp=p.tp, cp=p.cp, ep=p.ep, etp=p.etp))
    assert moe.backward.total - none.backward.total == pytest.approx(block_fwd.total)
    assert 0 < act.backward.total - none.backward.total < block_fwd.total / 5
    assert 0 < norm.backward.total - none.backward.total < block_fwd.total / 5


def test_recompute_flops_per_module():
    m = scen().model
    shared = 3 * H * 256
    assert flops.recompute_flops_per_token(m, "selective", ["layernorm", "moe_act"]) == 0
    assert flops.recompute_flops_per_token(m, "selective", ["shared_experts"]) == 2 * 4 * shared
    assert flops.recompute_flops_per_token(m, "selective", ["moe"]) == 2 * 4 * flops.moe_mlp_params(m, True)
    assert flops.recompute_flops_per_token(m, "selective", None) == \
        flops.recompute_flops_per_token(m, "selective", ["core_attn"]) == 4 * flops.attention_score_flops_per_token(m)
