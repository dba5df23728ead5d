"""Validation against published runs on fixed, fast subsets (tolerances stated; full set: trainsim validate).

The rows and their sources ship in sim/catalog/validation/ (published_runs.yaml, vTrain CSVs, MIT licence).
Each row is tagged: ``fit`` rows are the calibration set the two fitted constants were chosen on
(benchmarks/calibrate.py), so their bounds show consistency; accuracy rests on ``check`` rows, from which
no constant was set.
"""

from __future__ import annotations

import pytest

from sim.analysis import validation as v

#: Fast fit rows of every calibration source (the 500B-1T pipelines take seconds each; `trainsim validate` runs them).
SUBSET = (
    "narayanan2021-t1-1.7b", "narayanan2021-t1-7.5b", "narayanan2021-t1-39.1b", "narayanan2021-t1-145.6b",
    "narayanan2021-t2-ptd-174.6b-1536gpu",
    "korthikanti2022-t5-22b-full-recompute", "korthikanti2022-t5-22b-seq-selective",
    "korthikanti2022-t5-175b-full-recompute", "korthikanti2022-t5-175b-seq-selective",
    "mcore-r0.8-h100-weak-1.7b", "mcore-r0.8-h100-weak-16b", "mcore-r0.8-h100-weak-70b",
    "mcore-r0.8-h100-weak-177b",
)
#: Bounds this model reaches on the subset (worst row -23 %, MAPE 8.2 %). On the full calibration set
#: (`trainsim validate`) 2 of 1,499 rows exceed 25 %: vTrain's 64-GPU TP8 rows with micro-batch 64 and 2,
#: each slower than its neighbours of the same work by 1.6-2x (see README "Validation").
ROW_TOLERANCE = 0.25
MAPE_TOLERANCE = 0.10  # mean absolute percentage error over the subset

#: Fast check rows of the held-out families (Megatron 2021, BLOOM, torchtitan FSDP / CP / TP). Measured:
#: -4.3, -16.5, -13.7, -10.8, -5.9, +1.5, -7.0 % (MAPE 8.5 %): the model is fast on held-out runs. Not here:
#: MT-NLG (-20 to -23 %, slow to simulate; trainsim validate).
CHECK_SUBSET = (
    "megatron-readme-2021-gpt3-175b-1024gpu", "bloom-176b-384gpu", "torchtitan-202412-8b-8gpu-fsdp",
    "torchtitan-202412-8b-8gpu-fsdp-compile", "torchtitan-202412-8b-8gpu-cp1-seq32k",
    "torchtitan-202412-8b-8gpu-cp2-seq64k", "torchtitan-202412-70b-256gpu-tp",
)
CHECK_ROW_TOLERANCE = 0.25
CHECK_MAPE_TOLERANCE = 0.12


@pytest.fixture(scope="module")
def outcomes() -> list[v.Outcome]:
    rows = {r.id: r for r in v.published_rows()}
    picked = [rows[i] for i in SUBSET] + v.vtrain_rows()[::25]
    return [v.simulate_row(r) for r in picked]


@pytest.fixture(scope="module")
def check_outcomes() -> list[v.Outcome]:
    rows = {r.id: r for r in v.published_rows() + v.module_rows()}
    return [v.simulate_row(rows[i]) for i in CHECK_SUBSET]


def test_subsets_are_tagged_as_used(outcomes, check_outcomes):
    assert {o.row.tag for o in outcomes} == {"fit"}
    assert {o.row.tag for o in check_outcomes} == {"check"}


def test_every_row_simulates(outcomes, check_outcomes):
    done = outcomes + check_outcomes
    assert all(o.simulated_step_s is not None for o in done), [o.note for o in done if o.note]


def test_accuracy_check_rows_within_tolerance(check_outcomes):
    worst = max(check_outcomes, key=lambda o: abs(o.error))
    assert abs(worst.error) <= CHECK_ROW_TOLERANCE, (worst.row.id, worst.error)
    assert v.error_stats(check_outcomes)["mape"] <= CHECK_MAPE_TOLERANCE


