"""Shared fixtures of the scenario-schema tests: a small valid base scenario and an in-process CLI runner."""

from __future__ import annotations

import copy
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from sim.cli import main

#: A small valid scenario: Llama 3 8B on 16 H100 (two DGX nodes), TP2 PP2 DP4, 8 micro-batches.
BASE: dict[str, Any] = {
    "name": "spec-test-llama3-8b-16xh100",
    "model": {"preset": "llama3-8b"},
    "cluster": {"gpu": "H100-SXM-80GB", "num_gpus": 16, "topology": "dgx-h100-superpod"},
    "parallelism": {
        "tensor": 2,
        "pipeline": 2,
        "context": 1,
        "data": 4,
        "zero_stage": 1,
        "schedule": "1f1b",
        "virtual_pipeline": 1,
        "micro_batch_size": 1,
    },
    "training": {"global_batch_size": 32, "tokens": 1.0e12, "precision": "bf16", "optimizer": "adamw"},
    "failures": {"model": "llama3", "restart_minutes": 15, "hot_spares": 2},
    "checkpoint": {"interval_minutes": 60, "storage_write_gbyte_s": 100, "async": True},
    "costs": {"usd_per_gpu_hour": 2.0, "pue": 1.1, "grid_kgco2_per_kwh": 0.385},
    "simulation": {"seed": 0, "fidelity": "symmetric", "monte_carlo": 2},
}


def base_mapping() -> dict[str, Any]:
    """A fresh deep copy of :data:`BASE` (tests mutate it)."""
    return copy.deepcopy(BASE)


@dataclass
class CliResult:
    rc: int
    out: str
    err: str


@pytest.fixture
def base() -> dict[str, Any]:
    return base_mapping()


@pytest.fixture
def write_scenario(tmp_path: Path):
    """Write a mapping (as YAML), a str or bytes to a scenario file in tmp_path; return its path."""
    counter = iter(range(10**6))

    def _write(content: Any, name: str | None = None) -> Path:
        path = tmp_path / (name or f"scenario-{next(counter)}.yaml")
        if isinstance(content, bytes):
            path.write_bytes(content)
        elif isinstance(content, str):
            path.write_text(content, encoding="utf-8")
        else:
            path.write_text(yaml.safe_dump(content, sort_keys=False), encoding="utf-8")
        return path

    return _write


@pytest.fixture
def run_cli(capsys):
    """Run ``trainsim ARGS`` in-process; return exit code, stdout and stderr."""

    def _run(*args: str) -> CliResult:
        capsys.readouterr()  # drop anything printed before
        try:
            rc = main([str(a) for a in args])
        except Exception as err:  # an uncaught exception is what a user sees as a traceback
            captured = capsys.readouterr()
            pytest.fail(f"trainsim {' '.join(map(str, args))} raised {type(err).__name__}: {err}"[:2000]
                        + f"\nstderr:\n{captured.err[:1000]}", pytrace=False)
        captured = capsys.readouterr()
        return CliResult(rc, captured.out, captured.err)

    return _run
