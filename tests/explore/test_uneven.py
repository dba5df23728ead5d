"""Uneven pipelines in the layout space: the balanced first/last stage splits by hand, their layouts valid and
split as enumerated, the base's own split not repeated, and the pre-screen costing the busiest stage."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from sim.analysis.evaluate import evaluate
from sim.analysis.explore.prescreen import prescreen
from sim.analysis.explore.space import Layout, SearchSpace, enumerate_space, uneven_splits
from sim.costs.memory import peak_memory
from sim.parallelism.sharding import chunk_layers
from sim.specs.enums import Recompute, Schedule
from sim.specs.scenario import scenario_from_mapping
from tests.explore.conftest import TINY_SPACE, tiny_mapping


@pytest.mark.parametrize(("layers", "pipeline", "virtual", "splits"), [
    # DeepSeek-V3: middle stages ceil(61/16) = 4 layers; 61 - 14 x 4 = 5 left for the ends, each 1..4:
    # first lightest 1+4, most even 2+3, last lightest 4+1 (the report's and Megatron's recipe split)
    (61, 16, 1, ((1, 4), (2, 3), (4, 1))),
    # 61 over 8: middle 8 each (ceil 7.6), 61 - 48 = 13 for the ends, each in 13-8 = 5..8: 5+8, 6+7, 8+5
    (61, 8, 1, ((5, 8), (6, 7), (8, 5))),
    # two chunks per rank: every stage a multiple of 2; middle 2 x ceil(61/32) = 4, 61 - 56 = 5 is odd: none
    (61, 16, 2, ()),
    # Llama 3 405B's 126 on PP16 x 2: middle 8, 126 - 112 = 14 for the ends, each even in 6..8: 6+8, 8+6
    (126, 16, 2, ((6, 8), (8, 6))),
    # two stages are both ends: 61 = 30 + 31 or 31 + 30 (each at most ceil(61/2) = 31)
    (61, 2, 1, ((30, 31), (31, 30))),
    # the hand-laid GPT-4-class scenario: 120 over PP25, middle 5, 120 - 115 = 5 for the ends
    (120, 25, 1, ((1, 4), (2, 3), (4, 1))),
    (120, 25, 2, ()),  # middle 2 x ceil(120/50) = 6: 23 x 6 = 138 > 120
    (64, 16, 1, ()),  # even split
    (64, 16, 2, ()),
    (4, 4, 2, ()),  # middle 2 each leaves no layer for the ends
    (7, 1, 1, ()),  # one stage
])
def test_uneven_splits_by_hand(layers, pipeline, virtual, splits):
    assert uneven_splits(layers, pipeline, virtual) == splits
    for first, last in splits:  # Megatron's rules (the spec's _uneven_issues) hold and the busiest is balanced
        middle = layers - first - last
        assert middle % max(pipeline - 2, 1) == 0 and first % virtual == 0 and last % virtual == 0
        k = middle // (pipeline - 2) if pipeline > 2 else max(first, last)
        assert max(first, last) <= k == virtual * -(-layers // (pipeline * virtual))


def seven_layers(num_gpus: int = 4, global_batch: int = 8, **parallelism):
    """The tiny model with 7 layers: PP 2 and 4 divide neither 7 nor 7 + embedding + loss."""
    mapping = tiny_mapping(num_gpus, global_batch)
    mapping["model"]["num_layers"] = 7
    mapping["parallelism"].update(parallelism)
    return scenario_from_mapping(mapping)


def test_uneven_layouts_are_enumerated_where_the_even_split_fails():
    """7 layers on 4 GPUs: without uneven splits no layout has more than one stage. With them: PP2 as 3+4 or 4+3,
    PP4 as 1+2x2+2 or 2+2x2+1 (1F1B only: every stage of PP2x2 / PP4x2 would need an even count), each
    applied as first/last_stage_layers with those chunks."""
    base = seven_layers()
    even = enumerate_space(base, dataclasses.replace(TINY_SPACE, uneven_pipelines=False))
    assert set(even.valid["pipeline"].tolist()) == {1}
    enum = enumerate_space(base, TINY_SPACE)
    assert enum.total > even.total and enum.num_rejected >= even.num_rejected
    layouts = [enum.valid.layout(i) for i in range(len(enum.valid))]
    splits = {(x.pipeline, x.virtual_pipeline, x.first_stage_layers, x.last_stage_layers)
              for x in layouts if x.pipeline > 1}
    assert splits == {(2, 1, 3, 4), (2, 1, 4, 3), (4, 1, 1, 2), (4, 1, 2, 1)}
    for x in layouts:
        s = x.apply(base)
        p = s.parallelism
        assert (p.first_stage_layers, p.last_stage_layers) == ((x.first_stage_layers or None),
                                                               (x.last_stage_layers or None))
        counts = [len(c) for c in chunk_layers(s)]
        if x.pipeline > 1:
            assert counts[0] == x.first_stage_layers and counts[-1] == x.last_stage_layers and sum(counts) == 7
            assert not x.split and p.pipeline_layout is None
    assert enum.valid.find(layouts[-1]) == len(layouts) - 1
    assert "PP4 first1/last2" in Layout(tensor=1, pipeline=4, virtual_pipeline=1, context=1, data=1, zero_stage=0,
                                        micro_batch_size=1, activation_recompute=Recompute.NONE,
                                        schedule=Schedule.ONE_F_ONE_B, split=False, first_stage_layers=1,
                                        last_stage_layers=2).label()


def test_the_bases_own_explicit_split_is_not_enumerated_twice():
    """A base laid out [4, 3] on PP2 keeps its layout on its own shape (first/last 0 in the table); the uneven 4+3
    would repeat it and is left out, 3+4 is tried. Every valid layout is a different scenario."""
    base = seven_layers(pipeline=2, data=2, pipeline_layout=[4, 3])
    enum = enumerate_space(base, TINY_SPACE)
    pp2 = [enum.valid.layout(i) for i in range(len(enum.valid)) if enum.valid["pipeline"][i] == 2]
    assert {(x.first_stage_layers, x.last_stage_layers) for x in pp2} == {(0, 0), (3, 4)}
    own = Layout.of(base)
    assert enum.valid.find(own) is not None and own.apply(base).parallelism.pipeline_layout == (4, 3)
    applied = [x.apply(base).parallelism for x in (enum.valid.layout(i) for i in range(len(enum.valid)))]
    assert len(set(applied)) == len(applied)


def test_prescreen_memory_equals_the_memory_model_on_uneven_layouts():
    base = seven_layers(num_gpus=8, global_batch=16)
    enum = enumerate_space(base, SearchSpace(micro_batch_sizes=(1, 2), max_virtual=2))
    uneven = np.flatnonzero(enum.valid["first_stage_layers"] > 0)
    assert len(uneven) > 0
    est = prescreen(enum).memory_bytes
    exact = [peak_memory(enum.valid.layout(int(i)).apply(base)).total for i in uneven]
    np.testing.assert_allclose(est[uneven], exact, rtol=1e-9)


def test_prescreen_costs_the_busiest_stage_as_the_engine_does():
    """PP4 over 7 layers: 1+2+2+2 puts two layers beside the LM head on the last stage, 2+2+2+1 two layers beside
    the (cheaper) embedding on the first: the last stage is the busiest of the first split, so both the pre-screen
    and the simulation find the second faster."""
    base = seven_layers()
    enum = enumerate_space(base, dataclasses.replace(TINY_SPACE, pipeline=(4,), micro_batch_sizes=(1,),
                                                     zero_stages=(0,), recomputes=(Recompute.NONE,)))
    est = prescreen(enum).step_s
    rows = {(enum.valid["first_stage_layers"][i], enum.valid["last_stage_layers"][i]): i
            for i in range(len(enum.valid))}
    assert set(rows) == {(1, 2), (2, 1)}
    sim = {k: evaluate(enum.valid.layout(i).apply(base)).step.step_time_s for k, i in rows.items()}
    assert est[rows[2, 1]] < est[rows[1, 2]] and sim[2, 1] < sim[1, 2]


def test_deepseek_v3_reaches_uneven_pp8_and_pp16_and_the_prescreen_memory_holds():
    """The bundled DeepSeek-V3 scenario (61 layers, 3 dense + 58 MoE, MTP and MLA; its own PP16 split 4 x 15 + 1):
    PP8 as 5+6x8+8, 6+6x8+7, 8+6x8+5; PP16 as its own split and 1+14x4+4, 2+14x4+3 (4+14x4+1 is its own). The
    pre-screen's memory equals the memory model on each (first and last stages with the embedding, MTP, head)."""
    from pathlib import Path

    from sim.specs.scenario import load_scenario

    base = load_scenario(Path(__file__).resolve().parents[2] / "scenarios" / "deepseek-v3-2048-h800.yaml")
    space = SearchSpace(tensor=(1,), pipeline=(8, 16), context=(1,), expert=(64,), expert_tensor=(1,),
                        micro_batch_sizes=(1,), zero_stages=(1,), recomputes=(Recompute.SELECTIVE,),
                        schedules=(Schedule.ONE_F_ONE_B,), tp_comm_overlaps=(False,))
    enum = enumerate_space(base, space)
    splits = {(int(p), int(f), int(la)) for p, f, la in zip(enum.valid["pipeline"], enum.valid["first_stage_layers"],
                                                           enum.valid["last_stage_layers"], strict=True)}
    assert splits == {(8, 5, 8), (8, 6, 7), (8, 8, 5), (16, 0, 0), (16, 1, 4), (16, 2, 3)}
    est = prescreen(enum).memory_bytes
    exact = [peak_memory(enum.valid.layout(i).apply(base)).total for i in range(len(enum.valid))]
    np.testing.assert_allclose(est, exact, rtol=1e-9)
