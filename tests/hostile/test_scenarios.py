"""Hostile field values in scenarios and topologies: out-of-range, absurd, or asking for unbounded work.

The work budget (sim/specs/budget.py) refuses with the field and the limit, before anything is built;
``--allow-large`` lifts it. Absurd physical values are out of the fields' ranges."""

from __future__ import annotations

import json
import math

import pytest

from .conftest import assert_clean, assert_refused, base_mapping, run_in_process, run_subprocess, topology_mapping

_TOPOLOGY = "cluster.topology"

REFUSED = {
    # (edits, text the error names)
    "heads-zero": ({"model.num_attention_heads": 0}, "num_attention_heads"),
    "kv-heads-zero": ({"model.num_kv_heads": 0}, "num_kv_heads"),
    "hidden-zero": ({"model.hidden_size": 0}, "hidden_size"),
    "layers-negative": ({"model.num_layers": -1}, "num_layers"),
    # no failure model at huge GPU counts: its rates alone imply interruptions every few seconds, refused first
    "gpus-2^40": ({"cluster.num_gpus": 2**40, "parallelism.data": 2**38, "training.global_batch_size": 2**38,
                   "failures": None},
                  "cluster.num_gpus"),
    "gpus-16M": ({"cluster.num_gpus": 2**24, "parallelism.data": 2**22, "training.global_batch_size": 2**22,
                  "failures": None},
                 "--allow-large"),
    "gpus-2^64": ({"cluster.num_gpus": 2**64}, "too large"),
    "global-batch-1e6": ({"training.global_batch_size": 1_000_000}, "micro-batches"),
    "global-batch-1e12": ({"training.global_batch_size": 10**12}, "micro-batches"),
    "tokens-1e30": ({"training.tokens": 1e30}, "training.tokens"),
    "tokens-1e16": ({"training.tokens": 1e16}, "training.tokens"),
    "tokens-inf": ({"training.tokens": ".inf"}, "training.tokens"),
    "tokens-nan": ({"training.tokens": float("nan")}, "training.tokens"),
    "rate-scale-1e6": ({"failures.rate_scale": 1e6, "training.tokens": 1e12}, "failures.rate_scale"),
    "custom-rate-1e300": ({"failures.model": "custom", "failures.rates": {"gpu": 1e300}}, "failures.rates.gpu"),
    "monte-carlo-1e7": ({"simulation.monte_carlo": 10**7}, "simulation.monte_carlo"),
    "episodes-1e9": ({"stragglers.episodes_per_day": 1e9}, "run-level events"),
    "inject-20k": ({"failures.inject_hours": [1.0] * 20_000, "simulation.monte_carlo": 20}, "run-level events"),
    "weibull-tiny": ({"failures.distribution": "weibull", "failures.weibull_shape": 1e-300}, "weibull_shape"),
    "scale-up-1e300": ({f"{_TOPOLOGY}.node.scale_up.bandwidth_gbyte_s_per_gpu": 1e300}, "bandwidth_gbyte_s_per_gpu"),
    "nic-1e308": ({f"{_TOPOLOGY}.node.nic_bandwidth_gbit_s": 1e308}, "nic_bandwidth_gbit_s"),
    "nic-nan": ({f"{_TOPOLOGY}.node.nic_bandwidth_gbit_s": float("nan")}, "nic_bandwidth_gbit_s"),
    "oversubscription-1e308": ({f"{_TOPOLOGY}.scale_out.tiers": [{"name": "leaf", "radix": 64,
                                                                  "oversubscription": 1e308}]}, "oversubscription"),
    "latency-negative": ({f"{_TOPOLOGY}.scale_out.latency_us": -1}, "latency_us"),
    "misplaced-num-experts": ({"model.num_experts": 8}, "model.moe"),
    "huge-key": ({"model." + "k" * 100_000: 1}, "unknown field"),
    "huge-list-value": ({"parallelism.tensor": list(range(20_000))}, "parallelism.tensor"),
    "over-the-node-budget": ({"name": list(range(200_000))}, "values"),
    "unknown-preset": ({"model.preset": "llama9-1t"}, "known"),
}


def _with_inline_topology(edits: dict) -> dict:
    data = base_mapping()
    if any(k.startswith(_TOPOLOGY + ".") for k in edits):
        data["cluster"]["topology"] = topology_mapping()
    for path, value in edits.items():
        node = data
        *parents, leaf = path.split(".")
        for part in parents:
            node = node.setdefault(part, {})
        node[leaf] = value
    return data


@pytest.mark.parametrize("case", sorted(REFUSED))
def test_hostile_values_are_refused(write, case):
    edits, needle = REFUSED[case]
    assert_refused(run_in_process("run", write(_with_inline_topology(edits)), "--json"), needle)


