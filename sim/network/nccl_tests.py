"""nccl-tests on the model: bus bandwidth vs message size, and the comparison with published figures.

``sweep`` runs one collective over ``num_gpus`` consecutive GPUs of a topology at every size (by default
1 KiB to 8 GiB, doubling, as nccl-tests' ``-b 1K -e 8G -f 2``), with the algorithm NCCL's tuner would
pick (``sim.network.flows.nccl_plan``) or a named one. ``published`` puts the model next to the figures
in ``sim/catalog/nccl_measured.yaml``: large-message bus bandwidth of the algorithm the measurement
used, and the time of small all-reduces (the latency floor).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from sim import catalog
from sim.costs.collectives import Collective
from sim.network.flows import Algorithm, Plan, nccl_plan, plan
from sim.network.graph import build_fabric
from sim.specs.hardware import GpuSpec
from sim.specs.scenario import gpu_spec
from sim.specs.topology import TopologySpec, load_topology

#: nccl-tests ``-b 1K -e 8G -f 2``.
SIZES = tuple(1024 * 2**k for k in range(24))


@dataclass(frozen=True, slots=True)
class Point:
    """One message size: nccl-tests bus bandwidth (bytes/s), time (s) and the algorithm that ran."""

    size_bytes: int
    busbw: float
    time_s: float
    algorithm: Algorithm


def _plan(topo: TopologySpec, gpu: GpuSpec, num_gpus: int, op: Collective, size: float,
          algorithm: Algorithm | None) -> Plan | None:
    fabric = build_fabric(topo, num_gpus)
    members = np.arange(num_gpus)
    if algorithm is None:
        return nccl_plan(fabric, gpu.arch, op, members, size)
    return plan(fabric, gpu.arch, op, algorithm, members, size)


def sweep(topo: TopologySpec, gpu: GpuSpec, num_gpus: int, op: Collective, sizes=SIZES,
          algorithm: Algorithm | None = None) -> list[Point]:
    """Bus bandwidth of ``op`` on ``num_gpus`` GPUs at each size (empty where the algorithm does not apply)."""
    fabric = build_fabric(topo, num_gpus)
    out = []
    for size in sizes:
        p = _plan(topo, gpu, num_gpus, op, size, algorithm)
        if p is None:
            return []
        out.append(Point(size, p.bus_bandwidth(fabric.capacity), p.time(fabric.capacity), p.algorithm))
    return out


def default_gpu(topology: str) -> GpuSpec:
    """The GPU a bundled topology is built with (nccl_measured.yaml ``topology_gpus``)."""
    return gpu_spec(_table()["topology_gpus"][topology])


def _table() -> dict[str, Any]:
    return catalog.read_yaml("nccl_measured.yaml")


@dataclass(frozen=True, slots=True)
class Comparison:
    """The model next to one published figure (bus bandwidth in bytes/s, or a time in s)."""

    row: dict[str, Any]
    kind: str  # "busbw" or "time"
    simulated: float
    published: float

    @property
    def tag(self) -> str:
        """``fit``: a constant of efficiency.yaml was set from this row (reproducing it is consistency, not
        accuracy); ``check``: no constant was."""
        return str(self.row["tag"])

    @property
    def ratio(self) -> float:
        return self.simulated / self.published


def published(topologies: list[str] | None = None) -> list[Comparison]:
    """Every published figure of ``nccl_measured.yaml`` (on ``topologies`` if given) with the model's."""
    table, out = _table(), []
    for row in table["large_message_busbw"]:
        if topologies and row["topology"] not in topologies:
            continue
        topo, gpu = load_topology(row["topology"]), default_gpu(row["topology"])
        p = _plan(topo, gpu, row["gpus"], Collective(row["op"]), row["size_bytes"], Algorithm(row["algorithm"]))
        assert p is not None, f"{row}: the published algorithm does not apply to this topology"
        cap = build_fabric(topo, row["gpus"]).capacity
        out.append(Comparison(row, "busbw", p.bus_bandwidth(cap), row["busbw_gbyte_s"] * 1e9))
    for row in table["small_message_time"]:
        if topologies and row["topology"] not in topologies:
            continue
        topo, gpu = load_topology(row["topology"]), default_gpu(row["topology"])
        p = _plan(topo, gpu, row["gpus"], Collective(row["op"]), row["size_bytes"], None)
        assert p is not None, f"{row}: NCCL has no algorithm for it"
        out.append(Comparison(row, "time", p.time(build_fabric(topo, row["gpus"]).capacity),
                              row["time_us"] * 1e-6))
    return out
