"""The pre-screen's peak memory per GPU equals the memory model (``sim.costs.memory.peak_memory``) on random
layouts: every axis of the search space, and the base settings the space does not vary (framework, sequence
parallelism, gradient dtype, fp8), on dense and MoE models (routed experts split over EP x ETP, their state
ZeRO-sharded over EDP; leading dense layers, shared experts)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sim.analysis.explore.prescreen import prescreen
from sim.analysis.explore.space import SearchSpace, enumerate_space
from sim.costs.memory import peak_memory
from sim.specs.scenario import load_scenario, scenario_from_mapping
from tests.explore.conftest import tiny_mapping

SCENARIOS = Path(__file__).resolve().parents[2] / "scenarios"

#: Exact to float rounding: both sides sum the same terms, in a different order.
RTOL = 1e-9


def _check(enum, rows) -> None:
    est = prescreen(enum).memory_bytes
    for i in rows:
        s = enum.valid.layout(int(i)).apply(enum.base, enum.cluster)
        assert est[i] == pytest.approx(peak_memory(s).total, rel=RTOL), enum.valid.layout(int(i)).label()


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(gpus=st.sampled_from([4, 8, 16]), framework=st.sampled_from(["megatron-core", "torchtitan", "deepspeed"]),
       sp=st.booleans(), fp32_grads=st.booleans(), fp8=st.booleans(), gbs=st.sampled_from([16, 32, 64]),
       data=st.data())
def test_prescreen_memory_equals_the_memory_model_on_random_dense_layouts(gpus, framework, sp, fp32_grads, fp8,
                                                                       gbs, data):
    mapping = tiny_mapping(gpus, gbs)
    mapping["parallelism"].update(framework=framework, sequence_parallel=sp,
                                  grad_reduce_dtype="fp32" if fp32_grads else "bf16")
    zeros = (0, 3) if framework == "torchtitan" else (0, 1, 2, 3)  # FSDP2 shards fully or replicates
    mapping["parallelism"]["zero_stage"] = zeros[-1]
    if fp8:
        mapping["training"].update(precision="fp8", fp8_recipe="tensorwise")
    base = scenario_from_mapping(mapping)
    enum = enumerate_space(base, SearchSpace(micro_batch_sizes=(1, 2, 4), zero_stages=zeros, max_virtual=2))
    assert len(enum.valid) > 0
    rows = data.draw(st.lists(st.integers(0, len(enum.valid) - 1), min_size=1, max_size=12, unique=True))
    _check(enum, rows)


#: 8 routed experts (top-2) of width 128 and one shared expert, after one leading dense layer.
TINY_MOE = {"num_experts": 8, "top_k": 2, "expert_ffn_hidden_size": 128, "shared_experts": 1, "first_dense_layers": 1}


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(gpus=st.sampled_from([8, 16]), zero_stage=st.sampled_from([0, 1, 2, 3]), fp8=st.booleans(),
       gbs=st.sampled_from([16, 32, 64]), frequency=st.sampled_from([1, 2]),
       modules=st.sampled_from([None, ["layernorm", "moe_act"], ["moe"], ["mlp", "shared_experts"]]), data=st.data())
def test_prescreen_memory_equals_the_memory_model_on_random_moe_layouts(gpus, zero_stage, fp8, gbs, frequency,
                                                                      modules, data):
    mapping = tiny_mapping(gpus, gbs)
    mapping["model"]["moe"] = {**TINY_MOE, "moe_layer_frequency": frequency}
    if fp8:
        mapping["training"].update(precision="fp8", fp8_recipe="tensorwise")
    if modules:  # the base's recompute modules apply to the selective layouts; none/full stay valid without them
        mapping["parallelism"].update(activation_recompute="selective", recompute_modules=modules)
    base = scenario_from_mapping(mapping)
    space = SearchSpace(micro_batch_sizes=(1, 2), zero_stages=(zero_stage,), max_virtual=2)
    enum = enumerate_space(base, space)
    assert len(set(enum.valid["expert"])) > 2 and len(set(enum.valid["expert_tensor"])) > 1  # EP and ETP vary
    assert len(set(enum.valid["activation_recompute"])) == 3  # none, selective and full all valid
    rows = data.draw(st.lists(st.integers(0, len(enum.valid) - 1), min_size=1, max_size=12, unique=True))
    _check(enum, rows)


@pytest.mark.parametrize("name", ["llama3-70b-1k-h100.yaml", "llama3-405b-16k-h100-tp8-pp16-dp128.yaml"])
@settings(max_examples=3, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(seed=st.integers(0, 2**32 - 1))
def test_prescreen_memory_equals_the_memory_model_on_the_bundled_dense_scenarios(name, seed):
    base = load_scenario(SCENARIOS / name)
    p = base.parallelism
    # the scenario's own TP and a neighbouring PP/CP keep the table small; every free axis and micro-batch varies
    space = SearchSpace(tensor=(p.tensor,), pipeline=(p.pipeline, max(1, p.pipeline // 2)), context=(p.context,),
                        micro_batch_sizes=(1, 2), max_virtual=4,
                        zero_stages=(0, 1, 2, 3) if p.reshard_after_forward is None else (3,))  # set: FSDP only
    enum = enumerate_space(base, space)
    assert len(enum.valid) > 0
    rows = np.random.default_rng(seed).choice(len(enum.valid), size=min(8, len(enum.valid)), replace=False)
    _check(enum, rows)
