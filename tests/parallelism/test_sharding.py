"""Which layers each pipeline stage and model chunk holds (sim/parallelism/sharding.py)."""

from __future__ import annotations

import pytest

from sim.parallelism.sharding import chunk_layers, rank_layers

from .conftest import make_scenario

CASES = [  # (layers, pipeline, virtual, account_for_embedding, account_for_loss)
    (8, 1, 1, False, False), (8, 2, 1, False, False), (8, 4, 1, False, False), (8, 8, 1, False, False),
    (8, 2, 2, False, False), (16, 4, 2, False, False), (24, 2, 3, False, False), (16, 2, 4, False, False),
    (7, 2, 1, True, False), (7, 4, 1, False, True), (14, 4, 1, True, True), (6, 8, 1, True, True),
    (14, 2, 4, True, True), (126, 16, 4, True, True), (30, 4, 2, True, True), (31, 4, 2, True, False),
]


def scenario(layers, p, v, emb, loss):
    return make_scenario(num_layers=layers, pipeline=p, virtual_pipeline=v,
                         schedule="interleaved-1f1b" if v > 1 else "1f1b",
                         account_for_embedding_in_pipeline_split=emb, account_for_loss_in_pipeline_split=loss)


@pytest.mark.parametrize(("layers", "p", "v", "emb", "loss"), CASES)
def test_chunks_cover_every_layer_once_in_order(layers, p, v, emb, loss):
    chunks = chunk_layers(scenario(layers, p, v, emb, loss))
    assert len(chunks) == p * v
    assert [i for c in chunks for i in c] == list(range(layers))


@pytest.mark.parametrize(("layers", "p", "v", "emb", "loss"), CASES)
def test_chunk_sizes_balance_layer_slots(layers, p, v, emb, loss):
    chunks = chunk_layers(scenario(layers, p, v, emb, loss))
    per = (layers + emb + loss) // (p * v)
    sizes = [len(c) for c in chunks]
    # the embedding takes one slot of the first virtual stage, the loss one slot of the last
    if p * v == 1:
        assert sizes == [per - emb - loss]
    else:
        assert sizes[0] == per - emb
        assert sizes[-1] == per - loss
        assert all(n == per for n in sizes[1:-1])


@pytest.mark.parametrize(("layers", "p", "v", "emb", "loss"), CASES)
def test_rank_layers_partition_the_model(layers, p, v, emb, loss):
    s = scenario(layers, p, v, emb, loss)
    chunks = chunk_layers(s)
    held = [rank_layers(s, r) for r in range(p)]
    assert sorted(i for r in held for i in r) == list(range(layers))
    for r in range(p):
        assert held[r] == [i for j in range(v) for i in chunks[j * p + r]]


def test_llama3_405b_split():
    # 126 layers + embedding + loss = 128 slots over 16 x 4 virtual stages: 2 each, 1 on the ends
    chunks = chunk_layers(scenario(126, 16, 4, True, True))
    assert len(chunks[0]) == 1 and len(chunks[-1]) == 1
    assert all(len(c) == 2 for c in chunks[1:-1])


def _sizes(chunks):
    return [len(c) for c in chunks]


def test_deepseek_v3_style_uneven_first_and_last_stages():
    # 61 layers on PP16 (DeepSeek-V3 report): 4 layers on the first stage, 2 on the last (+ MTP there), 55 left
    # for 14 middle stages does not split evenly; the report's 61 = 3 + 14*4 + 2 does.
    chunks = chunk_layers(make_scenario(61, pipeline=16, first_stage_layers=3, last_stage_layers=2))
    assert _sizes(chunks) == [3] + [4] * 14 + [2]
    assert [i for c in chunks for i in c] == list(range(61))


def test_uneven_stages_split_over_virtual_chunks():
    # 94 layers (Qwen3-235B), PP4 x VPP2: first stage 22 (11 + 11), last 24 (12 + 12), middle 24 each.
    s = make_scenario(94, pipeline=4, virtual_pipeline=2, schedule="interleaved-1f1b",
                      first_stage_layers=22, last_stage_layers=24)
    assert _sizes(chunk_layers(s)) == [11, 12, 12, 12, 11, 12, 12, 12]
    assert len(rank_layers(s, 0)) == 22 and len(rank_layers(s, 3)) == 24


def test_explicit_pipeline_layout_is_taken_as_written():
    s = make_scenario(10, pipeline=2, virtual_pipeline=2, schedule="interleaved-1f1b", pipeline_layout=[2, 3, 3, 2])
    assert _sizes(chunk_layers(s)) == [2, 3, 3, 2]
    assert rank_layers(s, 0) == [0, 1, 5, 6, 7] and rank_layers(s, 1) == [2, 3, 4, 8, 9]
