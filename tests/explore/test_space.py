"""Layout enumeration: counts by hand on the tiny model, rejected reasons from the spec validation."""

from __future__ import annotations

import collections
import dataclasses

import numpy as np
import pytest

from sim.analysis.explore.space import COLUMNS, SCHEDULES, Layout, enumerate_space, factorizations, reason_key, shapes
from sim.errors import ScenarioError
from sim.specs.enums import Recompute, Schedule
from sim.specs.scenario import scenario_from_mapping
from tests.explore.conftest import TINY_SPACE, tiny, tiny_mapping


@pytest.mark.parametrize(("n", "count"), [(1, 1), (4, 10), (8, 20), (12, 40)])
def test_factorizations_count_ordered_four_factor_products(n, count):
    # 2^k into 4 ordered factors: C(k+3, 3); 12 = 2^2 * 3: C(5,3) * C(4,3) = 10 * 4
    facts = factorizations(n)
    assert len(facts) == count == len(set(facts))
    assert all(t * p * c * d == n for t, p, c, d in facts)


def test_enumeration_counts_by_hand():
    """4 GPUs, 4 layers, 4 heads / 2 KV heads, batch 8; TINY_SPACE.

    Shapes (all axes but ZeRO and recompute, which multiply by 2 x 2 = 4): 10 factorizations of 4;
    PP=1 (6 of them) x {1f1b, interleaved x2} x mb {1,2} = 24; PP=2 (3) and PP=4 (1) also x split
    {no, yes} = 4 x 2 x 2 x 2 = 32. Total 56 shapes = 224 layouts. Rejected, first problem:
    * interleaved with PP=1: 6 x 2 mb = 12 shapes = 48;
    * TP=4 (PP=1, 1f1b) does not divide the 2 KV heads: 2 shapes = 8;
    * split (6 slots) with PP x VP = 4 (PP2x2: 3 x 2 mb), 4 (PP4: 2 mb), 8 (PP4x2: 2 mb): 10 shapes = 40;
    * no split (4 slots) with PP4x2 = 8: 2 shapes = 8.
    Interleaved PP2x2 always has an even number of micro-batches (8 / (DP x mb) with DP x mb <= 4).
    """
    enum = enumerate_space(tiny(), TINY_SPACE)
    assert enum.total == 224
    assert len(enum.valid) == 120
    counts = {key.split(":")[0] + (" split" if "+ embedding" in key else ""): r.count
              for key, r in enum.rejected.items()}
    assert counts == {"parallelism.schedule": 48, "parallelism.tensor": 8, "parallelism.pipeline split": 40,
                      "parallelism.pipeline": 8}
    assert enum.num_rejected + len(enum.valid) == enum.total
    tensor = next(r for k, r in enum.rejected.items() if k.startswith("parallelism.tensor"))
    assert tensor.example == "parallelism.tensor: 4 does not divide model.num_kv_heads (2); use one of 1, 2"


def test_every_valid_candidate_is_a_valid_scenario_with_its_layout():
    base = tiny()
    enum = enumerate_space(base, TINY_SPACE)
    seen = set()
    for i in range(len(enum.valid)):
        layout = enum.valid.layout(i)
        s = layout.apply(base)
        p = s.parallelism
        assert (p.tensor, p.pipeline, p.virtual_pipeline, p.context, p.data, p.zero_stage, p.micro_batch_size,
                p.activation_recompute, p.schedule) == (
            layout.tensor, layout.pipeline, layout.virtual_pipeline, layout.context, layout.data,
            layout.zero_stage, layout.micro_batch_size, layout.activation_recompute, layout.schedule)
        assert p.account_for_embedding_in_pipeline_split is layout.split
        seen.add(layout)
    assert len(seen) == len(enum.valid)  # no duplicates


def test_apply_rejects_with_the_spec_message_and_full_path():
    bad = Layout(tensor=1, pipeline=1, virtual_pipeline=2, context=1, data=4, zero_stage=0, micro_batch_size=1,
                 activation_recompute=Recompute.NONE, schedule=Schedule.INTERLEAVED, split=False)
    with pytest.raises(ScenarioError) as err:
        bad.apply(tiny())
    assert [i.path for i in err.value.issues] == ["parallelism.schedule"]


def test_reason_key_blanks_numbers_but_not_schedule_names():
    assert reason_key("parallelism.tensor: 16 does not divide x (8); use one of 1, 2") == \
        "parallelism.tensor: # does not divide x (#)"
    assert "interleaved-1f1b" in reason_key("interleaved-1f1b needs the 3 micro-batches")


