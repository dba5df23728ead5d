"""Sizing: the chosen GPU count meets the deadline and the next smaller count searched does not."""

from __future__ import annotations

import dataclasses
import math

import pytest

from sim.analysis.explore.size import (
    SizePoint,
    batch_cap_note,
    choose,
    count_grid,
    explain_curve,
    gpu_cluster,
    gpu_price,
    scaled_spares,
    size,
    smaller_neighbour,
)
from sim.errors import ScenarioError, TrainsimError
from sim.specs.scenario import gpu_spec
from tests.explore.conftest import tiny

COUNTS = [8, 16, 32, 64]


def _curve(deadline_days: float | None = None, budget_usd: float | None = None):
    base = tiny(num_gpus=8, global_batch=64)
    result = size(base, 1e12, [base.cluster], deadline_days=deadline_days, budget_usd=budget_usd, counts=COUNTS,
                  workers=1)
    return result, result.curves["H100-SXM-80GB"]


def test_chosen_point_meets_the_deadline_and_one_step_fewer_gpus_does_not():
    _, curve = _curve(deadline_days=1e9)
    days = [p.days for p in curve]
    assert [p.num_gpus for p in curve] == COUNTS and all(d > 0 for d in days)
    for k in range(1, len(curve)):
        deadline = math.sqrt(days[k - 1] * days[k])  # between two neighbouring counts
        result, again = _curve(deadline_days=deadline)
        chosen = result.choice["H100-SXM-80GB"]
        assert chosen is not None and chosen.days <= deadline
        below = smaller_neighbour(again, chosen)
        assert below is not None and not below.meets(deadline, None)


def test_no_count_meets_an_impossible_deadline():
    result, curve = _curve(deadline_days=1e-6)
    assert result.choice["H100-SXM-80GB"] is None and len(curve) == len(COUNTS)


def test_budget_alone_picks_the_fastest_within_it():
    _, curve = _curve(deadline_days=1e9)
    budget = sorted(p.cost_usd for p in curve)[1]  # the two cheapest points fit
    result, _ = _curve(budget_usd=budget)
    chosen = result.choice["H100-SXM-80GB"]
    fitting = [p for p in curve if p.cost_usd <= budget]
    assert chosen.days == min(p.days for p in fitting)


def _point(n: int, days: float | None, cost: float | None) -> SizePoint:
    figures = None if days is None else {"days": days, "cost_usd": cost}
    return SizePoint("G", n, None, figures)


def test_choose_prefers_lowest_cost_then_fewer_gpus():
    curve = [_point(8, 90, 10), _point(16, 50, 11), _point(32, 30, 11), _point(64, None, None)]
    assert choose(curve, 60, None).num_gpus == 16
    assert choose(curve, 40, None).num_gpus == 32
    assert choose(curve, 60, 10.5) is None
    assert choose(curve, None, 11).num_gpus == 32  # budget only: fastest
    assert smaller_neighbour(curve, curve[2]).num_gpus == 16 and smaller_neighbour(curve, curve[0]) is None


def test_count_grid_whole_nodes_powers_of_two_and_one_and_a_half():
    assert count_grid(100, 1000, 8) == [128, 192, 256, 384, 512, 768]
    assert count_grid(1, 20, 8) == [8, 16]  # 12 GPUs is 1.5 nodes: not a whole number of nodes
    assert all(c % 8 == 0 for c in count_grid(1, 1e6, 8))


def test_spares_scale_with_the_node_count():
    base = tiny(num_gpus=8, failures={"model": "llama3", "hot_spares": 2})
    cluster = dataclasses.replace(base.cluster, num_gpus=64)
    assert scaled_spares(base, cluster).failures.hot_spares == 16


