"""What is trained: the transformer's shape."""

from __future__ import annotations

from dataclasses import dataclass

from sim.errors import Issue
from sim.specs._schema import Spec, spec_field
from sim.specs.enums import Activation


@dataclass(frozen=True, slots=True, kw_only=True)
class MoESpec(Spec):
    """Mixture-of-experts MLP (optional)."""

    num_experts: int = spec_field(doc="routed experts per MoE layer", ge=1)
    top_k: int = spec_field(doc="experts each token is routed to", ge=1)
    expert_ffn_hidden_size: int = spec_field(doc="MLP width of one expert", ge=1)
    shared_experts: int = spec_field(0, doc="always-active experts per MoE layer", ge=0)
    moe_layer_frequency: int = spec_field(1, doc="every k-th layer is MoE", ge=1)

    def _issues(self) -> list[Issue]:
        if self.top_k > self.num_experts:
            return [Issue("top_k", f"{self.top_k} exceeds num_experts ({self.num_experts})")]
        return []


@dataclass(frozen=True, slots=True, kw_only=True)
class ModelSpec(Spec):
    """A dense (or MoE) decoder-only transformer. Explicit fields override a preset's."""

    preset: str | None = spec_field(None, doc="packaged model preset the other fields default to")
    num_layers: int = spec_field(doc="transformer layers", ge=1, le=100_000)
    hidden_size: int = spec_field(doc="model width h", ge=1)
    ffn_hidden_size: int = spec_field(doc="MLP width f (per gate/up projection for SwiGLU)", ge=1)
    num_attention_heads: int = spec_field(doc="query heads a", ge=1)
    num_kv_heads: int = spec_field(doc="key/value heads g (GQA); = heads for MHA", ge=1)
    vocab_size: int = spec_field(doc="vocabulary V", ge=1)
    seq_len: int = spec_field(doc="training sequence length s, tokens", ge=1)
    activation: Activation = spec_field(Activation.SWIGLU, doc="MLP activation: swiglu | gelu")
    tied_embeddings: bool = spec_field(False, doc="input embedding shared with the LM head")
    dropout: bool = spec_field(False, doc="hidden/attention dropout on (stores masks; GPT-3-era configs)")
    moe: MoESpec | None = spec_field(None, doc="mixture-of-experts block (optional)")

    @property
    def head_dim(self) -> int:
        return self.hidden_size // self.num_attention_heads

    def _issues(self) -> list[Issue]:
        issues = []
        if self.hidden_size % self.num_attention_heads:
            issues.append(Issue("hidden_size", f"{self.hidden_size} is not divisible by "
                                f"num_attention_heads ({self.num_attention_heads})"))
        if self.num_attention_heads % self.num_kv_heads:
            issues.append(Issue("num_kv_heads", f"{self.num_kv_heads} does not divide "
                                f"num_attention_heads ({self.num_attention_heads})"))
        return issues