def test_tp_overlap_is_tried_only_with_tensor_parallelism():
    import dataclasses

    both = enumerate_space(tiny(), dataclasses.replace(TINY_SPACE, tp_comm_overlaps=(False, True)))
    plain = enumerate_space(tiny(), TINY_SPACE)
    overlap = both.valid["tp_comm_overlap"] == 1
    assert overlap.any() and (both.valid["tensor"][overlap] > 1).all()
    # every TP > 1 layout appears once more, overlapped; TP 1 layouts once
    assert len(both.valid) == len(plain.valid) + int((plain.valid["tensor"] > 1).sum())
    assert both.total == plain.total + int(overlap.sum()) + sum(
        r.count for r in both.rejected.values()) - sum(r.count for r in plain.rejected.values())


def test_pinned_degrees_and_find():
    import dataclasses

    enum = enumerate_space(tiny(), dataclasses.replace(TINY_SPACE, tensor=(2,), pipeline=(1, 2)))
    assert set(enum.valid["tensor"].tolist()) == {2}
    assert set(enum.valid["pipeline"].tolist()) <= {1, 2}
    layout = enum.valid.layout(3)
    assert enum.valid.find(layout) == 3
    assert enum.valid.find(dataclasses.replace(layout, tensor=1)) is None


def tiny_moe(num_gpus: int = 8, **parallelism):
    """The tiny model with 8 routed experts (top-2, width 96: ETP 4 does not divide it)."""
    mapping = tiny_mapping(num_gpus, 16)
    mapping["model"]["moe"] = {"num_experts": 8, "top_k": 2, "expert_ffn_hidden_size": 96}
    mapping["parallelism"].update(parallelism)
    return scenario_from_mapping(mapping)


def test_moe_layouts_vary_ep_and_etp_and_each_is_what_full_validation_says():
    """The expert rules are validated once per (PP, EP, ETP) and spread; validating every layout of the space
    with every (EP, ETP) gives the same valid set and the same rejected count."""
    base = tiny_moe()
    space = dataclasses.replace(TINY_SPACE, zero_stages=(0,), recomputes=(Recompute.NONE,))
    enum = enumerate_space(base, space)
    valid = {enum.valid.layout(i) for i in range(len(enum.valid))}
    assert {x.expert for x in valid} == {1, 2, 4, 8} and {x.expert_tensor for x in valid} == {1, 2}
    brute, total = set(), 0
    for t, p, v, c, d, mb, sched, split in shapes(8, space):
        for e in (1, 2, 4, 8):
            for x in (k for k in (1, 2, 4, 8) if t % k == 0):
                total += 1
                layout = Layout(tensor=t, pipeline=p, virtual_pipeline=v, context=c, data=d, zero_stage=0,
                                micro_batch_size=mb, activation_recompute=Recompute.NONE,
                                schedule=SCHEDULES[sched], split=bool(split), expert=e, expert_tensor=x)
                try:
                    layout.apply(base)
                except ScenarioError:
                    continue
                brute.add(layout)
    assert valid == brute
    assert enum.total == total and enum.num_rejected == total - len(brute)
    assert any("expert_tensor" in k for k in enum.rejected)  # ETP 4 with TP 4 does not divide 96
    assert any(k.startswith("parallelism.expert:") for k in enum.rejected)  # ETP x EP beyond a stage's GPUs


def test_moe_pins_and_labels():
    base = tiny_moe(expert=2)
    enum = enumerate_space(base, dataclasses.replace(TINY_SPACE, expert=(2,), expert_tensor=(1,)))
    assert set(enum.valid["expert"].tolist()) == {2} and set(enum.valid["expert_tensor"].tolist()) == {1}
    own = Layout.of(base)
    assert (own.expert, own.expert_tensor) == (2, 1)  # ETP explicit: the attention TP it defaults to
    assert "EP2 ETP1" in own.label()
    assert "EP" not in Layout.of(tiny()).label()
    assert own.apply(base).parallelism.expert_tensor == 1


def test_stage_specific_base_options_apply_where_they_mean_something():
    """A base running FSDP without resharding (ZeRO-3 only) still yields ZeRO-0/1/2 layouts, without that option;
    torchtitan's unrunnable ZeRO-1/2 are left out with the reason."""
    base = tiny(parallelism={"data": 4, "zero_stage": 3, "reshard_after_forward": False})
    enum = enumerate_space(base, dataclasses.replace(TINY_SPACE, zero_stages=(0, 1, 2, 3)))
    assert set(enum.valid["zero_stage"].tolist()) == {0, 1, 2, 3} and not enum.zero_left_out
    for i in range(len(enum.valid)):
        p = enum.valid.layout(i).apply(base).parallelism
        assert p.reshard_after_forward is (False if p.zero_stage == 3 else None)
    titan = tiny(parallelism={"data": 4, "zero_stage": 3, "framework": "torchtitan"})
    enum = enumerate_space(titan, dataclasses.replace(TINY_SPACE, zero_stages=(0, 1, 2, 3)))
    assert set(enum.valid["zero_stage"].tolist()) == {0, 3} and set(enum.zero_left_out) == {1, 2}
    assert "torchtitan" in enum.zero_left_out[1]


