"""Data-parallel plans per ZeRO stage and framework (sim/costs/zero.py) against hand-computed figures."""

from __future__ import annotations

import dataclasses

import pytest

from sim.costs import zero
from sim.costs.collectives import Collective
from sim.costs.memory import dp_plan, largest_layer_params
from sim.specs.enums import Activation, Framework, GradDtype, GradSync
from sim.specs.scenario import Scenario, scenario_from_mapping

MODEL = {"num_layers": 4, "hidden_size": 1024, "ffn_hidden_size": 4096, "num_attention_heads": 16,
         "num_kv_heads": 16, "vocab_size": 32000, "seq_len": 1024}


def make(parallelism: dict, gbs: int = 32) -> Scenario:
    par = {"tensor": 1, "pipeline": 1, "context": 1, "data": 8, **parallelism}
    gpus = par["tensor"] * par["pipeline"] * par["context"] * par["data"]
    return scenario_from_mapping({
        "model": MODEL, "cluster": {"gpu": "H100-SXM-80GB", "num_gpus": gpus, "topology": "dgx-h100-superpod"},
        "parallelism": par, "training": {"global_batch_size": gbs}})


def test_grad_bytes():
    assert zero.grad_bytes(GradDtype.FP32) == 4
    assert zero.grad_bytes(GradDtype.BF16) == 2


def test_state_bytes_per_stage_by_hand():
    # 1e9 parameters, Adam (12 B), fp32 grads, shard 8: Rajbhandari et al. 2020's 2 + 4 + 12 per parameter
    params, adam = 1e9, 12
    for stage, grad_sync, expected in [
        (0, None, (2e9, 4e9, 12e9)),
        (1, None, (2e9, 4e9, 1.5e9)),
        (2, None, (2e9, 0.5e9, 1.5e9)),                          # Megatron-FSDP default: sharded gradients
        (2, "last-microbatch", (2e9, 4e9, 1.5e9)),               # unsharded accumulation: ZeRO-1 memory
        (3, None, (0.25e9, 0.5e9, 1.5e9)),
    ]:
        extra = {"grad_sync": grad_sync} if grad_sync else {}
        dp = dp_plan(make({"zero_stage": stage, **extra}))
        st = zero.state_bytes(dp, params, adam)
        assert (st.weights, st.gradients, st.optimizer) == pytest.approx(expected), stage


def test_zero3_without_reshard_holds_the_whole_unsharded_weights():
    dp = dp_plan(make({"zero_stage": 3, "reshard_after_forward": False}))
    assert dp.full_weights_resident and not dp.params_held
    assert zero.state_bytes(dp, 1e9, 12).weights == pytest.approx(2e9 / 8 + 2e9)
    assert (dp.gathers(True, False), dp.gathers(False, False)) == (1, 0)


def test_zero3_gathers_per_microbatch():
    dp = dp_plan(make({"zero_stage": 3}))
    assert (dp.gathers(True, True), dp.gathers(False, False)) == (1, 1)
    # 1e9 params in 4 layers, 4 micro-batches: 8 gathers of 2 B, 4 fp32 reduce-scatters
    t = zero.step_traffic(dp, 1e9, microbatches=4, layers=4)
    assert t.all_gather_bytes == pytest.approx(8 * 2e9)
    assert t.reduce_scatter_bytes == pytest.approx(4 * 4e9)
    assert (t.all_gathers, t.reduce_scatters) == (32, 16)


def test_zero2_traffic_grows_with_microbatches_only_when_sharded():
    sharded = dp_plan(make({"zero_stage": 2}))
    unsharded = dp_plan(make({"zero_stage": 2, "grad_sync": "last-microbatch"}))
    for m in (1, 4, 16):
        assert zero.step_traffic(sharded, 1e9, m).reduce_scatter_bytes == pytest.approx(m * 4e9)
        assert zero.step_traffic(unsharded, 1e9, m).reduce_scatter_bytes == pytest.approx(4e9)
        assert zero.step_traffic(sharded, 1e9, m).all_gather_bytes == pytest.approx(2e9)  # after the optimizer


def test_zero0_all_reduces_once():
    dp = dp_plan(make({"zero_stage": 0}))
    assert dp.reduce_op is Collective.ALL_REDUCE
    assert zero.step_traffic(dp, 1e9, 8) == zero.Traffic(all_reduce_bytes=4e9)


def test_hsdp_shards_inside_the_group_and_all_reduces_the_shard_across_replicas():
    dp = dp_plan(make({"zero_stage": 3, "shard_group_size": 2}))
    assert (dp.shard, dp.replicas) == (2, 4)
    assert zero.state_bytes(dp, 1e9, 12).optimizer == pytest.approx(6e9)
    t = zero.step_traffic(dp, 1e9, microbatches=1)
    assert t.all_reduce_bytes == pytest.approx(4e9 / 2)


