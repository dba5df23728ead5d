"""Validation coverage of a layout's features (sim/analysis/coverage.py) and the search's --validated-only."""

from __future__ import annotations

from sim.analysis import coverage
from sim.analysis.coverage import SCALE_RATIO, TOLERANCE, features, uncovered
from sim.analysis.explore.search import search
from sim.specs.scenario import scenario_from_mapping
from tests.explore.conftest import TINY_MODEL, TINY_SPACE, tiny


def scenario(num_gpus: int = 16, **parallelism):
    par = {"tensor": 2, "pipeline": 2, "context": 2, "data": 2, **parallelism}
    return scenario_from_mapping({
        "model": dict(TINY_MODEL),
        "cluster": {"gpu": "H100-SXM-80GB", "num_gpus": num_gpus, "topology": "dgx-h100-superpod"},
        "parallelism": par, "training": {"global_batch_size": 16}})


def test_features_of_a_layout_by_hand():
    s = scenario(zero_stage=1, tp_comm_overlap=True, activation_recompute="selective", virtual_pipeline=2,
                 schedule="interleaved-1f1b")
    assert features(s) == ["recompute=selective", "tp_overlap=on", "zero=1@megatron-core", "cp@seq=256",
                           "schedule=interleaved-1f1b@megatron-core", "virtual_pipeline=2@megatron-core"]
    # pure DP: no TP, CP or PP features
    plain = scenario(num_gpus=4, tensor=1, pipeline=1, context=1, data=4)
    assert features(plain) == ["recompute=none", f"zero={plain.parallelism.zero_stage}@megatron-core"]


def test_zero_feature_names_the_data_parallel_code_path():
    """ZeRO-3 of DeepSpeed 0.3 (blocking per-tensor gathers), of FSDP2 and of Megatron-FSDP are three cost models:
    one's validation rows must not cover another's layouts."""
    def zero(**kw):
        plain = scenario(num_gpus=4, tensor=1, pipeline=1, context=1, data=4, **kw)
        return [f for f in features(plain) if f.startswith("zero=")]

    assert zero(zero_stage=3) == ["zero=3@megatron-core"]
    assert zero(zero_stage=3, framework="torchtitan") == ["zero=3@torchtitan"]
    assert zero(zero_stage=3, framework="deepspeed") == ["zero=3@deepspeed"]
    assert zero(zero_stage=3, framework="deepspeed", framework_version="0.3") == ["zero=3@deepspeed-0.3"]
    assert zero(zero_stage=1, framework="deepspeed") == ["zero=1@deepspeed"]
    # the generated catalog: Narayanan et al.'s DeepSpeed 0.3 rows count for their own code path only
    table = coverage.coverage_table()["features"]
    assert all(x.startswith("narayanan2021-t2-zero3") for x in table["zero=3@deepspeed-0.3"]["examples"])
    assert not any(x.startswith("narayanan2021") for f, e in table.items() if f != "zero=3@deepspeed-0.3"
                   and f.startswith("zero=3") for x in e["examples"])


def test_pipeline_features_name_the_pipeline_code_path():
    """Megatron-Core's interleaved schedule (non-blocking, overlapped p2p), torch.distributed.pipelining's
    PipelineScheduleMulti (lockstep, blocking on each time step's p2p) and DeepSpeed's pipeline engine are three
    implementations: one's rows must not cover another's layouts."""
    def pipe(**kw):
        return [f for f in features(scenario(**kw)) if f.startswith(("schedule=", "virtual_pipeline="))]

    assert pipe() == ["schedule=1f1b@megatron-core"]
    assert pipe(schedule="gpipe", framework="deepspeed") == ["schedule=gpipe@deepspeed"]
    assert pipe(schedule="interleaved-1f1b", virtual_pipeline=2, framework="torchtitan", zero_stage=0) == [
        "schedule=interleaved-1f1b@torchtitan", "virtual_pipeline=2@torchtitan"]
    assert pipe(framework="deepspeed", framework_version="0.3", zero_stage=3) == ["schedule=1f1b@deepspeed-0.3"]
    assert pipe(num_gpus=8, pipeline=1) == []  # no pipeline: no schedule feature
    # the generated catalog: torchtitan's interleaved 405B row (-24.5 %) covers nothing, and its rows count for
    # torchtitan's path only, Narayanan et al.'s interleaved rows for Megatron's
    table = coverage.coverage_table()["features"]
    assert table["schedule=interleaved-1f1b@torchtitan"]["rows"] >= 1
    assert table["schedule=interleaved-1f1b@torchtitan"]["within"] == 0
    assert all(x.startswith("torchtitan") for f, e in table.items() if f.endswith("@torchtitan") for x in e["examples"])
    assert not any(x.startswith("torchtitan") for f, e in table.items()
                   if f.startswith(("schedule=", "virtual_pipeline=")) and f.endswith("@megatron-core")
                   for x in e["examples"])
    assert any(x.startswith("narayanan2021") for x in table["schedule=interleaved-1f1b@megatron-core"]["examples"])
    interleaved = scenario(schedule="interleaved-1f1b", virtual_pipeline=2, framework="torchtitan", zero_stage=0)
    assert {"schedule=interleaved-1f1b@torchtitan", "virtual_pipeline=2@torchtitan"} <= set(uncovered(interleaved))


