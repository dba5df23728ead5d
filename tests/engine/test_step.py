"""Targeted checks of the step simulation (sim/engine/step.py): sequencing and DP traffic."""

from __future__ import annotations

import pytest

from sim.costs import flops, layer
from sim.costs.collectives import Collective, collective_bandwidth_time, collective_latency
from sim.costs.memory import stage_params_per_gpu
from sim.engine.simulate import simulate_step
from sim.engine.step import StepSimulation, grad_buckets
from sim.parallelism.schedules import Phase
from sim.specs.scenario import Scenario, scenario_from_mapping

MODEL = {"num_layers": 4, "hidden_size": 1024, "ffn_hidden_size": 4096, "num_attention_heads": 16,
         "num_kv_heads": 16, "vocab_size": 32000, "seq_len": 1024}


def make(parallelism: dict, gbs: int, tied: bool = False, **extra) -> Scenario:
    par = {"tensor": 1, "pipeline": 1, "context": 1, "data": 1, **parallelism}
    gpus = par["tensor"] * par["pipeline"] * par["context"] * par["data"]
    return scenario_from_mapping({
        "model": {**MODEL, "tied_embeddings": tied},
        "cluster": {"gpu": "H100-SXM-80GB", "num_gpus": gpus, "topology": "dgx-h100-superpod"},
        "parallelism": par, "training": {"global_batch_size": gbs}, **extra})


def test_single_gpu_step_is_the_sum_of_its_work():
    s = make({"zero_stage": 0}, gbs=4)
    sim = StepSimulation(s)
    fwd = sum(t.total for _, t, _ in sim.blocks.pieces(0, Phase.FORWARD))
    bwd = sum(t.total for _, t, _ in sim.blocks.pieces(0, Phase.BACKWARD))
    opt = layer.optimizer_time(s, s.gpu, stage_params_per_gpu(s, 0))
    r = sim.run()
    assert r.step_time_s == pytest.approx(4 * (fwd + bwd) + opt, rel=1e-12)
    assert r.breakdown_s["bubble"] == pytest.approx(0.0, abs=1e-12 * r.step_time_s)
    assert r.stage_compute_s[0] == pytest.approx(4 * (fwd + bwd), rel=1e-12)
    peak = 989.4e12
    assert r.mfu == pytest.approx(flops.model_flops_per_token(s.model) * 4 * 1024 / (r.step_time_s * peak))


def test_pieces_order():
    s = make({"pipeline": 2, "data": 4}, gbs=8)
    sim = StepSimulation(s)
    assert [n for n, _, _ in sim.blocks.pieces(0, Phase.FORWARD)] == ["embedding", "layer0", "layer1"]
    assert [n for n, _, _ in sim.blocks.pieces(1, Phase.FORWARD)] == ["layer2", "layer3", "lm_head"]
    assert [n for n, _, _ in sim.blocks.pieces(1, Phase.BACKWARD)] == ["lm_head", "layer3", "layer2"]


def test_full_fidelity_is_not_silently_symmetric():
    # every rank simulated: the timeline names all 8 GPUs, not the 2 pipeline ranks
    s = make({"pipeline": 2, "data": 4, "zero_stage": 0}, gbs=8, simulation={"fidelity": "full"})
    assert {i.rank for i in simulate_step(s, record=True).timeline.intervals} == set(range(8))


def stream_bytes(r, rank: int, stream: str) -> float:
    return sum(i.args.get("bytes", 0.0) for i in r.timeline.intervals
               if i.rank == rank and i.stream == stream)


LAYOUTS = [(2, False), (1, False), (1, True), (2, True)]  # (pipeline, tied_embeddings)