def test_framework_defaults():
    # DeepSpeed: every micro-batch (no_sync refused); torchtitan with PP: pipelining's no-sync path
    assert dp_plan(make({"zero_stage": 2, "framework": "deepspeed"})).grad_sync is GradSync.EVERY_MICROBATCH
    tt = make({"zero_stage": 3, "framework": "torchtitan", "pipeline": 2, "data": 4})
    dp = dp_plan(tt)
    assert dp.grad_sync is GradSync.LAST_MICROBATCH and not dp.reshard_after_forward and dp.params_held
    assert (dp.gathers(True, True), dp.gathers(True, False), dp.gathers(False, False)) == (1, 0, 0)
    assert dp.gather_copy_passes == 1 and dp.reduce_copy_passes == 1  # FSDP2 copy-out and chunk_cat


def test_deepspeed_regathers_for_recompute_only_past_the_reuse_distance():
    small = make({"zero_stage": 3, "framework": "deepspeed", "activation_recompute": "full"})
    assert largest_layer_params(small) < 1e9
    assert not dp_plan(small).regather_for_recompute
    big = zero.plan(small, largest_layer_params=2e9)  # a 175B layer (1.8e9) is past 1e9
    assert big.regather_for_recompute and big.gathers(False, False) == 2


def test_deepspeed_gathered_parameters_capped_by_max_live():
    s = make({"zero_stage": 3, "framework": "deepspeed"})
    dp = dp_plan(s)
    assert zero.gathered_layer_params(s, dp, 3e9) == pytest.approx(3e9)  # one layer is needed whole
    assert zero.gathered_layer_params(s, dp, 0.4e9) == pytest.approx(0.8e9)  # two layers under the 1e9 cap
    assert zero.reduce_bucket_params(s) == pytest.approx(5e8)


# ---- DeepSpeed 0.3's ZeRO-3 (parallelism.framework_version) ------------------------------------------------
def test_a_release_overrides_only_the_keys_it_names():
    current, old = zero.framework_dp(Framework.DEEPSPEED), zero.framework_dp(Framework.DEEPSPEED, "0.3")
    assert (current["prefetch_layers"], old["prefetch_layers"]) == (1, 0)
    assert old["max_live_params"] == current["max_live_params"]  # not overridden
    assert "versions" not in current and "blocking_collectives" not in current


def test_deepspeed_03_plan_is_blocking_per_tensor_with_a_host_cost_per_rank():
    s = make({"zero_stage": 3, "framework": "deepspeed", "framework_version": "0.3"})
    dp, entry = dp_plan(s), zero.framework_versions(Framework.DEEPSPEED)["0.3"]
    assert dp.blocking and dp.per_tensor and dp.prefetch_layers == 0
    assert dp.collective_host_s == pytest.approx(entry["collective_host_s"] + 8 * entry["collective_host_per_rank_s"])
    assert not dp_plan(make({"zero_stage": 3, "framework": "deepspeed"})).blocking


def test_blocking_overhead_by_hand():
    dp = dataclasses.replace(dp_plan(make({"zero_stage": 3, "framework": "deepspeed", "framework_version": "0.3"})),
                             collective_host_s=1e-3)
    # 2 rounds over 12 tensors: 24 calls of 1 ms host, 22 latencies of 0.1 ms beyond the 2 transfers
    assert zero.blocking_overhead_s(dp, 12, 2, 1e-4) == pytest.approx(24e-3 + 22e-4)
    per_layer = dataclasses.replace(dp, per_tensor=False)
    assert zero.blocking_overhead_s(per_layer, 12, 2, 1e-4) == pytest.approx(2e-3)
    assert zero.blocking_overhead_s(dataclasses.replace(dp, blocking=False), 12, 2, 1e-4) == 0.0


def test_layer_param_tensors():
    gpt, llama = make({}).model, make({}).model
    gpt = dataclasses.replace(gpt, activation=Activation.GELU)  # LayerNorm + biases: 12 tensors
    assert (zero.layer_param_tensors(gpt), zero.layer_param_tensors(llama)) == (12, 6)


def test_gradient_reduction_overlap_is_the_frameworks_default():
    # DeepSpeed's overlap_comm defaults to false below ZeRO-3, and its reduction then runs on the compute stream
    ds, mcore, tt = (dp_plan(make({"zero_stage": z, "framework": f}))
                     for z, f in ((2, "deepspeed"), (2, "megatron-core"), (0, "torchtitan")))
    assert (ds.overlap_grad_reduce, ds.reduce_blocks_compute) == (False, True)
    assert (mcore.overlap_grad_reduce, mcore.reduce_blocks_compute) == (True, False)
    assert tt.overlap_grad_reduce
    assert dp_plan(make({"zero_stage": 2, "framework": "deepspeed", "overlap_grad_reduce": True})).overlap_grad_reduce
    assert not dp_plan(make({"zero_stage": 1, "overlap_grad_reduce": False})).overlap_grad_reduce
