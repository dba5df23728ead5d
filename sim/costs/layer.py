"""Time of one transformer layer (and the embedding / LM head) for one micro-batch on one GPU.

Every op of DESIGN.md §3 is costed with the roofline of ``kernels`` and the collectives of
``collectives``; backward GEMMs are 2x forward (data and weight gradients), flash-attention backward
2.5x forward. TP collectives sit on the critical path unless ``tp_comm_overlap``; the CP ring K/V
exchange overlaps attention blocks (Liu et al. 2023) and only its excess is exposed.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from sim import catalog
from sim.costs import fp8, kernels, shapes
from sim.costs import moe as moe_costs
from sim.costs.collectives import Collective, GroupPath, collective_time
from sim.specs.enums import (
    Activation,
    AttentionKernel,
    CudaGraphScope,
    Framework,
    Optimizer,
    Recompute,
    RecomputeModule,
)
from sim.specs.hardware import GpuSpec
from sim.specs.kernels import kernel_counts
from sim.specs.scenario import Scenario


@dataclass(frozen=True, slots=True)
class PhaseTime:
    """Seconds of one forward or backward pass of a block, split by what the GPU waits on."""

    compute: float = 0.0
    tp_comm: float = 0.0  # exposed TP communication
    cp_comm: float = 0.0  # exposed CP ring communication
    overlapped_comm: float = 0.0  # communication hidden under compute (slows it by contention)
    contention: float = 0.0  # the SM-contention factor of that hidden communication
    ep_comm: float = 0.0  # exposed EP token dispatch / combine (and expert-TP gather / scatter)

    @property
    def total(self) -> float:
        return self.compute + self.tp_comm + self.cp_comm + self.ep_comm + self.overlapped_comm * self.contention

    def __add__(self, other: PhaseTime) -> PhaseTime:
        hidden = self.overlapped_comm + other.overlapped_comm
        weight = (self.overlapped_comm * self.contention + other.overlapped_comm * other.contention)
        return PhaseTime(self.compute + other.compute, self.tp_comm + other.tp_comm,
                         self.cp_comm + other.cp_comm, hidden, weight / hidden if hidden else 0.0,
                         self.ep_comm + other.ep_comm)

    def scaled(self, k: float) -> PhaseTime:
        return PhaseTime(self.compute * k, self.tp_comm * k, self.cp_comm * k, self.overlapped_comm * k,
                         self.contention, self.ep_comm * k)


@dataclass(frozen=True, slots=True)
class LayerTime:
    """Forward and backward (recompute included) of one layer, one micro-batch."""

    forward: PhaseTime
    backward: PhaseTime


@dataclass(frozen=True, slots=True)
class Paths:
    """Communication paths of the groups one GPU belongs to."""

    tp: GroupPath
    cp: GroupPath
    ep: GroupPath
    etp: GroupPath | None = None  # expert TP (None: the TP path, as when ETP = TP)


class _Shape:
    """Per-GPU dimensions of a layer for one micro-batch."""

    def __init__(self, s: Scenario) -> None:
        m, p = s.model, s.parallelism
        self.t, self.c = p.tensor, p.context
        self.seq = m.seq_len / p.context
        self.tokens = p.micro_batch_size * self.seq
        self.b = p.micro_batch_size
        self.h, self.f = m.hidden_size, m.ffn_hidden_size
        self.d: float = m.head_dim  # MLA: the mean of the query/key and value head widths
        self.a, self.g = m.num_attention_heads, m.num_kv_heads
        self.mla = m.mla
        self.rotary_width = (self.a + self.g) * self.d
        if m.mla is not None:
            # MLA's up-projections give every head its own K and V: the attention kernel sees a heads of
            # (d_qk + d_v) / 2 on average (its FLOPs: 2 s^2 a (d_qk + d_v)); rotary covers the query's rope
            # part and the one shared rotary key.
            self.g, self.d = self.a, (m.mla.qk_head_dim + m.mla.v_head_dim) // 2
            self.rotary_width = (self.a + 1) * m.mla.qk_rope_head_dim
        self.sp = shapes.sp_degree(p)
        self.dtype = s.training.precision.value
        self.passes = _elementwise_passes(s)


def _attention_gemms(gpu: GpuSpec, dtype: str, x: _Shape) -> float:
    """Forward time of the attention projections on one TP rank.

    GQA: the fused QKV and the output projection. MLA (Megatron-Core MLASelfAttention, DeepSeek-V2 §2.1): the
    query and KV down-projections are duplicated on every TP rank (not split), the up-projections and the
    output projection are split over TP by heads."""
    if x.mla is None:
        qkv = kernels.gemm_time(gpu, dtype, x.tokens, (x.a + 2 * x.g) * x.d / x.t, x.h)
        return qkv + kernels.gemm_time(gpu, dtype, x.tokens, x.h, x.a * x.d / x.t)
    r = x.mla
    q_heads = x.a * r.qk_head_dim / x.t
    if r.q_lora_rank is None:
        query = kernels.gemm_time(gpu, dtype, x.tokens, q_heads, x.h)
    else:
        query = (kernels.gemm_time(gpu, dtype, x.tokens, r.q_lora_rank, x.h)
                 + kernels.gemm_time(gpu, dtype, x.tokens, q_heads, r.q_lora_rank))
    kv = (kernels.gemm_time(gpu, dtype, x.tokens, r.kv_lora_rank + r.qk_rope_head_dim, x.h)
          + kernels.gemm_time(gpu, dtype, x.tokens, x.a * (r.qk_nope_head_dim + r.v_head_dim) / x.t, r.kv_lora_rank))
    return query + kv + kernels.gemm_time(gpu, dtype, x.tokens, x.h, x.a * r.v_head_dim / x.t)


def _gemms(gpu: GpuSpec, dtype: str, x: _Shape, mlp_width: float, gate: bool) -> float:
    """Forward time of the projection GEMMs of a layer on one TP rank (attention, MLP up/gate and down)."""
    up = kernels.gemm_time(gpu, dtype, x.tokens, (2 if gate else 1) * mlp_width / x.t, x.h)
    down = kernels.gemm_time(gpu, dtype, x.tokens, x.h, mlp_width / x.t)
    return _attention_gemms(gpu, dtype, x) + up + down


#: Memory passes (2-byte element reads + writes) of the fused elementwise ops of Megatron-Core (TE/Apex
#: kernels): a norm 2, a residual/dropout add 3, rotary 2 over Q and K; the activation is 3 (SwiGLU) or 2.
FUSED_PASSES = {"norm": 2, "residual": 3, "rotary": 2}


def _elementwise_passes(s: Scenario) -> dict[str, float]:
    """Passes per element of each elementwise op: Megatron-Core's fused kernels, or PyTorch eager /
    torch.compile for the PyTorch-native frameworks (catalog/frameworks.yaml ``compile``)."""
    gate = s.model.activation is Activation.SWIGLU
    if s.parallelism.framework is Framework.MEGATRON_CORE:
        return {**FUSED_PASSES, "activation": 3 if gate else 2}
    table = catalog.frameworks_table()["compile"]
    passes = dict(table["compiled_passes" if s.training.compile else "eager_passes"])
    if not gate:
        passes["activation"] = 2
    return passes


def _elementwise_bytes(x: _Shape, mlp_width: float, gate: bool) -> float:
    """Forward bytes of the memory-bound ops: two norms, two residual/dropout adds over h (sharded with
    SP), rotary on Q and K, the MLP activation, each at its passes per element (``_elementwise_passes``)."""
    p = x.passes
    hidden_passes = (2 * p["norm"] + 2 * p["residual"]) * x.tokens * x.h / x.sp
    rotary = p["rotary"] * x.tokens * x.rotary_width / x.t
    act = p["activation"] * x.tokens * mlp_width / x.t
    return 2.0 * (hidden_passes + rotary + act)


def _attention(s: Scenario, gpu: GpuSpec, x: _Shape, cp: GroupPath, backward: bool) -> PhaseTime:
    heads = x.b * x.a / x.t
    if s.training.attention is AttentionKernel.UNFUSED:
        dtype = kernels.half_dtype(gpu)
        gemm = 2 * kernels.gemm_time(gpu, dtype, x.seq, x.seq, x.d, heads)
        drop = 3 if s.model.dropout else 0
        per_score = SOFTMAX_BYTES[fused_softmax_applies(x.b * x.a // x.t, x.seq)]
        softmax = kernels.hbm_time(gpu, (per_score + drop) * heads * x.seq * x.seq)
        return PhaseTime(compute=(gemm + softmax) * (2 if backward else 1))
    whole = kernels.flash_attention_time(gpu, heads, x.seq * x.c, x.seq * x.c, x.d, True, backward) / x.c
    whole /= catalog.frameworks_table()["attention_backend"][s.parallelism.framework.value].get(gpu.arch, 1.0)
    if x.c == 1:
        return PhaseTime(compute=whole)
    # Ring attention: c blocks, each overlapped with passing the next K/V block (dK/dV as well
    # in backward) around the CP ring.
    block = whole / x.c
    kv = 2 * x.b * x.seq * max(1, x.g // x.t) * x.d * 2 * (2 if backward else 1)
    transfer = collective_time(Collective.SEND_RECV, kv, cp)
    exposed = (x.c - 1) * max(0.0, transfer - block)
    hidden = (x.c - 1) * min(transfer, block)
    return PhaseTime(compute=whole, cp_comm=exposed, overlapped_comm=hidden, contention=cp.sm_contention)


def _tp_comm(s: Scenario, x: _Shape, tp: GroupPath, gemm_time: float, backward: bool = False) -> PhaseTime:
    """Two TP collectives per pass (after attention and after the MLP), on the critical path. Under SP the
    forward all-gathers move fp8 where the fp8 recipe quantizes before gathering."""
    if x.t == 1:
        return PhaseTime()
    size = 2.0 * x.tokens * x.h
    if s.parallelism.sequence_parallel:
        gather = size if backward else x.tokens * x.h * fp8.tp_gather_bytes_per_element(s)
        comm = 2 * (collective_time(Collective.ALL_GATHER, gather, tp)
                    + collective_time(Collective.REDUCE_SCATTER, size, tp))
    else:
        comm = 2 * collective_time(Collective.ALL_REDUCE, size, tp)
    if s.parallelism.tp_comm_overlap:
        overlap = catalog.frameworks_table()["tp_overlap"][s.parallelism.framework.value]
        hidden = min(comm * overlap.get("hidden_fraction", 1.0), gemm_time)
        contention = 0.0 if overlap["copy_engine"] else tp.sm_contention
        return PhaseTime(tp_comm=comm - hidden, overlapped_comm=hidden, contention=contention)
    return PhaseTime(tp_comm=comm)


def _moe_block(s: Scenario, gpu: GpuSpec, x: _Shape,
               paths: Paths) -> tuple[PhaseTime, PhaseTime, PhaseTime, float]:
    """Forward, backward and recompute of an MoE block's expert side (``sim.costs.moe``), and the GPU time of its
    forward before the host sync (router, shared expert); with
    ``moe_a2a_overlap`` the steady-1F1B share of each pass's EP communication hides under the other pass's
    expert-side compute (a forward pairs with a backward of another micro-batch)."""
    t = moe_costs.moe_block_times(s, gpu, x.tokens, x.sp, paths.ep, paths.etp or paths.tp)
    c = paths.ep.sm_contention
    comm_f, hidden_f, comm_b, hidden_b = t.comm_fwd, t.hidden_fwd, t.comm_bwd, t.hidden_bwd
    p = s.parallelism
    if p.moe_a2a_overlap:
        share = moe_costs.a2a_overlap_fraction(p.schedule, p.pipeline, p.virtual_pipeline, s.num_microbatches)
        comm_f, more_f = moe_costs.overlap_split(comm_f, t.compute_bwd, share)
        comm_b, more_b = moe_costs.overlap_split(comm_b, t.compute_fwd, share)
        hidden_f, hidden_b = hidden_f + more_f, hidden_b + more_b
    forward = PhaseTime(compute=t.compute_fwd, ep_comm=comm_f, overlapped_comm=hidden_f, contention=c)
    backward = PhaseTime(compute=t.compute_bwd, ep_comm=comm_b, overlapped_comm=hidden_b, contention=c)
    return forward, backward, _moe_recompute(s, t, forward), t.before_sync_fwd


def _moe_recompute(s: Scenario, t: moe_costs.MoETimes, forward: PhaseTime) -> PhaseTime:
    """Backward work the MoE recompute modules add: ``moe`` re-runs the block's forward (its dispatch and
    combine included: Megatron checkpoints the whole MoELayer); else ``moe_act`` the experts' activation and
    ``shared_experts`` the shared expert."""
    mods = s.parallelism.selective_modules
    if RecomputeModule.MOE in mods:
        return forward
    extra = t.activation_fwd if RecomputeModule.MOE_ACT in mods else 0.0
    extra += t.shared_fwd if RecomputeModule.SHARED_EXPERTS in mods else 0.0
    return PhaseTime(compute=extra)


#: Bytes moved per attention score by the unfused softmax: Megatron's fused scaled-masked-softmax
#: kernel reads and writes bf16 (2 + 2); its PyTorch fallback (FusedScaleMaskSoftmax.forward_torch_
#: softmax) runs five fp32 kernels: cast (2 + 4), scale (4 + 4), masked_fill (4 + 4 + 1 mask),
#: softmax (4 + 4), cast back (4 + 2) -- 4 more kernels than the fused path (kernels.yaml torch_softmax_extra).
SOFTMAX_BYTES = {True: 4, False: 37}


def fused_softmax_applies(attn_batches: int, seq: float) -> bool:
    """Whether Megatron's fused causal softmax kernel runs (megatron/model/fused_softmax.py
    ``is_kernel_available``): 16 < seq <= 4096, seq % 4 == 0, and micro-batch x local heads a multiple
    of the kernel's batches per 128-thread block (4 rows of one warp each for seq > 128, else more)."""
    if not (16 < seq <= 4096 and seq % 4 == 0 and attn_batches % 4 == 0):
        return False
    pow2 = 1 << math.ceil(math.log2(seq))
    warp = min(pow2, 32)
    per_block = (128 // warp) * (2 if pow2 <= 128 else 1)
    return attn_batches % per_block == 0


@dataclass(frozen=True, slots=True)
class Launches:
    """Host launches of one layer's forward (a graphed part counts one launch): those before an MoE block's
    device-host sync and those after it (0 without a sync)."""

    before_sync: int
    after_sync: int = 0

    @property
    def total(self) -> int:
        return self.before_sync + self.after_sync


def _forward_launches(s: Scenario, x: _Shape, moe: bool) -> Launches:
    """Host launches of one layer's forward: Megatron-Core's kernels by side (catalog ``kernels.yaml``
    ``megatron_layer``: attention, MLP, MLA's extra, the fp32 softmax fallback's; one quantize per linear under
    fp8; an MoE block's from :func:`sim.costs.moe.forward_kernels`), one launch for each part
    ``training.cuda_graphs`` captures; or PyTorch eager / compiled counts for the PyTorch-native frameworks."""
    quant = fp8.extra_kernels(s, 1)
    moe_kernels = moe_costs.forward_kernels(s) if moe else None
    if s.parallelism.framework is not Framework.MEGATRON_CORE:
        table = catalog.frameworks_table()["compile"]
        n = table["compiled_forward_kernels" if s.training.compile else "eager_forward_kernels"]
        return Launches(n + quant * N_LINEARS + (moe_kernels.total if moe_kernels else 0))
    graphs = s.training.cuda_graphs
    counts = kernel_counts().megatron_layer
    attn = counts.attention[s.training.attention].value + quant * 2
    if s.training.attention is AttentionKernel.UNFUSED and not fused_softmax_applies(x.b * x.a // x.t, x.seq):
        attn += counts.torch_softmax_extra.value
    if x.mla is not None:
        attn += counts.mla_extra.value + quant * 3
    attn = 1 if CudaGraphScope.ATTN in graphs else attn
    mlp = counts.mlp.value + quant * 2
    if moe_kernels is None:
        return Launches(attn + (1 if CudaGraphScope.MLP in graphs else mlp))
    if CudaGraphScope.MOE in graphs:  # the whole block, router to combine, is one graph (token-drop only)
        return Launches(attn + 1)
    router_side = mlp + moe_kernels.router
    if CudaGraphScope.MOE_ROUTER in graphs:
        # the shared expert is captured with the router unless it overlaps the dispatch (Megatron
        # --cuda-graph-scope moe_router)
        overlapped = s.parallelism.moe_shared_expert_overlap
        router_side = 1 + (_shared_expert_kernels(s, quant) if overlapped else 0)
    if moe_costs.host_sync(s):
        return Launches(attn + router_side, moe_kernels.after_sync)
    return Launches(attn + router_side + moe_kernels.after_sync)


#: Projection GEMMs of a layer (QKV, out, MLP up/gate, MLP down).
N_LINEARS = 4


def _selective_recompute(s: Scenario, gpu: GpuSpec, x: _Shape, width: float, gate: bool, fwd_attn: PhaseTime,
                         elementwise: float) -> PhaseTime:
    """Backward work added by selective recompute as the framework defines it (frameworks.yaml
    ``selective_recompute``): Megatron's core attention, or torchtitan's op-level SAC (the GEMMs it does not
    save and every elementwise op)."""
    policy = catalog.frameworks_table()["selective_recompute"][s.parallelism.framework.value]
    extra = fwd_attn if policy["attention"] else PhaseTime()
    dtype, rate = x.dtype, fp8.gemm_rate(s)
    shapes = {"k": (x.g * x.d / x.t, x.h), "out": (x.h, x.a * x.d / x.t),
              "up_gate": (width / x.t, x.h) if gate else (x.h, width / x.t)}
    gemm = sum(kernels.gemm_time(gpu, dtype, x.tokens, *shapes[name]) for name in policy["gemms"]) / rate
    return extra + PhaseTime(compute=gemm + (elementwise if policy["elementwise"] else 0.0))


def _host_bound(t: PhaseTime, kernels_launched: float, serial: float = 0.0) -> PhaseTime:
    """A pass cannot run faster than the host dispatches its kernels (GPU starved otherwise), nor than
    ``serial``, host and GPU time that cannot overlap."""
    floor = max(kernels_launched * kernels.host_overhead_s(), serial)
    gap = floor - t.total
    return t + PhaseTime(compute=gap) if gap > 0 else t


def _after_sync_serial(launches: Launches, forward: PhaseTime, moe_f: PhaseTime, before_sync_moe: float) -> float:
    """Forward time of a dropless MoE layer when the host cannot run ahead across the block's device-host sync:
    after the sync the GPU's queue is empty, so the host's launches from the dispatch to the combine cannot hide
    under queued GPU work; the next layer's work before its sync (attention side, router) can only follow them.
    Per layer: the host time after the sync plus the GPU time before it (what the floor ``max(host, GPU)`` misses
    when the host-heavy expert side and the GPU-heavy attention side alternate)."""
    if not launches.after_sync:
        return 0.0
    gpu_after = moe_f.total - before_sync_moe
    return launches.after_sync * kernels.host_overhead_s() + forward.total - gpu_after


def layer_time(s: Scenario, gpu: GpuSpec, paths: Paths, moe: bool) -> LayerTime:
    """Forward and backward time of one (dense or MoE) layer for one micro-batch."""
    m = s.model
    x = _Shape(s)
    gate = m.activation is Activation.SWIGLU
    is_moe = moe and m.moe is not None
    width = 0 if is_moe else m.ffn_hidden_size  # an MoE block's MLP side is costed by sim.costs.moe
    gemm = _gemms(gpu, x.dtype, x, width, gate) / fp8.gemm_rate(s)
    elementwise = kernels.hbm_time(gpu, _elementwise_bytes(x, width, gate))
    linears = fp8.layer_linears(s, x.tokens, width, gate)
    quant_fwd = fp8.quantize_time(s, gpu, linears, backward=False)
    quant_bwd = fp8.quantize_time(s, gpu, linears, backward=True)
    fwd_attn = _attention(s, gpu, x, paths.cp, backward=False)
    fwd_tp = _tp_comm(s, x, paths.tp, gemm)
    bwd_tp = _tp_comm(s, x, paths.tp, gemm, backward=True)
    moe_f, moe_b, moe_rc, before_sync = _moe_block(s, gpu, x, paths) if is_moe else (
        PhaseTime(), PhaseTime(), PhaseTime(), 0.0)
    forward = PhaseTime(compute=gemm + elementwise + quant_fwd) + fwd_attn + fwd_tp + moe_f
    backward = (PhaseTime(compute=2 * gemm + 2 * elementwise + quant_bwd)
                + _attention(s, gpu, x, paths.cp, backward=True) + bwd_tp + moe_b)
    launches = _forward_launches(s, x, is_moe)
    forward = _host_bound(forward, launches.total, _after_sync_serial(launches, forward, moe_f, before_sync))
    recompute = s.parallelism.activation_recompute
    if recompute is Recompute.FULL:
        return LayerTime(forward, _host_bound(backward, 2 * launches.total) + forward)
    if recompute is Recompute.SELECTIVE and s.parallelism.recompute_modules is not None:
        backward = backward + _module_recompute(s, gpu, x, width, gate, fwd_attn, fwd_tp) + moe_rc
    elif recompute is Recompute.SELECTIVE:
        backward = backward + _selective_recompute(s, gpu, x, width, gate, fwd_attn, elementwise)
    return LayerTime(forward, _host_bound(backward, 2 * launches.total + _recompute_launches(s, is_moe)))


def _recompute_launches(s: Scenario, moe: bool) -> int:
    """Kernels selective recompute re-launches in the backward pass (eager: a recomputed module launches its
    forward kernels again): Megatron-Core's ``recompute_modules``, or its default (the core attention)."""
    p = s.parallelism
    if p.activation_recompute is not Recompute.SELECTIVE or p.framework is not Framework.MEGATRON_CORE:
        return 0
    quant = fp8.extra_kernels(s, 1)
    counts = kernel_counts().megatron_layer
    attention = counts.attention[s.training.attention].value - counts.attention[AttentionKernel.FLASH].value + 1
    shared = _shared_expert_kernels(s, quant) if moe else 0
    mods = p.selective_modules
    if RecomputeModule.MOE in mods and moe:
        # the whole block again: router, dispatch to combine, shared expert (moe_act / shared_experts inside it)
        mods = mods - {RecomputeModule.MOE_ACT, RecomputeModule.SHARED_EXPERTS}
        whole_block = moe_costs.forward_kernels(s).total + shared
    else:
        whole_block = 0
    per_module = {
        RecomputeModule.CORE_ATTN: attention,
        RecomputeModule.LAYERNORM: 2,
        RecomputeModule.MLA_UP_PROJ: counts.mla_up_proj.value + 2 * quant if s.model.mla is not None else 0,
        RecomputeModule.MLP: counts.mlp.value + 2 * quant if not moe else 0,
        RecomputeModule.MOE_ACT: 1 if moe else 0,
        RecomputeModule.SHARED_EXPERTS: shared,
    }
    return whole_block + sum(per_module[mod] for mod in mods if mod in per_module)


def _shared_expert_kernels(s: Scenario, quant: int) -> int:
    """Kernels the shared expert launches per forward (none without one; catalog ``kernels.yaml``
    ``shared_expert``), with ``quant`` per fp8 linear."""
    moe = s.model.moe
    if moe is None or moe.shared_experts <= 0:
        return 0
    return kernel_counts().megatron_layer.shared_expert.value + 2 * quant


def _module_recompute(s: Scenario, gpu: GpuSpec, x: _Shape, width: float, gate: bool, fwd_attn: PhaseTime,
                      fwd_tp: PhaseTime) -> PhaseTime:
    """Backward work Megatron-Core's ``recompute_modules`` add outside the MoE block (``_moe_recompute``): the
    core attention's forward, the two norms, MLA's up-projection GEMMs and rotary, a dense layer's MLP (its
    GEMMs, activation and its TP all-gather / reduce-scatter pair)."""
    mods, rate = s.parallelism.selective_modules, fp8.gemm_rate(s)
    extra = fwd_attn if RecomputeModule.CORE_ATTN in mods else PhaseTime()
    compute = 0.0
    if RecomputeModule.LAYERNORM in mods:
        compute += kernels.hbm_time(gpu, 2.0 * 2 * x.passes["norm"] * x.tokens * x.h / x.sp)
    if RecomputeModule.MLA_UP_PROJ in mods and x.mla is not None:
        r = x.mla
        up = kernels.gemm_time(gpu, x.dtype, x.tokens, x.a * (r.qk_nope_head_dim + r.v_head_dim) / x.t,
                               r.kv_lora_rank)
        if r.q_lora_rank is not None:
            up += kernels.gemm_time(gpu, x.dtype, x.tokens, x.a * r.qk_head_dim / x.t, r.q_lora_rank)
        compute += up / rate + kernels.hbm_time(gpu, 2.0 * x.passes["rotary"] * x.tokens * x.rotary_width / x.t)
    if RecomputeModule.MLP in mods and width:
        compute += (kernels.gemm_time(gpu, x.dtype, x.tokens, (2 if gate else 1) * width / x.t, x.h)
                    + kernels.gemm_time(gpu, x.dtype, x.tokens, x.h, width / x.t)) / rate
        compute += kernels.hbm_time(gpu, 2.0 * x.passes["activation"] * x.tokens * width / x.t)
        extra = extra + fwd_tp.scaled(0.5)
    return extra + PhaseTime(compute=compute)


def embedding_time(s: Scenario, gpu: GpuSpec) -> LayerTime:
    """Embedding lookup (first stage): a gather forward, a scatter-add backward."""
    x = _Shape(s)
    nbytes = 2.0 * 2 * x.tokens * x.h
    return LayerTime(PhaseTime(compute=kernels.hbm_time(gpu, nbytes)),
                     PhaseTime(compute=kernels.hbm_time(gpu, 2 * nbytes)))


#: Bytes per logit moved by Megatron's unfused vocab-parallel cross-entropy (megatron/core/
#: tensor_parallel/cross_entropy.py), forward and backward. Forward: bf16 -> fp32 cast (2 + 4), max
#: (4), subtract max (4 + 4), exp (4 + 4), sum (4), normalise in place (4 + 4) = 38. Backward: scale
#: the saved softmax by the loss gradient (4 + 4), cast back to bf16 for the LM-head GEMMs (4 + 2) = 14.
CROSS_ENTROPY_BYTES = (38, 14)


def mtp_time(s: Scenario, gpu: GpuSpec, paths: Paths, block: LayerTime) -> LayerTime:
    """The multi-token-prediction modules (last stage, after the main model as in Megatron-Core's
    MultiTokenPredictionBlock): per module, the RMSNorms of hidden state and embedding, the ``2h -> h``
    projection, one transformer ``block`` and another pass through the (shared) LM head and loss."""
    x = _Shape(s)
    proj = kernels.gemm_time(gpu, x.dtype, x.tokens, x.h / x.t, 2 * x.h) / fp8.gemm_rate(s)
    norms = kernels.hbm_time(gpu, 2.0 * 2 * 2 * x.tokens * x.h / x.sp)
    head = head_time(s, gpu, paths)
    one = LayerTime(block.forward + head.forward + PhaseTime(compute=proj + norms),
                    block.backward + head.backward + PhaseTime(compute=2 * proj + 2 * norms))
    k = s.model.mtp_layers
    return LayerTime(one.forward.scaled(k), one.backward.scaled(k))


def head_time(s: Scenario, gpu: GpuSpec, paths: Paths) -> LayerTime:
    """Final norm, LM head GEMM (vocab-parallel) and cross-entropy (last stage)."""
    x = _Shape(s)
    vocab = s.model.vocab_size / x.t
    # The LM head stays in 16 bit under every fp8 recipe (module docstring of sim/costs/fp8.py).
    gemm = kernels.gemm_time(gpu, kernels.half_dtype(gpu) if x.dtype == "fp8" else x.dtype, x.tokens, vocab, x.h)
    loss_fwd = kernels.hbm_time(gpu, x.tokens * vocab * CROSS_ENTROPY_BYTES[0])
    loss_bwd = kernels.hbm_time(gpu, x.tokens * vocab * CROSS_ENTROPY_BYTES[1])
    norm = kernels.hbm_time(gpu, 2.0 * 2 * x.tokens * x.h / x.sp)
    gather = PhaseTime()
    if x.t > 1 and s.parallelism.sequence_parallel:
        gather = PhaseTime(tp_comm=collective_time(Collective.ALL_GATHER, 2.0 * x.tokens * x.h, paths.tp))
    forward = PhaseTime(compute=gemm + loss_fwd + norm) + gather
    backward = PhaseTime(compute=2 * gemm + loss_bwd + 2 * norm) + gather
    return LayerTime(forward, backward)


#: Bytes read + written per parameter by one optimizer step on the local shard: Adam reads the fp32
#: master weight, both moments and the fp32 gradient (16 B) and writes master, moments and the bf16
#: copy (14 B); gradient-norm clipping reads the gradient once more (4 B).
OPTIMIZER_STEP_BYTES = {Optimizer.ADAMW: 34, Optimizer.ADAMW_8BIT: 22, Optimizer.SGD_MOMENTUM: 26}


def optimizer_time(s: Scenario, gpu: GpuSpec, local_params: float) -> float:
    """Optimizer step over ``local_params`` parameters (the GPU's shard), HBM-bound."""
    return kernels.hbm_time(gpu, local_params * OPTIMIZER_STEP_BYTES[s.training.optimizer])