@pytest.mark.parametrize("zero", [0, 1, 2])
@pytest.mark.parametrize(("p", "tied"), LAYOUTS)
def test_dp_reduces_every_local_gradient_as_often_as_memory_says(zero, p, tied):
    """ZeRO 0-1: the gradients of every parameter a GPU holds are reduced once per step (fp32: 4 B); ZeRO-2
    keeps them sharded in memory, so it reduce-scatters after each of the 4 micro-batches."""
    s = make({"pipeline": p, "data": 8, "zero_stage": zero}, gbs=8 * 4, tied=tied)
    r = simulate_step(s, record=True)
    reductions = 4 if zero == 2 else 1
    for rank in range(p):
        params = stage_params_per_gpu(s, rank)
        assert stream_bytes(r, rank, "dp_reduce") == pytest.approx(reductions * 4 * params, rel=1e-4)
        if zero in (1, 2):  # and the updated bf16 parameters are all-gathered once
            assert stream_bytes(r, rank, "dp_gather") == pytest.approx(2 * params, rel=1e-4)
        else:
            assert stream_bytes(r, rank, "dp_gather") == 0.0


@pytest.mark.parametrize("microbatches", [1, 2, 8])
def test_zero2_consistency_between_gradient_memory_and_dp_bytes(microbatches):
    """Issue 11's free lunch is gone: sharded ZeRO-2 gradients cost one reduce-scatter per micro-batch (bytes
    grow with the micro-batches); unsharded accumulation reduces once but holds the ZeRO-1 gradient memory."""
    sharded = make({"data": 8, "zero_stage": 2}, gbs=8 * microbatches)
    unsharded = make({"data": 8, "zero_stage": 2, "grad_sync": "last-microbatch"}, gbs=8 * microbatches)
    zero1 = make({"data": 8, "zero_stage": 1}, gbs=8 * microbatches)
    params = stage_params_per_gpu(sharded, 0)
    r_sharded, r_unsharded, r_zero1 = (simulate_step(x, record=True) for x in (sharded, unsharded, zero1))
    assert stream_bytes(r_sharded, 0, "dp_reduce") == pytest.approx(microbatches * 4 * params, rel=1e-4)
    assert r_sharded.memory.gradients == pytest.approx(4 * params / 8)
    assert stream_bytes(r_unsharded, 0, "dp_reduce") == pytest.approx(4 * params, rel=1e-4)
    assert r_unsharded.memory.gradients == pytest.approx(4 * params) == r_zero1.memory.gradients
    assert r_unsharded.step_time_s == pytest.approx(r_zero1.step_time_s, rel=1e-9)
    assert r_sharded.step_time_s >= r_zero1.step_time_s * (1 - 1e-9)


@pytest.mark.parametrize(("p", "tied"), LAYOUTS)
def test_zero3_gathers_and_reduces_every_parameter(p, tied):
    """ZeRO-3 with one micro-batch: every sharded parameter (embedding and LM head included, which the
    memory model shards too) is gathered before forward and before backward, and its gradient is
    reduce-scattered once."""
    s = make({"pipeline": p, "data": 8, "zero_stage": 3}, gbs=8, tied=tied)
    r = simulate_step(s, record=True)
    for rank in range(p):
        params = stage_params_per_gpu(s, rank)
        assert stream_bytes(r, rank, "dp_reduce") == pytest.approx(4 * params, rel=1e-4)
        assert stream_bytes(r, rank, "dp_gather") == pytest.approx(2 * 2 * params, rel=1e-4)


def test_zero0_without_overlap_exposes_the_gradient_all_reduce():
    s = make({"data": 8, "zero_stage": 0, "overlap_grad_reduce": False}, gbs=8 * 2)
    r = simulate_step(s, record=True)
    assert r.breakdown_s["dp_comm"] > 0
    overlapped = simulate_step(make({"data": 8, "zero_stage": 0, "overlap_grad_reduce": True}, gbs=8 * 2), record=True)
    assert overlapped.breakdown_s["dp_comm"] <= r.breakdown_s["dp_comm"]


