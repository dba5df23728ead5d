"""MoE expert-side costs (sim/costs/moe.py) against hand-computed values, and the EP all-to-all figures of
the fabric (sim/network/paths.py ``a2a_paths``)."""

from __future__ import annotations

import math

import pytest

from sim import catalog
from sim.costs import fp8, kernels, layer, moe
from sim.costs.collectives import GroupPath, size_efficiency
from sim.costs.layer import Paths
from sim.network.graph import build_fabric
from sim.network.paths import a2a_paths
from sim.specs._schema import build
from sim.specs.enums import Framework, Schedule
from sim.specs.topology import TopologySpec

from .conftest import make_scenario

MOE = {"num_experts": 16, "top_k": 4, "expert_ffn_hidden_size": 512}
BIG = 17179869184  # bytes: size efficiency 1.0


def gp(n: int, up: float = 0.0, out: float = 0.0, nodes: int = 1, peers: int = 0, busbw: float = 100e9) -> GroupPath:
    return GroupPath(n=n, busbw=busbw, all_reduce_busbw=busbw, p2p_bw=busbw, intra_latency_s=2e-6,
                     inter_latency_s=5e-6, base_latency_s=10e-6, nodes=nodes, scale_out=nodes > 1,
                     sm_contention=0.15, a2a_up_bw=up, a2a_out_bw=out, domain_peers=peers)


def moe_scenario(ep: int = 4, **par):
    return make_scenario(model={"moe": MOE}, parallelism={"data": 4, "expert": ep, **par},
                         training={"attention": "flash"})


def test_a2a_time_takes_the_slower_side_plus_one_hop():
    assert size_efficiency(BIG) == 1.0
    inside = gp(8, up=400e9, out=math.inf, peers=8)
    assert moe.a2a_time(BIG, inside) == pytest.approx(10e-6 + 2e-6 + BIG / 400e9, rel=1e-12)
    across = gp(16, up=900e9, out=100e9, nodes=2, peers=8)
    assert moe.a2a_time(BIG, across) == pytest.approx(10e-6 + 5e-6 + BIG / 100e9, rel=1e-12)


def test_a2a_time_without_figures_falls_back_to_the_ring_busbw():
    # nccl-tests all-to-all: (n-1)/n S / busbw + (n-1) steps of latency
    path = gp(8)
    assert moe.a2a_time(BIG, path) == pytest.approx(10e-6 + 7 * 2e-6 + 7 / 8 * BIG / 100e9, rel=1e-12)


def test_deepep_sends_each_token_once_per_remote_node():
    path = gp(16, up=800e9, out=100e9, nodes=2, peers=8)
    tokens, k = BIG / 8, 8
    copies = tokens * k
    remote = 1 * (1 - 0.5**8)  # one remote node; P(at least one of 8 experts on it)
    t_inter = tokens * remote / (100e9 * 8 / 16)  # buffer rate back to the GPU's own NIC rate
    t_intra = copies * 7 / 8 / (800e9 * 7 / 16)
    assert moe.deepep_time(copies, tokens, k, path) == pytest.approx(15e-6 + max(t_inter, t_intra), rel=1e-12)
    # NCCL all-to-all moves every routed copy that leaves the node: 8x the tokens' bytes here
    assert moe.a2a_time(copies, path) > 3 * moe.deepep_time(copies, tokens, k, path)


def test_tokens_per_local_expert():
    s = moe_scenario(ep=4)
    # 2048 tokens x top-4 copies of the 4 EP ranks (ETP = TP = 1) over 16 experts
    assert moe.tokens_per_local_expert(s, 2048) == 2048 * 4 * 4 / 16


def test_balanced_routing_has_no_imbalance():
    assert moe.routing_imbalance(moe_scenario()) == 1.0


def test_grouped_gemm_fraction_interpolates_the_catalog_curve_for_a_grouped_kernel():
    points = catalog.moe_table()["grouped_gemm"]["points"]
    (x0, y0), (x1, y1) = points[0], points[1]
    mid = math.sqrt(x0 * x1)  # halfway in log
    tt = Framework.TORCHTITAN
    assert moe.grouped_gemm_fraction(mid, tt) == pytest.approx((y0 + y1) / 2, rel=1e-12)
    assert moe.grouped_gemm_fraction(1.0, tt) == y0 and moe.grouped_gemm_fraction(1e9, tt) == points[-1][1]


