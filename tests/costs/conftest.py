"""Builders for the cost-function tests: small scenarios and models from plain mappings."""

from __future__ import annotations

import pytest

from sim import catalog
from sim.specs._schema import build
from sim.specs.model import ModelSpec
from sim.specs.scenario import Scenario, scenario_from_mapping

#: A GPT-style block (Korthikanti et al. 2022): GeLU MLP of 4h, MHA, dropout, untied head.
GPT_SMALL = {"num_layers": 4, "hidden_size": 1024, "ffn_hidden_size": 4096, "num_attention_heads": 16,
             "num_kv_heads": 16, "vocab_size": 51200, "seq_len": 2048, "activation": "gelu",
             "tied_embeddings": False, "dropout": True}


def preset_model(name: str, **overrides) -> ModelSpec:
    """A packaged model preset as a ModelSpec (explicit fields override)."""
    raw = {k: v for k, v in catalog.preset_table()[name].items() if k not in ("name", "source", "note")}
    return build(ModelSpec, {**raw, **overrides}, "model")


def model_spec(**fields) -> ModelSpec:
    return build(ModelSpec, {**GPT_SMALL, **fields}, "model")


def make_scenario(model: dict | None = None, parallelism: dict | None = None, training: dict | None = None,
                  topology: str | dict = "dgx-h100-superpod", gpu: str = "H100-SXM-80GB") -> Scenario:
    """A validated scenario; ``num_gpus`` is the product of the layout's degrees."""
    par = {"tensor": 1, "pipeline": 1, "context": 1, "data": 1, "zero_stage": 0, **(parallelism or {})}
    gpus = par["tensor"] * par["pipeline"] * par["context"] * par["data"]
    mb = par.get("micro_batch_size", 1)
    train = {"global_batch_size": par["data"] * mb * 8, **(training or {})}
    return scenario_from_mapping({
        "name": "test", "model": {**GPT_SMALL, **(model or {})},
        "cluster": {"gpu": gpu, "num_gpus": gpus, "topology": topology},
        "parallelism": par, "training": train})


@pytest.fixture
def scenario():
    """Factory fixture: ``scenario(model={...}, parallelism={...}, training={...})``."""
    return make_scenario
