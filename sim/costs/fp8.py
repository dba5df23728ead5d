"""fp8 recipes: which GEMMs run in fp8, the quantize kernels each recipe adds, fp8 weight copies and
fp8-saved activations (data in catalog/frameworks.yaml ``fp8_recipes`` / ``fp8_frameworks``; kernel counts in
catalog/kernels.yaml ``fp8``).

The transformer layers' four projections (QKV, out, MLP up/gate, MLP down) run in fp8; the LM head stays in
16 bit (torchtitan filters the ``output`` linear, Megatron-Core's output layer is not a TE module) and attention
runs in 16 bit (kernels.flash_attention_time). Every fp8 GEMM operand is quantized by a memory-bound kernel:
per micro-batch the layer inputs X in forward and the output gradients dY in backward, and the weights once
per step (Transformer Engine caches them across micro-batches) or every forward (torchao).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sim import catalog
from sim.costs import kernels, shapes
from sim.specs.enums import Fp8Recipe, Framework
from sim.specs.hardware import GpuSpec
from sim.specs.kernels import kernel_counts
from sim.specs.scenario import Scenario


def recipe_entry(recipe: Fp8Recipe) -> dict[str, Any]:
    """The catalog entry of ``recipe``."""
    return catalog.frameworks_table()["fp8_recipes"][recipe.value]


def framework_entry(framework: Framework) -> dict[str, Any]:
    """How ``framework`` runs fp8 linears (weight caching)."""
    return catalog.frameworks_table()["fp8_frameworks"][framework.value]


@dataclass(frozen=True, slots=True)
class Linear:
    """One projection GEMM of a layer on one TP rank: ``(m x k) @ (k x n)``; ``input_elems`` are the input
    elements this rank quantizes (its sequence shard when the TP all-gather moves fp8, else the gathered input)."""

    m: float
    k: float
    n: float
    input_elems: float

    @property
    def weight_elems(self) -> float:
        return self.k * self.n

    @property
    def grad_output_elems(self) -> float:
        return self.m * self.n


def layer_linears(s: Scenario, tokens: float, mlp_width: float, gate: bool) -> tuple[Linear, ...]:
    """QKV, out, up(/gate) and down projections of one layer for ``tokens`` tokens on one TP rank."""
    m, p = s.model, s.parallelism
    t = p.tensor
    sp = shapes.sp_degree(p)
    recipe = s.training.fp8
    # Column-parallel inputs arrive by a TP all-gather under SP: quantized before it (the local shard) when the
    # recipe gathers fp8, after it (the whole input) otherwise.
    shard = sp if recipe is not None and recipe_entry(recipe)["tp_gather_fp8"] else 1
    h, d = m.hidden_size, m.head_dim
    qkv_n = (m.num_attention_heads + 2 * m.num_kv_heads) * d / t
    context = m.num_attention_heads * d / t
    up_n = (2 if gate else 1) * mlp_width / t
    return (Linear(tokens, h, qkv_n, tokens * h / shard), Linear(tokens, context, h, tokens * context),
            Linear(tokens, h, up_n, tokens * h / shard), Linear(tokens, mlp_width / t, h, tokens * mlp_width / t))


def quantize_bytes(s: Scenario, linears: tuple[Linear, ...], backward: bool) -> float:
    """HBM bytes the recipe's quantize kernels move for one pass of one micro-batch over ``linears``:
    forward the inputs (and the weights, every forward or a 1/m share of the once-per-step cast), backward
    the output gradients."""
    recipe = s.training.fp8
    if recipe is None:
        return 0.0
    per_elem = recipe_entry(recipe)["quantize_bytes"]
    if backward:
        return sum(lin.grad_output_elems for lin in linears) * per_elem["grad_output"]
    weight_share = _weight_cast_share(s)
    return sum(lin.input_elems * per_elem["input"] + lin.weight_elems * per_elem["weight"] * weight_share
               for lin in linears)


def _weight_cast_share(s: Scenario) -> float:
    """Share of a GPU's full weights cast to fp8 per micro-batch forward: a 1/m share of Transformer Engine's
    once-per-step cast, the whole weight under torchao (cast inside each forward), or only the local shard
    under fp8 FSDP all-gather (cast before the gather, torchtitan docs/float8.md)."""
    if s.parallelism.fp8_all_gather:
        return 1.0 / s.parallelism.shard_size
    per_step = framework_entry(s.parallelism.framework)["weight_cast"] == "step"
    return 1.0 / s.num_microbatches if per_step else 1.0


def quantize_time(s: Scenario, gpu: GpuSpec, linears: tuple[Linear, ...], backward: bool) -> float:
    """Seconds of the quantize kernels of one pass: one memory-bound kernel per linear."""
    nbytes = quantize_bytes(s, linears, backward)
    if nbytes <= 0:
        return 0.0
    return len(linears) * kernels.hbm_time(gpu, nbytes / len(linears))


def expert_quantize_time(s: Scenario, gpu: GpuSpec, rows: float, experts: int, h: float, up: float, f: float,
                         backward: bool) -> float:
    """Seconds of the quantize kernels of the routed experts' two grouped linears (``h -> up``, ``f -> h``) for
    one pass on one GPU: ``rows`` routed tokens over all ``experts`` local experts. Transformer Engine's
    GroupedLinear quantizes each expert's slice on its own (one kernel per expert and linear: the input forward,
    the output gradient backward) and the experts' weights as the framework does the dense ones (weight_cast)."""
    recipe = s.training.fp8
    if recipe is None or rows <= 0 or experts <= 0:
        return 0.0
    per_elem = recipe_entry(recipe)["quantize_bytes"]
    if backward:
        nbytes = rows * (up + h) * per_elem["grad_output"]
    else:
        weight_share = _weight_cast_share(s)
        nbytes = (rows * (h + f) * per_elem["input"]
                  + experts * (h * up + f * h) * per_elem["weight"] * weight_share)
    n = 2 * experts * kernel_counts().fp8.quantize_per_linear.value
    return n * kernels.hbm_time(gpu, nbytes / n)


