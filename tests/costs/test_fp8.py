"""fp8 recipes (sim/costs/fp8.py): quantize bytes per GEMM operand against hand-computed values, fp8 memory,
and the layer-level consequences (LM head in 16 bit, rowwise slower than bf16 where GEMMs are small)."""

from __future__ import annotations

import pytest

from sim.costs import fp8, kernels, memory
from sim.costs.collectives import GroupPath
from sim.costs.layer import Paths, head_time, layer_time
from tests.costs.conftest import make_scenario

#: h 1024, 8 heads of 128 (MHA), SwiGLU of 4096: per TP rank at TP 1 the four projections are
#: QKV 1024 x 3072, out 1024 x 1024, up/gate 1024 x 8192, down 4096 x 1024.
MODEL = {"hidden_size": 1024, "num_attention_heads": 8, "num_kv_heads": 8, "ffn_hidden_size": 4096,
         "activation": "swiglu", "dropout": False, "seq_len": 2048}
TOKENS = 2048
INPUT_ELEMS = TOKENS * (1024 + 1024 + 1024 + 4096)  # X of QKV, out, up, down
WEIGHT_ELEMS = 1024 * 3072 + 1024 * 1024 + 1024 * 8192 + 4096 * 1024
GRAD_ELEMS = TOKENS * (3072 + 1024 + 8192 + 1024)  # dY of QKV, out, up, down


def _fp8(recipe: str, framework: str = "megatron-core", data: int = 1, gbs: int | None = None, **par):
    layout = {"data": data, "framework": framework, **par}
    if framework == "torchtitan":
        layout["zero_stage"] = 3
    training = {"precision": "fp8", "fp8_recipe": recipe}
    if gbs:
        training["global_batch_size"] = gbs
    return make_scenario(model=MODEL, parallelism=layout, training=training)


def _linears(s):
    return fp8.layer_linears(s, TOKENS, 4096, gate=True)


def test_linear_shapes():
    s = _fp8("delayed")
    shapes = [(lin.m, lin.k, lin.n) for lin in _linears(s)]
    assert shapes == [(2048, 1024, 3072), (2048, 1024, 1024), (2048, 1024, 8192), (2048, 4096, 1024)]
    assert sum(lin.input_elems for lin in _linears(s)) == INPUT_ELEMS
    assert sum(lin.weight_elems for lin in _linears(s)) == WEIGHT_ELEMS


def test_tensorwise_torchao_forward_bytes():
    # torchao casts weights every forward; tensorwise = amax read 2 + read 2 + fp8 rowwise 1 + transposed 1 = 6
    s = _fp8("tensorwise", framework="torchtitan")
    assert fp8.quantize_bytes(s, _linears(s), backward=False) == 6 * INPUT_ELEMS + 6 * WEIGHT_ELEMS
    assert fp8.quantize_bytes(s, _linears(s), backward=True) == 6 * GRAD_ELEMS


def test_delayed_te_casts_weights_once_per_step():
    # 8 micro-batches (global batch 8 on one replica): each carries 1/8 of the weight cast; delayed = 2 + 1 + 1
    s = _fp8("delayed", gbs=8)
    assert s.num_microbatches == 8
    assert fp8.quantize_bytes(s, _linears(s), backward=False) == pytest.approx(4 * INPUT_ELEMS + 4 * WEIGHT_ELEMS / 8)
    assert fp8.quantize_bytes(s, _linears(s), backward=True) == 4 * GRAD_ELEMS


def test_rowwise_quantizes_twice_and_blockwise_adds_scales():
    s = _fp8("rowwise", framework="torchtitan")
    assert fp8.quantize_bytes(s, _linears(s), backward=True) == 8 * GRAD_ELEMS
    s = _fp8("blockwise")
    assert fp8.quantize_bytes(s, _linears(s), backward=True) == pytest.approx((2 + 2 * (1 + 4 / 128)) * GRAD_ELEMS)


