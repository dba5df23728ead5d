"""Host launches of a layer pass (sim/costs/layer.py): kernel counts by side, partial CUDA graphs, MLA, the
MXFP8 zero-filled scales, selective-recompute launches, and the dropless MoE block's device-host sync."""

from __future__ import annotations

import pytest

from sim.costs import fp8, kernels, layer
from sim.costs.layer import Launches, PhaseTime

from .conftest import make_scenario
from .test_layer import paths
from .test_mla_mtp_layer import V3_LIKE

MOE = {"num_experts": 16, "top_k": 4, "expert_ffn_hidden_size": 512}
US = 1e-6


def dense(**training):
    return make_scenario(training={"attention": "flash", **training})


def moe_layer(ep: int = 4, training: dict | None = None, **par):
    return make_scenario(model={"moe": MOE, "activation": "swiglu"}, parallelism={"data": 4, "expert": ep, **par},
                         training={"attention": "flash", **(training or {})})


def launches(s, moe: bool = False) -> Launches:
    return layer._forward_launches(s, layer._Shape(s), moe)


def test_dense_layer_launches_by_side():
    # attention side 10 + MLP side 6 (the former 16 per layer), eager: no sync
    assert launches(dense()) == Launches(16, 0)
    # each captured part is one graph launch
    assert launches(dense(cuda_graphs=["attn"])) == Launches(1 + 6)
    assert launches(dense(cuda_graphs=["attn", "mlp"])) == Launches(2)


def test_moe_layer_splits_at_the_host_sync():
    # before the sync: attention side 10, MLP side (shared-expert stand-in) 6, fused router 31; after it: the
    # alltoall dispatcher's 7, the activation, one GEMM per local expert (4) and linear (2)
    assert launches(moe_layer(), moe=True) == Launches(10 + 6 + 31, 7 + 1 + 2 * 4)
    # router, pre-MLP side and preprocess captured together: one launch before the sync
    graphed = moe_layer(training={"cuda_graphs": ["attn", "moe_router", "moe_preprocess"]})
    assert launches(graphed, moe=True) == Launches(1 + 1, 7 + 1 + 2 * 4)
    # unfused router: 72 kernels (41 more)
    assert launches(moe_layer(moe_router_fusion=False), moe=True).before_sync == 10 + 6 + 72


def test_token_drop_moe_has_no_sync_and_can_be_graphed_whole():
    capped = make_scenario(model={"moe": {**MOE, "capacity_factor": 1.0}, "activation": "swiglu"},
                           parallelism={"data": 4, "expert": 4}, training={"attention": "flash"})
    assert launches(capped, moe=True) == Launches(10 + 6 + 31 + 7 + 1 + 2 * 4, 0)
    whole = make_scenario(model={"moe": {**MOE, "capacity_factor": 1.0}, "activation": "swiglu"},
                          parallelism={"data": 4, "expert": 4},
                          training={"attention": "flash", "cuda_graphs": ["attn", "moe"]})
    assert launches(whole, moe=True) == Launches(2, 0)


def test_mla_attention_side_launches_eight_more_kernels_and_quantizes_five_linears():
    s = make_scenario(V3_LIKE, training={"attention": "flash"})
    assert launches(s) == Launches(10 + 8 + 6)
    blackwell = make_scenario(V3_LIKE, training={"attention": "flash", "precision": "fp8", "fp8_recipe": "mxfp8"},
                              gpu="B200", topology="dgx-b200")
    # one quantize per linear: 5 attention-side (MLA) + 2 MLP-side
    assert launches(blackwell) == Launches(10 + 8 + 6 + 7)


def test_zeroed_mxfp8_scales_add_two_kernels_per_quantize():
    s = make_scenario(V3_LIKE, training={"attention": "flash", "precision": "fp8", "fp8_recipe": "mxfp8",
                                         "mxfp8_zeroed_scales": True}, gpu="B200", topology="dgx-b200")
    assert fp8.kernels_per_quantize(s) == 3
    assert launches(s) == Launches(10 + 8 + 6 + 7 * 3)


def test_selective_recompute_relaunches_its_modules():
    s = make_scenario(V3_LIKE, {"activation_recompute": "selective", "recompute_modules": ["mla_up_proj", "mlp"]},
                      {"attention": "flash"})
    # the MLA up-projection's 7 kernels and a dense MLP side's 6 (bf16: no quantizes)
    assert layer._recompute_launches(s, moe=False) == 7 + 6
    core = make_scenario(parallelism={"activation_recompute": "selective"}, training={"attention": "unfused"})
    assert layer._recompute_launches(core, moe=False) == 4  # Megatron's default: the unfused core attention
    whole = moe_layer(activation_recompute="selective", recompute_modules=["moe", "moe_act"])
    assert layer._recompute_launches(whole, moe=True) == 31 + 7 + 1 + 2 * 4  # moe_act is inside the block


def test_host_floor_and_the_serial_term_by_hand():
    c = kernels.host_overhead_s()
    t = PhaseTime(compute=1e-3)
    assert layer._host_bound(t, 10).total == pytest.approx(1e-3)  # 10 launches x 45 us < 1 ms
    assert layer._host_bound(t, 100).total == pytest.approx(100 * c)
    assert layer._host_bound(t, 10, serial=2e-3).total == pytest.approx(2e-3)
    # after the sync: 20 launches on the host, then the GPU time before the next sync (forward 3 ms, of which
    # the MoE block is 2 ms and 0.5 ms of it (router, shared expert) runs before the sync)
    serial = layer._after_sync_serial(Launches(30, 20), PhaseTime(compute=3e-3), PhaseTime(compute=2e-3), 0.5e-3)
    assert serial == pytest.approx(20 * c + 3e-3 - 1.5e-3)
    assert layer._after_sync_serial(Launches(30, 0), PhaseTime(compute=3e-3), PhaseTime(), 0.0) == 0.0
    assert c == pytest.approx(45 * US)


def test_the_serial_term_binds_when_host_heavy_experts_follow_a_gpu_heavy_attention(monkeypatch):
    # 64 local experts (EP 1): 128 expert GEMMs after the sync; a long sequence makes the attention side
    # GPU-heavy, so the host's expert launches cannot hide under it
    s = make_scenario(model={"moe": {"num_experts": 64, "top_k": 2, "expert_ffn_hidden_size": 256},
                             "activation": "swiglu", "seq_len": 65536},
                      parallelism={"data": 1}, training={"attention": "flash"})
    x, c = layer._Shape(s), kernels.host_overhead_s()
    n = launches(s, moe=True)
    assert n.after_sync == 7 + 1 + 2 * 64
    moe_f, _, _, before = layer._moe_block(s, s.gpu, x, paths())
    floored = layer.layer_time(s, s.gpu, paths(), moe=True).forward.total
    monkeypatch.setattr(kernels, "host_overhead_s", lambda: 0.0)
    gpu = layer.layer_time(s, s.gpu, paths(), moe=True).forward.total  # the GPU time alone
    serial = n.after_sync * c + gpu - (moe_f.total - before)
    assert serial > max(gpu, n.total * c)  # the case binds
    assert floored == pytest.approx(serial, rel=1e-12)