def test_per_expert_gemms_run_at_the_dense_efficiency():
    # Megatron-Core's TE grouped linear (one cuBLAS GEMM per expert) and DeepSpeed-MoE: fraction 1 at any size
    for framework in (Framework.MEGATRON_CORE, Framework.DEEPSPEED):
        assert moe.grouped_gemm_fraction(512.0, framework) == 1.0
        assert moe.grouped_gemm_fraction(2048.0, framework) == 1.0


def test_grouped_gemm_time_is_the_experts_dense_gemms_over_the_fraction():
    s = moe_scenario()
    gpu = s.gpu
    rows, n, k = 1024.0, 1024.0, 1024.0
    flops = 2 * rows * n * k
    one = flops / (gpu.peak_flops("bf16") * kernels.gemm_efficiency(gpu, "bf16", flops))
    tt = Framework.TORCHTITAN
    assert moe.grouped_gemm_time(gpu, "bf16", rows, 4, n, k, tt) == pytest.approx(
        4 * one / moe.grouped_gemm_fraction(rows, tt), rel=1e-12)
    assert moe.grouped_gemm_time(gpu, "bf16", rows, 4, n, k, Framework.MEGATRON_CORE) == pytest.approx(
        4 * one, rel=1e-12)
    assert moe.grouped_gemm_time(gpu, "bf16", 0, 4, n, k, tt) == 0.0


def test_a2a_overlap_fraction_counts_steady_1f1b_pairs():
    assert moe.a2a_overlap_fraction(Schedule.ONE_F_ONE_B, 1, 1, 4) == 1.0
    # p = 2, m = 4: rank 0 warms up one forward (F0) and pairs F1..F3 with a backward; rank 1 pairs all four
    assert moe.a2a_overlap_fraction(Schedule.ONE_F_ONE_B, 2, 1, 4) == pytest.approx(7 / 8)
    assert moe.a2a_overlap_fraction(Schedule.GPIPE, 2, 1, 4) == 0.0


def test_overlap_split():
    assert moe.overlap_split(3.0, 2.0, 0.5) == (2.0, 1.0)
    assert moe.overlap_split(1.0, 5.0, 1.0) == (0.0, 1.0)


def paths(ep: GroupPath) -> Paths:
    return Paths(tp=gp(1), cp=gp(1), ep=ep, etp=gp(1))


def test_moe_layer_reports_ep_comm_not_tp_comm():
    s = moe_scenario(ep=4)
    ep = gp(4, up=300e9, out=math.inf, peers=4)
    t = layer.layer_time(s, s.gpu, paths(ep), moe=True)
    tokens = 2048.0
    dispatch = moe.a2a_time(2.0 * tokens * 1024 * 4, ep)  # bf16 copies of top-4 routed tokens
    assert t.forward.ep_comm == pytest.approx(2 * dispatch, rel=1e-12)  # dispatch + combine
    assert t.backward.ep_comm == pytest.approx(2 * dispatch, rel=1e-12)
    assert t.forward.tp_comm == 0.0


def test_shared_expert_overlap_hides_dispatch_under_the_shared_expert():
    shared = {**MOE, "shared_experts": 1}
    ep = gp(4, up=50e9, out=math.inf, peers=4)
    plain = make_scenario(model={"moe": shared}, parallelism={"data": 4, "expert": 4})
    over = make_scenario(model={"moe": shared}, parallelism={"data": 4, "expert": 4, "moe_shared_expert_overlap": True})
    a = layer.layer_time(plain, plain.gpu, paths(ep), moe=True).forward
    b = layer.layer_time(over, over.gpu, paths(ep), moe=True).forward
    assert b.ep_comm < a.ep_comm
    assert b.ep_comm + b.overlapped_comm == pytest.approx(a.ep_comm, rel=1e-12)


