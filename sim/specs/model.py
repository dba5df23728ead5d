"""What is trained: the transformer's shape."""

from __future__ import annotations

from dataclasses import dataclass

from sim.errors import Issue
from sim.specs._schema import Spec, spec_field
from sim.specs.enums import Activation, Attention, Routing


@dataclass(frozen=True, slots=True, kw_only=True)
class MoESpec(Spec):
    """Mixture-of-experts MLP (optional)."""

    num_experts: int = spec_field(doc="routed experts per MoE layer", ge=1)
    top_k: int = spec_field(doc="experts each token is routed to", ge=1)
    expert_ffn_hidden_size: int = spec_field(doc="MLP width of one expert", ge=1)
    shared_experts: int = spec_field(0, doc="always-active experts per MoE layer", ge=0)
    explicit_shared_expert_ffn_hidden_size: int | None = spec_field(
        None, key="shared_expert_ffn_hidden_size", ge=1,
        doc="MLP width of one shared expert (default expert_ffn_hidden_size)")
    moe_layer_frequency: int = spec_field(1, doc="every k-th layer (after the leading dense ones) is MoE", ge=1)
    first_dense_layers: int = spec_field(
        0, doc="leading dense layers of ffn_hidden_size before the first MoE layer (DeepSeek-V3: 3)", ge=0)
    routing: Routing = spec_field(
        Routing.BALANCED, doc="balanced (forced even load, as most benchmarks run) | natural (router's own load)")
    capacity_factor: float | None = spec_field(
        None, gt=0, doc="null = dropless; a number = tokens beyond capacity_factor x mean per expert are dropped")

    @property
    def shared_expert_ffn_hidden_size(self) -> int:
        explicit = self.explicit_shared_expert_ffn_hidden_size
        return self.expert_ffn_hidden_size if explicit is None else explicit

    def _issues(self) -> list[Issue]:
        if self.top_k > self.num_experts:
            return [Issue("top_k", f"{self.top_k} exceeds num_experts ({self.num_experts})")]
        return []


@dataclass(frozen=True, slots=True, kw_only=True)
class MLASpec(Spec):
    """Multi-head latent attention ranks (DeepSeek-V2/V3 config.json names)."""

    q_lora_rank: int | None = spec_field(
        None, ge=1, doc="rank of the low-rank query path; null = full-rank query projection (DeepSeek-V2-Lite)")
    kv_lora_rank: int = spec_field(doc="rank of the compressed key/value latent", ge=1)
    qk_nope_head_dim: int = spec_field(doc="per-head query/key dimension without rotary", ge=1)
    qk_rope_head_dim: int = spec_field(doc="per-head query/key rotary dimension (one shared rotary key)", ge=1)
    v_head_dim: int = spec_field(doc="per-head value dimension", ge=1)

    @property
    def qk_head_dim(self) -> int:
        return self.qk_nope_head_dim + self.qk_rope_head_dim


@dataclass(frozen=True, slots=True, kw_only=True)
class ModelSpec(Spec):
    """A dense (or MoE) decoder-only transformer. Explicit fields override a preset's."""

    preset: str | None = spec_field(None, doc="packaged model preset the other fields default to")
    num_layers: int = spec_field(doc="transformer layers", ge=1, le=100_000)
    hidden_size: int = spec_field(doc="model width h", ge=1)
    ffn_hidden_size: int = spec_field(doc="MLP width f (per gate/up projection for SwiGLU)", ge=1)
    num_attention_heads: int = spec_field(doc="query heads a", ge=1)
    num_kv_heads: int = spec_field(doc="key/value heads g (GQA); = heads for MHA", ge=1)
    explicit_head_dim: int | None = spec_field(
        None, key="head_dim", ge=1, doc="per-head dimension d (default hidden_size / num_attention_heads)")
    attention: Attention = spec_field(Attention.GQA, doc="gqa (MHA/GQA/MQA by num_kv_heads) | mla (DeepSeek-V2/V3)")
    mla: MLASpec | None = spec_field(None, doc="multi-head latent attention ranks (with attention: mla)")
    vocab_size: int = spec_field(doc="vocabulary V", ge=1)
    seq_len: int = spec_field(doc="training sequence length s, tokens", ge=1)
    activation: Activation = spec_field(Activation.SWIGLU, doc="MLP activation: swiglu | gelu")
    tied_embeddings: bool = spec_field(False, doc="input embedding shared with the LM head")
    dropout: bool = spec_field(False, doc="hidden/attention dropout on (stores masks; GPT-3-era configs)")
    mtp_layers: int = spec_field(
        0, ge=0, doc="multi-token-prediction modules after the last layer, on the last stage (DeepSeek-V3: 1)")
    moe: MoESpec | None = spec_field(None, doc="mixture-of-experts block (optional)")

    @property
    def head_dim(self) -> int:
        """Per-head dimension of GQA attention (``head_dim``, else ``hidden_size / heads``)."""
        if self.explicit_head_dim is not None:
            return self.explicit_head_dim
        return self.hidden_size // self.num_attention_heads

    @property
    def is_mla(self) -> bool:
        return self.attention is Attention.MLA

    def _issues(self) -> list[Issue]:
        issues = []
        if self.explicit_head_dim is None and self.hidden_size % self.num_attention_heads:
            issues.append(Issue("hidden_size", f"{self.hidden_size} is not divisible by "
                                f"num_attention_heads ({self.num_attention_heads}); or set head_dim"))
        if self.num_attention_heads % self.num_kv_heads:
            issues.append(Issue("num_kv_heads", f"{self.num_kv_heads} does not divide "
                                f"num_attention_heads ({self.num_attention_heads})"))
        if self.is_mla and self.mla is None:
            issues.append(Issue("mla", "required with attention: mla; e.g. {q_lora_rank: 1536, kv_lora_rank: 512, "
                                "qk_nope_head_dim: 128, qk_rope_head_dim: 64, v_head_dim: 128}"))
        if not self.is_mla and self.mla is not None:
            issues.append(Issue("mla", "given but attention is gqa; set attention: mla or remove mla"))
        if self.moe is not None and self.moe.first_dense_layers >= self.num_layers:
            issues.append(Issue("moe.first_dense_layers", f"{self.moe.first_dense_layers} leaves no MoE layer "
                                f"among the {self.num_layers} layers (num_layers); use at most {self.num_layers - 1}"))
        return issues