def test_deepspeed_03_zero3_runs_every_collective_alone():
    """DeepSpeed 0.3's ZeRO-3: each block's gather waits for the idle device and compute waits for it, each
    reduce-scatter is waited at once, and every per-tensor call adds its host time: the step is the serial sum."""
    from sim.costs import zero
    from sim.costs.collectives import Collective, collective_latency, collective_time

    s = make({"data": 8, "zero_stage": 3, "framework": "deepspeed", "framework_version": "0.3"}, gbs=8)
    sim = StepSimulation(s)
    r = sim.run()
    dp, path = sim.dp, sim.shard_path
    latency = collective_latency(Collective.ALL_GATHER, 1.0, path)
    expected = 0.0
    pieces = sim.blocks.pieces(0, Phase.FORWARD)
    for (_name, _t, index), params in zip(pieces, sim.blocks.piece_params(0, Phase.FORWARD), strict=True):
        tensors = zero.layer_param_tensors(s.model) if index is not None else 1
        gather = collective_time(Collective.ALL_GATHER, 2 * params, path)
        reduce = collective_time(Collective.REDUCE_SCATTER, 4 * params, path)
        expected += 2 * gather + reduce + zero.blocking_overhead_s(dp, tensors, 2, latency) \
            + zero.blocking_overhead_s(dp, tensors, 1, latency)
    assert r.breakdown_s["dp_comm"] == pytest.approx(expected, rel=1e-9)
    assert r.breakdown_s["contention"] == 0.0
    assert r.step_time_s == pytest.approx(sum(r.breakdown_s.values()), rel=1e-9)
    overlapped = simulate_step(make({"data": 8, "zero_stage": 3, "framework": "deepspeed"}, gbs=8))
    assert overlapped.step_time_s < r.step_time_s


def test_deepspeed_zero2_without_overlap_comm_waits_for_every_reduce_scatter():
    """DeepSpeed ZeRO-2's default (overlap_comm false): each micro-batch's gradients are reduce-scattered on the
    compute stream, so all four reductions are exposed, besides the parameter gather before the first forward."""
    from sim.costs.collectives import Collective, collective_time

    s = make({"data": 8, "zero_stage": 2, "framework": "deepspeed"}, gbs=8 * 4)
    sim = StepSimulation(s)
    r = sim.run()
    params = stage_params_per_gpu(s, 0)
    expected = (4 * collective_time(Collective.REDUCE_SCATTER, 4 * params, sim.shard_path)
                + collective_time(Collective.ALL_GATHER, 2 * params, sim.shard_path))
    assert r.breakdown_s["dp_comm"] == pytest.approx(expected, rel=1e-9)
    overlapped = simulate_step(make({"data": 8, "zero_stage": 2, "framework": "deepspeed",
                                     "overlap_grad_reduce": True}, gbs=8 * 4))
    assert overlapped.breakdown_s["dp_comm"] < r.breakdown_s["dp_comm"]


# ---- the bottleneck stage (issue 10): the breakdown is taken on the busiest stage --------------
@pytest.mark.parametrize(("layout", "busiest"), [([1, 7], 1), ([7, 1], 0)])
def test_breakdown_is_taken_on_the_bottleneck_stage(layout, busiest):
    # 8 layers over PP 2, uneven: 1 layer + embedding vs 7 layers + LM head, then 7 + embedding vs 1 + head (the
    # head of V 32000 costs about two layers of h 1024); 1F1B, 8 micro-batches
    s = scenario_from_mapping({
        "model": {**MODEL, "num_layers": 8},
        "cluster": {"gpu": "H100-SXM-80GB", "num_gpus": 2, "topology": "dgx-h100-superpod"},
        "parallelism": {"tensor": 1, "pipeline": 2, "context": 1, "data": 1, "pipeline_layout": layout},
        "training": {"global_batch_size": 8}})
    r = simulate_step(s)
    assert r.bottleneck_stage == busiest
    assert r.stage_compute_s[busiest] > 2 * r.stage_compute_s[1 - busiest]
    assert sum(r.breakdown_s.values()) == pytest.approx(r.step_time_s, rel=1e-9)
    # the busy stage's compute (the other stage's is under half of it); the compute-busy time differs from the
    # booked compute by a few microseconds here
    assert r.breakdown_s["compute"] == pytest.approx(r.stage_compute_s[busiest], rel=1e-3)