def test_a2a_overlap_hides_only_the_steady_share():
    ep = gp(4, up=20e9, out=math.inf, peers=4)  # slow: the comm exceeds the other pass's compute
    base = {"data": 4, "expert": 4, "pipeline": 2}
    plain = make_scenario(model={"moe": MOE}, parallelism=base)
    over = make_scenario(model={"moe": MOE}, parallelism={**base, "moe_a2a_overlap": True})
    a = layer.layer_time(plain, plain.gpu, paths(ep), moe=True)
    b = layer.layer_time(over, over.gpu, paths(ep), moe=True)
    share = moe.a2a_overlap_fraction(Schedule.ONE_F_ONE_B, 2, 1, over.num_microbatches)
    assert 0 < share < 1
    assert b.forward.overlapped_comm <= share * a.forward.ep_comm + 1e-15
    assert b.forward.ep_comm + b.forward.overlapped_comm == pytest.approx(a.forward.ep_comm, rel=1e-12)


def _fabric(name: str, gpus: int):
    return build_fabric(build(TopologySpec, catalog.topology_mapping(name), "topology"), gpus)


def test_a2a_paths_inside_one_node():
    fabric = _fabric("dgx-h100-superpod", 8)
    path = a2a_paths(fabric, "hopper", [list(range(8))])
    # 7/8 of the buffer through the GPU's NVLink port at the point-to-point efficiency
    assert path.a2a_up_bw == pytest.approx(450e9 * 0.88 * 8 / 7, rel=1e-9)
    assert path.a2a_out_bw == math.inf and path.domain_peers == 8


def test_a2a_paths_across_two_nodes():
    fabric = _fabric("dgx-h100-superpod", 16)
    path = a2a_paths(fabric, "hopper", [list(range(16))])
    # half the buffer leaves the node through the GPU's own 400 Gb/s NIC (8 NICs per node)
    assert path.a2a_out_bw == pytest.approx(50e9 * 0.97 * 16 / 8, rel=1e-9)
    assert path.a2a_up_bw == pytest.approx(450e9 * 0.88 * 16 / 7, rel=1e-9)
    assert path.domain_peers == 8 and path.nodes == 2


def test_natural_routing_imbalance_shrinks_with_local_experts_and_is_capped_by_capacity():
    excess = catalog.moe_table()["routing"]["natural_max_over_mean"]["value"] - 1
    natural = {**MOE, "routing": "natural"}
    s = make_scenario(model={"moe": natural}, parallelism={"data": 4, "expert": 4})  # 4 local experts
    assert moe.routing_imbalance(s) == pytest.approx(1 + excess / 2)
    capped = make_scenario(model={"moe": {**natural, "capacity_factor": 1.05}}, parallelism={"data": 4, "expert": 4})
    assert moe.routing_imbalance(capped) == pytest.approx(min(1.05, 1 + excess / 2))


# ---- kernels launched and the experts' fp8 quantize ----------------------------------------------------------
def test_forward_kernels_count_one_gemm_per_local_expert_and_linear():
    # 16 experts over EP 4: 4 local experts x 2 linears; alltoall router 31 + dispatch 7 + activation 1
    assert moe.forward_kernels(moe_scenario(ep=4)) == moe.MoEKernels(31, 7 + 1 + 2 * 4)
    assert moe.forward_kernels(moe_scenario(ep=2)).total == 31 + 7 + 1 + 2 * 8
    # the flex (DeepEP) dispatcher fuses the EP preprocess into the router's 17 kernels
    assert moe.forward_kernels(moe_scenario(ep=4, moe_dispatcher="deepep")) == moe.MoEKernels(17, 4 + 1 + 2 * 4)


def test_unfused_router_launches_72_kernels():
    # Megatron-LM DeepSeek-V3 GB200 report sec. 2.1.4: 72 kernels before --moe-router-fusion, 31 after
    assert moe.forward_kernels(moe_scenario(ep=4, moe_router_fusion=False)).router == 72


def test_fp8_adds_one_quantize_kernel_per_local_expert_and_linear():
    s = make_scenario(model={"moe": MOE}, parallelism={"data": 4, "expert": 4},
                      training={"attention": "flash", "precision": "fp8", "fp8_recipe": "tensorwise"})
    assert moe.forward_kernels(s).total == 31 + 7 + 1 + 2 * 4 * 2