def test_many_unknown_keys_print_a_bounded_error(write):
    data = base_mapping()
    data["model"].update({f"unknown_{i}": i for i in range(5_000)})
    assert_refused(run_in_process("run", write(data)), "more")


def test_the_misplaced_field_names_its_block_not_a_lookalike(write):
    res = run_in_process("run", write(base_mapping(**{"model.num_experts": 8})))
    assert "num_layers" not in res.err and "model.moe" in res.err


@pytest.mark.parametrize("command", [["run"], ["report", "-o", "{tmp}/r.html"], ["placement"],
                                     ["checkpoint-interval"], ["search", "--workers", "1", "-q"],
                                     ["size", "--tokens", "1e12", "--deadline-days", "30", "--workers", "1", "-q"]])
def test_every_scenario_command_applies_the_budget(write, tmp_path, command):
    # no failure model: at 16M GPUs its rates alone imply several interruptions a minute, refused first
    path = write(base_mapping(**{"cluster.num_gpus": 2**24, "parallelism.data": 2**22,
                                 "training.global_batch_size": 2**22, "failures": None}))
    args = [command[0], path, *(a.replace("{tmp}", str(tmp_path)) for a in command[1:])]
    assert_refused(run_in_process(*args), "cluster.num_gpus", "--allow-large")


def test_replicas_option_over_budget(write):
    assert_refused(run_in_process("run", write(base_mapping()), "--replicas", 10**7), "replicas")


def test_allow_large_lifts_the_budget_and_out_of_memory_is_still_clean(write):
    """2^40 GPUs with --allow-large: numpy cannot allocate; exit 2 'out of memory' under a 3 GiB cap."""
    path = write(base_mapping(**{"cluster.num_gpus": 2**40, "parallelism.data": 2**38,
                                 "training.global_batch_size": 2**38}))
    res = run_subprocess("run", path, "--allow-large", timeout=120)
    assert "Traceback" not in res.err, res.err[-2000:]
    assert res.rc == 2, (res.rc, res.err[-1000:])


CLEAN = {
    # Absurd but in range: a finite answer, fast, with strict JSON.
    "scale-up-1e-6-full": ({f"{_TOPOLOGY}.node.scale_up.bandwidth_gbyte_s_per_gpu": 1e-6,
                            "simulation.fidelity": "full", "training.tokens": None}),
    "scale-up-1e-6": ({f"{_TOPOLOGY}.node.scale_up.bandwidth_gbyte_s_per_gpu": 1e-6, "training.tokens": None}),
    "price-1e308": ({"costs": {"usd_per_gpu_hour": 1e308}}),
    "pue-1e308": ({"costs": {"pue": 1e308}}),
    "storage-1e-300": ({"checkpoint.storage_write_gbyte_s": 1e-300}),
    "restart-1e300": ({"failures.restart_minutes": 1e300}),
    "spares-2^62": ({"failures.hot_spares": 2**62}),
    "seed-2^63": ({"simulation.seed": 2**63}),
    "seq-len-2^40": ({"model.seq_len": 2**40}),
    "vocab-2^62": ({"model.vocab_size": 2**62}),
    "stragglers-1e308": ({"stragglers": {"fraction_of_nodes": 1.0, "slowdown": 1e308}}),
    "sdc-1e300": ({"failures.sdc_detection_hours": 1e300}),
    "node-gpus-2^40": ({f"{_TOPOLOGY}.node.gpus": 2**40}),
}


def _strict(text: str) -> dict:
    def reject(constant: str) -> None:
        raise ValueError(f"non-standard JSON constant {constant}")

    return json.loads(text, parse_constant=reject)


@pytest.mark.parametrize("case", sorted(CLEAN))
def test_absurd_but_valid_values_give_a_clean_strict_result(write, case):
    data = _with_inline_topology(CLEAN[case])
    if data["training"].get("tokens") is None:
        data["training"].pop("tokens", None)
    res = run_in_process("run", write(data), "--json")
    if res.rc == 2:  # refused by a range or the budget: also acceptable, if clean
        assert_refused(res)
        return
    assert_clean(res)
    result = _strict(res.out)
    step = result["step"] or {}
    assert step.get("step_time_s") is None or math.isfinite(step["step_time_s"])


@pytest.mark.parametrize(("edits", "hint"), [
    ({"trainig": {"global_batch_size": 32}}, "did you mean 'training'"),
    ({"parallelism.tensr": 2}, "did you mean 'tensor'"),
    ({"parallelism.num_layers": 2}, "is a field of model"),
    ({"cluster.global_batch_size": 2}, "is a field of training"),
])
def test_unknown_keys_suggest_within_their_block_or_name_their_home(write, edits, hint):
    res = run_in_process("run", write(base_mapping(**edits)))
    assert_refused(res, hint)
