"""A tiny model on a few H100s: every explore test simulates in milliseconds."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from sim.analysis.explore.space import SearchSpace
from sim.specs.enums import Recompute, Schedule
from sim.specs.scenario import Scenario, scenario_from_mapping

#: 4 layers, 4 query / 2 KV heads, 256 tokens: few valid TP degrees, quick to simulate.
TINY_MODEL = {"num_layers": 4, "hidden_size": 256, "ffn_hidden_size": 1024, "num_attention_heads": 4,
              "num_kv_heads": 2, "vocab_size": 1024, "seq_len": 256}

#: Two values per axis: micro-batch 1,2; ZeRO 0,1; recompute none,full; 1F1B or interleaved x2; no TP overlap.
TINY_SPACE = SearchSpace(micro_batch_sizes=(1, 2), zero_stages=(0, 1), recomputes=(Recompute.NONE, Recompute.FULL),
                         schedules=(Schedule.ONE_F_ONE_B, Schedule.INTERLEAVED), max_virtual=2,
                         tp_comm_overlaps=(False,))


def tiny_mapping(num_gpus: int = 4, global_batch: int = 8, **sections) -> dict:
    """A scenario mapping: the tiny model, pure DP over ``num_gpus`` H100 (DGX SuperPOD fabric)."""
    data = {"name": "tiny", "model": dict(TINY_MODEL),
            "cluster": {"gpu": "H100-SXM-80GB", "num_gpus": num_gpus, "topology": "dgx-h100-superpod"},
            "parallelism": {"data": num_gpus}, "training": {"global_batch_size": global_batch, "tokens": 1e9}}
    data.update(sections)
    return data


def tiny(num_gpus: int = 4, global_batch: int = 8, **sections) -> Scenario:
    return scenario_from_mapping(tiny_mapping(num_gpus, global_batch, **sections))


@pytest.fixture
def tiny_file(tmp_path: Path):
    """Factory: write a tiny scenario YAML and return its path."""

    def write(name: str = "tiny.yaml", **kwargs) -> Path:
        path = tmp_path / name
        path.write_text(yaml.safe_dump(tiny_mapping(**kwargs)))
        return path

    return write
