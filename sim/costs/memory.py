"""Memory per GPU (DESIGN.md §4): weights, gradients, optimizer state, activations, buffers, reserve.

Activations re-derive Korthikanti et al. 2022 (arXiv 2205.05198) §4 term by term so that GQA,
SwiGLU, flash attention and dropout are counted as they are, rather than reusing the 34/5 constants
of the GPT block (which this reproduces: 34 s b h + 5 a s^2 b for GeLU, MHA, dropout, no flash).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

from sim import catalog
from sim.costs import flops, fp8, shapes, zero
from sim.costs import moe as moe_costs
from sim.parallelism.schedules import in_flight_microbatches
from sim.parallelism.sharding import chunk_layers
from sim.specs.enums import Activation, AttentionKernel, Framework, Optimizer, Recompute, RecomputeModule
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


def layer_activation_bytes(s: Scenario, full_layer: bool = False, moe: bool | None = None) -> float:
    """Activation bytes one layer stores for one micro-batch on one GPU: a dense layer (``moe`` False), an MoE
    layer (True), or the larger of the kinds the model has (None).

    ``full_layer`` ignores the recompute mode (the working set of the layer being recomputed).
    """
    m, p = s.model, s.parallelism
    if moe is None:
        return max(layer_activation_bytes(s, full_layer, kind) for kind in layer_kinds(s))
    recompute = Recompute.NONE if full_layer else p.activation_recompute
    if recompute is Recompute.FULL:
        return 2 * shapes.microbatch_tokens(s) * m.hidden_size / shapes.sp_degree(p)  # the layer input only
    if recompute is Recompute.SELECTIVE and p.framework is Framework.TORCHTITAN:
        return op_sac_bytes(s)
    return sum(layer_activation_parts(s, moe, full_layer).values())


def layer_kinds(s: Scenario) -> tuple[bool, ...]:
    """The layer kinds of the model: dense (False) and/or MoE (True)."""
    m = s.model
    if m.moe is None:
        return (False,)
    dense = m.moe.first_dense_layers > 0 or m.moe.moe_layer_frequency > 1
    return (False, True) if dense else (True,)


def layer_activation_parts(s: Scenario, moe: bool, full_layer: bool = False) -> dict[str, float]:
    """Activation bytes one layer keeps for backward, by the tensor that keeps them, after Megatron-Core's
    selective recompute modules (``ParallelismSpec.selective_modules``) dropped theirs (none with
    ``full_layer``).

    Korthikanti et al. 2022 §4 term by term: the norm inputs, the norm outputs (QKV / MLP inputs; ``layernorm``
    recompute discards them), Q, K, V and the context, the flash-attention log-sum-exp or the softmax scores
    (``core_attn``), the MLP's up/gate output (the activation input) and its activation output (the down
    projection's input). A linear under an fp8 recipe that keeps its input in fp8 keeps 1 byte per element
    (``fp8.saved_input_bytes_saved``).

    An MoE layer (Megatron-Core MoELayer, alltoall/flex dispatcher) keeps instead of the MLP: its input in bf16
    (the router's gating GEMM and the shared expert read it), the router's scores and routing map (catalog
    ``moe.yaml`` ``router.saved_bytes_per_score``), and per routed copy of a token the expert's inputs: the
    dispatched hidden state (the first grouped GEMM's input: ``top_k`` copies of every token, ``imbalance x
    ETP`` of them landing on this GPU, as in ``sim.costs.moe``), the up/gate output and the activation output
    (``moe_act`` discards it); the shared expert keeps a dense MLP's (``shared_experts``). ``moe`` recompute
    keeps only the MoE layer's input. ``training.fp8_activation_cache`` stores the experts' activation input in
    fp8 with 1x128 scales (DeepSeek-V3 report sec 3.3, "Low-Precision Storage")."""
    m, p = s.model, s.parallelism
    t = p.tensor
    tokens = shapes.microbatch_tokens(s)
    sp = shapes.sp_degree(p)
    h, a = m.hidden_size, m.num_attention_heads
    sbh = tokens * h
    drop = 1 if m.dropout else 0
    mods = frozenset() if full_layer else p.selective_modules
    gate = m.activation is Activation.SWIGLU
    lins = fp8.layer_linears(s, tokens, m.ffn_hidden_size, gate)
    fp8_saved = [fp8.saved_input_bytes_saved(s, (lin,)) for lin in lins]
    parts = {
        "attn_norm_input": 2 * sbh / sp,
        "qkv_input": 0.0 if RecomputeModule.LAYERNORM in mods else 2 * sbh / sp - fp8_saved[0],
        "qkv_context": 2 * tokens * _qkv_context_width(m, t, RecomputeModule.MLA_UP_PROJ in mods) - fp8_saved[1],
        "attn_dropout": drop * sbh / sp,
        "scores": 0.0,
        "mlp_norm_input": 2 * sbh / sp,
        "mlp_dropout": drop * sbh / sp,
    }
    if s.training.attention is AttentionKernel.FLASH:
        parts["scores"] = 4 * tokens * a / t  # fp32 log-sum-exp
    elif RecomputeModule.CORE_ATTN not in mods:
        parts["scores"] = (2 + 3 * drop) * a * tokens * m.seq_len / p.context / t  # softmax (+ dropout)
    if moe and m.moe is not None:
        return parts | _moe_parts(s, mods, lins[2])
    f = m.ffn_hidden_size
    mlp = RecomputeModule.MLP in mods  # checkpointed: only its (bf16) input is kept
    parts["mlp_input"] = 0.0 if RecomputeModule.LAYERNORM in mods else 2 * sbh / sp - (0.0 if mlp else fp8_saved[2])
    parts["mlp_activation_input"] = 0.0 if mlp else (4 if gate else 2) * tokens * f / t
    parts["mlp_fc2_input"] = 0.0 if mlp else 2 * tokens * f / t - fp8_saved[3]
    return parts


def _moe_parts(s: Scenario, mods: frozenset[RecomputeModule], shared_fc1: fp8.Linear) -> dict[str, float]:
    """The MoE block's terms of :func:`layer_activation_parts`."""
    m, p = s.model, s.parallelism
    moe = m.moe
    assert moe is not None
    tokens = shapes.microbatch_tokens(s)
    sp, t, etp = shapes.sp_degree(p), p.tensor, p.expert_tensor_degree
    h, gate = m.hidden_size, m.activation is Activation.SWIGLU
    linear_input = 1.0 if fp8.saved_input_bytes_saved(s, (shared_fc1,)) else 2.0  # bytes per saved GEMM input
    local = tokens / sp
    received = moe_costs.tokens_per_local_expert(s, local) * moe_costs.routing_imbalance(s) * (
        moe.num_experts // p.expert)
    f = moe.expert_ffn_hidden_size / etp
    act_bytes = moe_costs.FP8_DISPATCH_BYTES if s.training.fp8_activation_cache else 2.0
    fs = moe.shared_experts * moe.shared_expert_ffn_hidden_size / t
    router = local * moe.num_experts * catalog.moe_table()["router"]["saved_bytes_per_score"]
    shared = 0.0
    if fs:
        shared = ((linear_input if linear_input < 2 else 0.0) * shared_fc1.input_elems  # its own fp8 input copy
                  + 2 * (2 if gate else 1) * tokens * fs + linear_input * tokens * fs)
    whole = RecomputeModule.MOE in mods
    return {
        "mlp_input": 0.0 if RecomputeModule.LAYERNORM in mods else 2 * tokens * h / sp,
        "router": 0.0 if whole else router,
        "expert_input": 0.0 if whole else linear_input * received * h,
        "expert_activation_input": 0.0 if whole else act_bytes * received * (2 if gate else 1) * f,
        "expert_fc2_input": 0.0 if whole or RecomputeModule.MOE_ACT in mods else linear_input * received * f,
        "shared_expert": 0.0 if whole or RecomputeModule.SHARED_EXPERTS in mods else shared,
    }


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


def _qkv_context_width(m: ModelSpec, t: int, up_proj_recomputed: bool) -> float:
    """Elements per token of the stored Q, K, V and context on one TP rank. MLA stores the latents the
    up-projections read (query and KV ranks plus the rotary key, duplicated on each TP rank), the context, and
    every head's Q, K (d_qk) and V (d_v) -- unless the up-projections are recomputed in backward instead
    (DeepSeek-V3 report sec 3.2.3; Megatron-Core ``--recompute-modules mla_up_proj``)."""
    a, g, d = m.num_attention_heads, m.num_kv_heads, m.head_dim
    if m.mla is None:
        return (2 * a + 2 * g) * d / t
    r = m.mla
    latents = (r.q_lora_rank or 0) + r.kv_lora_rank + r.qk_rope_head_dim
    heads = r.v_head_dim if up_proj_recomputed else 2 * r.qk_head_dim + 2 * r.v_head_dim
    return a * heads / t + latents


def recompute_working_bytes(s: Scenario) -> float:
    """The working set of the one layer being recomputed in backward: the whole layer for full recompute; for
    selective, what its recomputed modules dropped (nothing of the attention with flash attention, which never
    stores the scores), on the layer kind where that is largest."""
    mode = s.parallelism.activation_recompute
    if mode is Recompute.FULL:
        return layer_activation_bytes(s, full_layer=True)
    if mode is Recompute.SELECTIVE:
        return max(layer_activation_bytes(s, True, kind) - layer_activation_bytes(s, False, kind)
                   for kind in layer_kinds(s))
    return 0.0


def _activations(s: Scenario, rank: int) -> float:
    m, p = s.model, s.parallelism
    chunks = chunk_layers(s)
    layers_per_chunk = max(len(chunks[j * p.pipeline + rank]) for j in range(p.virtual_pipeline))
    held = in_flight_microbatches(p.schedule, p.pipeline, p.virtual_pipeline, rank, s.num_microbatches)
    # every layer at the larger kind's bytes: an upper bound on a chunk that mixes dense and MoE layers (DeepSeek-V3's
    # first stage), the search pre-screen's figure too
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
        gathered += zero.gathered_layer_params(s, dp, largest_layer_params(s)) * dp.block_gather_bytes
    return bucket + gathered


def stage_memory(s: Scenario, rank: int, dp: zero.DataParallelPlan | None = None) -> MemoryBreakdown:
    """Memory of pipeline rank ``rank`` per GPU (``dp``: the scenario's ``dp_plan``, computed here if not given)."""
    dp = dp or dp_plan(s)
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
    dp = dp_plan(s)  # one plan for every rank (its largest layer is a walk over all layers)
    return max((stage_memory(s, r, dp) for r in range(s.parallelism.pipeline)), key=lambda mb: mb.total)
