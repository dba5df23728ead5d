"""Results that never overstate (issue 13, item 4) and the new failure fields reaching the run: runs cut at
the cap are lower bounds everywhere (summary, JSON, sweep, search, size); rates that imply more than one
interruption per minute are refused at load; `rates_mode`, per-1,000-node-day rates, restart stages and
repair times from the scenario."""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path

import numpy as np
import pytest

from sim.analysis.explore.objective import RunFigures, run_capped, run_row
from sim.analysis.explore.size import SizePoint, choose
from sim.analysis.runlevel import run_plan, simulate_run_level
from sim.costs.reliability import failure_classes
from sim.errors import ScenarioError
from sim.report.result import run_block
from sim.specs.enums import RatesMode
from sim.specs.reliability import FailureSpec, RepairSpec, RestartSpec
from sim.specs.scenario import load_scenario

ROOT = Path(__file__).resolve().parents[2]
BUNDLED = ROOT / "scenarios" / "llama3-405b-16k-h100-tp8-pp16-dp128.yaml"
H, DAY = 3600.0, 86400.0


def _with_failures(**kw):
    s = load_scenario(BUNDLED)
    return dataclasses.replace(s, failures=dataclasses.replace(s.failures, **kw))


def test_a_rate_meant_per_1000_node_days_is_refused_at_load():
    # rates are per component-hour: 6.5 per node-hour x 2,048 nodes = 222 interruptions a minute
    with pytest.raises(ScenarioError) as err:
        _with_failures(rates={"node": 6.5})
    (issue,) = err.value.issues
    assert issue.path == "failures.rates.node" and "per minute" in issue.message
    assert _with_failures(rates={"node": 6.5}, allow_extreme_rates=True).failures.allow_extreme_rates
    assert _with_failures(node_failures_per_1000_node_days=6.5).failures is not None  # the intended unit


def test_node_failures_per_1000_node_days_replaces_the_unplanned_set():
    spec = FailureSpec(node_failures_per_1000_node_days=6.5)
    classes = failure_classes(spec, 16_384, 8)
    unplanned = [c for c in classes if not c.planned]
    assert [c.name for c in unplanned] == ["node"]
    # Kokolis's projection: 1 / (2,048 nodes x 6.5 / 1000 per day) = 1.80 h
    assert 1 / unplanned[0].rate_per_s / H == pytest.approx(24 / (2048 * 0.0065))
    assert any(c.planned for c in classes)  # the llama3 set's planned stops stay
    assert not any(c.planned for c in failure_classes(FailureSpec(node_failures_per_1000_node_days=6.5,
                                                                  planned_per_day=0), 16_384, 8))


def test_rates_add_or_replace():
    add = failure_classes(FailureSpec(rates={"switch": 1e-4}), 16_384, 8)
    replace = failure_classes(FailureSpec(rates={"switch": 1e-4}, rates_mode=RatesMode.REPLACE), 16_384, 8)
    assert len(add) == 18 + 1 + 1  # Table 5's 18 components, the switch, planned stops
    assert [c.name for c in replace] == ["switch", "planned_maintenance"]
    assert replace[0].rate_per_s == pytest.approx(1e-4 * 2048 / H)
    with pytest.raises(ScenarioError):
        FailureSpec(model="custom", rates={"node": 1e-5}, rates_mode=RatesMode.REPLACE)


def test_restart_stages_and_repair_times_from_the_scenario():
    s = _with_failures(restart=RestartSpec(detect_s=5, diagnose_s=60, warmup_s=0),
                       repair_hours=RepairSpec(median=2, mean=3))
    p = run_plan(s, 8.3).params
    assert p.stages is not None
    assert (p.stages.detect_explicit_s, p.stages.detect_hang_s, p.stages.diagnose_s) == (5, 600, 60)
    assert (p.stages.reschedule_s, p.stages.warmup_s) == (120, 0)
    assert math.exp(p.repair_mu_ln_s) == pytest.approx(2 * H)
    assert p.repair_sigma_ln == pytest.approx(math.sqrt(2 * math.log(1.5)))
    with pytest.raises(ScenarioError):
        _with_failures(restart=RestartSpec(detect_s=5), restart_minutes=3)
    with pytest.raises(ScenarioError):
        RepairSpec(median=5, mean=2)


def _capped_run():
    # no spares and slow repairs at 1,024 GPUs: the job waits for nodes and stops at 20x the failure-free time
    s = _with_failures(rates={"node": 2e-3}, hot_spares=0, restart_minutes=30,
                       repair_hours=RepairSpec(median=200, mean=400))
    s = dataclasses.replace(s, training=dataclasses.replace(s.training, tokens=2e11))
    return simulate_run_level(s, 8.3, replicas=4)


def test_a_run_cut_at_the_cap_reports_lower_bounds():
    run = _capped_run()
    assert run.unfinished == 4
    # each replica's days: its wall time plus the work it had left, never below the failure-free time
    for r, days in zip(run.replicas, run.days, strict=True):
        assert days * DAY == pytest.approx(r.wall_s + run.plan.params.work_s - r.work_s)
    assert run.days_p50 >= run.failure_free_days * run.plan.params.max_wall_factor
    block = run_block(run)
    assert block["unfinished_replicas"] == 4 and block["days_are_lower_bounds"] is True
    assert block["spare_wait_days"] > 0 and block["nodes_down_max"] >= 1


def test_capped_figures_are_never_ranked_chosen_or_ok():
    capped = run_row(RunFigures(days=10, days_p90=11, goodput=0.1, gpu_hours=1, cost_usd=1, unfinished=2))
    fine = run_row(RunFigures(days=20, days_p90=21, goodput=0.9, gpu_hours=2, cost_usd=2))
    assert run_capped(capped) and not run_capped(fine)
    curve = [SizePoint("H100", 1024, None, capped), SizePoint("H100", 2048, None, fine)]
    assert choose(curve, deadline_days=30, budget_usd=None) is curve[1]  # the cheaper capped point is not chosen
    assert choose(curve[:1], deadline_days=30, budget_usd=None) is None


def test_simulated_and_expected_mtbi_and_the_no_failures_line():
    s = load_scenario(BUNDLED)
    s = dataclasses.replace(s, training=dataclasses.replace(s.training, tokens=2e12))
    run = simulate_run_level(s, 8.3, replicas=3)
    block = run_block(run)
    assert block["mtbi_hours_expected"] == pytest.approx(run.plan.mtbi_s / H, rel=1e-5)
    count = sum(r.interruption_count for r in run.replicas)
    assert block["mtbi_hours"] == pytest.approx(sum(r.wall_s for r in run.replicas) / count / H, rel=1e-5)
    free = simulate_run_level(dataclasses.replace(s, failures=None, checkpoint=None), 8.3, replicas=2)
    assert run_block(free)["failures_modelled"] is False and run_block(free)["mtbi_hours"] is None
    assert np.all(free.days == pytest.approx(free.failure_free_days))
