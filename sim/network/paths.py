"""What a communication group's placement yields for the alpha-beta cost: a GroupPath from the fabric.

The symmetric step engine costs collectives with ``sim.costs.collectives`` on a :class:`GroupPath`.
Its bandwidths come from flows on the fabric with **every group of the same kind running at once**
(the DP reductions of all pipeline stages and all TP ranks, all TP groups, every pipeline hop), so
groups that share a NIC or an oversubscribed uplink see each other:

* ``busbw``: each group's ring (``sim.network.flows.ring_orders``: one channel per member of a domain)
  as flows; max-min fair rates over all groups' flows together; a ring moves at its slowest flow, so
  a group's bus bandwidth is ``channels x min(efficiency x rate)`` over its flows, and the path's is
  the slowest group's (the synchronous step waits for it).
* ``all_reduce_busbw``: the larger of that and NVLS (inside one NVSwitch domain, more than 2 GPUs).
* ``p2p_bw``: one flow per member to its ring successor (all groups at once), point-to-point efficiency;
  for the pipeline, every hop from stage s to s + 1 at once.
* latencies: the scale-up hop, and the slowest route that leaves a domain (NIC + tiers crossed).

Computed once per (topology, GPU architecture, mesh, placement) and cached; the cost is a few numpy
passes over ``num_gpus x channels`` flows, never a networkx graph.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass

import numpy as np

from sim import catalog
from sim.costs.collectives import GroupPath
from sim.network.flows import Efficiency, by_domain, flow_efficiency, ring_orders, route_latency
from sim.network.graph import Fabric, build_fabric
from sim.network.sharing import max_min_rates
from sim.parallelism.mesh import Axis, Group, ParallelMesh
from sim.parallelism.placement import expert_members, group_members, stage_pairs, tiled_members
from sim.specs.hardware import GpuSpec
from sim.specs.layout import ParallelismSpec
from sim.specs.topology import TopologySpec


@dataclass(frozen=True, slots=True)
class ScenarioPaths:
    """GroupPaths of the groups every GPU belongs to."""

    tp: GroupPath
    cp: GroupPath
    ep: GroupPath
    dp: GroupPath  # CP x DP: gradients are reduced over both
    pp: GroupPath  # stage s to s + 1


def _rings(fabric: Fabric, groups: np.ndarray) -> list[np.ndarray]:
    """Ring orders of every group, batched by the groups' domain pattern: a list of (groups, c, n)."""
    dom = fabric.domain(groups)
    pattern = dom - dom[:, :1]
    _, first, inverse = np.unique(pattern, axis=0, return_index=True, return_inverse=True)
    out = []
    for k, i in enumerate(first):
        rows = groups[inverse.reshape(-1) == k]
        idx = np.searchsorted(groups[i], ring_orders(fabric, groups[i]))
        out.append(rows[:, idx])
    return out


def _ring_busbw(fabric: Fabric, eff: Efficiency, rings: list[np.ndarray]) -> tuple[float, np.ndarray]:
    """Slowest group's ring bus bandwidth with all rings' flows sharing the links; and the routes."""
    links = [fabric.path_links(r.ravel(), np.roll(r, -1, axis=2).ravel()) for r in rings]
    width = max(x.shape[1] for x in links)
    routes = np.concatenate([np.pad(x, ((0, 0), (0, width - x.shape[1])), constant_values=-1) for x in links])
    rates = max_min_rates(routes, fabric.capacity)
    speed = flow_efficiency(fabric, routes, eff.up_ring, eff.out_ring) * rates
    busbw, start = math.inf, 0
    for r in rings:
        groups, channels, n = r.shape
        per_group = speed[start:start + groups * channels * n].reshape(groups, -1).min(axis=1)
        busbw = min(busbw, channels * float(per_group.min()))
        start += groups * channels * n
    return busbw, routes


def _p2p_bw(fabric: Fabric, eff: Efficiency, src: np.ndarray, dst: np.ndarray) -> float:
    """Slowest of the point-to-point flows ``src -> dst``, all at once."""
    links = fabric.path_links(src, dst)
    rates = max_min_rates(links, fabric.capacity)
    return float((flow_efficiency(fabric, links, eff.up_p2p, eff.out_p2p) * rates).min())


def _nvls_busbw(fabric: Fabric, eff: Efficiency, groups: np.ndarray) -> float:
    """NVLS bus bandwidth of groups inside one NVSwitch domain (0 where NVLS does not apply)."""
    n = groups.shape[1]
    if not eff.nvls_fraction or n <= 2 or np.any(fabric.domain(groups) != fabric.domain(groups[:, :1])):
        return 0.0
    members = groups.ravel()
    links = np.concatenate([fabric.scale_up_link(members, True), fabric.scale_up_link(members, False)])[:, None]
    cap = np.full(len(links), eff.nvls_fraction * fabric.scale_up_byte_s * n / (2 * (n - 1)))
    return float(max_min_rates(links, fabric.capacity, cap).min()) * 2 * (n - 1) / n


