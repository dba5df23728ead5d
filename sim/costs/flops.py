"""Parameter and FLOP counts of a decoder-only transformer (dense or MoE, GQA or MLA, with MTP modules).

Convention (spec/result.md; Narayanan et al. 2021, Korthikanti et al. 2022): model FLOPs per token =
3 x forward, forward = 2 x the matmul parameters a token touches (LM head included, embedding lookup
excluded) + attention scores and context counted in full (``2 s a (d_qk + d_v)`` per token per layer, no
causal halving). For MoE the touched parameters are those of Megatron-Core's ``num_floating_point_operations``
(megatron/training/training.py): the ``top_k`` routed experts, the shared experts, MLA's low-rank
projections, and per MTP module one transformer block (MoE if the last layer is), its ``2h -> h``
projection and one more LM head. Two differences from that count, both kept for one convention across
dense and MoE: Megatron-Core halves the causal attention scores (we do not) and omits the router gate
GEMM (``h x num_experts``, counted here; < 0.1% of DeepSeek-V3's FLOPs).
"""

from __future__ import annotations

from collections.abc import Collection

from sim.specs.enums import Activation
from sim.specs.model import ModelSpec


def attention_params(m: ModelSpec) -> int:
    """Projection weights of one layer's attention.

    GQA: Q, K, V and output, ``2 h a d + 2 h g d``. MLA (DeepSeek-V2 §2.1, config.json names): query down
    ``h x q_lora`` and up ``q_lora x a (d_nope + d_rope)`` (or one ``h x a (d_nope + d_rope)`` without
    q_lora_rank), KV down ``h x (kv_lora + d_rope)`` (latent and the shared rotary key), KV up
    ``kv_lora x a (d_nope + d_v)``, output ``a d_v x h``.
    """
    h, a = m.hidden_size, m.num_attention_heads
    if m.mla is None:
        d = m.head_dim
        return 2 * h * a * d + 2 * h * m.num_kv_heads * d
    r = m.mla
    q_heads = a * r.qk_head_dim
    query = h * q_heads if r.q_lora_rank is None else r.q_lora_rank * (h + q_heads)
    kv = h * (r.kv_lora_rank + r.qk_rope_head_dim) + r.kv_lora_rank * a * (r.qk_nope_head_dim + r.v_head_dim)
    return query + kv + a * r.v_head_dim * h


def attention_norm_params(m: ModelSpec) -> int:
    """Non-matmul attention weights: MLA's RMSNorms on the query and KV latents."""
    if m.mla is None:
        return 0
    return (m.mla.q_lora_rank or 0) + m.mla.kv_lora_rank


def qk_head_dim(m: ModelSpec) -> int:
    """Per-head query/key dimension of the score GEMM (MLA: no-rotary + rotary parts)."""
    return m.head_dim if m.mla is None else m.mla.qk_head_dim


def v_head_dim(m: ModelSpec) -> int:
    """Per-head value dimension of the context GEMM."""
    return m.head_dim if m.mla is None else m.mla.v_head_dim


def dense_mlp_params(m: ModelSpec, ffn: int | None = None) -> int:
    """One MLP's weights: ``3 h f`` for SwiGLU (gate, up, down), ``2 h f`` for GeLU."""
    f = m.ffn_hidden_size if ffn is None else ffn
    return (3 if m.activation is Activation.SWIGLU else 2) * m.hidden_size * f


def is_moe_layer(m: ModelSpec, layer: int) -> bool:
    """Whether 0-based ``layer`` carries an MoE block: every ``moe_layer_frequency``-th layer after the
    ``first_dense_layers`` leading dense ones."""
    if m.moe is None or layer < m.moe.first_dense_layers:
        return False
    return (layer - m.moe.first_dense_layers + 1) % m.moe.moe_layer_frequency == 0


def num_moe_layers(m: ModelSpec) -> int:
    return 0 if m.moe is None else (m.num_layers - m.moe.first_dense_layers) // m.moe.moe_layer_frequency


def moe_mlp_params(m: ModelSpec, active: bool) -> int:
    """An MoE block's expert weights: all experts, or the ``top_k + shared`` a token uses."""
    assert m.moe is not None
    routed = m.moe.top_k if active else m.moe.num_experts
    shared = m.moe.shared_experts * dense_mlp_params(m, m.moe.shared_expert_ffn_hidden_size)
    return routed * dense_mlp_params(m, m.moe.expert_ffn_hidden_size) + shared + m.hidden_size * m.moe.num_experts


def layer_matmul_params(m: ModelSpec, layer: int = 0, active: bool = True) -> int:
    """Matmul weights of one transformer layer (active = those a token touches)."""
    mlp = moe_mlp_params(m, active) if is_moe_layer(m, layer) else dense_mlp_params(m)
    return attention_params(m) + mlp


def mtp_matmul_params(m: ModelSpec, active: bool = True) -> int:
    """Matmul weights of one multi-token-prediction module (DeepSeek-V3 §2.2; Megatron-Core
    multi_token_prediction.py): a transformer block of the last layer's kind and the ``2h -> h`` projection
    of [normed hidden; normed embedding]. Embedding and output head are shared with the main model."""
    return layer_matmul_params(m, m.num_layers - 1, active) + 2 * m.hidden_size * m.hidden_size