def test_dropless_megatron_blocks_sync_with_the_host():
    assert moe.host_sync(moe_scenario())
    capped = make_scenario(model={"moe": {**MOE, "capacity_factor": 1.0}}, parallelism={"data": 4, "expert": 4},
                           training={"attention": "flash"})
    assert not moe.host_sync(capped)  # token-drop: every expert padded to its capacity, static shapes


def test_expert_quantize_time_by_hand():
    s = make_scenario(model={"moe": MOE}, parallelism={"data": 4, "expert": 4},
                      training={"attention": "flash", "precision": "fp8", "fp8_recipe": "tensorwise"})
    h, f, up, rows, local = 1024.0, 512.0, 1024.0, 8192.0, 4  # a gated expert: up = 2 f
    m = s.num_microbatches
    # tensorwise: 6 bytes per element moved (amax read, cast read + write); weights cast once per step (TE)
    fwd = 6 * rows * (h + f) + 6 * local * (h * up + f * h) / m
    bwd = 6 * rows * (up + h)
    assert fp8.expert_quantize_time(s, s.gpu, rows, local, h, up, f, backward=False) == pytest.approx(
        8 * kernels.hbm_time(s.gpu, fwd / 8), rel=1e-12)
    assert fp8.expert_quantize_time(s, s.gpu, rows, local, h, up, f, backward=True) == pytest.approx(
        8 * kernels.hbm_time(s.gpu, bwd / 8), rel=1e-12)
    assert fp8.expert_quantize_time(moe_scenario(), s.gpu, rows, local, h, up, f, backward=False) == 0.0


def test_fp8_expert_block_includes_the_experts_quantize(monkeypatch):
    fp = make_scenario(model={"moe": MOE}, parallelism={"data": 4, "expert": 4},
                       training={"attention": "flash", "precision": "fp8", "fp8_recipe": "tensorwise"})
    path = gp(4, up=400e9, out=math.inf, peers=4)
    tokens = 2048.0
    rows = moe.tokens_per_local_expert(fp, tokens) * 4  # over the 4 local experts, balanced routing
    # GPT_SMALL's GeLU experts: up = f = 512
    quant = [fp8.expert_quantize_time(fp, fp.gpu, rows, 4, 1024, 512, 512, backward=b) for b in (False, True)]
    with_q = moe.moe_block_times(fp, fp.gpu, tokens, 1, path, gp(1))
    monkeypatch.setattr(fp8, "expert_quantize_time", lambda *a, **k: 0.0)
    without = moe.moe_block_times(fp, fp.gpu, tokens, 1, path, gp(1))
    assert min(quant) > 0
    assert with_q.compute_fwd - without.compute_fwd == pytest.approx(quant[0], rel=1e-9)
    assert with_q.compute_bwd - without.compute_bwd == pytest.approx(quant[1], rel=1e-9)


def test_mxfp8_dispatches_bf16_where_blockwise_dispatches_fp8():
    # DeepEP's FP8 dispatch takes 1x128-scaled fp8; MXFP8 EP dispatch and TP gathers are not supported
    # (Megatron-LM DeepSeek-V3 GB200 report sec. 2.1.3): bf16 bytes, as without fp8
    def scen(**training):
        return make_scenario(model={"moe": MOE}, parallelism={"data": 8, "expert": 8, "moe_dispatcher": "deepep"},
                             training={"attention": "flash", **training}, gpu="B200", topology="dgx-b200")
    path = gp(8, up=400e9, out=math.inf, peers=8)
    tokens = 4096.0

    def comm(s):
        return moe._dispatch_combine(s, tokens, 1.0, path, gp(1))

    bf16, mx = scen(), scen(precision="fp8", fp8_recipe="mxfp8")
    block = scen(precision="fp8", fp8_recipe="blockwise")
    assert comm(mx) == pytest.approx(comm(bf16), rel=1e-12)
    copies = 2.0 * tokens * 1024 * 4  # bf16 routed copies: tokens x hidden x top-4
    assert comm(block) == pytest.approx(moe.deepep_time(copies * moe.FP8_DISPATCH_BYTES / 2, 0, 4, path)
                                        + moe.deepep_time(copies, 0, 4, path), rel=1e-12)
    assert fp8.tp_gather_bytes_per_element(mx) == 2.0 and fp8.tp_gather_bytes_per_element(block) == 1.0