# ---- MoE: routed-expert gradients reduced over the expert-data-parallel group ---------------------------
# MODEL with 8 routed experts of ffn 512 and one shared expert of ffn 1024 in all 4 layers; TP 2, DP 8, EP 4,
# ETP 2 on 16 GPUs: EDP = 16 / (ETP 2 * EP 4) = 2.
MOE = {"num_experts": 8, "top_k": 2, "expert_ffn_hidden_size": 512, "shared_experts": 1,
       "shared_expert_ffn_hidden_size": 1024}


def moe_make() -> Scenario:
    return scenario_from_mapping({
        "model": {**MODEL, "moe": MOE},
        "cluster": {"gpu": "H100-SXM-80GB", "num_gpus": 16, "topology": "dgx-h100-superpod"},
        "parallelism": {"tensor": 2, "data": 8, "expert": 4, "expert_tensor": 2, "zero_stage": 1},
        "training": {"global_batch_size": 8 * 4}})


def test_moe_expert_gradients_are_reduced_over_the_edp_group_in_their_own_buckets():
    s = moe_make()
    sim = StepSimulation(s)
    assert (sim.dp_path.n, sim.edp_path.n) == (8, 2)
    h, v = 1024, 32000
    expert = 4 * 8 * 3 * h * 512 / (2 * 4)  # SwiGLU experts 3 h f, 8 of them over ETP 2 x EP 4, 4 layers
    # per layer: attention 4 h^2 and the shared expert 3 h 1024 over TP 2, two norms and the router h x 8;
    # the vocab-parallel embedding and untied head over TP 2, the final norm
    dense = 4 * (4 * h * h / 2 + 3 * h * 1024 / 2 + 2 * h + 8 * h) + 2 * v * h / 2 + h
    assert (expert, dense) == (6_291_456, 47_490_048)
    r = sim.run()
    transfers = [i for i in r.timeline.intervals if i.rank == 0 and i.stream == "dp_reduce"]
    experts = [i for i in transfers if i.name.endswith(".experts")]
    # ZeRO-1: fp32 gradients reduce-scattered once per step, each kind over its own group, in its own buckets
    assert sum(i.args["bytes"] for i in experts) == pytest.approx(4 * expert, rel=1e-12)
    assert sum(i.args["bytes"] for i in transfers if i not in experts) == pytest.approx(4 * dense, rel=1e-12)
    assert len(experts) == 1 and len(transfers) == 1 + 2  # 40M-parameter buckets: 6.3M expert, 47.5M dense
    gathers = [i for i in r.timeline.intervals if i.rank == 0 and i.stream == "dp_gather"]
    assert sum(i.args["bytes"] for i in gathers) == pytest.approx(2 * (expert + dense), rel=1e-12)
    assert [i.args["bytes"] for i in gathers if i.name.endswith(".experts")] == [2 * expert]


def test_moe_expert_reduce_takes_the_edp_path():
    """The expert reduce-scatter runs over EDP 2, not over DP 8."""
    s = moe_make()
    sim = StepSimulation(s)
    r = sim.run()
    (tr,) = [i for i in r.timeline.intervals
             if i.rank == 0 and i.stream == "dp_reduce" and i.name.endswith(".experts")]
    nbytes = 4 * 6_291_456
    on_edp = collective_latency(Collective.REDUCE_SCATTER, nbytes, sim.edp_path) + collective_bandwidth_time(
        Collective.REDUCE_SCATTER, nbytes, sim.edp_path)
    assert tr.end - tr.start == pytest.approx(on_edp, rel=1e-9)
    on_dp = collective_latency(Collective.REDUCE_SCATTER, nbytes, sim.dp_path) + collective_bandwidth_time(
        Collective.REDUCE_SCATTER, nbytes, sim.dp_path)
    # EDP pairs GPUs of the two nodes over one NIC each; DP 8 spreads the inter-node part over 4 NICs a node
    assert on_edp > 1.5 * on_dp


