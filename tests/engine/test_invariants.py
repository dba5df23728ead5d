"""Invariants of the step simulation over random valid small layouts (sim/engine/step.py).

Every example is a scenario built from a small custom model on 8-64 H100s of a DGX H100 SuperPOD with
a random layout satisfying the divisibility rules; a second group of tests makes communication free
and checks that the simulated pipeline bubble is the textbook one.
"""

from __future__ import annotations

import itertools
from collections import defaultdict

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sim.engine.simulate import simulate_step
from sim.engine.step import CATEGORIES, StepResult
from sim.specs.scenario import Scenario, scenario_from_mapping

SETTINGS = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@st.composite
def scenarios(draw) -> dict:
    """A valid scenario mapping: small model, 8-64 GPUs, random layout and options."""
    tp = draw(st.sampled_from([1, 2, 4, 8]))
    pp = draw(st.sampled_from([1, 2, 4]))
    cp = draw(st.sampled_from([1, 2]))
    dp = draw(st.sampled_from([d for d in (1, 2, 4, 8, 16) if 8 <= tp * pp * cp * d <= 64]))
    schedule = draw(st.sampled_from(["1f1b", "gpipe", "interleaved-1f1b"] if pp > 1 else ["1f1b", "gpipe"]))
    v = 2 if schedule == "interleaved-1f1b" else 1
    slots = draw(st.sampled_from([s for s in (8, 12, 16) if s % (pp * v) == 0]))
    emb = pp > 1 and draw(st.booleans())
    loss = pp > 1 and draw(st.booleans())
    hidden = draw(st.sampled_from([512, 1024, 2048]))
    heads = draw(st.sampled_from([8, 16]))
    kv = draw(st.sampled_from([heads, 8]))  # MHA or GQA; tp <= 8 divides both
    activation = draw(st.sampled_from(["swiglu", "gelu"]))
    mb = draw(st.sampled_from([1, 2]))
    m = draw(st.integers(1, 8)) * (pp if v > 1 else 1)  # interleaved needs m % pp == 0
    return {
        "name": "hypothesis",
        "model": {"num_layers": slots - emb - loss, "hidden_size": hidden,
                  "ffn_hidden_size": draw(st.sampled_from([2 * hidden, 4 * hidden])),
                  "num_attention_heads": heads, "num_kv_heads": kv,
                  "vocab_size": draw(st.sampled_from([512, 32000])),
                  "seq_len": draw(st.sampled_from([512, 1024, 2048])), "activation": activation,
                  "tied_embeddings": draw(st.booleans()), "dropout": draw(st.booleans())},
        "cluster": {"gpu": "H100-SXM-80GB", "num_gpus": tp * pp * cp * dp, "topology": "dgx-h100-superpod"},
        "parallelism": {
            "tensor": tp, "pipeline": pp, "context": cp, "data": dp, "virtual_pipeline": v,
            "schedule": schedule,
            "zero_stage": draw(st.integers(0, 3)), "sequence_parallel": draw(st.booleans()),
            "micro_batch_size": mb,
            "activation_recompute": draw(st.sampled_from(["none", "selective", "full"])),
            "tp_comm_overlap": draw(st.booleans()), "overlap_grad_reduce": draw(st.booleans()),
            "overlap_param_gather": draw(st.booleans()),
            "grad_reduce_dtype": draw(st.sampled_from(["fp32", "bf16"])),
            "grad_bucket_mparams": draw(st.sampled_from([1.0, 40.0])),
            "account_for_embedding_in_pipeline_split": emb, "account_for_loss_in_pipeline_split": loss},
        "training": {"global_batch_size": dp * mb * m, "precision": draw(st.sampled_from(["bf16", "fp8"])),
                     "attention": draw(st.sampled_from(["flash", "unfused"]))},
    }


def check_invariants(r: StepResult) -> None:
    s: Scenario = r.scenario
    step = r.step_time_s
    assert step > 0
    # utilisation
    assert 0 < r.mfu < 1
    assert r.hfu >= r.mfu
    if s.parallelism.activation_recompute.value == "none":
        assert r.hfu == pytest.approx(r.mfu, rel=1e-12)
    # the step cannot be shorter than the busiest stage's compute stream
    assert len(r.stage_compute_s) == s.parallelism.pipeline
    assert step >= max(r.stage_compute_s) * (1 - 1e-12)
    # the breakdown accounts for the step exactly, every part non-negative
    assert set(r.breakdown_s) == set(CATEGORIES)
    assert all(v >= 0 for v in r.breakdown_s.values()), r.breakdown_s
    assert sum(r.breakdown_s.values()) == pytest.approx(step, rel=1e-9)
    assert 0 <= r.bubble_fraction <= 1
    # timeline: well-formed intervals inside the step, one at a time per (rank, stream)
    streams = defaultdict(list)
    for i in r.timeline.intervals:
        assert 0 <= i.start <= i.end <= step * (1 + 1e-12), i
        streams[i.rank, i.stream].append(i)
    assert any(stream == "compute" for _, stream in streams)
    eps = 1e-12 * step
    for key, intervals in streams.items():
        intervals.sort(key=lambda i: (i.start, i.end))
        for a, b in itertools.pairwise(intervals):
            assert b.start >= a.end - eps, (key, a, b)
    # the compute stream's busy time is what the stage reports
    for rank in range(s.parallelism.pipeline):
        busy = sum(i.end - i.start for i in streams[rank, "compute"] if i.name != "optimizer")
        assert busy == pytest.approx(r.stage_compute_s[rank], rel=1e-9)


