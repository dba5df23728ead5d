"""Memory per GPU against Korthikanti et al. 2022 and the ZeRO byte counts (sim/costs/memory.py)."""

from __future__ import annotations

import pytest

from sim import catalog
from sim.costs import flops, memory, zero
from sim.units import GIB

from .conftest import make_scenario

# GPT_SMALL (conftest): h = 1024, a = 16, s = 2048, f = 4h, GeLU, MHA, dropout, V = 51200, L = 4
H, A, S, V = 1024, 16, 2048, 51200


def gpt(t=1, sp=True, recompute="none", b=1, attention="unfused", **par):
    return make_scenario(
        parallelism={"tensor": t, "sequence_parallel": sp, "activation_recompute": recompute,
                     "micro_batch_size": b, **par},
        training={"attention": attention})


# ---- activations: Korthikanti et al. 2022, Table 2 ----------------------------------------------
@pytest.mark.parametrize("b", [1, 2])
def test_korthikanti_no_parallelism(b):
    s = gpt(t=1, b=b)
    expected = S * b * H * (34 + 5 * A * S / H)
    assert memory.layer_activation_bytes(s) == pytest.approx(expected, rel=1e-12)


@pytest.mark.parametrize("t", [2, 4, 8])
def test_korthikanti_tensor_parallel_without_sp(t):
    s = gpt(t=t, sp=False)
    expected = S * H * (10 + 24 / t + 5 * A * S / (H * t))
    assert memory.layer_activation_bytes(s) == pytest.approx(expected, rel=1e-12)


@pytest.mark.parametrize("t", [1, 2, 4, 8])
def test_korthikanti_tensor_and_sequence_parallel(t):
    s = gpt(t=t, sp=True)
    expected = S * H * (34 + 5 * A * S / H) / t
    assert memory.layer_activation_bytes(s) == pytest.approx(expected, rel=1e-12)


@pytest.mark.parametrize("t", [1, 2, 4, 8])
def test_korthikanti_selective_recompute_with_sp(t):
    s = gpt(t=t, sp=True, recompute="selective")
    assert memory.layer_activation_bytes(s) == pytest.approx(34 * S * H / t, rel=1e-12)


@pytest.mark.parametrize("attention", ["unfused", "flash"])
def test_selective_recompute_never_costs_more_than_none(attention):
    """Selective recompute's backward working set is the dropped attention scores of one layer, nothing more
    (with flash attention there are none: selective = none)."""
    none, selective = (memory.peak_memory(gpt(t=2, recompute=r, attention=attention)).activations
                       for r in ("none", "selective"))
    if attention == "flash":
        assert selective == pytest.approx(none)
    else:
        assert selective < none


@pytest.mark.parametrize("t", [1, 2, 4, 8])
def test_korthikanti_full_recompute_with_sp(t):
    s = gpt(t=t, sp=True, recompute="full")
    assert memory.layer_activation_bytes(s) == pytest.approx(2 * S * H / t, rel=1e-12)
    # the working set of the layer being recomputed ignores the recompute mode
    assert memory.layer_activation_bytes(s, full_layer=True) == pytest.approx(
        S * H * (34 + 5 * A * S / H) / t, rel=1e-12)


def test_flash_attention_removes_the_score_term():
    s = gpt(t=1, attention="flash")
    # the 5 a s^2 b term is replaced by the fp32 log-sum-exp: 4 bytes x s x b x a
    assert memory.layer_activation_bytes(s) == pytest.approx(34 * S * H + 4 * S * A, rel=1e-12)


def test_context_parallel_divides_the_sequence():
    s = gpt(t=1, context=2)
    s2 = S / 2
    assert memory.layer_activation_bytes(s) == pytest.approx(s2 * H * (34 + 5 * A * s2 / H), rel=1e-12)


# ---- pipeline: in-flight micro-batches -----------------------------------------------------------
def test_1f1b_activations_per_stage():
    # L = 8 over p = 4: 2 layers per stage; m = 8 micro-batches; 1F1B rank r holds min(p - r, m)
    s = make_scenario(model={"num_layers": 8},
                      parallelism={"pipeline": 4, "schedule": "1f1b"}, training={"global_batch_size": 8})
    layer = memory.layer_activation_bytes(s)
    tokens = S  # b = 1, c = 1
    assert memory.stage_memory(s, 1).activations == pytest.approx(3 * 2 * layer)
    assert memory.stage_memory(s, 2).activations == pytest.approx(2 * 2 * layer)
    # first stage: 4 in flight, plus the embedding output (bf16 b s h) per micro-batch
    assert memory.stage_memory(s, 0).activations == pytest.approx(4 * 2 * layer + 4 * 2 * tokens * H)
    # last stage: 1 in flight, plus bf16 logits and their fp32 copy
    assert memory.stage_memory(s, 3).activations == pytest.approx(1 * 2 * layer + tokens * V * (2 + 4))