def test_no_fp8_no_quantize():
    s = make_scenario(model=MODEL)
    assert fp8.quantize_bytes(s, _linears(s), backward=False) == 0.0
    assert fp8.gemm_rate(s) == 1.0 and fp8.extra_kernels(s, 4) == 0


def test_quantize_time_is_memory_bound():
    s = _fp8("tensorwise", framework="torchtitan")
    lins = _linears(s)
    per_kernel = fp8.quantize_bytes(s, lins, backward=True) / 4
    assert fp8.quantize_time(s, s.gpu, lins, backward=True) == pytest.approx(4 * kernels.hbm_time(s.gpu, per_kernel))


def test_sequence_parallel_quantizes_the_shard_before_an_fp8_gather():
    # TP 2 with SP: QKV and up inputs are quantized on the 1/2 sequence shard (tensorwise gathers fp8); rowwise
    # gathers bf16 and quantizes the whole gathered input
    shard = _fp8("tensorwise", framework="torchtitan", tensor=2, sequence_parallel=True)
    whole = _fp8("rowwise", framework="torchtitan", tensor=2, sequence_parallel=True)
    assert _linears(shard)[0].input_elems == TOKENS * 1024 / 2
    assert _linears(whole)[0].input_elems == TOKENS * 1024
    assert fp8.tp_gather_bytes_per_element(shard) == 1.0 and fp8.tp_gather_bytes_per_element(whole) == 2.0


def test_fp8_memory_weight_copies_and_saved_inputs():
    bf16 = make_scenario(model=MODEL)
    te = _fp8("delayed")
    # TE keeps an fp8 weight and its transpose: 2 bytes per parameter
    assert fp8.weight_copy_bytes(te, 1e6) == 2e6
    assert fp8.weight_copy_bytes(_fp8("tensorwise", framework="torchtitan"), 1e6) == 0.0
    # linear inputs kept in fp8 (1 byte) instead of bf16: one byte less per input element
    saved = memory.layer_activation_bytes(bf16) - memory.layer_activation_bytes(te)
    assert saved == INPUT_ELEMS


def _paths(n: int) -> Paths:
    """One 8x H100 NVSwitch domain: 370 GB/s ring bus bandwidth (measured), NCCL latencies."""
    path = GroupPath(n=n, busbw=370e9, all_reduce_busbw=370e9, p2p_bw=396e9, intra_latency_s=1.9e-6,
                     inter_latency_s=4e-6, base_latency_s=14e-6, nodes=1, scale_out=False, sm_contention=0.15)
    return Paths(path, path, path)


def _layer(s):
    return layer_time(s, s.gpu, _paths(s.parallelism.tensor), moe=False)


def test_lm_head_stays_in_16_bit():
    paths = _paths(1)
    bf16, te = make_scenario(model=MODEL), _fp8("delayed")
    assert head_time(te, te.gpu, paths) == head_time(bf16, bf16.gpu, paths)


def test_rowwise_slower_than_bf16_on_small_gemms_tensorwise_faster():
    # Llama 3 8B shapes at TP 8 (torchtitan's June 2025 async-TP benchmark measured rowwise 3708 vs bf16 4378
    # TPS): the layer's GEMMs are small, so rowwise's doubled quantize passes and slower GEMM outweigh the fp8
    # speed-up, while tensorwise still wins.
    model = {"hidden_size": 4096, "num_attention_heads": 32, "num_kv_heads": 8, "ffn_hidden_size": 14336,
             "activation": "swiglu", "dropout": False, "seq_len": 8192}
    par = {"tensor": 8, "sequence_parallel": True, "framework": "torchtitan", "zero_stage": 3}

    def total(training):
        s = make_scenario(model=model, parallelism=par, training={"compile": True, **training})
        t = _layer(s)
        return t.forward.total + t.backward.total

    bf16 = total({})
    assert total({"precision": "fp8", "fp8_recipe": "rowwise"}) > bf16
    assert total({"precision": "fp8", "fp8_recipe": "tensorwise"}) < bf16


