"""Parameter and FLOP counts of a decoder-only transformer.

Convention (spec/result.md; Narayanan et al. 2021, Korthikanti et al. 2022): model FLOPs per token =
3 x forward, forward = 2 x matmul parameters (LM head included, embedding lookup excluded) + attention
scores and context counted in full (``4 s a d`` per token per layer, no causal halving).
"""

from __future__ import annotations

from sim.specs.enums import Activation
from sim.specs.model import ModelSpec


def attention_params(m: ModelSpec) -> int:
    """Q, K, V and output projection weights of one layer: ``2 h a d + 2 h g d``."""
    d = m.head_dim
    return 2 * m.hidden_size * m.num_attention_heads * d + 2 * m.hidden_size * m.num_kv_heads * d


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


def total_params(m: ModelSpec) -> int:
    """Every parameter: layers (with two norms), embedding, untied LM head, final norm."""
    layers = sum(layer_matmul_params(m, i, active=False) + 2 * m.hidden_size for i in _layers(m))
    embedding = m.vocab_size * m.hidden_size
    head = 0 if m.tied_embeddings else embedding
    return layers + embedding + head + m.hidden_size


def active_matmul_params(m: ModelSpec) -> int:
    """Matmul parameters one token touches, LM head included, embedding lookup excluded."""
    return sum(layer_matmul_params(m, i) for i in _layers(m)) + m.vocab_size * m.hidden_size


def attention_score_flops_per_token(m: ModelSpec) -> float:
    """Forward score + context matmuls per token per layer, in full: ``2 * 2 * s * a * d``."""
    return 4.0 * m.seq_len * m.num_attention_heads * m.head_dim


def forward_flops_per_token(m: ModelSpec) -> float:
    """Forward FLOPs per token in the Narayanan/Korthikanti convention."""
    return 2.0 * active_matmul_params(m) + m.num_layers * attention_score_flops_per_token(m)


def model_flops_per_token(m: ModelSpec) -> float:
    """Training FLOPs per token: 3 x forward (no recompute)."""
    return 3.0 * forward_flops_per_token(m)


def recompute_flops_per_token(m: ModelSpec, mode: str) -> float:
    """Extra forward FLOPs per token from activation recompute (HFU counts these, MFU does not).

    Full recompute re-runs every layer's forward (not the LM head); selective re-runs the core
    attention (scores and context), Korthikanti et al. 2022 §5.
    """
    if mode == "full":
        return 2.0 * sum(layer_matmul_params(m, i) for i in _layers(m)) + \
            m.num_layers * attention_score_flops_per_token(m)
    if mode == "selective":
        return m.num_layers * attention_score_flops_per_token(m)
    return 0.0


def _layers(m: ModelSpec) -> range:
    return range(m.num_layers)


def narayanan_flops_per_iteration(batch: int, seq: int, layers: int, hidden: int, vocab: int) -> float:
    """Narayanan et al. 2021 eq. (3): ``96 B s l h^2 (1 + s/6h + V/16lh)``, full recompute, f = 4h."""
    return 96.0 * batch * seq * layers * hidden**2 * (1 + seq / (6 * hidden) + vocab / (16 * layers * hidden))