def test_gpipe_holds_every_microbatch():
    s = make_scenario(model={"num_layers": 8},
                      parallelism={"pipeline": 4, "schedule": "gpipe"}, training={"global_batch_size": 6})
    layer = memory.layer_activation_bytes(s)
    assert memory.stage_memory(s, 1).activations == pytest.approx(6 * 2 * layer)


# ---- parameters, gradients, optimizer per ZeRO stage ----------------------------------------------
def hand_params_gpt_small() -> int:
    per_layer = 4 * H * H + 2 * H * 4 * H + 2 * H  # MHA + GeLU MLP + 2 norms
    return 4 * per_layer + V * H + V * H + H  # embedding, untied LM head, final norm


def test_stage_params_single_stage_is_the_whole_model():
    s = gpt()
    assert hand_params_gpt_small() == 155_198_464
    assert memory.stage_params_per_gpu(s, 0) == hand_params_gpt_small()
    assert memory.stage_params_per_gpu(s, 0) == flops.total_params(s.model)


def test_stage_params_single_stage_tied_counts_final_norm():
    """With tied embeddings and one stage the GPU still holds the final norm (h parameters)."""
    s = make_scenario(model={"tied_embeddings": True})
    expected = 4 * (12 * H * H + 2 * H) + V * H + H
    assert memory.stage_params_per_gpu(s, 0) == expected == flops.total_params(s.model)


def test_stage_params_sum_over_pipeline_ranks():
    s = make_scenario(model={"num_layers": 8}, parallelism={"pipeline": 4})
    total = sum(memory.stage_params_per_gpu(s, r) for r in range(4))
    assert total == flops.total_params(s.model)


def test_stage_params_tensor_parallel_shards_matmuls_not_norms():
    s = gpt(t=4)
    per_layer = (4 * H * H + 8 * H * H) / 4 + 2 * H
    assert memory.stage_params_per_gpu(s, 0) == pytest.approx(4 * per_layer + 2 * V * H / 4 + H)


@pytest.mark.parametrize(("zero", "w", "g", "o"), [
    (0, 2, 4, 12),
    (1, 2, 4, 12 / 8),
    (2, 2, 4 / 8, 12 / 8),
    (3, 2 / 8, 4 / 8, 12 / 8),
])
def test_zero_stage_bytes_per_param(zero, w, g, o):
    s = make_scenario(parallelism={"data": 8, "zero_stage": zero})
    P = hand_params_gpt_small()
    mb = memory.stage_memory(s, 0)
    assert mb.parameters == pytest.approx(w * P)
    assert mb.gradients == pytest.approx(g * P)
    assert mb.optimizer == pytest.approx(o * P)


def test_zero_shards_over_data_times_context():
    s = make_scenario(parallelism={"data": 4, "context": 2, "zero_stage": 3})
    P = hand_params_gpt_small()
    mb = memory.stage_memory(s, 0)
    assert (mb.parameters, mb.gradients, mb.optimizer) == pytest.approx((2 * P / 8, 4 * P / 8, 12 * P / 8))


def test_bf16_gradients_and_8bit_adam():
    s = make_scenario(parallelism={"data": 2, "zero_stage": 0, "grad_reduce_dtype": "bf16"},
                      training={"optimizer": "adamw-8bit"})
    P = hand_params_gpt_small()
    mb = memory.stage_memory(s, 0)
    assert mb.gradients == pytest.approx(2 * P)  # 16 B/param total with bf16 grads
    assert mb.optimizer == pytest.approx(6 * P)  # fp32 master 4 + 1 + 1


def test_breakdown_parts_sum_to_total_and_reserve():
    consts = catalog.efficiency_table()["memory"]
    s = make_scenario(parallelism={"data": 2, "tensor": 2, "pipeline": 2, "zero_stage": 1})
    for rank in (0, 1):
        mb = memory.stage_memory(s, rank)
        counted = mb.parameters + mb.gradients + mb.optimizer + mb.activations + mb.buffers
        assert mb.total == pytest.approx(counted + mb.reserve, rel=1e-15)
        reserve = (consts["runtime_reserve_gib"]["value"] * GIB
                   + consts["fragmentation_fraction"]["value"] * counted)
        assert mb.reserve == pytest.approx(reserve)
        gib = mb.gib()
        assert set(gib) == {"parameters", "gradients", "optimizer", "activations", "buffers", "reserve"}
        assert sum(gib.values()) == pytest.approx(mb.total / GIB)


