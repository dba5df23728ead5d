"""Parameter and FLOP counts against hand-computed values (sim/costs/flops.py)."""

from __future__ import annotations

import math

import pytest

from sim.costs import flops

from .conftest import model_spec, preset_model


def test_attention_params_small_gqa_shape():
    m = model_spec(hidden_size=64, num_attention_heads=4, num_kv_heads=2, ffn_hidden_size=96)
    # d = 64/4 = 16; Q and O: 2*h*a*d = 2*64*4*16 = 8192; K and V: 2*h*g*d = 2*64*2*16 = 4096
    assert flops.attention_params(m) == 8192 + 4096


def test_attention_params_mha_is_4h2():
    m = model_spec(hidden_size=96, num_attention_heads=6, num_kv_heads=6)
    assert flops.attention_params(m) == 4 * 96 * 96


@pytest.mark.parametrize(("activation", "expected"), [("swiglu", 3 * 64 * 96), ("gelu", 2 * 64 * 96)])
def test_dense_mlp_params(activation, expected):
    m = model_spec(hidden_size=64, num_attention_heads=4, num_kv_heads=4, ffn_hidden_size=96,
                   activation=activation)
    assert flops.dense_mlp_params(m) == expected
    assert flops.dense_mlp_params(m, ffn=10) == expected // 96 * 10


def test_llama3_8b_total_params():
    m = preset_model("llama3-8b")
    h, f, a, g, d, L, V = 4096, 14336, 32, 8, 128, 32, 128256
    attention = 2 * h * a * d + 2 * h * g * d  # 33_554_432 + 8_388_608
    mlp = 3 * h * f  # 176_160_768
    per_layer = attention + mlp + 2 * h  # two RMSNorms
    expected = L * per_layer + 2 * V * h + h  # embedding + untied head + final norm
    assert expected == 8_030_261_248
    assert flops.total_params(m) == expected
    assert flops.total_params(m) == pytest.approx(8.03e9, rel=1e-3)


def test_gpt3_175b_total_params_tied():
    m = preset_model("gpt3-175b")
    h, L, V = 12288, 96, 51200
    per_layer = 4 * h * h + 2 * h * 4 * h + 2 * h  # MHA + GeLU MLP (f = 4h) + 2 LayerNorm weights
    expected = L * per_layer + V * h + h  # tied: one V x h matrix
    assert expected == 174_577_692_672
    assert flops.total_params(m) == expected
    assert flops.total_params(m) == pytest.approx(174.6e9, rel=1e-3)


def test_tied_embeddings_remove_exactly_one_vh():
    untied = model_spec(tied_embeddings=False)
    tied = model_spec(tied_embeddings=True)
    assert flops.total_params(untied) - flops.total_params(tied) == 51200 * 1024


def test_active_matmul_params_and_model_flops_llama3_8b():
    m = preset_model("llama3-8b")
    h, f, a, g, d, L, V, s = 4096, 14336, 32, 8, 128, 32, 128256, 8192
    active = L * (2 * h * a * d + 2 * h * g * d + 3 * h * f) + V * h  # LM head in, embedding lookup out
    assert flops.active_matmul_params(m) == active
    assert flops.attention_score_flops_per_token(m) == 4 * s * a * d
    forward = 2 * active + L * 4 * s * a * d
    assert flops.forward_flops_per_token(m) == pytest.approx(forward, rel=1e-15)
    assert flops.model_flops_per_token(m) == pytest.approx(3 * forward, rel=1e-15)
    assert flops.model_flops_per_token(m) == pytest.approx(57_912_852_480, rel=1e-12)


def test_model_flops_small_made_up_shape():
    m = model_spec(num_layers=3, hidden_size=64, num_attention_heads=4, num_kv_heads=2, ffn_hidden_size=96,
                   activation="swiglu", vocab_size=100, seq_len=32)
    active = 3 * (12288 + 3 * 64 * 96) + 100 * 64  # = 3*30720 + 6400 = 98560
    assert active == 98_560
    forward = 2 * 98_560 + 3 * 4 * 32 * 4 * 16  # 197120 + 24576
    assert flops.model_flops_per_token(m) == 3 * forward == 665_088