def test_unknown_gpu_and_missing_goal_are_clear_errors():
    with pytest.raises(ScenarioError, match="not in the GPU catalog"):
        gpu_cluster("H1000", None, 8)
    with pytest.raises(ScenarioError, match="no default topology"):
        gpu_cluster("MI300X", None, 8)
    base = tiny(num_gpus=8, global_batch=64)
    with pytest.raises(TrainsimError, match="deadline"):
        size(base, 1e12, [base.cluster], counts=COUNTS)


def test_prices_come_from_the_option_the_scenario_or_the_catalog():
    base = tiny(num_gpus=8, costs={"usd_per_gpu_hour": 1.5})
    assert gpu_price(base, "H100-SXM-80GB", {"H100-SXM-80GB": 3.0}) == (3.0, "--price")
    assert gpu_price(base, "H100-SXM-80GB", None) == (1.5, "the scenario's costs")  # its own GPU type
    usd, where = gpu_price(base, "B200", None)  # another type: the catalog's price, not the scenario's
    assert usd == gpu_spec("B200").usd_per_gpu_hour and "catalog" in where
    assert gpu_price(base, "A100-SXM-80GB", None)[0] == 1.5  # no catalog price: the scenario's, said so


def test_size_charges_the_catalog_price_per_gpu_type():
    base = tiny(num_gpus=8, global_batch=64)
    result = size(base, 1e12, [base.cluster], deadline_days=1e9, counts=[8], workers=1)
    point = result.curves["H100-SXM-80GB"][0]
    price = gpu_spec("H100-SXM-80GB").usd_per_gpu_hour
    assert result.prices["H100-SXM-80GB"][0] == price
    assert point.cost_usd == pytest.approx(point.figures["gpu_hours"] * price)


def test_global_batch_range_keeps_the_fastest_and_parallel_counts_agree():
    base = tiny(num_gpus=8, global_batch=64)
    one = size(base, 1e12, [base.cluster], deadline_days=1e9, counts=[8, 16], global_batches=[16, 64], workers=1)
    two = size(base, 1e12, [base.cluster], deadline_days=1e9, counts=[8, 16], global_batches=[16, 64], workers=2)
    for n, a, b in zip([8, 16], one.curves["H100-SXM-80GB"], two.curves["H100-SXM-80GB"], strict=True):
        assert a.num_gpus == b.num_gpus == n and a.days == b.days and a.global_batch == b.global_batch
        singles = [size(base, 1e12, [base.cluster], deadline_days=1e9, counts=[n], global_batches=[g],
                        workers=1).curves["H100-SXM-80GB"][0].days for g in (16, 64)]
        assert a.days == min(singles)


def test_a_slower_larger_count_is_explained_by_its_batch():
    from sim.analysis.explore.space import Layout
    from sim.specs.enums import Recompute, Schedule

    def layout(data: int, pipeline: int) -> Layout:
        return Layout(tensor=8, pipeline=pipeline, virtual_pipeline=1, context=1, data=data, zero_stage=1,
                      micro_batch_size=1, activation_recompute=Recompute.NONE, schedule=Schedule.ONE_F_ONE_B,
                      split=False)

    def point(n: int, data: int, days: float, bubble: float) -> SizePoint:
        figures = {"days": days, "cost_usd": 1.0, "bubble_fraction": bubble, "mfu": 0.4, "step_time_s": 1.0}
        return SizePoint("H100", n, layout(data, 16), figures, global_batch=2048)

    curve = explain_curve([point(16384, 128, 50.0, 0.2), point(32768, 256, 55.0, 0.35)])
    assert curve[0].why_slower == ""
    # 2048 / 256 = 8 micro-batches per pipeline against 2048 / 128 = 16 at 16,384
    assert curve[1].why_slower == (
        "slower than 16,384 GPUs (50.0 days): batch: 2,048 sequences over DP 256 x micro-batch 1 leave 8 "
        "micro-batches per pipeline (vs 16 at 16,384), pipeline bubble 35% vs 20%")


