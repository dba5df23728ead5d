"""Kernel counts behind the host launch costs (catalog ``kernels.yaml``, each count with its source), typed and
checked once at load: a bad catalog edit fails naming the field, never a KeyError deep in the cost model."""

from __future__ import annotations

import functools
from dataclasses import dataclass

from sim import catalog
from sim.errors import Issue
from sim.specs._schema import Spec, build, spec_field
from sim.specs.enums import AttentionKernel


@dataclass(frozen=True, slots=True, kw_only=True)
class KernelCount(Spec):
    """Kernels some part of a pass launches, counted from the framework's code."""

    value: int = spec_field(doc="kernels launched", ge=0)
    source: str = spec_field(doc="what is counted and where in the framework's code")


@dataclass(frozen=True, slots=True, kw_only=True)
class LayerKernels(Spec):
    """One transformer layer's forward in Megatron-Core's eager implementation, by side and module."""

    attention: dict[AttentionKernel, KernelCount] = spec_field(doc="attention side, by training.attention")
    mlp: KernelCount = spec_field(doc="MLP side (in an MoE layer: the shared expert's norm, bias-dropout-add, "
                                      "TP collective)")
    mla_extra: KernelCount = spec_field(doc="MLA's attention side beyond GQA's")
    mla_up_proj: KernelCount = spec_field(doc="MLA up-projection the mla_up_proj recompute re-runs")
    shared_expert: KernelCount = spec_field(doc="an MoE layer's shared expert (GEMMs and activation)")
    torch_softmax_extra: KernelCount = spec_field(doc="PyTorch fp32 softmax fallback beyond the fused kernel")

    def _issues(self) -> list[Issue]:
        missing = [kind.value for kind in AttentionKernel if kind not in self.attention]
        return [Issue("attention", f"no count for {', '.join(missing)}")] if missing else []


@dataclass(frozen=True, slots=True, kw_only=True)
class Fp8Kernels(Spec):
    """Kernels the fp8 quantizers launch."""

    quantize_per_linear: KernelCount = spec_field(doc="per fp8 linear and pass (one quantize)")
    mxfp8_zeroed_scales: KernelCount = spec_field(doc="added to each quantize by training.mxfp8_zeroed_scales")


@dataclass(frozen=True, slots=True, kw_only=True)
class KernelCounts(Spec):
    """The whole of ``kernels.yaml``."""

    megatron_layer: LayerKernels = spec_field(doc="Megatron-Core transformer layer")
    fp8: Fp8Kernels = spec_field(doc="fp8 quantizers")


@functools.cache
def kernel_counts() -> KernelCounts:
    """The catalog's kernel counts (read and checked once per process)."""
    return build(KernelCounts, catalog.kernels_table(), "catalog kernels")