#: 144 query / KV heads: TP 8, 16, 72 and 144 all divide them.
WIDE_HEADS = {"num_attention_heads": 144, "num_kv_heads": 144, "hidden_size": 2304, "ffn_hidden_size": 9216}


@pytest.mark.parametrize(("gpu", "topology", "num_gpus", "inside", "beyond"), [
    ("H100-SXM-80GB", "dgx-h100-superpod", 16, (8,), (16,)),      # 8-GPU DGX nodes
    ("GB200", "gb200-nvl72", 144, (8, 72), (16, 144)),           # 72-GPU racks; 72 / 16 straddles a rack
])
def test_overlap_never_enumerated_beyond_the_nvlink_domain(gpu, topology, num_gpus, inside, beyond):
    base = scenario_from_mapping(tiny_mapping(
        num_gpus, global_batch=num_gpus, model={**tiny_mapping()["model"], **WIDE_HEADS},
        cluster={"gpu": gpu, "num_gpus": num_gpus, "topology": topology}))
    space = dataclasses.replace(TINY_SPACE, tensor=inside + beyond, pipeline=(1,), schedules=(Schedule.ONE_F_ONE_B,),
                                tp_comm_overlaps=(False, True))
    enum = enumerate_space(base, space)
    tensor, overlap = enum.valid["tensor"], enum.valid["tp_comm_overlap"] == 1
    assert set(tensor[overlap].tolist()) == set(inside)
    assert set(tensor[~overlap].tolist()) == set(inside + beyond)
    # each TP-beyond-the-domain layout without overlap has its overlapped twin rejected, with the spec's message
    key = next(k for k in enum.rejected if k.startswith("parallelism.tp_comm_overlap: needs each TP group"))
    assert enum.rejected[key].count == int((np.isin(tensor, beyond) & ~overlap).sum()) > 0
    assert enum.num_rejected + len(enum.valid) == enum.total
    with pytest.raises(ScenarioError) as err:
        dataclasses.replace(enum.valid.layout(int(((tensor == beyond[0]) & ~overlap).argmax())),
                            tp_comm_overlap=True).apply(base)
    assert reason_key(str(err.value.issues[0])) == key


