"""Time of one transformer layer (and the embedding / LM head) for one micro-batch on one GPU.

Every op of DESIGN.md §3 is costed with the roofline of ``kernels`` and the collectives of
``collectives``; backward GEMMs are 2x forward (data and weight gradients), flash-attention backward
2.5x forward. TP collectives sit on the critical path unless ``tp_comm_overlap``; the CP ring K/V
exchange overlaps attention blocks (Liu et al. 2023) and only its excess is exposed.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from sim.costs import kernels
from sim.costs.collectives import Collective, GroupPath, collective_time
from sim.specs.enums import Activation, AttentionKernel, Optimizer, Recompute
from sim.specs.hardware import GpuSpec
from sim.specs.scenario import Scenario


@dataclass(frozen=True, slots=True)
class PhaseTime:
    """Seconds of one forward or backward pass of a block, split by what the GPU waits on."""

    compute: float = 0.0
    tp_comm: float = 0.0  # exposed TP (and EP) communication
    cp_comm: float = 0.0  # exposed CP ring communication
    overlapped_comm: float = 0.0  # communication hidden under compute (slows it by contention)
    contention: float = 0.0  # the SM-contention factor of that hidden communication

    @property
    def total(self) -> float:
        return self.compute + self.tp_comm + self.cp_comm + self.overlapped_comm * self.contention

    def __add__(self, other: PhaseTime) -> PhaseTime:
        hidden = self.overlapped_comm + other.overlapped_comm
        weight = (self.overlapped_comm * self.contention + other.overlapped_comm * other.contention)
        return PhaseTime(self.compute + other.compute, self.tp_comm + other.tp_comm,
                         self.cp_comm + other.cp_comm, hidden, weight / hidden if hidden else 0.0)

    def scaled(self, k: float) -> PhaseTime:
        return PhaseTime(self.compute * k, self.tp_comm * k, self.cp_comm * k, self.overlapped_comm * k,
                         self.contention)


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


class _Shape:
    """Per-GPU dimensions of a layer for one micro-batch."""

    def __init__(self, s: Scenario) -> None:
        m, p = s.model, s.parallelism
        self.t, self.c = p.tensor, p.context
        self.seq = m.seq_len / p.context
        self.tokens = p.micro_batch_size * self.seq
        self.b = p.micro_batch_size
        self.h, self.d, self.f = m.hidden_size, m.head_dim, m.ffn_hidden_size
        self.a, self.g = m.num_attention_heads, m.num_kv_heads
        self.sp = p.tensor if (p.sequence_parallel and p.tensor > 1) else 1
        self.dtype = s.training.precision.value


def _gemms(gpu: GpuSpec, dtype: str, x: _Shape, mlp_width: float, gate: bool) -> float:
    """Forward time of the four projection GEMMs of a layer on one TP rank."""
    qkv = kernels.gemm_time(gpu, dtype, x.tokens, (x.a + 2 * x.g) * x.d / x.t, x.h)
    out = kernels.gemm_time(gpu, dtype, x.tokens, x.h, x.a * x.d / x.t)
    up = kernels.gemm_time(gpu, dtype, x.tokens, (2 if gate else 1) * mlp_width / x.t, x.h)
    down = kernels.gemm_time(gpu, dtype, x.tokens, x.h, mlp_width / x.t)
    return qkv + out + up + down


def _elementwise_bytes(x: _Shape, mlp_width: float, gate: bool) -> float:
    """Forward bytes of the memory-bound ops: two norms (2 passes each), two residual/dropout adds
    (3 passes each) over h (sharded with SP), rotary on Q and K, the MLP activation."""
    hidden_passes = 10 * x.tokens * x.h / x.sp
    rotary = 2 * x.tokens * (x.a + x.g) * x.d / x.t
    act = (3 if gate else 2) * x.tokens * mlp_width / x.t
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


def _tp_comm(s: Scenario, x: _Shape, tp: GroupPath, gemm_time: float) -> PhaseTime:
    """Two TP collectives per pass (after attention and after the MLP), on the critical path."""
    if x.t == 1:
        return PhaseTime()
    size = 2.0 * x.tokens * x.h
    if s.parallelism.sequence_parallel:
        comm = 2 * (collective_time(Collective.ALL_GATHER, size, tp)
                    + collective_time(Collective.REDUCE_SCATTER, size, tp))
    else:
        comm = 2 * collective_time(Collective.ALL_REDUCE, size, tp)
    if s.parallelism.tp_comm_overlap:
        hidden = min(comm, gemm_time)
        return PhaseTime(tp_comm=comm - hidden, overlapped_comm=hidden, contention=tp.sm_contention)
    return PhaseTime(tp_comm=comm)


def _moe_dispatch(s: Scenario, x: _Shape, ep: GroupPath) -> PhaseTime:
    """All-to-all dispatch and combine of routed tokens over the EP group (one pass)."""
    m = s.model
    if m.moe is None or s.parallelism.expert == 1:
        return PhaseTime()
    size = 2.0 * x.tokens / x.sp * x.h * m.moe.top_k
    return PhaseTime(tp_comm=2 * collective_time(Collective.ALL_TO_ALL, size, ep))


#: Kernels one layer's forward launches in Megatron's eager implementation: 2 norms, 4 projection
#: GEMMs, 2 fused bias-dropout-add, activation, rotary/reshapes (4), 2 TP collectives, attention (1
#: fused flash kernel, or 4: score GEMM, masked softmax, dropout, context GEMM). Backward ~2x.
FORWARD_KERNELS = {AttentionKernel.FLASH: 16, AttentionKernel.UNFUSED: 19}

#: Bytes moved per attention score by the unfused softmax: Megatron's fused scaled-masked-softmax
#: kernel reads and writes bf16 (2 + 2); its PyTorch fallback (FusedScaleMaskSoftmax.forward_torch_
#: softmax) runs five fp32 kernels: cast (2 + 4), scale (4 + 4), masked_fill (4 + 4 + 1 mask),
#: softmax (4 + 4), cast back (4 + 2) -- 4 more kernels than the fused path.
SOFTMAX_BYTES = {True: 4, False: 37}
TORCH_SOFTMAX_EXTRA_KERNELS = 4


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


def _host_bound(t: PhaseTime, kernels_launched: float) -> PhaseTime:
    """A pass cannot run faster than the host dispatches its kernels (GPU starved otherwise)."""
    floor = kernels_launched * kernels.host_overhead_s()
    gap = floor - t.total
    return t + PhaseTime(compute=gap) if gap > 0 else t


def layer_time(s: Scenario, gpu: GpuSpec, paths: Paths, moe: bool) -> LayerTime:
    """Forward and backward time of one (dense or MoE) layer for one micro-batch."""
    m = s.model
    x = _Shape(s)
    gate = m.activation is Activation.SWIGLU
    width = m.ffn_hidden_size
    if moe and m.moe is not None:
        width = m.moe.expert_ffn_hidden_size * (m.moe.top_k + m.moe.shared_experts)
    gemm = _gemms(gpu, x.dtype, x, width, gate)
    elementwise = kernels.hbm_time(gpu, _elementwise_bytes(x, width, gate))
    fwd_attn = _attention(s, gpu, x, paths.cp, backward=False)
    fwd_tp = _tp_comm(s, x, paths.tp, gemm)
    ep = _moe_dispatch(s, x, paths.ep) if moe else PhaseTime()
    forward = PhaseTime(compute=gemm + elementwise) + fwd_attn + fwd_tp + ep
    backward = (PhaseTime(compute=2 * gemm + 2 * elementwise)
                + _attention(s, gpu, x, paths.cp, backward=True) + fwd_tp + ep)
    n_fwd = FORWARD_KERNELS[s.training.attention]
    if s.training.attention is AttentionKernel.UNFUSED and not fused_softmax_applies(x.b * x.a // x.t, x.seq):
        n_fwd += TORCH_SOFTMAX_EXTRA_KERNELS
    forward = _host_bound(forward, n_fwd)
    backward = _host_bound(backward, 2 * n_fwd)
    recompute = s.parallelism.activation_recompute
    if recompute is Recompute.FULL:
        backward = backward + forward
    elif recompute is Recompute.SELECTIVE:
        backward = backward + fwd_attn
    return LayerTime(forward, backward)


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


def head_time(s: Scenario, gpu: GpuSpec, paths: Paths) -> LayerTime:
    """Final norm, LM head GEMM (vocab-parallel) and cross-entropy (last stage)."""
    x = _Shape(s)
    vocab = s.model.vocab_size / x.t
    gemm = kernels.gemm_time(gpu, x.dtype, x.tokens, vocab, x.h)
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