def test_async_tp_hides_its_fitted_share_on_copy_engines():
    # torchtitan async TP (frameworks.yaml tp_overlap: hidden_fraction 0.4, copy engines: no SM contention) vs
    # Megatron's userbuffers overlap (hides up to the GEMM time, SM contention of the path)
    model = {"hidden_size": 4096, "num_attention_heads": 32, "num_kv_heads": 8, "ffn_hidden_size": 14336,
             "activation": "swiglu", "dropout": False, "seq_len": 8192}
    base = {"tensor": 8, "sequence_parallel": True}

    def forward(par, training, overlap):
        s = make_scenario(model=model, parallelism={**base, **par, "tp_comm_overlap": overlap}, training=training)
        return _layer(s).forward

    tt, tt_train = {"framework": "torchtitan", "zero_stage": 3}, {"compile": True}
    exposed = forward(tt, tt_train, False).tp_comm
    hidden = forward(tt, tt_train, True)
    assert hidden.overlapped_comm == pytest.approx(0.4 * exposed)
    assert hidden.tp_comm == pytest.approx(0.6 * exposed)
    assert hidden.contention == 0.0
    mcore = forward({}, {}, True)  # hides what the layer's GEMMs cover (here less than all of it)
    assert mcore.overlapped_comm > hidden.overlapped_comm and mcore.contention == 0.15


def test_compile_fuses_torchtitan_elementwise_passes():
    # frameworks.yaml compile: eager RMSNorm 9 passes, residual 3, rotary 10, SwiGLU 5; compiled 2 / 3 / 2 / 3.
    # Forward elementwise bytes of one layer = 2 B x (norms 2 + residuals 2 over h, rotary over q+k, activation
    # over the MLP width); TP 1, 2048 tokens, h 1024, 8 + 8 heads of 128, SwiGLU width 4096.
    from sim.costs.layer import _elementwise_bytes, _Shape

    def nbytes(compile_: bool) -> float:
        s = make_scenario(model=MODEL, parallelism={"framework": "torchtitan", "zero_stage": 3},
                          training={"compile": compile_})
        return _elementwise_bytes(_Shape(s), 4096, gate=True)

    def by_hand(norm, residual, rotary, act):
        return 2.0 * TOKENS * ((2 * norm + 2 * residual) * 1024 + rotary * 16 * 128 + act * 4096)

    assert nbytes(False) == by_hand(9, 3, 10, 5)
    assert nbytes(True) == by_hand(2, 3, 2, 3)
    # Megatron-Core's fused kernels: the compiled counts
    mcore = make_scenario(model=MODEL)
    assert _elementwise_bytes(_Shape(mcore), 4096, gate=True) == by_hand(2, 3, 2, 3)


def test_op_sac_saves_only_the_mm_and_sdpa_outputs():
    # torchtitan op-level SAC, TP 1: per token the block input h, wq a*d, wv g*d, SDPA out a*d, w1 f, w2 h
    # (bf16) and the fp32 log-sum-exp per head
    s = make_scenario(model=MODEL, parallelism={"framework": "torchtitan", "zero_stage": 3,
                                                "activation_recompute": "selective"})
    per_token = 2 * (1024 + 1024 + 1024 + 1024 + 4096 + 1024) + 4 * 8
    assert memory.layer_activation_bytes(s) == TOKENS * per_token


def test_search_does_not_vary_async_tp_without_compile():
    # torchtitan's async TP needs torch.compile (an invalid-scenario rule), so the search keeps the base's
    # tp_comm_overlap instead of proposing layouts the spec rejects; with compile it varies it
    from sim.analysis.explore.space import SearchSpace, enumerate_space

    par = {"tensor": 2, "data": 2, "framework": "torchtitan", "zero_stage": 3}
    for compile_, expected in ((False, {0}), (True, {0, 1})):
        base = make_scenario(parallelism=par, training={"compile": compile_})
        found = enumerate_space(base, SearchSpace()).valid["tp_comm_overlap"]
        assert set(found.tolist()) == expected
