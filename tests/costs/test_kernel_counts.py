"""Kernel counts of catalog kernels.yaml (sim/specs/kernels.py): they load typed with their sources, a bad edit
fails naming the field, and one layer's launches follow from them by hand."""

from __future__ import annotations

import copy

import pytest

from sim import catalog
from sim.costs import layer
from sim.costs.layer import Launches
from sim.errors import ScenarioError
from sim.specs._schema import build
from sim.specs.enums import AttentionKernel
from sim.specs.kernels import KernelCounts, kernel_counts

from .conftest import make_scenario
from .test_mla_mtp_layer import V3_LIKE


def test_catalog_counts_load_with_their_sources():
    counts = kernel_counts()
    m, q = counts.megatron_layer, counts.fp8
    values = {"flash": m.attention[AttentionKernel.FLASH].value, "unfused": m.attention[AttentionKernel.UNFUSED].value,
              "mlp": m.mlp.value, "mla_extra": m.mla_extra.value, "mla_up_proj": m.mla_up_proj.value,
              "shared_expert": m.shared_expert.value, "torch_softmax_extra": m.torch_softmax_extra.value,
              "quantize_per_linear": q.quantize_per_linear.value, "mxfp8_zeroed_scales": q.mxfp8_zeroed_scales.value}
    assert values == {"flash": 10, "unfused": 13, "mlp": 6, "mla_extra": 8, "mla_up_proj": 7, "shared_expert": 3,
                      "torch_softmax_extra": 4, "quantize_per_linear": 1, "mxfp8_zeroed_scales": 2}
    sources = [c.source for c in (*m.attention.values(), m.mlp, m.mla_extra, m.mla_up_proj, m.shared_expert,
                                  m.torch_softmax_extra, q.quantize_per_linear, q.mxfp8_zeroed_scales)]
    assert all("Megatron" in s or "Transformer Engine" in s for s in sources)
    assert kernel_counts() is kernel_counts()  # read once


@pytest.mark.parametrize(("edit", "path"), [
    (lambda t: t["megatron_layer"]["mlp"].update(value=-1), "catalog kernels.megatron_layer.mlp.value"),
    (lambda t: t["megatron_layer"]["attention"].pop("unfused"), "catalog kernels.megatron_layer.attention"),
    (lambda t: t["fp8"]["quantize_per_linear"].pop("source"), "catalog kernels.fp8.quantize_per_linear.source"),
    (lambda t: t["megatron_layer"]["mla_extra"].update(value=8.5), "catalog kernels.megatron_layer.mla_extra.value"),
])
def test_a_bad_catalog_edit_names_the_field(edit, path):
    table = copy.deepcopy(catalog.kernels_table())
    edit(table)
    with pytest.raises(ScenarioError) as err:
        build(KernelCounts, table, "catalog kernels")
    assert path in str(err.value)


def test_one_moe_mla_layer_by_hand():
    """DeepSeek-V3-like layer: MLA, 16 experts over EP 4 (4 local), one shared expert, MXFP8 with the zero-filled
    scales (3 kernels per quantize), recomputing the MLA up-projection and the shared expert."""
    s = make_scenario({**V3_LIKE, "moe": {"num_experts": 16, "top_k": 4, "expert_ffn_hidden_size": 512,
                                          "shared_experts": 1}},
                      {"data": 4, "expert": 4, "activation_recompute": "selective",
                       "recompute_modules": ["mla_up_proj", "shared_experts"]},
                      {"attention": "flash", "precision": "fp8", "fp8_recipe": "mxfp8", "mxfp8_zeroed_scales": True},
                      gpu="B200", topology="dgx-b200")
    quant = 1 + 2
    attention = 10 + 2 * quant + 8 + 3 * quant  # flash side, QKV and out quantizes, MLA's extra and its 3 linears
    mlp = 6 + 2 * quant  # MLP side (the shared expert's norm, bias-dropout-add, TP collective) and 2 quantizes
    router = 31  # moe.yaml: the fused router, alltoall dispatcher
    after_sync = 7 + 1 + 2 * 4 * (1 + quant)  # dispatch, activation, per local expert and linear a GEMM + quantize
    assert layer._forward_launches(s, layer._Shape(s), moe=True) == Launches(attention + mlp + router, after_sync)
    assert Launches(attention + mlp + router, after_sync) == Launches(76, 40)
    # the recompute re-launches the MLA up-projection (7 + 2 quantizes) and the shared expert (3 + 2 quantizes)
    assert layer._recompute_launches(s, moe=True) == (7 + 2 * quant) + (3 + 2 * quant) == 22
