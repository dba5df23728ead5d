"""The job: batch, tokens, precision, optimizer."""

from __future__ import annotations

from dataclasses import dataclass

from sim.errors import Issue
from sim.specs._schema import Spec, spec_field
from sim.specs.enums import AttentionKernel, CudaGraphScope, Fp8Recipe, Optimizer, Precision


@dataclass(frozen=True, slots=True, kw_only=True)
class TrainingSpec(Spec):
    """One training job's batch and numerics."""

    global_batch_size: int = spec_field(doc="sequences per optimizer step", ge=1)
    tokens: float | None = spec_field(None, doc="total training tokens (run level)", gt=0)
    precision: Precision = spec_field(Precision.BF16, doc="bf16 | fp16 | fp8 (GEMM precision)")
    optimizer: Optimizer = spec_field(Optimizer.ADAMW, doc="adamw | adamw-8bit | sgd-momentum")
    attention: AttentionKernel = spec_field(AttentionKernel.FLASH, doc="flash | unfused (materialized scores)")
    fp8_recipe: Fp8Recipe | None = spec_field(
        None, doc="with precision fp8: delayed | tensorwise | rowwise | blockwise | mxfp8 (Blackwell): how GEMM "
        "inputs are scaled and quantized; default delayed (Transformer Engine's)")
    fp8_activation_cache: bool = spec_field(
        False, doc="with precision fp8 on an MoE model: the routed experts' activation input (the SwiGLU input) "
        "kept for backward in fp8 with 1x128 scales (DeepSeek-V3 report sec 3.3 'Low-Precision Storage')")
    compile: bool = spec_field(
        False, doc="torch.compile (torchtitan, deepspeed): elementwise ops fused into fewer memory passes and kernels")
    mxfp8_zeroed_scales: bool = spec_field(
        False, doc="with fp8_recipe mxfp8: Transformer Engine's earlier quantizer (before TE PRs 1793/2019, 2025), "
        "which zero-fills each quantize's two scale-factor tensors with torch.zeros: 2 more kernels per quantize")
    cuda_graphs: tuple[CudaGraphScope, ...] = spec_field(
        (), doc="megatron-core partial CUDA graphs (Megatron --cuda-graph-scope): attn, mlp, moe_router, "
        "moe_preprocess (with moe_router), moe (token-drop MoE only); each captured part costs the host one graph "
        "launch per pass instead of a launch per kernel; default none (eager)")

    @property
    def fp8(self) -> Fp8Recipe | None:
        """The fp8 recipe in force (None unless precision is fp8)."""
        if self.precision is not Precision.FP8:
            return None
        return self.fp8_recipe or Fp8Recipe.DELAYED

    def _issues(self) -> list[Issue]:
        if self.fp8_recipe is not None and self.precision is not Precision.FP8:
            return [Issue("fp8_recipe", f"{self.fp8_recipe.value} applies to precision fp8 only, not "
                          f"{self.precision.value}; set training.precision: fp8 or drop fp8_recipe")]
        if self.fp8_activation_cache and self.precision is not Precision.FP8:
            return [Issue("fp8_activation_cache", f"needs training.precision: fp8 (got {self.precision.value})")]
        if self.mxfp8_zeroed_scales and self.fp8 is not Fp8Recipe.MXFP8:
            got = self.fp8.value if self.fp8 is not None else f"precision {self.precision.value}"
            return [Issue("mxfp8_zeroed_scales", f"needs precision fp8 with fp8_recipe mxfp8 (got {got})")]
        dup = sorted({g.value for g in self.cuda_graphs if self.cuda_graphs.count(g) > 1})
        if dup:
            return [Issue("cuda_graphs", f"names {', '.join(dup)} more than once")]
        if CudaGraphScope.MOE_PREPROCESS in self.cuda_graphs and CudaGraphScope.MOE_ROUTER not in self.cuda_graphs:
            return [Issue("cuda_graphs", "moe_preprocess needs moe_router (Megatron captures the preprocess with "
                          "the router)")]
        return []