def test_peak_memory_is_the_largest_stage():
    """peak_memory documents 'the pipeline rank with the largest total'. With the embedding and loss
    counted in the split and GPipe (every rank holds all micro-batches), the middle ranks carry one
    transformer layer more than the first and last ones and are the heaviest."""
    s = make_scenario(model={"num_layers": 14, "vocab_size": 128},
                      parallelism={"pipeline": 4, "schedule": "gpipe",
                                   "account_for_embedding_in_pipeline_split": True,
                                   "account_for_loss_in_pipeline_split": True})
    largest = max(memory.stage_memory(s, r).total for r in range(4))
    assert memory.peak_memory(s).total == pytest.approx(largest)


def test_peak_memory_under_1f1b_picks_the_heavier_end_stage():
    # the large vocabulary's logits make the last stage the heaviest here
    s = make_scenario(model={"num_layers": 8}, parallelism={"pipeline": 4})
    peak = memory.peak_memory(s)
    assert peak.total == max(memory.stage_memory(s, r).total for r in range(4))
    assert peak.stage == 3


# ---- MoE: experts split over ETP x EP, their state sharded over the EDP group ------------------
# GPT_SMALL with 8 routed experts of ffn 512 and one shared expert of ffn 1024, all 4 layers MoE; TP 2, DP 8,
# EP 4, ETP 2 on 16 GPUs: EDP = 16 / (PP 1 * ETP 2 * EP 4) = 2.
MOE = {"num_experts": 8, "top_k": 2, "expert_ffn_hidden_size": 512, "shared_experts": 1,
       "shared_expert_ffn_hidden_size": 1024}


def moe_scenario(zero_stage: int, expert: int = 4, expert_tensor: int = 2):
    return make_scenario(model={"moe": MOE}, parallelism={"tensor": 2, "data": 8, "expert": expert,
                                                          "expert_tensor": expert_tensor, "zero_stage": zero_stage})


def test_moe_layer_params_split_experts_over_etp_and_ep():
    s = moe_scenario(1)
    experts = 8 * 2 * H * 512 / (2 * 4)  # GeLU MLP 2 h f per expert, over ETP 2 x EP 4
    assert memory.expert_layer_params_per_gpu(s, 0) == experts == 1_048_576
    # attention 4 h^2 and the shared expert (2 h 1024) over TP 2; two norms and the router (h x 8) replicated
    assert memory.layer_params_per_gpu(s, 0) == 4 * H * H / 2 + 2 * H + 2 * H * 1024 / 2 + 8 * H + experts


def test_moe_optimizer_shards_experts_over_edp_and_dense_over_dp():
    s = moe_scenario(1)
    assert (s.parallelism.expert_data, memory.dp_plan(s).expert_shard, memory.dp_plan(s).shard) == (2, 2, 8)
    layer = 4 * H * H / 2 + 2 * H + 2 * H * 1024 / 2 + 8 * H + 1_048_576
    params = 4 * layer + 2 * V * H / 2 + H  # + vocab-parallel embedding, untied head and final norm
    expert = 4 * 1_048_576
    assert memory.stage_expert_params_per_gpu(s, 0) == expert
    mb = memory.stage_memory(s, 0)
    # AdamW 12 bytes: dense params over DP 8, expert params over EDP 2 (not all over DP 8: 1.5 * params)
    assert mb.optimizer == pytest.approx(12 * ((params - expert) / 8 + expert / 2), rel=1e-12)
    assert mb.optimizer == pytest.approx(122_746_368, rel=1e-12)
    assert mb.gradients == pytest.approx(4 * params, rel=1e-12)  # ZeRO-1: fp32 gradients unsharded


def test_moe_zero3_shards_expert_weights_over_edp():
    s = moe_scenario(3)
    params, expert = memory.stage_params_per_gpu(s, 0), memory.stage_expert_params_per_gpu(s, 0)
    dp = memory.dp_plan(s)
    state = zero.state_bytes(dp, params, 12, expert)
    resident = params * 2 if dp.full_weights_resident else 0.0
    assert state.weights == pytest.approx(2 * ((params - expert) / 8 + expert / 2) + resident, rel=1e-12)


def test_moe_without_expert_mesh_shards_like_dense():
    # EP 1 and ETP = TP: EDP = DP, so expert state is sharded as before
    s = moe_scenario(1, expert=1, expert_tensor=2)
    assert memory.dp_plan(s).expert_shard == memory.dp_plan(s).shard == 8