def test_a_count_beyond_the_work_budget_is_noted_and_the_others_still_sized(monkeypatch):
    from sim.analysis.explore import size as size_module
    from sim.specs.budget import BudgetError

    real = size_module._best_at

    def best_at(base, cluster, *args):
        if cluster.num_gpus == 32:
            raise BudgetError("run-level events", 3e5, 2e5)
        return real(base, cluster, *args)

    monkeypatch.setattr(size_module, "_best_at", best_at)
    base = tiny(num_gpus=8, global_batch=64)
    curve = size(base, 1e12, [base.cluster], deadline_days=1e9, counts=COUNTS, workers=1).curves["H100-SXM-80GB"]
    noted = {p.num_gpus: p.note for p in curve if p.figures is None}
    assert list(noted) == [32] and noted[32].startswith("not evaluated: run-level events")
    assert all(p.spearman is None or -1 <= p.spearman <= 1 for p in curve)


def test_size_cli_default_simulate_is_the_modules():
    from sim.analysis.explore.size import SIZE_SIMULATE
    from sim.cli import build_parser

    args = build_parser().parse_args(["size", "x.yaml", "--tokens", "1e9", "--deadline-days", "1"])
    assert args.simulate == SIZE_SIMULATE


@pytest.mark.parametrize(("gpu", "topology", "num_gpus"), [("H100-SXM-80GB", "dgx-h100-superpod", 16),
                                                          ("GB200", "gb200-nvl72", 144)])
def test_a_count_whose_layouts_need_tp_beyond_the_nvlink_domain_is_sized_without_the_overlap(gpu, topology, num_gpus):
    """The base overlaps TP (TP8, inside an 8-GPU DGX node or a 72-GPU NVL72 rack); sized with TP 16 only, every
    layout's TP group leaves the NVLink domain (16 > 8; 72 / 16 straddles a rack), so the count is evaluated with
    the overlap off rather than left without a layout. (The base runs twice the GPUs: on its own count the search
    would also simulate its own TP8 layout.)"""
    from sim.analysis.explore.size import SIZE_SPACE
    from tests.explore.test_space import _overlap_base

    base = _overlap_base(2 * num_gpus, gpu, topology)
    space = dataclasses.replace(SIZE_SPACE, tensor=(16,))
    result = size(base, 1e12, [base.cluster], deadline_days=1e9, counts=[num_gpus], space=space, simulate=1, workers=1)
    (point,) = result.curves[gpu]
    assert point.figures is not None and point.days > 0, point.note
    assert point.layout is not None and point.layout.tensor == 16 and not point.layout.tp_comm_overlap


def test_a_layout_at_the_batch_dp_cap_says_its_model_parallelism_is_forced():
    from sim.analysis.explore.space import Layout
    from sim.specs.enums import Recompute, Schedule

    def layout(data: int, model_parallel: tuple[int, int, int] = (8, 16, 16384 // 128 // 2)) -> Layout:
        tensor, pipeline, context = model_parallel
        return Layout(tensor=tensor, pipeline=pipeline, virtual_pipeline=1, context=context, data=data, zero_stage=1,
                      micro_batch_size=1, activation_recompute=Recompute.NONE, schedule=Schedule.ONE_F_ONE_B,
                      split=False)

    # 6,250 = 2 x 5^5 and 16,384 = 2^14 share only 2: DP 2 is the cap, the other 8,192 GPUs are model parallel
    assert batch_cap_note(6250, 16384, layout(2)) == (
        "batch: DP 2 is the most 6,250 sequences allow on 16,384 GPUs (DP divides both), so TP x PP x CP must span "
        "8,192 GPUs; a global batch with more factors in common with the count (--global-batch) allows more DP")
    assert batch_cap_note(6250, 16384, layout(1)) == ""  # below the cap: chosen, not forced
    assert batch_cap_note(2048, 16384, layout(128)) == ""  # the cap (2,048) is far above DP 128
    assert batch_cap_note(1024, 1024, layout(1024, (1, 1, 1))) == ""  # at the cap, but nothing is model parallel
