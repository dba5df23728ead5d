"""Parameter and FLOP counts of MoE / MLA / MTP models (sim/costs/flops.py) against hand-computed values and
the published totals of the packaged presets."""

from __future__ import annotations

import dataclasses

import pytest

from sim import catalog
from sim.costs import flops
from sim.specs._schema import build
from sim.specs.model import ModelSpec


def preset(name: str) -> ModelSpec:
    data = {k: v for k, v in catalog.preset_table()[name].items() if k not in ("name", "source", "note")}
    return build(ModelSpec, data)


def test_mla_attention_params_of_deepseek_v3_by_hand():
    # q down 7168x1536 + q up 1536 x 128*(128+64); kv down 7168 x (512+64); kv up 512 x 128*(128+128);
    # out 128*128 x 7168
    expected = 7168 * 1536 + 1536 * 128 * 192 + 7168 * 576 + 512 * 128 * 256 + 128 * 128 * 7168
    assert flops.attention_params(preset("deepseek-v3")) == expected == 187_105_280


def test_mla_without_query_rank_uses_one_full_query_projection():
    m = preset("deepseek-v2")
    lite = dataclasses.replace(m, mla=dataclasses.replace(m.mla, q_lora_rank=None))
    assert flops.attention_params(m) - flops.attention_params(lite) == (
        5120 * 1536 + 1536 * 128 * 192 - 5120 * 128 * 192)


def test_mla_score_flops_use_qk_and_v_head_dims():
    m = preset("deepseek-v3")
    assert flops.attention_score_flops_per_token(m) == 2.0 * 4096 * 128 * (192 + 128)


def test_explicit_head_dim_sets_gqa_projections():
    m = preset("qwen3-30b-a3b")  # 32 heads of 128 at hidden 2048: Q is 2048 x 4096
    assert m.head_dim == 128
    assert flops.attention_params(m) == 2 * 2048 * 32 * 128 + 2 * 2048 * 4 * 128


def test_leading_dense_layers_and_moe_frequency():
    v3 = preset("deepseek-v3")
    assert [flops.is_moe_layer(v3, i) for i in range(5)] == [False, False, False, True, True]
    assert flops.num_moe_layers(v3) == 58
    maverick = preset("llama4-maverick")
    assert [flops.is_moe_layer(maverick, i) for i in range(4)] == [False, True, False, True]
    assert flops.num_moe_layers(maverick) == 24


def test_shared_expert_width_defaults_to_expert_width_and_counts_when_set():
    m = preset("deepseek-v3")
    assert m.moe.shared_expert_ffn_hidden_size == 2048
    wide = dataclasses.replace(m, moe=dataclasses.replace(m.moe, explicit_shared_expert_ffn_hidden_size=4096))
    layer = 3  # first MoE layer
    assert flops.layer_matmul_params(wide, layer) - flops.layer_matmul_params(m, layer) == 3 * 7168 * 2048


def test_mtp_module_adds_a_block_projection_and_one_more_lm_head_pass():
    m = preset("deepseek-v3")
    no_mtp = dataclasses.replace(m, mtp_layers=0)
    block = flops.layer_matmul_params(m, 60)  # an MoE layer, active experts only
    head = 129280 * 7168
    assert flops.active_matmul_params(m) - flops.active_matmul_params(no_mtp) == block + 2 * 7168 * 7168 + head
    extra = flops.forward_flops_per_token(m) - flops.forward_flops_per_token(no_mtp)
    assert extra == pytest.approx(2.0 * (block + 2 * 7168**2 + head) + flops.attention_score_flops_per_token(m))
    assert flops.active_params(m) == flops.active_params(no_mtp)  # "activated" figures exclude MTP


#: Published totals and activated parameters, billions: (preset, total, active, active excludes the input
#: embedding). Sources in each preset's `source:`; gpt-oss's model card counts active parameters without the
#: embedding (116.83B / 5.13B, 20.91B / 3.61B).
PUBLISHED = [
    ("deepseek-v3", 671.0, 37.0, False),
    ("deepseek-v2", 236.0, 21.0, False),
    ("mixtral-8x7b", 46.7, 12.9, False),
    ("mixtral-8x22b", 141.0, 39.0, False),
    ("qwen3-30b-a3b", 30.5, 3.3, False),
    ("qwen3-235b-a22b", 235.0, 22.0, False),
    ("gpt-oss-120b", 116.83, 5.13, True),
    ("gpt-oss-20b", 20.91, 3.61, True),
    ("llama4-scout", 109.0, 17.0, False),
    ("llama4-maverick", 400.0, 17.0, False),
    ("kimi-k2", 1040.0, 32.6, False),
    ("grok-1", 314.0, None, False),
]


@pytest.mark.parametrize(("name", "total", "active", "no_embedding"), PUBLISHED, ids=[p[0] for p in PUBLISHED])
def test_preset_parameter_counts_match_published(name, total, active, no_embedding):
    """Within 2% for the total (main model, MTP excluded) and 3% for the active count: the published figures are
    rounded to 2-3 digits and leave out small weights (QK-norms, biases, attention sinks) this count ignores."""
    m = preset(name)
    assert flops.total_params(m, include_mtp=False) / 1e9 == pytest.approx(total, rel=0.02)
    if active is not None:
        got = flops.active_params(m) - (m.vocab_size * m.hidden_size if no_embedding else 0)
        assert got / 1e9 == pytest.approx(active, rel=0.03)


def test_dense_models_active_equals_total():
    m = preset("llama3-70b")
    assert flops.active_params(m) == flops.total_params(m)
