"""Which groups of a placed layout cross which level of the fabric (``trainsim placement``)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from sim.costs.collectives import GroupPath
from sim.network.graph import Fabric, build_fabric
from sim.network.paths import scenario_paths
from sim.parallelism.mesh import Axis, ParallelMesh
from sim.parallelism.placement import (
    expert_data_members,
    expert_members,
    expert_tensor_members,
    group_members,
    stage_pairs,
)
from sim.specs.hardware import GpuSpec
from sim.specs.layout import ParallelismSpec
from sim.specs.topology import TopologySpec


@dataclass(frozen=True, slots=True)
class GroupCrossing:
    """One kind of group: its size and count, the scale-up domains one spans, the fabric levels its
    ring (or pipeline hop) traffic crosses, and the GroupPath the step simulation costs it on."""

    kind: str
    size: int
    groups: int
    domains: int
    crosses: tuple[str, ...]
    path: GroupPath


def _levels(fabric: Fabric, src: np.ndarray, dst: np.ndarray) -> tuple[str, ...]:
    links = fabric.path_links(src, dst)
    used = np.unique(fabric.level[links[links >= 0]])
    return tuple(fabric.level_name(int(v)) for v in used if v >= 1)


def _domains(fabric: Fabric, groups: np.ndarray) -> int:
    """Most scale-up domains any one group spans."""
    dom = np.sort(fabric.domain(groups), axis=1)
    return int(((np.diff(dom, axis=1) != 0).sum(axis=1) + 1).max())


def crossings(topo: TopologySpec, gpu: GpuSpec, layout: ParallelismSpec) -> list[GroupCrossing]:
    """TP, CP, EP (with ETP and EDP for a folded expert mesh), DP (CP x DP) and PP groups of ``layout`` on
    ``topo``, innermost first."""
    mesh = ParallelMesh.from_layout(layout)
    fabric = build_fabric(topo, mesh.num_ranks)
    paths = scenario_paths(topo, gpu, layout)
    kinds = [("tp", group_members(mesh, Axis.TP), paths.tp), ("cp", group_members(mesh, Axis.CP), paths.cp),
             ("dp", group_members(mesh, Axis.CP, Axis.DP), paths.dp)]
    if layout.expert > 1 or layout.expert_tensor_degree != layout.tensor:  # the folded expert mesh
        etp = layout.expert_tensor_degree
        kinds[2:2] = [("etp", expert_tensor_members(mesh, layout.expert, etp), paths.etp),
                      ("ep", expert_members(mesh, layout.expert, etp), paths.ep),
                      ("edp", expert_data_members(mesh, layout.expert, etp), paths.edp)]
    else:
        kinds.insert(2, ("ep", expert_members(mesh, layout.expert), paths.ep))
    out = []
    for kind, groups, path in kinds:
        ring = np.sort(groups, axis=1)
        crosses = _levels(fabric, ring.ravel(), np.roll(ring, -1, axis=1).ravel())
        out.append(GroupCrossing(kind, groups.shape[1], len(groups), _domains(fabric, groups), crosses, path))
    pairs = stage_pairs(mesh)
    if len(pairs):
        out.append(GroupCrossing("pp", 2, len(pairs), _domains(fabric, pairs),
                                 _levels(fabric, pairs[:, 0], pairs[:, 1]), paths.pp))
    return out
