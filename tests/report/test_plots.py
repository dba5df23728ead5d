"""Plots (sim/report/plots.py): each is produced from a small scenario or small plain data and is not empty."""

from __future__ import annotations

import numpy as np
import pytest

from sim.analysis.evaluate import evaluate
from sim.report import plots

from .conftest import assert_not_empty, png_pixels, small_scenario


def test_pipeline_gantt(small_eval):
    step = small_eval.step
    png = plots.pipeline_gantt(step.timeline.intervals, 2, "small")
    assert_not_empty(png)


def test_step_breakdown(small_eval):
    step = small_eval.step
    assert_not_empty(plots.step_breakdown(step.breakdown_s, step.step_time_s))


def test_memory_breakdown():
    stages = [{"parameters": 10.0, "gradients": 20.0, "optimizer": 5.0, "activations": 30.0},
              {"parameters": 10.0, "gradients": 20.0, "optimizer": 5.0, "activations": 12.0}]
    assert_not_empty(plots.memory_breakdown(stages, 80.0))


def test_layout_comparison():
    rows = [("TP8 PP4", 5.2, 0.41), ("TP4 PP8", 5.6, 0.38), ("TP8 PP8 CP2", 5.9, 0.36)]
    assert_not_empty(plots.layout_comparison(rows))


def test_goodput_over_time():
    assert_not_empty(plots.goodput_over_time([0, 1, 2, 3, 4], [1.0, 0.9, 0.95, 0.93, 0.94]))


def test_days_distribution():
    samples = 60 + np.random.default_rng(0).gamma(2.0, 2.0, 100)
    assert_not_empty(plots.days_distribution(list(samples)))


def test_cost_vs_gpus():
    assert_not_empty(plots.cost_vs_gpus([(2048, 52.0, 5.2e6), (1024, 100.0, 5.0e6), (4096, 27.0, 5.5e6)]))


def test_the_check_rejects_an_empty_plot():
    """A figure with axes and text but no data fails ``assert_not_empty`` (the check can fail)."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(6, 4))
    fig.subplots().set_title("nothing")
    png = plots._png(fig)
    assert png_pixels(png).var() > 0
    with pytest.raises(AssertionError, match="coloured pixels"):
        assert_not_empty(png)


def test_step_plots_and_save(small_eval, tmp_path):
    out = plots.step_plots(small_eval)
    assert list(out) == ["pipeline_timeline.png", "step_breakdown.png", "memory_breakdown.png"]
    paths = plots.save_plots(out, tmp_path / "plots")
    for path in paths:
        assert_not_empty(path)


def test_out_of_memory_scenario_gets_the_memory_plot_only():
    big = small_scenario(gbs=256, tensor=1, pipeline=1, virtual_pipeline=1, schedule="1f1b", data=1, zero_stage=0,
                         micro_batch_size=256)
    ev = evaluate(big)
    assert not ev.fits and ev.step is None
    out = plots.step_plots(ev)
    assert list(out) == ["memory_breakdown.png"]
    assert_not_empty(out["memory_breakdown.png"])


@pytest.mark.parametrize("call", [lambda: plots.layout_comparison([]), lambda: plots.days_distribution([]),
                                  lambda: plots.goodput_over_time([1.0], [0.5, 0.6]),
                                  lambda: plots.step_breakdown({"compute": 0.0}, 1.0)])
def test_bad_data_is_a_clear_error(call):
    with pytest.raises(ValueError):
        call()