def gemm_rate(s: Scenario) -> float:
    """Rate of the recipe's fp8 GEMM kernel relative to the per-tensor-scaled one (1.0 without fp8)."""
    recipe = s.training.fp8
    return 1.0 if recipe is None else float(recipe_entry(recipe)["gemm_rate"])


def tp_gather_bytes_per_element(s: Scenario) -> float:
    """Bytes per element of a forward TP (sequence-parallel) all-gather of a linear's input."""
    recipe = s.training.fp8
    return 1.0 if recipe is not None and recipe_entry(recipe)["tp_gather_fp8"] else 2.0


def kernels_per_quantize(s: Scenario) -> int:
    """Kernels one quantize launches (catalog ``kernels.yaml`` ``fp8``): none without fp8; the quantize, plus the
    zero-filled scales of ``training.mxfp8_zeroed_scales``."""
    if s.training.fp8 is None:
        return 0
    counts = kernel_counts().fp8
    zeroed = counts.mxfp8_zeroed_scales.value if s.training.mxfp8_zeroed_scales else 0
    return counts.quantize_per_linear.value + zeroed


def extra_kernels(s: Scenario, n_linears: int) -> int:
    """Kernels the recipe adds to one pass of ``n_linears`` linears."""
    return kernels_per_quantize(s) * n_linears


def weight_copy_bytes(s: Scenario, linear_params: float) -> float:
    """Persistent fp8 weight copies (rowwise + transposed) of ``linear_params`` parameters: Transformer
    Engine keeps them between micro-batches; torchao casts inside each forward and keeps none."""
    if s.training.fp8 is None:
        return 0.0
    return linear_params * float(framework_entry(s.parallelism.framework)["weight_copy_bytes"])


def saved_input_bytes_saved(s: Scenario, linears: tuple[Linear, ...]) -> float:
    """Activation bytes saved per layer because the linears keep their fp8 input (1 byte) for the weight
    gradient instead of the bf16 one (2 bytes), sequence-sharded under SP as the bf16 one was; rowwise keeps
    bf16 (its wgrad needs other scales)."""
    recipe = s.training.fp8
    if recipe is None or not recipe_entry(recipe)["saves_fp8_input"]:
        return 0.0
    return sum(lin.input_elems for lin in linears) * 1.0