def test_recompute_flops():
    m = model_spec(num_layers=3, hidden_size=64, num_attention_heads=4, num_kv_heads=4, ffn_hidden_size=256,
                   vocab_size=100, seq_len=32)
    score = 3 * 4 * 32 * 4 * 16  # L * 4 s a d
    layer_matmul = 4 * 64 * 64 + 2 * 64 * 256  # MHA + GeLU MLP
    assert flops.recompute_flops_per_token(m, "none") == 0.0
    assert flops.recompute_flops_per_token(m, "selective") == score
    assert flops.recompute_flops_per_token(m, "full") == 2 * 3 * layer_matmul + score


def test_moe_params_active_and_total():
    moe = {"num_experts": 8, "top_k": 2, "expert_ffn_hidden_size": 32, "shared_experts": 1,
           "moe_layer_frequency": 2}
    m = model_spec(num_layers=4, hidden_size=64, num_attention_heads=4, num_kv_heads=4, ffn_hidden_size=256,
                   activation="swiglu", moe=moe)
    expert = 3 * 64 * 32  # one SwiGLU expert: 6144
    router = 64 * 8
    assert flops.moe_mlp_params(m, active=False) == (8 + 1) * expert + router
    assert flops.moe_mlp_params(m, active=True) == (2 + 1) * expert + router
    assert [flops.is_moe_layer(m, i) for i in range(4)] == [False, True, False, True]
    assert flops.num_moe_layers(m) == 2
    dense_layer = 4 * 64 * 64 + 3 * 64 * 256
    moe_layer_total = 4 * 64 * 64 + 9 * expert + router
    assert flops.total_params(m) == (2 * dense_layer + 2 * moe_layer_total + 4 * 2 * 64
                                     + 2 * m.vocab_size * 64 + 64)


GPT_SHAPES = [  # (layers, hidden, heads, seq, vocab, batch)
    (96, 12288, 96, 2048, 51200, 1536),  # GPT-3 175B (Narayanan Table 1)
    (24, 2048, 16, 2048, 51200, 32),
    (4, 1024, 16, 1024, 50257, 8),
    (128, 25600, 160, 2048, 51200, 3072),  # Narayanan's 1T row
]


@pytest.mark.parametrize(("L", "h", "a", "s", "V", "B"), GPT_SHAPES)
def test_narayanan_formula_is_4x_forward_minus_2x_lm_head(L, h, a, s, V, B):
    """Narayanan eq. (3) counts layers 4x (fwd, bwd = 2 fwd, recompute) but the LM head 3x (6 V h)."""
    m = model_spec(num_layers=L, hidden_size=h, ffn_hidden_size=4 * h, num_attention_heads=a, num_kv_heads=a,
                   vocab_size=V, seq_len=s, activation="gelu", tied_embeddings=False)
    tokens = B * s
    expected = 4 * flops.forward_flops_per_token(m) * tokens - 2 * V * h * tokens
    got = flops.narayanan_flops_per_iteration(B, s, L, h, V)
    assert got == pytest.approx(expected, rel=1e-12)
    # The same identity through the HFU count: model FLOPs + full-recompute FLOPs.
    hfu = (flops.model_flops_per_token(m) + flops.recompute_flops_per_token(m, "full")) * tokens
    assert got == pytest.approx(hfu, rel=1e-12)


def test_narayanan_formula_hand_value():
    # 96 B s l h^2 (1 + s/6h + V/16lh) for B=1, s=6, l=1, h=1, V=16 -> 96*6*(1 + 1 + 1) = 1728
    assert flops.narayanan_flops_per_iteration(1, 6, 1, 1, 16) == pytest.approx(1728.0)
    assert math.isclose(flops.narayanan_flops_per_iteration(2, 6, 1, 1, 16), 2 * 1728.0)
