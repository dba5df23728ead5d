"""Memory per GPU (DESIGN.md §4): weights, gradients, optimizer state, activations, buffers, reserve.

Activations re-derive Korthikanti et al. 2022 (arXiv 2205.05198) §4 term by term so that GQA,
SwiGLU, flash attention and dropout are counted as they are, rather than reusing the 34/5 constants
of the GPT block (which this reproduces: 34 s b h + 5 a s^2 b for GeLU, MHA, dropout, no flash).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

from sim import catalog
from sim.costs import flops, fp8, shapes, zero
from sim.parallelism.schedules import in_flight_microbatches
from sim.parallelism.sharding import chunk_layers
from sim.specs.enums import Activation, AttentionKernel, Framework, Optimizer, Recompute
from sim.specs.model import ModelSpec
from sim.specs.scenario import Scenario
from sim.units import GIB

#: Bytes of optimizer state per parameter: fp32 master + moments (Rajbhandari et al. 2020 §3: K=12).
OPTIMIZER_BYTES = {Optimizer.ADAMW: 12, Optimizer.ADAMW_8BIT: 6, Optimizer.SGD_MOMENTUM: 8}
WEIGHT_BYTES = zero.PARAM_BYTES  # bf16/fp16 working weights (fp8 training keeps them too)


@dataclass(frozen=True, slots=True)
class MemoryBreakdown:
    """Bytes per GPU on the most loaded pipeline stage."""

    parameters: float
    gradients: float
    optimizer: float
    activations: float
    buffers: float
    reserve: float
    stage: int

    @property
    def total(self) -> float:
        return self.parameters + self.gradients + self.optimizer + self.activations + self.buffers + self.reserve

    def gib(self) -> dict[str, float]:
        return {k: v / GIB for k, v in asdict(self).items() if k != "stage"}


def expert_layer_params_per_gpu(s: Scenario, layer: int) -> float:
    """Routed-expert parameters of one layer held by one GPU: the experts split over EP, each over ETP. They are
    replicated only over the expert-data-parallel group (EDP), which reduces and shards their state."""
    m, p = s.model, s.parallelism
    if not flops.is_moe_layer(m, layer):
        return 0.0
    assert m.moe is not None
    experts = m.moe.num_experts * flops.dense_mlp_params(m, m.moe.expert_ffn_hidden_size)
    return experts / (p.expert_tensor_degree * p.expert)


def layer_params_per_gpu(s: Scenario, layer: int) -> float:
    """Parameters of one layer held by one GPU: attention and shared experts split over TP, routed experts over
    ETP x EP, norms and the router replicated (the same count as ``flops.moe_mlp_params``)."""
    m, p = s.model, s.parallelism
    dense = flops.attention_params(m) / p.tensor + 2 * m.hidden_size
    if flops.is_moe_layer(m, layer):
        assert m.moe is not None
        shared = m.moe.shared_experts * flops.dense_mlp_params(m, m.moe.shared_expert_ffn_hidden_size)
        router = m.hidden_size * m.moe.num_experts
        return dense + shared / p.tensor + router + expert_layer_params_per_gpu(s, layer)
    return dense + flops.dense_mlp_params(m) / p.tensor


def embedding_params_per_gpu(s: Scenario) -> float:
    """The vocab-parallel embedding's share of one TP rank (first virtual stage)."""
    return s.model.vocab_size * s.model.hidden_size / s.parallelism.tensor


def head_params_per_gpu(s: Scenario) -> float:
    """Final norm plus the LM head (last virtual stage); a tied head on the embedding's own stage is free. The
    MTP modules live there too: per module a block of the last layer's kind, the ``2h -> h`` projection (split
    over TP) and three norms; they share the embedding and the head."""
    p, m = s.parallelism, s.model
    tied_alone = m.tied_embeddings and p.pipeline * p.virtual_pipeline == 1
    mtp = m.mtp_layers * (layer_params_per_gpu(s, m.num_layers - 1) + 2 * m.hidden_size**2 / p.tensor
                          + 3 * m.hidden_size)
    return m.hidden_size + (0.0 if tied_alone else embedding_params_per_gpu(s)) + mtp


def chunk_params_per_gpu(s: Scenario, vs: int) -> float:
    """Parameters of virtual stage ``vs`` per GPU: its layers, the embedding on the first, the head
    on the last."""
    p = s.parallelism
    total = sum(layer_params_per_gpu(s, layer) for layer in chunk_layers(s)[vs])
    if vs == 0:
        total += embedding_params_per_gpu(s)
    if vs == p.pipeline * p.virtual_pipeline - 1:
        total += head_params_per_gpu(s)
    return total