def test_consistency_each_fit_row_within_tolerance(outcomes):
    worst = max(outcomes, key=lambda o: abs(o.error))
    assert abs(worst.error) <= ROW_TOLERANCE, (worst.row.id, worst.error)


def test_consistency_fit_mape(outcomes):
    assert v.error_stats(outcomes)["mape"] <= MAPE_TOLERANCE
    for source, outs in v.Report(outcomes).by_source().items():
        assert v.error_stats(outs)["mape"] <= 0.15, source  # no source much worse than the whole


#: Issue 11's acceptance for the DeepSpeed ZeRO-3 rows of Narayanan Table 2: MAPE <= 20 %. They are fit rows (they
#: set DeepSpeed 0.3's host cost per rank per collective, catalog/frameworks.yaml). Measured: MAPE 11.2 %, rows
#: -16.1 to +20.4 %.
ZERO3_MAPE_TOLERANCE = 0.20


def test_deepspeed_zero3_rows_of_narayanan_table_2():
    outs = [v.simulate_row(r) for r in v.published_rows() if r.source == "narayanan2021-zero3"]
    assert len(outs) == 6 and {o.row.tag for o in outs} == {"fit"}
    assert all(o.scenario is not None and o.scenario.parallelism.framework_version == "0.3" for o in outs)
    assert v.error_stats(outs)["mape"] <= ZERO3_MAPE_TOLERANCE
    assert max(abs(o.error) for o in outs) <= ROW_TOLERANCE


def test_published_step_conversions_follow_the_source_convention():
    rows = {r.id: r for r in v.published_rows()}
    # Narayanan Table 1, 1.7B: F = 96 B s l h^2 (1 + s/6h + V/16lh) at 137 TFLOP/s on 32 GPUs.
    b, s, l_, h, vocab = 512, 2048, 24, 2304, 51200
    flops = 96 * b * s * l_ * h**2 * (1 + s / (6 * h) + vocab / (16 * l_ * h))
    assert rows["narayanan2021-t1-1.7b"].published_step_s == pytest.approx(flops / (137e12 * 32))
    assert rows["korthikanti2022-t5-22b-full-recompute"].published_step_s == 1.42


#: Narayanan et al. 2021 Figure 12 (GPT-3 175B, 96 A100, TP8 PP12, 4 chunks or none, batch 12-60): check rows, no
#: constant set from them. Values read off the figure (+-3 TFLOP/s, about +-2.5 %), so a row may be off by that
#: much. Measured: rows -2.5 to +0.9 %; interleaved / non-interleaved ratio simulated 1.46, 1.26, 1.18, 1.14, 1.11
#: against published 1.45, 1.23, 1.16, 1.10, 1.08.
FIG12_ROW_TOLERANCE = 0.05
FIG12_RATIO_TOLERANCE = 0.05  # relative, on the interleaving gain (simulated ratio / published ratio - 1)


def test_interleaving_gain_against_narayanan_figure_12():
    outs = {o.row.id: o for o in (v.simulate_row(r) for r in v.published_rows()
                                  if r.source == "narayanan2021-fig12")}
    assert len(outs) == 10 and {o.row.tag for o in outs.values()} == {"check"}
    assert max(abs(o.error) for o in outs.values()) <= FIG12_ROW_TOLERANCE
    for batch in (12, 24, 36, 48, 60):
        plain = outs[f"narayanan2021-f12-175b-96gpu-b{batch}-1f1b"]
        chunks = outs[f"narayanan2021-f12-175b-96gpu-b{batch}-interleaved"]
        assert chunks.scenario is not None and chunks.scenario.parallelism.virtual_pipeline == 4
        published = plain.row.published_step_s / chunks.row.published_step_s
        simulated = plain.simulated_step_s / chunks.simulated_step_s
        assert simulated / published - 1 == pytest.approx(0, abs=FIG12_RATIO_TOLERANCE), batch
