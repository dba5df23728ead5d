"""MLA attention time and the MTP block on the last stage (sim/costs/layer.py, sim/engine/step.py)."""

from __future__ import annotations

import pytest

from sim.costs import kernels, layer
from sim.engine.step import Blocks
from sim.parallelism.schedules import Phase

from .conftest import make_scenario
from .test_layer import paths

MLA = {"q_lora_rank": 1536, "kv_lora_rank": 512, "qk_nope_head_dim": 128, "qk_rope_head_dim": 64, "v_head_dim": 128}
V3_LIKE = {"num_layers": 2, "hidden_size": 7168, "ffn_hidden_size": 18432, "num_attention_heads": 128,
           "num_kv_heads": 128, "vocab_size": 129280, "seq_len": 4096, "activation": "swiglu", "dropout": False,
           "attention": "mla", "mla": MLA}


def test_mla_projection_gemms_by_hand():
    """Down-projections whole on each TP rank, up-projections and output split over TP (TP 2)."""
    s = make_scenario(V3_LIKE, {"tensor": 2})
    gpu, dt, n = s.gpu, "bf16", 4096
    expected = (kernels.gemm_time(gpu, dt, n, 1536, 7168) + kernels.gemm_time(gpu, dt, n, 128 * 192 / 2, 1536)
                + kernels.gemm_time(gpu, dt, n, 512 + 64, 7168) + kernels.gemm_time(gpu, dt, n, 128 * 256 / 2, 512)
                + kernels.gemm_time(gpu, dt, n, 7168, 128 * 128 / 2))
    assert layer._attention_gemms(gpu, dt, layer._Shape(s)) == pytest.approx(expected)


def test_mla_flash_attention_runs_at_the_mean_of_qk_and_v_head_dims():
    s = make_scenario(V3_LIKE)
    x = layer._Shape(s)
    assert x.d == 160 and x.g == 128
    t = layer._attention(s, s.gpu, x, paths().cp, backward=False)
    assert t.compute == pytest.approx(kernels.flash_attention_time(s.gpu, 128, 4096, 4096, 160, True, False))


def test_mtp_module_runs_on_the_last_stage_only():
    s = make_scenario({**V3_LIKE, "mtp_layers": 1}, {"pipeline": 2})
    blocks = Blocks(s, paths())
    last = [name for name, _, _ in blocks.pieces(1, Phase.FORWARD)]
    assert last[-2:] == ["lm_head", "mtp"]
    assert "mtp" not in [name for name, _, _ in blocks.pieces(0, Phase.FORWARD)]
    mtp = layer.mtp_time(s, s.gpu, paths(), blocks.layer(1))
    head = layer.head_time(s, s.gpu, paths())
    assert mtp.forward.total > blocks.layer(1).forward.total + head.forward.total


def test_mla_activations_store_every_heads_k_and_v_and_the_latents():
    from sim.costs import memory

    s = make_scenario(V3_LIKE, {"tensor": 2})
    gqa_like = make_scenario({**V3_LIKE, "attention": "gqa", "mla": None}, {"tensor": 2})
    # Q, K (192), V, context (128) per head over TP 2, plus the 1536 + 512 + 64 latents, 2 bytes each
    extra = 2 * 4096 * ((128 * (2 * 192 + 2 * 128) / 2 + 1536 + 512 + 64) - (4 * 128 * 56) / 2)
    assert memory.layer_activation_bytes(s) - memory.layer_activation_bytes(gqa_like) == pytest.approx(extra)


def test_mtp_weights_sit_on_the_last_stage():
    from sim.costs import memory

    s = make_scenario({**V3_LIKE, "mtp_layers": 1}, {"pipeline": 2})
    base = make_scenario(V3_LIKE, {"pipeline": 2})
    extra = memory.layer_params_per_gpu(s, 1) + 2 * 7168**2 + 3 * 7168
    assert memory.stage_params_per_gpu(s, 1) - memory.stage_params_per_gpu(base, 1) == pytest.approx(extra)
    assert memory.stage_params_per_gpu(s, 0) == memory.stage_params_per_gpu(base, 0)


def test_trace_block_flops_add_up_to_the_model_flops_with_mtp():
    from sim.costs import flops
    from sim.parallelism.sharding import chunk_layers
    from sim.report.trace import _forward_flops_per_token

    s = make_scenario({**V3_LIKE, "num_layers": 4, "mtp_layers": 1}, {"pipeline": 2})
    chunks = chunk_layers(s)
    blocks = sum(_forward_flops_per_token(s, c, i == len(chunks) - 1) for i, c in enumerate(chunks))
    assert blocks == pytest.approx(flops.forward_flops_per_token(s.model))