def stage_params_per_gpu(s: Scenario, rank: int) -> float:
    """Parameters on pipeline rank ``rank`` per GPU (before ZeRO sharding)."""
    p = s.parallelism
    return sum(chunk_params_per_gpu(s, j * p.pipeline + rank) for j in range(p.virtual_pipeline))


def chunk_expert_params_per_gpu(s: Scenario, vs: int) -> float:
    """The routed-expert part of ``chunk_params_per_gpu`` (the MTP modules' experts on the last virtual stage)."""
    p, m = s.parallelism, s.model
    total = sum(expert_layer_params_per_gpu(s, layer) for layer in chunk_layers(s)[vs])
    if vs == p.pipeline * p.virtual_pipeline - 1:
        total += m.mtp_layers * expert_layer_params_per_gpu(s, m.num_layers - 1)
    return total


def stage_expert_params_per_gpu(s: Scenario, rank: int) -> float:
    """The routed-expert part of ``stage_params_per_gpu``."""
    p = s.parallelism
    return sum(chunk_expert_params_per_gpu(s, j * p.pipeline + rank) for j in range(p.virtual_pipeline))


def layer_activation_bytes(s: Scenario, full_layer: bool = False) -> float:
    """Activation bytes one layer stores for one micro-batch on one GPU.

    ``full_layer`` ignores the recompute mode (the working set of the layer being recomputed).
    """
    m, p = s.model, s.parallelism
    t, b = p.tensor, p.micro_batch_size
    seq = m.seq_len / p.context
    sp = shapes.sp_degree(p)
    h, f, a = m.hidden_size, m.ffn_hidden_size, m.num_attention_heads
    sbh = seq * b * h
    recompute = Recompute.NONE if full_layer else p.activation_recompute
    if recompute is Recompute.FULL:
        return 2 * sbh / sp  # the layer input only
    if recompute is Recompute.SELECTIVE and p.framework is Framework.TORCHTITAN:
        return op_sac_bytes(s)
    drop = 1 if m.dropout else 0
    attn = (2 * sbh + 2 * sbh) / sp  # norm input, QKV GEMM input
    attn += 2 * seq * b * _qkv_context_width(m, t, recompute)  # Q, K, V and the context (out-proj input)
    attn += drop * sbh / sp
    if s.training.attention is AttentionKernel.FLASH:
        attn += 4 * seq * b * a / t  # fp32 log-sum-exp
    elif recompute is not Recompute.SELECTIVE:
        attn += (2 + 3 * drop) * a * seq * seq * b / t  # softmax out (+ dropout mask and output)
    ffn = f
    if m.moe is not None:
        ffn = m.moe.expert_ffn_hidden_size * (m.moe.top_k + m.moe.shared_experts)
    mlp = (2 * sbh + 2 * sbh) / sp + drop * sbh / sp
    mlp += (6 if m.activation is Activation.SWIGLU else 4) * seq * b * ffn / t
    gate = m.activation is Activation.SWIGLU
    return attn + mlp - fp8.saved_input_bytes_saved(s, fp8.layer_linears(s, seq * b, ffn, gate))


def op_sac_bytes(s: Scenario) -> float:
    """Activation bytes per layer under torchtitan's op-level selective checkpointing (frameworks.yaml
    ``selective_recompute``): the block input plus the outputs it saves - the mms it does not recompute (wq, wv,
    w1, w2; wk, wo, w3 are recomputed), SDPA's output and fp32 log-sum-exp, the TP reduce-scatter outputs."""
    m, p = s.model, s.parallelism
    t, tokens = p.tensor, m.seq_len / p.context * p.micro_batch_size
    sp = shapes.sp_degree(p)
    h, d, f = m.hidden_size, m.head_dim, m.ffn_hidden_size
    a, g = m.num_attention_heads, m.num_kv_heads
    if m.moe is not None:
        f = m.moe.expert_ffn_hidden_size * (m.moe.top_k + m.moe.shared_experts)
    saved = h / sp + (a * d + g * d) / t + a * d / t + f / t + h  # input, wq, wv, SDPA out, w1, w2
    saved += 2 * h / sp if sp > 1 else 0.0  # the two reduce-scatter outputs
    return 2 * tokens * saved + 4 * tokens * a / t


