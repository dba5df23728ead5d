"""Packaged data: GPU catalog, model presets, kernel-efficiency tables and kernel counts, reliability data, bundled
topologies.

Every figure in these YAML files carries its ``source:``. Loading is cached: the files are read once
per process.
"""

from __future__ import annotations

import csv
import functools
import io
from importlib import resources
from pathlib import Path
from typing import Any

from sim.catalog.yamlio import load_yaml
from sim.errors import Issue, ScenarioError

#: Bundled topologies live at the repository top level (``topologies/``), next to ``sim/``.
TOPOLOGY_DIR = Path(__file__).resolve().parents[2] / "topologies"


def read_yaml(name: str) -> Any:
    """A packaged YAML file by its path relative to ``sim/catalog``."""
    return load_yaml(resources.files(__package__).joinpath(name).read_text(encoding="utf-8"))


def read_csv(name: str) -> list[dict[str, str]]:
    """A packaged CSV file by its path relative to ``sim/catalog``, one dict per row."""
    text = resources.files(__package__).joinpath(name).read_text(encoding="utf-8")
    return list(csv.DictReader(io.StringIO(text)))


def topology_mapping(name: str) -> dict[str, Any]:
    """The raw mapping of a bundled topology (a fresh copy each call: callers may edit it)."""
    return load_yaml((TOPOLOGY_DIR / f"{name}.yaml").read_text(encoding="utf-8"))


@functools.cache
def gpu_table() -> dict[str, dict[str, Any]]:
    """Raw GPU catalog entries by canonical name."""
    return read_yaml("gpus.yaml")


@functools.cache
def _gpu_aliases() -> dict[str, str]:
    table = {}
    for name, entry in gpu_table().items():
        for alias in [name, *entry.get("aliases", [])]:
            table[alias.lower()] = name
    return table


def canonical_gpu(name: str) -> str | None:
    """The catalog name for ``name`` or one of its aliases (case-insensitive), else None."""
    return _gpu_aliases().get(str(name).lower())


@functools.cache
def preset_table() -> dict[str, dict[str, Any]]:
    """Model presets by name (files ``models/*.yaml``)."""
    folder = resources.files(__package__).joinpath("models")
    presets = {}
    for entry in sorted(folder.iterdir(), key=lambda p: p.name):
        if entry.name.endswith(".yaml"):
            data = load_yaml(entry.read_text(encoding="utf-8"))
            presets[data["name"]] = data
    return presets


@functools.cache
def preset(name: str) -> dict[str, Any] | None:
    """One model preset by name, or None: its own file ``models/<name>.yaml`` when that file holds it (one
    file parsed, not the ~20 of :func:`preset_table`), else looked up in the table."""
    if f"{name}.yaml" in _preset_files():
        data = load_yaml(resources.files(__package__).joinpath("models", f"{name}.yaml").read_text(encoding="utf-8"))
        if isinstance(data, dict) and data.get("name") == name:
            return data
    return preset_table().get(name)


@functools.cache
def _preset_files() -> frozenset[str]:
    """Names of the files in ``models/`` (listed, not read: a name is looked up only among them)."""
    return frozenset(entry.name for entry in resources.files(__package__).joinpath("models").iterdir())


@functools.cache
def efficiency_table() -> dict[str, Any]:
    """Kernel-efficiency tables (GEMM, attention, memory-bound, collectives, overlap)."""
    return read_yaml("efficiency.yaml")


@functools.cache
def frameworks_table() -> dict[str, Any]:
    """Framework code paths: fp8 recipes, torch.compile fusion, selective recompute, TP overlap."""
    return read_yaml("frameworks.yaml")


@functools.cache
def moe_table() -> dict[str, Any]:
    """Mixture-of-experts constants (grouped GEMM, routing imbalance, router)."""
    return read_yaml("moe.yaml")


@functools.cache
def kernels_table() -> dict[str, Any]:
    """Kernel counts behind the host launch costs (Megatron-Core layer sides, fp8 quantizers); typed by
    :func:`sim.specs.kernels.kernel_counts`."""
    return read_yaml("kernels.yaml")


@functools.cache
def reliability_table() -> dict[str, Any]:
    """Failure-rate sets, repair, restart stages, checkpoint and straggler figures (run level)."""
    return read_yaml("reliability.yaml")


def topology_names() -> list[str]:
    """Names of the bundled topologies."""
    return sorted(p.stem for p in TOPOLOGY_DIR.glob("*.yaml"))


def resolve_topology(ref: str, base: Path | None) -> Path:
    """The file for a topology name or path (relative to the scenario's folder)."""
    def is_file(p: Path) -> bool:
        try:
            return p.is_file()
        except OSError:
            return False
    bundled = TOPOLOGY_DIR / f"{ref}.yaml"
    if is_file(bundled):
        return bundled
    candidate = Path(ref)
    if not candidate.is_absolute() and base is not None:
        candidate = base / candidate
    if is_file(candidate):
        return candidate
    raise ScenarioError([Issue("cluster.topology", f"{ref!r} is neither a bundled topology "
                               f"({', '.join(topology_names())}) nor an existing file")])