def _overlap_base(num_gpus: int, gpu: str = "H100-SXM-80GB", topology: str = "dgx-h100-superpod", tensor: int = 8):
    """The tiny model with 144 heads on ``num_gpus``, TP ``tensor`` with ``tp_comm_overlap`` on."""
    return scenario_from_mapping(tiny_mapping(
        num_gpus, global_batch=num_gpus, model={**tiny_mapping()["model"], **WIDE_HEADS},
        cluster={"gpu": gpu, "num_gpus": num_gpus, "topology": topology},
        parallelism={"tensor": tensor, "data": num_gpus // tensor, "tp_comm_overlap": True}))


def _by_tp_and_overlap(enum) -> dict[tuple[int, int], int]:
    pairs = zip(enum.valid["tensor"].tolist(), enum.valid["tp_comm_overlap"].tolist(), strict=True)
    return {k: v for k, v in sorted(collections.Counter(pairs).items())}


def _overlap_rejected(enum) -> int:
    return sum(r.count for k, r in enum.rejected.items()
               if k.startswith("parallelism.tp_comm_overlap: needs each TP group"))


def test_overlap_inherited_from_the_base_runs_off_where_it_cannot_searched_or_pinned_as_asked():
    """16 H100 (8-GPU NVLink domains), base TP8 with tp_comm_overlap on; TP 1, 8 or 16, PP1, 1F1B.

    Shapes: TP1 x (CP x DP = 16: 5 ways) = 5, TP8 x 2, TP16 x 1, each x micro-batch {1, 2} = 10 + 4 + 2, each
    expanded over ZeRO {0, 1} x recompute {none, full} = 4 per overlap value. DP16 x mb2 needs 32 sequences of
    the 16: 1 shape = 4 layouts rejected (TP1 only).
    * inherited (``None``, what ``trainsim size`` does): one overlap value per shape, the one that runs: TP1 off
      (9 valid shapes = 36), TP8 on (16), TP16 off (8); 64 enumerated, 4 rejected, none for the overlap;
    * searched off,on: TP8 both ways (16 + 16), TP1 and TP16 off; the 8 overlapped TP16 layouts rejected;
    * pinned on: TP8 on (16); the 8 TP16 layouts rejected with the spec's message; TP1 has no overlap to run.
    """
    base = _overlap_base(16)
    space = dataclasses.replace(TINY_SPACE, tensor=(1, 8, 16), pipeline=(1,), schedules=(Schedule.ONE_F_ONE_B,))
    cases = {None: ({(1, 0): 36, (8, 1): 16, (16, 0): 8}, 64, 0),
             (False, True): ({(1, 0): 36, (8, 0): 16, (8, 1): 16, (16, 0): 8}, 88, 8),
             (True,): ({(8, 1): 16}, 24, 8)}
    for overlaps, (valid, total, rejected) in cases.items():
        enum = enumerate_space(base, dataclasses.replace(space, tp_comm_overlaps=overlaps))
        assert (_by_tp_and_overlap(enum), enum.total, _overlap_rejected(enum)) == (valid, total, rejected), overlaps
        assert enum.tp_overlaps == overlaps  # what the search report prints (None: the base's)
        assert enum.num_rejected + len(enum.valid) == enum.total
        for i in range(len(enum.valid)):
            enum.valid.layout(i).apply(base)


def test_a_framework_that_cannot_overlap_keeps_the_base_s_overlap_off():
    """torchtitan's async TP needs torch.compile: without it off,on is not searched (the report says the scenario's)."""
    base = tiny(parallelism={"data": 4, "zero_stage": 3, "framework": "torchtitan"})
    enum = enumerate_space(base, dataclasses.replace(TINY_SPACE, zero_stages=(3,), tp_comm_overlaps=(False, True)))
    assert enum.tp_overlaps is None and len(enum.valid) and not enum.valid["tp_comm_overlap"].any()
    assert (enum.valid["tensor"] > 1).any()


@pytest.mark.parametrize(("gpu", "topology", "num_gpus", "inside", "beyond"), [
    ("H100-SXM-80GB", "dgx-h100-superpod", 16, (8,), (16,)),
    ("GB200", "gb200-nvl72", 144, (8, 72), (16, 144)),
])
def test_inherited_overlap_gives_each_shape_one_layout(gpu, topology, num_gpus, inside, beyond):
    """The base's overlap (``None``), as ``trainsim size`` searches: on where the TP group fits one NVLink domain
    (8 on H100; 8 and 72 on GB200 NVL72), off beyond it, and never two layouts differing by the overlap alone."""
    base = _overlap_base(num_gpus, gpu, topology)
    space = dataclasses.replace(TINY_SPACE, tensor=inside + beyond, pipeline=(1,), schedules=(Schedule.ONE_F_ONE_B,),
                                tp_comm_overlaps=None)
    enum = enumerate_space(base, space)
    tensor, overlap = enum.valid["tensor"], enum.valid["tp_comm_overlap"] == 1
    assert set(tensor[overlap].tolist()) == set(inside) and set(tensor[~overlap].tolist()) == set(beyond)
    rows = {tuple(enum.valid[k][i] for k in COLUMNS if k != "tp_comm_overlap") for i in range(len(enum.valid))}
    assert len(rows) == len(enum.valid) and _overlap_rejected(enum) == 0


def test_overlap_follows_the_placement_order():
    """DP laid inside TP (placement_order dp,tp,cp,pp) spreads each TP group over DP x TP consecutive GPUs: on 16
    H100 the overlap is enumerated only where DP x TP fits a DGX node, and every enumerated layout applies."""
    base = scenario_from_mapping(tiny_mapping(
        16, global_batch=16, model={**tiny_mapping()["model"], **WIDE_HEADS},
        parallelism={"data": 16, "placement_order": "dp,tp,cp,pp"}))
    space = dataclasses.replace(TINY_SPACE, tensor=(2, 4, 8), pipeline=(1,), schedules=(Schedule.ONE_F_ONE_B,),
                                tp_comm_overlaps=(False, True))
    enum = enumerate_space(base, space)
    overlap = enum.valid["tp_comm_overlap"] == 1
    spans = enum.valid["tensor"] * enum.valid["data"]
    assert overlap.any() and (~overlap).any()
    assert (8 % spans[overlap] == 0).all()  # e.g. TP2 CP4 DP2: each TP group within 4 consecutive GPUs
    assert (spans[~overlap] == 16).any()  # TP x DP over two nodes: enumerated without the overlap only
    for i in range(len(enum.valid)):
        enum.valid.layout(i).apply(base)