def _qkv_context_width(m: ModelSpec, t: int, recompute: Recompute) -> float:
    """Elements per token of the stored Q, K, V and context on one TP rank. MLA stores the latents the
    up-projections read (query and KV ranks plus the rotary key, duplicated on each TP rank), the context, and
    every head's Q, K (d_qk) and V (d_v) -- except under selective recompute, which for MLA recomputes the
    up-projections in backward instead (DeepSeek-V3 report sec 3.2.3; Megatron-Core ``--recompute-modules
    mla_up_proj``)."""
    a, g, d = m.num_attention_heads, m.num_kv_heads, m.head_dim
    if m.mla is None:
        return (2 * a + 2 * g) * d / t
    r = m.mla
    latents = (r.q_lora_rank or 0) + r.kv_lora_rank + r.qk_rope_head_dim
    heads = r.v_head_dim if recompute is Recompute.SELECTIVE else 2 * r.qk_head_dim + 2 * r.v_head_dim
    return a * heads / t + latents


def recompute_working_bytes(s: Scenario) -> float:
    """The working set of the one layer being recomputed in backward: the whole layer for full recompute;
    for selective, only the attention scores it drops (none with flash attention, which never stores them)."""
    mode = s.parallelism.activation_recompute
    if mode is Recompute.FULL:
        return layer_activation_bytes(s, full_layer=True)
    if mode is Recompute.SELECTIVE:
        return layer_activation_bytes(s, full_layer=True) - layer_activation_bytes(s)
    return 0.0


def _activations(s: Scenario, rank: int) -> float:
    m, p = s.model, s.parallelism
    chunks = chunk_layers(s)
    layers_per_chunk = max(len(chunks[j * p.pipeline + rank]) for j in range(p.virtual_pipeline))
    held = in_flight_microbatches(p.schedule, p.pipeline, p.virtual_pipeline, rank, s.num_microbatches)
    total = held * layers_per_chunk * layer_activation_bytes(s) + recompute_working_bytes(s)
    tokens = m.seq_len / p.context * p.micro_batch_size
    sp = shapes.sp_degree(p)
    if rank == 0:
        total += held * 2 * tokens * m.hidden_size / sp
    if rank == p.pipeline - 1:
        total += tokens * m.vocab_size / p.tensor * (2 + 4)  # bf16 logits + fp32 copy for the loss
    return total


def largest_layer_params(s: Scenario) -> float:
    """Parameters per GPU of the largest transformer layer (one ZeRO-3 gather unit)."""
    return max(layer_params_per_gpu(s, i) for i in range(s.model.num_layers))


def dp_plan(s: Scenario) -> zero.DataParallelPlan:
    """The scenario's data-parallel plan (sim.costs.zero), shared by memory and the step engine."""
    return zero.plan(s, largest_layer_params(s))


def buffer_bytes(s: Scenario, dp: zero.DataParallelPlan) -> float:
    """Communication buffers per GPU: the gradient reduce bucket, the TP-gathered sequence, ZeRO-3's gathered
    layers."""
    m, p = s.model, s.parallelism
    bucket = zero.reduce_bucket_params(s) * dp.grad_bytes
    tokens = m.seq_len / p.context * p.micro_batch_size
    gathered = 2 * tokens * m.hidden_size if p.tensor > 1 else 0.0
    if p.zero_stage == 3 and not dp.full_weights_resident:
        gathered += zero.gathered_layer_params(s, dp, largest_layer_params(s)) * WEIGHT_BYTES
    return bucket + gathered


def stage_memory(s: Scenario, rank: int) -> MemoryBreakdown:
    """Memory of pipeline rank ``rank`` per GPU."""
    dp = dp_plan(s)
    params = stage_params_per_gpu(s, rank)
    state = zero.state_bytes(dp, params, OPTIMIZER_BYTES[s.training.optimizer], stage_expert_params_per_gpu(s, rank))
    fp8_weights = fp8.weight_copy_bytes(s, params) if s.parallelism.zero_stage < 3 else 0.0  # cached fp8 (TE)
    acts = _activations(s, rank)
    buffers = buffer_bytes(s, dp)
    consts = catalog.efficiency_table()["memory"]
    weights = state.weights + fp8_weights
    counted = weights + state.gradients + state.optimizer + acts + buffers
    reserve = consts["runtime_reserve_gib"]["value"] * GIB + consts["fragmentation_fraction"]["value"] * counted
    return MemoryBreakdown(weights, state.gradients, state.optimizer, acts, buffers, reserve, rank)


def peak_memory(s: Scenario) -> MemoryBreakdown:
    """The breakdown of the pipeline rank with the largest total."""
    return max((stage_memory(s, r) for r in range(s.parallelism.pipeline)), key=lambda mb: mb.total)