def test_a_feature_is_covered_up_to_scale_ratio_times_the_rows_gpus():
    s = scenario(zero_stage=1)
    names = features(s)
    table = {"features": {f: {"max_gpus_within": 4} for f in names}}
    assert uncovered(s, table) == []  # 16 GPUs <= 4 x 4
    table["features"]["zero=1@megatron-core"]["max_gpus_within"] = 2  # 2 x 4 < 16
    assert uncovered(s, table) == ["zero=1@megatron-core"]
    del table["features"]["tp_overlap=off"]
    assert uncovered(s, table) == ["tp_overlap=off", "zero=1@megatron-core"]


def test_catalog_was_built_under_the_current_rules():
    table = coverage.coverage_table()
    assert table["tolerance"] == TOLERANCE and table["scale_ratio"] == SCALE_RATIO
    for name, entry in table["features"].items():
        assert entry["within"] <= entry["rows"], name
        assert (entry["max_gpus_within"] > 0) == (entry["within"] > 0), name
        # the check rows (no constant fitted on them) are a part of those within the tolerance
        assert entry["within_check"] <= entry["within"], name
        assert entry["max_gpus_within_check"] <= entry["max_gpus_within"], name
        assert (entry["max_gpus_within_check"] > 0) == (entry["within_check"] > 0), name


def test_validated_only_ranks_only_covered_layouts(monkeypatch):
    base = tiny()
    full = search(base, TINY_SPACE, simulate=10_000, objective="step", workers=1)
    names = {f for i, row in full.rows.items() for f in features(full.layout(i).apply(base))}
    table = {"features": {f: {"max_gpus_within": 1024} for f in names if f != "recompute=full"}}
    monkeypatch.setattr(coverage, "coverage_table", lambda: table)
    marked = search(base, TINY_SPACE, simulate=10_000, objective="step", workers=1)
    only = search(base, TINY_SPACE, simulate=10_000, objective="step", workers=1, validated_only=True)
    ranked = only.ranked()
    assert ranked and all(layout.activation_recompute.value != "full" for layout, _ in ranked)
    assert all(row["unvalidated"] == "" for _, row in ranked)
    unvalidated = [row for row in marked.rows.values() if row["unvalidated"]]
    assert unvalidated and all(row["unvalidated"] == "recompute=full" for row in unvalidated)
    assert len(ranked) == marked.simulated - len(unvalidated)


def test_validated_only_with_nothing_covered_says_so_not_out_of_memory(monkeypatch):
    from sim.cli.explore import _search_report

    monkeypatch.setattr(coverage, "coverage_table", lambda: {"features": {}})
    only = search(tiny(), TINY_SPACE, simulate=4, objective="step", workers=1, validated_only=True)
    fitting = sum(1 for r in only.rows.values() if r["step_time_s"] is not None)
    assert fitting and not only.ranked()
    report = _search_report(only, TINY_SPACE, top=10)
    assert f"no fully validated layout: each of the {fitting} simulated layouts that fit in memory" in report
    assert "no layout fits in memory" not in report


def moe_scenario(num_gpus: int, **parallelism):
    """``scenario`` with 16 routed experts."""
    return scenario_from_mapping({
        "model": {**TINY_MODEL, "moe": {"num_experts": 16, "top_k": 2, "expert_ffn_hidden_size": 128}},
        "cluster": {"gpu": "H100-SXM-80GB", "num_gpus": num_gpus, "topology": "dgx-h100-superpod"},
        "parallelism": {"tensor": 2, "pipeline": 2, "context": 2, "data": 2, **parallelism},
        "training": {"global_batch_size": 16}})


def test_ep_feature_is_inside_or_across_the_nvlink_domain_of_the_folded_expert_mesh():
    """DGX H100: 8-GPU NVLink domains. Expert mesh over a stage's GPUs (TP2 CP2 DP2 = 8 per stage, stage 0 on GPUs
    0-7 with tp,cp,dp,pp order): EP4 x ETP2 fills GPUs 0-7 (one domain); with 32 GPUs (DP 8, 32 per stage) EP16 x
    ETP1 spans GPUs 0-15 (two domains), EP8 x ETP1 0-7 (one)."""
    inside = moe_scenario(16, expert=4, expert_tensor=2)
    assert "ep=in nvlink domain" in features(inside)
    across = moe_scenario(64, data=8, expert=16, expert_tensor=1)
    assert "ep=across nvlink domains" in features(across)
    assert "ep=in nvlink domain" in features(moe_scenario(64, data=8, expert=8, expert_tensor=1))
    assert not any(f.startswith("ep=") for f in features(moe_scenario(16)))  # EP 1: no expert dispatch
    # the MoE validation rows cover both placements (the generated catalog)
    table = coverage.coverage_table()["features"]
    assert table["ep=in nvlink domain"]["within"] > 0 and table["ep=across nvlink domains"]["within"] > 0