def test_grad_buckets_interleave_dense_and_expert_buckets_by_readiness():
    assert grad_buckets(100.0, 0.0, 40.0) == [(100 / 3, 0.0)] * 3  # dense only: as before
    assert grad_buckets(80.0, 30.0, 40.0) == [(40.0, 0.0), (40.0, 0.0), (30.0, 30.0)]
    assert grad_buckets(40.0, 80.0, 40.0) == [(40.0, 40.0), (40.0, 0.0), (40.0, 40.0)]


@pytest.mark.parametrize("p", [1, 2])
def test_fp8_all_gather_moves_block_weights_at_one_byte(p):
    """torchtitan FSDP2 with fp8 all-gather (tensorwise): the transformer blocks' weights are gathered at 1 byte
    per parameter (before forward and again before backward), embedding and LM head at bf16; gradients are
    reduce-scattered at fp32 as without it; the gathered-layer buffer halves."""
    from sim.costs import memory
    opts = {"pipeline": p, "data": 8, "zero_stage": 3, "framework": "torchtitan", "reshard_after_forward": True}
    fp8 = {"training": {"global_batch_size": 8, "precision": "fp8", "fp8_recipe": "tensorwise"}}
    base = make(opts, gbs=8, **fp8)
    on = make({**opts, "fp8_all_gather": True}, gbs=8, **fp8)
    r = simulate_step(on, record=True)
    for rank in range(p):
        params = stage_params_per_gpu(on, rank)
        sim = StepSimulation(on)
        pieces, piece_params = sim.blocks.pieces(rank, Phase.FORWARD), sim.blocks.piece_params(rank, Phase.FORWARD)
        block_params = sum(n for (_name, _t, index), n in zip(pieces, piece_params, strict=True) if index is not None)
        assert 0 < block_params < params
        assert stream_bytes(r, rank, "dp_gather") == pytest.approx(2 * (1 * block_params + 2 * (params - block_params)),
                                                                   rel=1e-4)
        assert stream_bytes(r, rank, "dp_reduce") == pytest.approx(4 * params, rel=1e-4)
    gathered = memory.buffer_bytes(base, memory.dp_plan(base)) - memory.buffer_bytes(on, memory.dp_plan(on))
    assert gathered > 0
    assert memory.buffer_bytes(on, memory.dp_plan(on)) == pytest.approx(
        memory.buffer_bytes(base, memory.dp_plan(base)) - gathered)
    assert simulate_step(on).step_time_s <= simulate_step(base).step_time_s


def test_fp8_all_gather_casts_only_the_local_shard():
    """The fp8 weight cast moves from every forward's full weight (torchao) to the shard before the gather."""
    from sim.costs import fp8
    from sim.costs.fp8 import Linear
    opts = {"data": 8, "zero_stage": 3, "framework": "torchtitan"}
    fp8_training = {"training": {"global_batch_size": 8, "precision": "fp8", "fp8_recipe": "tensorwise"}}
    base = make(opts, gbs=8, **fp8_training)
    on = make({**opts, "fp8_all_gather": True}, gbs=8, **fp8_training)
    lin = (Linear(1024, 1024, 4096, 1024 * 1024),)
    per_elem = fp8.recipe_entry(on.training.fp8)["quantize_bytes"]
    inputs = 1024 * 1024 * per_elem["input"]
    weight = 1024 * 4096 * per_elem["weight"]
    assert fp8.quantize_bytes(base, lin, backward=False) == pytest.approx(inputs + weight)
    assert fp8.quantize_bytes(on, lin, backward=False) == pytest.approx(inputs + weight / 8)
