"""Per-layer times (sim/costs/layer.py): the composition rules, with hand-made communication paths."""

from __future__ import annotations

import pytest

from sim.costs import flops, kernels, layer
from sim.costs.collectives import GroupPath, size_efficiency
from sim.costs.layer import Paths, PhaseTime

from .conftest import make_scenario

H, S = 1024, 2048  # GPT_SMALL


def gp(n: int, busbw: float = 100e9, latency: float = 2e-6, base: float = 10e-6) -> GroupPath:
    return GroupPath(n=n, busbw=busbw, all_reduce_busbw=busbw, p2p_bw=busbw, intra_latency_s=latency,
                     inter_latency_s=latency, base_latency_s=base, nodes=1, scale_out=False,
                     sm_contention=0.15)


def paths(t: int = 1, c: int = 1) -> Paths:
    return Paths(tp=gp(t), cp=gp(c), ep=gp(1))


def lt(t=1, sp=True, recompute="none", overlap=False, c=1, **model):
    s = make_scenario(model=model or None,
                      parallelism={"tensor": t, "context": c, "sequence_parallel": sp,
                                   "activation_recompute": recompute, "tp_comm_overlap": overlap},
                      training={"attention": "flash"})
    return s, layer.layer_time(s, s.gpu, paths(t, c), moe=False)


def test_no_tp_no_tp_comm():
    _, t = lt(t=1)
    assert t.forward.tp_comm == 0.0 and t.backward.tp_comm == 0.0
    assert t.forward.cp_comm == 0.0


@pytest.mark.parametrize("t", [2, 4, 8])
def test_tp_comm_with_sequence_parallel(t):
    _, lt_ = lt(t=t, sp=True)
    size = 2.0 * S * H  # bf16 b s h bytes
    ag = 10e-6 + (t - 1) * 2e-6 + (t - 1) / t * size / (100e9 * size_efficiency(size))  # AG = RS
    assert lt_.forward.tp_comm == pytest.approx(2 * (ag + ag), rel=1e-12)  # after attention and after MLP
    assert lt_.backward.tp_comm == pytest.approx(lt_.forward.tp_comm, rel=1e-12)


@pytest.mark.parametrize("t", [2, 8])
def test_tp_comm_without_sequence_parallel(t):
    _, lt_ = lt(t=t, sp=False)
    size = 2.0 * S * H
    ar = 10e-6 + 2 * (t - 1) * 2e-6 + 2 * (t - 1) / t * size / (100e9 * size_efficiency(size))
    assert lt_.forward.tp_comm == pytest.approx(2 * ar, rel=1e-12)


def test_tp_comm_overlap_hides_communication():
    _, plain = lt(t=8, overlap=False)
    _, over = lt(t=8, overlap=True)
    assert over.forward.tp_comm < plain.forward.tp_comm
    assert over.forward.overlapped_comm + over.forward.tp_comm == pytest.approx(plain.forward.tp_comm)
    # overlapping can only help (equal when both passes sit on the host-dispatch floor)
    assert over.forward.total <= plain.forward.total * (1 + 1e-12)
    assert over.backward.total <= plain.backward.total * (1 + 1e-12)


def test_forward_compute_is_at_least_the_gemm_flops_at_best_efficiency():
    s, t = lt(t=1)
    matmul = flops.layer_matmul_params(s.model)  # 12 h^2
    best = 989.4e12 * 0.803
    assert t.forward.compute >= 2 * S * matmul / best
    assert t.backward.compute >= 2 * t.forward.compute * 0.99  # backward GEMMs 2x, attention 2.5x


@pytest.mark.parametrize("t_", [1, 4])
def test_full_recompute_adds_one_forward(t_):
    _, none = lt(t=t_, recompute="none")
    _, full = lt(t=t_, recompute="full")
    assert full.forward.total == pytest.approx(none.forward.total)
    assert full.backward.total == pytest.approx(none.backward.total + none.forward.total, rel=1e-12)


def test_selective_recompute_adds_core_attention_only():
    big = {"hidden_size": 8192, "ffn_hidden_size": 32768, "num_attention_heads": 64, "num_kv_heads": 64}
    _, none = lt(recompute="none", **big)
    _, sel = lt(recompute="selective", **big)
    _, full = lt(recompute="full", **big)
    extra = sel.backward.total - none.backward.total
    s = make_scenario(training={"attention": "flash"})
    attention = kernels.flash_attention_time(s.gpu, 64, S, S, 128, causal=True)
    assert extra == pytest.approx(attention, rel=1e-9)
    assert none.backward.total < sel.backward.total < full.backward.total