@SETTINGS
@given(scenarios())
def test_step_invariants(mapping):
    s = scenario_from_mapping(mapping)
    first = simulate_step(s, record=True)
    check_invariants(first)
    # deterministic: the same scenario (and a freshly built copy) gives the identical step time
    assert simulate_step(s).step_time_s == first.step_time_s
    assert simulate_step(scenario_from_mapping(mapping)).step_time_s == first.step_time_s


def test_llama3_405b_example_scenario_invariants():
    from pathlib import Path

    from sim.specs.scenario import load_scenario

    path = Path(__file__).resolve().parents[2] / "scenarios" / "llama3-405b-16k-h100-tp8-pp16-dp128.yaml"
    r = simulate_step(load_scenario(path), record=True)
    check_invariants(r)
    assert 0.2 < r.mfu < 0.6  # Llama 3 reports 38-43 % (arXiv 2407.21783 Table 4)


# ---- the bubble emerges: free communication ------------------------------------------------------
#: A topology whose links are effectively infinite and instantaneous.
FREE_NETWORK = {
    "name": "free", "node": {"gpus": 8, "nics": 8, "nic_bandwidth_gbit_s": 1e12,
                             "scale_up": {"kind": "nvswitch", "bandwidth_gbyte_s_per_gpu": 1e9,
                                          "latency_us": 0, "domain_gpus": 8}},
    "scale_out": {"tiers": [], "latency_us": 0}}


def free_pipeline(p: int, m: int, v: int = 1) -> Scenario:
    """Identical stages (2 layers per chunk), tiny vocabulary, no TP/DP: only the pipeline remains."""
    return scenario_from_mapping({
        "model": {"num_layers": 2 * p * v, "hidden_size": 2048, "ffn_hidden_size": 8192,
                  "num_attention_heads": 16, "num_kv_heads": 16, "vocab_size": 128, "seq_len": 2048},
        "cluster": {"gpu": "H100-SXM-80GB", "num_gpus": p, "topology": FREE_NETWORK},
        "parallelism": {"pipeline": p, "virtual_pipeline": v, "zero_stage": 0,
                        "schedule": "interleaved-1f1b" if v > 1 else "1f1b",
                        "account_for_embedding_in_pipeline_split": False,
                        "account_for_loss_in_pipeline_split": False},
        "training": {"global_batch_size": m}})


def pipeline_bubble(r: StepResult) -> float:
    """The bubble as a fraction of the pipelined part of the step (the optimizer step excluded)."""
    return r.breakdown_s["bubble"] / (r.step_time_s - r.breakdown_s["optimizer"])


@pytest.mark.parametrize(("p", "m"), [(2, 4), (2, 16), (4, 4), (4, 8), (4, 16), (8, 8), (8, 32)])
def test_1f1b_bubble_with_free_communication(p, m):
    r = simulate_step(free_pipeline(p, m), record=True)
    assert r.breakdown_s["pp_comm"] < 1e-6 * r.step_time_s
    assert pipeline_bubble(r) == pytest.approx((p - 1) / (m + p - 1), abs=0.03)


@pytest.mark.parametrize(("p", "m", "v"), [(2, 4, 2), (2, 8, 4), (4, 4, 2), (4, 8, 2), (4, 16, 2), (8, 8, 2)])
def test_interleaved_bubble_with_free_communication(p, m, v):
    r = simulate_step(free_pipeline(p, m, v), record=True)
    assert pipeline_bubble(r) == pytest.approx((p - 1) / (v * m + p - 1), abs=0.03)
    plain = simulate_step(free_pipeline(p, m))
    assert pipeline_bubble(r) < pipeline_bubble(plain)


@pytest.mark.parametrize(("p", "m"), [(2, 4), (4, 8)])
def test_gpipe_bubble_equals_1f1b_with_free_communication(p, m):
    s = free_pipeline(p, m)
    gp = scenario_from_mapping({
        "model": {"num_layers": 2 * p, "hidden_size": 2048, "ffn_hidden_size": 8192,
                  "num_attention_heads": 16, "num_kv_heads": 16, "vocab_size": 128, "seq_len": 2048},
        "cluster": {"gpu": "H100-SXM-80GB", "num_gpus": p, "topology": FREE_NETWORK},
        "parallelism": {"pipeline": p, "zero_stage": 0, "schedule": "gpipe"},
        "training": {"global_batch_size": m}})
    assert simulate_step(gp).step_time_s == pytest.approx(simulate_step(s).step_time_s, rel=1e-6)


def test_single_stage_has_no_bubble():
    r = simulate_step(free_pipeline(1, 8), record=True)
    assert r.breakdown_s["bubble"] == pytest.approx(0.0, abs=1e-12)