def _mtp_params(m: ModelSpec) -> int:
    """Every weight of the MTP modules: matmuls, the block's two norms, the hidden/embedding norms and the
    shared head's own final norm."""
    return m.mtp_layers * (mtp_matmul_params(m, active=False) + attention_norm_params(m) + 5 * m.hidden_size)


def total_params(m: ModelSpec, include_mtp: bool = True) -> int:
    """Every parameter: layers (with two norms), embedding, untied LM head, final norm (and MTP modules)."""
    return _params(m, active=False) + (_mtp_params(m) if include_mtp else 0)


def active_params(m: ModelSpec) -> int:
    """Parameters one token uses in the main model (MoE: ``top_k`` routed experts), embedding and head
    included, MTP modules excluded: the "activated parameters" model cards quote (DeepSeek-V3: 37B)."""
    return _params(m, active=True)


def _params(m: ModelSpec, active: bool) -> int:
    norms = 2 * m.hidden_size + attention_norm_params(m)
    layers = sum(layer_matmul_params(m, i, active) + norms for i in _layers(m))
    embedding = m.vocab_size * m.hidden_size
    head = 0 if m.tied_embeddings else embedding
    return layers + embedding + head + m.hidden_size


def active_matmul_params(m: ModelSpec) -> int:
    """Matmul parameters one token touches, LM head included, embedding lookup excluded; each MTP module
    adds its block, its projection and one more pass through the (shared) LM head."""
    head = m.vocab_size * m.hidden_size
    mtp = m.mtp_layers * (mtp_matmul_params(m) + head)
    return sum(layer_matmul_params(m, i) for i in _layers(m)) + head + mtp


def attention_score_flops_per_token(m: ModelSpec) -> float:
    """Forward score + context matmuls per token per layer, in full: ``2 s a (d_qk + d_v)`` (GQA: ``4 s a d``)."""
    return 2.0 * m.seq_len * m.num_attention_heads * (qk_head_dim(m) + v_head_dim(m))


def forward_flops_per_token(m: ModelSpec) -> float:
    """Forward FLOPs per token in the Narayanan/Korthikanti convention (MTP blocks included)."""
    return 2.0 * active_matmul_params(m) + (m.num_layers + m.mtp_layers) * attention_score_flops_per_token(m)


def model_flops_per_token(m: ModelSpec) -> float:
    """Training FLOPs per token: 3 x forward (no recompute)."""
    return 3.0 * forward_flops_per_token(m)


def recompute_flops_per_token(m: ModelSpec, mode: str, modules: Collection[str] | None = None) -> float:
    """Extra forward FLOPs per token from activation recompute (HFU counts these, MFU does not).

    Full recompute re-runs every layer's forward (not the LM head); selective re-runs the core
    attention (scores and context), Korthikanti et al. 2022 §5 -- or, given Megatron-Core's
    ``recompute_modules``, the matmuls of those modules: ``core_attn`` the scores, ``mla_up_proj`` MLA's
    up-projections, ``mlp`` the dense layers' MLP, ``shared_experts`` the shared experts, ``moe`` the MoE
    block's active experts, shared experts and router (``layernorm`` and ``moe_act`` are elementwise).
    """
    if mode == "full":
        return 2.0 * sum(layer_matmul_params(m, i) for i in _layers(m)) + \
            m.num_layers * attention_score_flops_per_token(m)
    if mode != "selective":
        return 0.0
    mods = set(modules or ("core_attn",))
    extra = m.num_layers * attention_score_flops_per_token(m) if "core_attn" in mods else 0.0
    if "mla_up_proj" in mods and m.mla is not None:
        r, a = m.mla, m.num_attention_heads
        up = r.kv_lora_rank * a * (r.qk_nope_head_dim + r.v_head_dim) + (r.q_lora_rank or 0) * a * r.qk_head_dim
        extra += 2.0 * m.num_layers * up
    moe_layers = num_moe_layers(m)
    if "mlp" in mods:
        extra += 2.0 * (m.num_layers - moe_layers) * dense_mlp_params(m)
    if m.moe is not None and "moe" in mods:
        extra += 2.0 * moe_layers * moe_mlp_params(m, active=True)
    elif m.moe is not None and "shared_experts" in mods:
        extra += 2.0 * moe_layers * m.moe.shared_experts * dense_mlp_params(m, m.moe.shared_expert_ffn_hidden_size)
    return extra


def _layers(m: ModelSpec) -> range:
    return range(m.num_layers)


def narayanan_flops_per_iteration(batch: int, seq: int, layers: int, hidden: int, vocab: int) -> float:
    """Narayanan et al. 2021 eq. (3): ``96 B s l h^2 (1 + s/6h + V/16lh)``, full recompute, f = 4h."""
    return 96.0 * batch * seq * layers * hidden**2 * (1 + seq / (6 * hidden) + vocab / (16 * layers * hidden))
