"""Scenario builder for the parallelism tests."""

from __future__ import annotations

from sim.specs.scenario import Scenario, scenario_from_mapping

MODEL = {"num_layers": 8, "hidden_size": 512, "ffn_hidden_size": 2048, "num_attention_heads": 8,
         "num_kv_heads": 8, "vocab_size": 1024, "seq_len": 512, "activation": "swiglu"}


def make_scenario(num_layers: int = 8, **parallelism) -> Scenario:
    par = {"tensor": 1, "pipeline": 1, "context": 1, "data": 1, **parallelism}
    gpus = par["tensor"] * par["pipeline"] * par["context"] * par["data"]
    return scenario_from_mapping({
        "model": {**MODEL, "num_layers": num_layers},
        "cluster": {"gpu": "H100-SXM-80GB", "num_gpus": gpus, "topology": "dgx-h100-superpod"},
        "parallelism": par, "training": {"global_batch_size": 8 * par["pipeline"] * par["data"]}})