def test_selective_recompute_of_a_host_bound_layer_adds_its_launch():
    # the small layer's backward is host-bound (33 launches x 45 us > its GPU time): the recomputed attention
    # kernel adds one launch to the floor, its GPU time hides under it
    _, none = lt(recompute="none")
    _, sel = lt(recompute="selective")
    assert none.backward.total == pytest.approx(2 * 16 * kernels.host_overhead_s(), rel=1e-12)
    assert sel.backward.total - none.backward.total == pytest.approx(kernels.host_overhead_s(), rel=1e-9)


def test_context_parallel_ring_exposes_only_the_excess_transfer():
    _, t = lt(c=2)
    assert t.forward.cp_comm >= 0.0
    assert t.forward.overlapped_comm > 0.0


def test_phase_time_algebra():
    a = PhaseTime(compute=1.0, tp_comm=0.5, overlapped_comm=2.0, contention=0.1)
    b = PhaseTime(compute=2.0, cp_comm=0.25, overlapped_comm=1.0, contention=0.4)
    total = a + b
    assert total.total == pytest.approx(a.total + b.total)
    assert total.contention == pytest.approx((2.0 * 0.1 + 1.0 * 0.4) / 3.0)
    assert a.scaled(0.5).total == pytest.approx(a.total / 2)
    assert (PhaseTime() + PhaseTime()).total == 0.0


def test_optimizer_time_hand_value():
    s = make_scenario()
    # AdamW: 34 bytes read + written per local parameter at HBM speed (> 100 MB: full efficiency)
    assert layer.optimizer_time(s, s.gpu, 1e9) == pytest.approx(34e9 / (3.35e12 * 0.85))


@pytest.mark.parametrize(("batches", "seq", "fused"), [
    (4, 1024, True), (8, 2048, True), (2, 1024, False), (10, 2048, False),  # micro-batch x local heads
    (4, 8192, False),  # longer than the kernel's 4096 keys
    (4, 128, False), (8, 128, True),  # keys <= 128: 2 rows per warp, 4 warps -> 8 rows per block
    (4, 1022, False),  # keys not a multiple of 4
])
def test_fused_softmax_availability_follows_megatron(batches, seq, fused):
    assert layer.fused_softmax_applies(batches, seq) is fused


def test_unfused_attention_falls_back_to_the_fp32_torch_softmax():
    def attention(t):
        s = make_scenario(parallelism={"tensor": t, "sequence_parallel": False}, training={"attention": "unfused"},
                          model={"seq_len": 1024})
        x = layer._Shape(s)
        return s, x, layer._attention(s, s.gpu, x, paths(t).cp, backward=False).compute

    # 16 heads: TP 4 leaves 4 local heads (fused), TP 8 leaves 2 (torch fallback)
    s4, x4, fused = attention(4)
    s8, x8, fallback = attention(8)
    gemm = lambda s, x: 2 * kernels.gemm_time(s.gpu, "bf16", x.seq, x.seq, x.d, x.b * x.a / x.t)  # noqa: E731
    scores = lambda x: x.b * x.a / x.t * x.seq * x.seq  # noqa: E731
    assert fused == pytest.approx(gemm(s4, x4) + kernels.hbm_time(s4.gpu, (4 + 3) * scores(x4)))
    assert fallback == pytest.approx(gemm(s8, x8) + kernels.hbm_time(s8.gpu, (37 + 3) * scores(x8)))


def test_fallback_softmax_raises_the_host_dispatch_floor():
    s = make_scenario(parallelism={"tensor": 8, "sequence_parallel": False}, training={"attention": "unfused"},
                      model={"seq_len": 1024, "hidden_size": 256, "ffn_hidden_size": 1024})
    t = layer.layer_time(s, s.gpu, paths(8), moe=False)
    per_kernel = kernels.host_overhead_s()
    # tiny layer: both passes sit on the host floor, with 4 more kernels forward (8 backward)
    assert t.forward.total == pytest.approx((19 + 4) * per_kernel)
    assert t.backward.total == pytest.approx(2 * (19 + 4) * per_kernel)


def test_cross_entropy_traffic_hand_value():
    s = make_scenario(model={"hidden_size": 256, "ffn_hidden_size": 1024, "vocab_size": 65536})
    x = layer._Shape(s)
    head = layer.head_time(s, s.gpu, paths())
    gemm = kernels.gemm_time(s.gpu, "bf16", x.tokens, 65536, 256)
    norm = kernels.hbm_time(s.gpu, 2.0 * 2 * x.tokens * 256)
    assert head.forward.compute == pytest.approx(gemm + kernels.hbm_time(s.gpu, 38 * x.tokens * 65536) + norm)
    assert head.backward.compute == pytest.approx(2 * gemm + kernels.hbm_time(s.gpu, 14 * x.tokens * 65536)
                                                  + 2 * norm)
