"""The search: the ranking comes from the simulation, counts add up, the best is the true best."""

from __future__ import annotations

import csv
import dataclasses

import numpy as np
import pytest

from sim.analysis.evaluate import evaluate
from sim.analysis.explore.search import OWN, search, spearman
from sim.analysis.explore.space import Layout
from sim.errors import TrainsimError
from sim.report.tables import write_table
from tests.explore.conftest import TINY_SPACE, tiny


def test_ranking_is_the_simulated_order_and_every_figure_is_the_simulations():
    base = tiny()
    result = search(base, TINY_SPACE, simulate=12, objective="step", workers=1)
    ranked = result.ranked()
    assert len(ranked) == result.simulated == 12 + 1  # and the scenario's own layout
    times = [row["step_time_s"] for _, row in ranked]
    assert times == sorted(times)
    for layout, row in ranked:
        ev = evaluate(layout.apply(base))
        assert row["step_time_s"] == ev.step.step_time_s
        assert row["mfu"] == ev.step.mfu


def test_best_found_is_the_best_of_every_layout():
    """Simulating only the pre-screen's 8 best finds the layout that simulating all 120 finds."""
    base = tiny()
    everything = search(base, TINY_SPACE, simulate=10_000, objective="step", workers=1)
    assert everything.simulated == 120
    best_all = everything.ranked()[0][1]["step_time_s"]
    few = search(base, TINY_SPACE, simulate=8, objective="step", workers=1)
    assert few.ranked()[0][1]["step_time_s"] == best_all


def test_counts_add_up_and_table_has_every_valid_layout(tmp_path):
    result = search(tiny(), TINY_SPACE, simulate=5, run_top=3, objective="days", workers=1)
    enum = result.enumeration
    rows = list(result.table())
    assert len(rows) == len(enum.valid)
    statuses = [r["status"] for r in rows]
    assert statuses.count("simulated") == result.simulated == 5 + 1  # and the scenario's own layout
    assert statuses.count("out of memory (pre-screen)") == result.screened_out_of_memory
    assert enum.num_rejected + len(enum.valid) == enum.total
    ranked = [r for r in rows if r["rank"] is not None]
    assert sorted(r["rank"] for r in ranked) == list(range(1, 7))
    own_rank = result.own_rank()
    with_days = [r for r in rows if r["days"] is not None]
    assert len(with_days) == 3 + (own_rank > 3)  # run level on the 3 fastest, and the scenario's own layout
    top3 = sorted(with_days, key=lambda r: r["rank"])[:3]
    assert [r["rank"] for r in top3] == [1, 2, 3]
    assert [r["days"] for r in top3] == sorted(r["days"] for r in top3)
    path = tmp_path / "all.csv"
    assert write_table(path, result.table(), ["rank", "tensor", "status", "step_time_s"]) == len(enum.valid)
    with path.open() as fh:
        assert len(list(csv.DictReader(fh))) == len(enum.valid)


def test_worker_processes_give_the_same_result_as_one_process():
    one = search(tiny(), TINY_SPACE, simulate=6, objective="step", workers=1)
    two = search(tiny(), TINY_SPACE, simulate=6, objective="step", workers=2)
    assert [(lay, row["step_time_s"]) for lay, row in one.ranked()] == \
        [(lay, row["step_time_s"]) for lay, row in two.ranked()]


def test_objective_needs_tokens():
    base = tiny(training={"global_batch_size": 8})
    with pytest.raises(TrainsimError, match=r"needs training\.tokens"):
        search(base, TINY_SPACE, objective="cost", workers=1)


def test_parquet_is_written_or_a_clear_error_without_pyarrow(tmp_path):
    try:
        import pyarrow  # noqa: F401
    except ImportError:
        with pytest.raises(TrainsimError, match="needs pyarrow"):
            write_table(tmp_path / "x.parquet", [{"a": 1}], ["a"])
    else:
        assert write_table(tmp_path / "x.parquet", [{"a": 1}], ["a"]) == 1


def test_scenario_own_layout_is_always_simulated_and_ranked():
    base = tiny()
    result = search(base, TINY_SPACE, simulate=1, objective="step", workers=1)
    own = evaluate(base).step
    assert result.own >= 0 and result.layout(result.own) == Layout.of(base)  # the space holds it
    rank = result.own_rank()
    assert rank is not None
    assert result.ranked()[rank - 1][1]["step_time_s"] == own.step_time_s
    # a space that excludes it (TP pinned to 2): simulated from the scenario as written
    pinned = search(base, dataclasses.replace(TINY_SPACE, tensor=(2,)), simulate=2, objective="step", workers=1)
    assert pinned.own == OWN
    assert pinned.rows[OWN]["step_time_s"] == own.step_time_s
    assert all(layout.tensor == 2 for layout, _ in pinned.ranked() if layout != Layout.of(base))


def test_spearman_by_hand():
    assert spearman(np.array([1.0, 2.0, 3.0, 4.0]), np.array([10.0, 20.0, 40.0, 30.0])) == pytest.approx(0.8)
    assert spearman(np.array([1.0, 2.0, 3.0]), np.array([3.0, 2.0, 1.0])) == pytest.approx(-1.0)
    # ties take their mean rank: ranks (1.5, 1.5, 3) and (1, 2, 3): r = 0.866
    assert spearman(np.array([5.0, 5.0, 7.0]), np.array([1.0, 2.0, 3.0])) == pytest.approx(3 ** 0.5 / 2)


def test_search_reports_prescreen_rank_correlation():
    result = search(tiny(), TINY_SPACE, simulate=10_000, objective="step", workers=1)
    rho = result.prescreen_spearman()
    assert rho is not None and 0.8 < rho <= 1.0  # as tests/explore/test_prescreen.py finds on every layout


def test_layouts_over_the_pipeline_work_budget_are_not_simulated(monkeypatch):
    import dataclasses as dc

    from sim.specs import budget

    monkeypatch.setattr(budget, "LIMITS", dc.replace(budget.LIMITS, pipeline_items=4))
    result = search(tiny(), TINY_SPACE, simulate=10_000, objective="step", workers=1)
    est, valid = result.estimate, result.enumeration.valid
    m = 8 // (valid["data"] * valid["micro_batch_size"])
    over = m * valid["pipeline"] * valid["virtual_pipeline"] > 4
    assert over.any() and result.over_budget == int((over & est.plausible).sum())
    assert all(not over[i] for i in result.rows if i >= 0)
    statuses = {row["status"] for i, row in enumerate(result.table()) if over[i] and est.plausible[i]}
    assert statuses == {"over the work budget (--allow-large)"}


def test_own_layout_with_run_figures_is_not_ranked_above_faster_layouts_without_them():
    """By days, only the ``run_top`` fastest (and the scenario's own layout) get run figures; a slow own layout
    must not jump ahead of faster layouts that have none."""
    result = search(tiny(), TINY_SPACE, simulate=10_000, run_top=1, objective="days", workers=1)
    own = result.rows[result.own]["step_time_s"]
    faster = sum(1 for i, r in result.rows.items() if i != result.own and r["step_time_s"] is not None
                 and r["step_time_s"] < own)
    assert faster > 1  # the tiny scenario's pure-DP layout is not the fastest: the case this test is about
    assert result.own_rank() == faster + 1