def members_path(fabric: Fabric, arch: str, groups: np.ndarray, directed: bool = False) -> GroupPath:
    """The GroupPath of groups whose GPUs are the rows of ``groups``, all communicating at once.

    ``directed``: rows are (sender, receiver) pairs and point-to-point traffic only goes that way (a
    pipeline hop: a stage's activations and gradients alternate, so one direction at a time)."""
    groups = np.atleast_2d(np.asarray(groups, dtype=np.int64))
    p2p_ends = (groups[:, 0], groups[:, 1]) if directed else (groups.ravel(), np.roll(groups, -1, axis=1).ravel())
    groups = np.sort(groups, axis=1)
    n = groups.shape[1]
    eff = Efficiency.of(fabric, arch)
    consts = catalog.efficiency_table()
    contention = consts["overlap"]["sm_contention"]
    base = consts["collectives"]["base_latency_us"]["value"] * 1e-6
    intra = fabric.scale_up_latency_s
    if n == 1:
        up = fabric.scale_up_byte_s
        return GroupPath(n=1, busbw=up * eff.up_ring, all_reduce_busbw=up * eff.up_ring, p2p_bw=up * eff.up_p2p,
                         intra_latency_s=intra, inter_latency_s=intra, base_latency_s=base, nodes=1,
                         scale_out=False, sm_contention=contention["scale_up"])
    busbw, routes = _ring_busbw(fabric, eff, _rings(fabric, groups))
    leaves = flow_efficiency(fabric, routes, 0.0, 1.0) > 0
    scale_out = bool(leaves.any())
    inter = float(route_latency(fabric, routes[leaves]).max()) if scale_out else intra
    return GroupPath(
        n=n, busbw=busbw, all_reduce_busbw=max(busbw, _nvls_busbw(fabric, eff, groups)),
        p2p_bw=_p2p_bw(fabric, eff, *p2p_ends), intra_latency_s=intra, inter_latency_s=inter,
        base_latency_s=base, nodes=len(by_domain(fabric, groups[0])), scale_out=scale_out,
        sm_contention=contention["scale_out" if scale_out else "scale_up"])


def group_path(topo: TopologySpec, gpu: GpuSpec, group: Group, num_gpus: int | None = None) -> GroupPath:
    """The GroupPath of ``group`` (``size`` ranks ``stride`` GPUs apart) with every group of that shape
    tiling ``num_gpus`` GPUs at once (default: the fewest whole nodes that hold such a tiling)."""
    block = group.size * group.stride
    if num_gpus is None:
        num_gpus = math.lcm(block, topo.node.gpus)
    return _tiled_path(topo, gpu.arch, group, num_gpus)


@functools.lru_cache(maxsize=256)
def _tiled_path(topo: TopologySpec, arch: str, group: Group, num_gpus: int) -> GroupPath:
    return members_path(build_fabric(topo, num_gpus), arch, tiled_members(group, num_gpus))


def scenario_paths(topo: TopologySpec, gpu: GpuSpec, layout: ParallelismSpec) -> ScenarioPaths:
    """TP, CP, EP, DP and PP paths of a layout placed on ``topo`` (cached per topology and layout shape)."""
    mesh = ParallelMesh.from_layout(layout)
    key = (tuple(mesh.sizes[a] for a in Axis), mesh.order, layout.expert)
    return _scenario_paths(topo, gpu.arch, key)


@functools.lru_cache(maxsize=256)
def _scenario_paths(topo: TopologySpec, arch: str, key: tuple) -> ScenarioPaths:
    sizes, order, expert = key
    mesh = ParallelMesh(dict(zip(Axis, sizes, strict=True)), order)
    fabric = build_fabric(topo, mesh.num_ranks)
    pairs = stage_pairs(mesh)
    pp = members_path(fabric, arch, pairs, directed=True) if len(pairs) else members_path(fabric, arch, [[0]])
    return ScenarioPaths(
        tp=members_path(fabric, arch, group_members(mesh, Axis.TP)),
        cp=members_path(fabric, arch, group_members(mesh, Axis.CP)),
        ep=members_path(fabric, arch, expert_members(mesh, expert)),
        dp=members_path(fabric, arch, group_members(mesh, Axis.CP, Axis.DP)),
        pp=pp)
