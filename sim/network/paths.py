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

import dataclasses
import functools
import math
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from sim import catalog
from sim.costs.collectives import GroupPath
from sim.network.flows import Efficiency, flow_efficiency, ring_orders, route_latency
from sim.network.graph import Fabric, build_fabric
from sim.network.sharing import max_min_rates
from sim.parallelism.mesh import Axis, Group, ParallelMesh
from sim.parallelism.placement import (
    expert_data_members,
    expert_members,
    expert_tensor_members,
    group_members,
    stage_pairs,
    tiled_members,
)
from sim.specs.hardware import GpuSpec
from sim.specs.layout import ParallelismSpec
from sim.specs.topology import TopologySpec


@dataclass(frozen=True, slots=True)
class ScenarioPaths:
    """GroupPaths of the groups every GPU belongs to."""

    tp: GroupPath
    cp: GroupPath
    ep: GroupPath  # with all-to-all figures (``a2a_paths``)
    dp: GroupPath  # CP x DP: gradients are reduced over both
    pp: GroupPath  # stage s to s + 1
    etp: GroupPath  # expert TP: all-gather / reduce-scatter of dispatched tokens
    edp: GroupPath  # expert DP: expert gradients are reduced over it


def unique_rows(a: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``np.unique(a, axis=0, return_index=True, return_inverse=True)`` for a 2-D array, by a lexsort of the
    columns (numpy sorts rows as opaque records, which costs ~100x more at 10^4 rows and more)."""
    if len(a) and np.array_equal(a, np.broadcast_to(a[0], a.shape)):  # one pattern (every group alike): no sort
        return a[:1], np.zeros(1, dtype=np.int64), np.zeros(len(a), dtype=np.int64)
    order = np.lexsort(a.T[::-1])
    ordered = a[order]
    new = np.ones(len(a), dtype=bool)
    new[1:] = np.any(ordered[1:] != ordered[:-1], axis=1)
    first = order[new]
    inverse = np.empty(len(a), dtype=np.int64)
    inverse[order] = np.cumsum(new) - 1
    return a[first], first, inverse


def _rings(fabric: Fabric, groups: np.ndarray) -> list[tuple[np.ndarray, np.ndarray]]:
    """Ring orders of every group, batched by the groups' domain pattern: (row indices, (rows, c, n))."""
    dom = fabric.domain(groups)
    pattern = dom - dom[:, :1]
    _, first, inverse = unique_rows(pattern)
    out = []
    for k, i in enumerate(first):
        rows = np.flatnonzero(inverse == k)
        idx = np.searchsorted(groups[i], ring_orders(fabric, groups[i]))
        out.append((rows, groups[rows][:, idx]))
    return out


def _ring_figures(fabric: Fabric, eff: Efficiency, groups: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Every group's ring bus bandwidth with all rings' flows sharing the links, and the latency of its
    slowest route out of a scale-up domain (0 where none leaves)."""
    batches = _rings(fabric, groups)
    links = [fabric.path_links(r.ravel(), np.roll(r, -1, axis=2).ravel()) for _, r in batches]
    width = max(x.shape[1] for x in links)
    padded = [x if x.shape[1] == width else np.pad(x, ((0, 0), (0, width - x.shape[1])), constant_values=-1)
              for x in links]
    routes = padded[0] if len(padded) == 1 else np.concatenate(padded)
    rates = _shared_rates(fabric, routes)
    speed = flow_efficiency(fabric, routes, eff.up_ring, eff.out_ring) * rates
    out_latency = np.where(flow_efficiency(fabric, routes, 0.0, 1.0) > 0, route_latency(fabric, routes), 0.0)
    busbw, latency = np.empty(len(groups)), np.empty(len(groups))
    start = 0
    for rows, r in batches:
        _, channels, n = r.shape
        count = len(rows) * channels * n
        busbw[rows] = channels * speed[start:start + count].reshape(len(rows), -1).min(axis=1)
        latency[rows] = out_latency[start:start + count].reshape(len(rows), -1).max(axis=1)
        start += count
    return busbw, latency


def _p2p_bw(fabric: Fabric, eff: Efficiency, src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """Rate of each point-to-point flow ``src -> dst``, all at once."""
    links = fabric.path_links(src, dst)
    rates = _shared_rates(fabric, links)
    return flow_efficiency(fabric, links, eff.up_p2p, eff.out_p2p) * rates


#: The last max-min solve of _shared_rates: (fabric, routes, rates).
_last_solve: list[tuple[Fabric, np.ndarray, np.ndarray]] = []


def _shared_rates(fabric: Fabric, routes: np.ndarray) -> np.ndarray:
    """``max_min_rates`` of ``routes`` on the fabric's links, reusing the previous solve when the routes are the
    same flows: a group kind with one ring channel per member (DP across nodes) puts exactly its ring's hops
    on the fabric as its point-to-point flows, and the solve is the placement's largest cost."""
    if _last_solve:
        last_fabric, last_routes, rates = _last_solve[0]
        if last_fabric is fabric and np.array_equal(last_routes, routes):
            return rates
    rates = max_min_rates(routes, fabric.capacity)
    _last_solve[:] = [(fabric, routes, rates)]
    return rates


def _nvls_busbw(fabric: Fabric, eff: Efficiency, groups: np.ndarray) -> np.ndarray:
    """NVLS bus bandwidth of each group inside one NVSwitch domain (0 where NVLS does not apply)."""
    n = groups.shape[1]
    out = np.zeros(len(groups))
    inside = np.all(fabric.domain(groups) == fabric.domain(groups[:, :1]), axis=1)
    if not eff.nvls_fraction or n <= 2 or not inside.any():
        return out
    members = groups[inside].ravel()
    links = np.concatenate([fabric.scale_up_link(members, True), fabric.scale_up_link(members, False)])[:, None]
    cap = np.full(len(links), eff.nvls_fraction * fabric.scale_up_byte_s * n / (2 * (n - 1)))
    rates = max_min_rates(links, fabric.capacity, cap).reshape(2, -1, n)
    out[inside] = rates.min(axis=(0, 2)) * 2 * (n - 1) / n
    return out


def group_paths(fabric: Fabric, arch: str, groups: np.ndarray, directed: bool = False) -> list[GroupPath]:
    """One GroupPath per row of ``groups`` (GPUs of one group), all groups communicating at once.

    ``directed``: rows are (sender, receiver) pairs and point-to-point traffic only goes that way (a
    pipeline hop: a stage's activations and gradients alternate, so one direction at a time)."""
    made, inverse = _distinct_paths(fabric, arch, groups, directed)
    return [made[i] for i in inverse.tolist()]


def _distinct_paths(fabric: Fabric, arch: str, groups: np.ndarray,
                    directed: bool) -> tuple[list[GroupPath], np.ndarray]:
    """The distinct GroupPaths of ``groups`` (see :func:`group_paths`) and the index of each row's."""
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
        one = GroupPath(n=1, busbw=up * eff.up_ring, all_reduce_busbw=up * eff.up_ring, p2p_bw=up * eff.up_p2p,
                        intra_latency_s=intra, inter_latency_s=intra, base_latency_s=base, nodes=1,
                        scale_out=False, sm_contention=contention["scale_up"])
        return [one], np.zeros(len(groups), dtype=np.int64)
    busbw, out_latency = _ring_figures(fabric, eff, groups)
    nvls = _nvls_busbw(fabric, eff, groups)
    p2p = _p2p_bw(fabric, eff, *p2p_ends).reshape(len(groups), -1).min(axis=1)
    dom = np.sort(fabric.domain(groups), axis=1)
    nodes = (np.diff(dom, axis=1) != 0).sum(axis=1) + 1
    figures = np.stack([busbw, np.maximum(busbw, nvls), p2p, out_latency, nodes], axis=1)
    distinct, _, inverse = unique_rows(figures)
    made = []
    for bus, ar, pp, lat, k in distinct.tolist():
        scale_out = lat > 0
        made.append(GroupPath(
            n=n, busbw=bus, all_reduce_busbw=ar, p2p_bw=pp, intra_latency_s=intra,
            inter_latency_s=lat if scale_out else intra, base_latency_s=base, nodes=int(k), scale_out=scale_out,
            sm_contention=contention["scale_out" if scale_out else "scale_up"]))
    return made, inverse


def tile(fabric: Fabric, groups: np.ndarray) -> tuple[Fabric, np.ndarray] | None:
    """The smallest tile of the job that ``groups`` repeat on, as (the tile's fabric, its groups), or None.

    A tile is ``T`` consecutive GPUs (``T`` divides the job) such that every group lies inside one tile,
    the groups of tile ``k`` are those of tile 0 shifted by ``k T``, and no link of finite capacity that a
    group's flows can use is shared between tiles or placed differently in them: ``T`` holds whole scale-up
    domains, nodes and NICs, and whole switch groups of every tier some group of tile 0 spans more than one
    of (the rest sit wholly inside a tile or a tile wholly inside them). Then every tile is the same
    max-min problem on disjoint links, and progressive filling over all tiles does, link for link and flow
    for flow, the arithmetic it does over tile 0 alone: the figures are bit-for-bit those of the whole job,
    at the cost of one tile (what keeps the first call flat in GPU count)."""
    n = fabric.num_gpus
    if groups.shape[1] == 1 or len(groups) < 2:
        return None
    base = math.lcm(fabric.domain_gpus, fabric.node_gpus, fabric.gpus_per_nic)
    spans = [t.span_gpus for t in fabric.tiers]
    lo, hi = groups.min(axis=1), groups.max(axis=1)
    t_min = max(base, int((hi - lo).max()) + 1)
    for size in range(base * -(-t_min // base), n // 2 + 1, base):
        if n % size or not all(size % s == 0 or s % size == 0 for s in spans):
            continue
        which = lo // size
        if np.any(hi // size != which):
            continue
        first = groups[which == 0]
        if np.any(np.bincount(which, minlength=n // size) != len(first)):
            continue
        # a flow climbs tier t only between different domains (a group inside one domain climbs nothing)
        out = first[np.any(fabric.domain(first) != fabric.domain(first[:, :1]), axis=1)]
        used = [t for t in range(len(fabric.tiers)) if np.any(fabric.unit(t, out) != fabric.unit(t, out[:, :1]))]
        if any(size % spans[t] and math.isfinite(fabric.tiers[t].uplink_byte_s) for t in used):
            continue
        if not _repeats(groups - (which * size)[:, None], which, n // size):
            continue
        return dataclasses.replace(fabric, num_gpus=size), first
    return None


def _repeats(local: np.ndarray, which: np.ndarray, tiles: int) -> bool:
    """Whether every tile holds the same groups (rows of ``local``, GPUs relative to their tile ``which``), in
    any row order; members in the same order within a group (a ring follows it)."""
    ordered = bool(np.all(which[1:] >= which[:-1]))  # rows already tile by tile: no sort
    shaped = (local if ordered else local[np.argsort(which, kind="stable")]).reshape(tiles, -1, local.shape[1])
    if np.array_equal(shaped, np.broadcast_to(shaped[0], shaped.shape)):  # the placement's regular row order
        return True
    order = np.lexsort(np.column_stack([local[:, ::-1], which]).T)  # by tile, then by local row
    shaped = local[order].reshape(tiles, -1, local.shape[1])
    return np.array_equal(shaped, np.broadcast_to(shaped[0], shaped.shape))


def period(fabric: Fabric) -> int | None:
    """The shift ``T`` (GPUs) that maps the fabric onto itself when GPU ``g`` goes to ``(g + T) mod n``, or None
    where no such shift smaller than the job exists: ``T`` holds whole scale-up domains, nodes, NICs and switch
    groups of every tier that has uplinks (the top tier has none), and divides the job."""
    n = fabric.num_gpus
    size = math.lcm(fabric.domain_gpus, fabric.node_gpus, fabric.gpus_per_nic,
                    *(t.span_gpus for t in fabric.tiers[:-1]))
    return size if n % size == 0 and size < n else None


def _invariant(src: np.ndarray, dst: np.ndarray, shift: int, n: int) -> bool:
    """Whether the flows ``src -> dst`` are the same multiset once every GPU moves to ``(g + shift) mod n``."""
    if len(src) == n and np.all(np.bincount(src, minlength=n) == 1):  # one flow from every GPU: no sort
        to = np.empty(n, dtype=np.int64)
        to[src] = dst
        return bool(np.array_equal(np.roll(to, -shift), (to + shift) % n))
    key = np.sort(src * n + dst)
    moved = np.sort((src + shift) % n * n + (dst + shift) % n)
    return bool(np.array_equal(key, moved))


def _shifted_path(fabric: Fabric, arch: str, groups: np.ndarray) -> GroupPath | None:
    """The symmetric GroupPath of groups that span the job (no :func:`tile`) but whose ring hops and
    point-to-point flows repeat under the fabric's :func:`period` with wrap-around, or None where they do not.

    The shift is a symmetry of the fabric (it permutes links of equal capacity and keeps every route's shape)
    and of the flows, so in progressive filling every link of an orbit has the same remaining capacity and
    flow count at every step, and every flow of an orbit freezes at the same step: solving one flow per orbit
    (those leaving GPUs ``0..T-1``) on one link per orbit, with each link's count of those flows, does
    the same arithmetic as the whole job. Only where every group spans more than one scale-up domain (no
    NVLS) and all groups have one ring shape (one channel count), so that the path's figures are the minima
    and maxima over flows, not per group (tests/network/test_tiling.py compares with the whole job)."""
    shift = period(fabric)
    if shift is None or groups.shape[1] == 1:
        return None
    n = fabric.num_gpus
    ordered = np.sort(groups, axis=1)  # rings are built on the members in GPU order (as _distinct_paths does)
    dom = fabric.domain(ordered)
    if np.any(dom[:, -1] == dom[:, 0]):
        return None
    batches = _rings(fabric, ordered)
    if len(batches) != 1:  # one domain pattern: every group spans as many domains as the first
        return None
    rings = batches[0][1]
    ring_src, ring_dst = rings.ravel(), np.roll(rings, -1, axis=2).ravel()
    # one channel in the members' own order: the point-to-point flows are the ring's hops, solved once
    same = rings.shape[1] == 1 and np.array_equal(rings[:, 0], groups)
    p2p_src, p2p_dst = groups.ravel(), np.roll(groups, -1, axis=1).ravel()
    if not (_invariant(ring_src, ring_dst, shift, n) and (same or _invariant(p2p_src, p2p_dst, shift, n))):
        return None
    eff = Efficiency.of(fabric, arch)
    block = dataclasses.replace(fabric, num_gpus=shift)  # one link per orbit, with the same capacities
    first = ring_src < shift
    routes = fabric.path_links(ring_src[first], ring_dst[first], into=block)
    leaves = flow_efficiency(block, routes, 0.0, 1.0) > 0
    latency = route_latency(block, routes)[leaves]
    if not latency.size or latency.min() <= 0:  # every group's slowest route out must be a scale-out latency
        return None
    rates = max_min_rates(routes, block.capacity)
    busbw = rings.shape[1] * float((flow_efficiency(block, routes, eff.up_ring, eff.out_ring) * rates).min())
    if not same:
        first = p2p_src < shift
        routes = fabric.path_links(p2p_src[first], p2p_dst[first], into=block)
        rates = max_min_rates(routes, block.capacity)
    p2p = float((flow_efficiency(block, routes, eff.up_p2p, eff.out_p2p) * rates).min())
    nodes = int((np.diff(dom[0]) != 0).sum() + 1)
    consts = catalog.efficiency_table()
    return GroupPath(
        n=groups.shape[1], busbw=busbw, all_reduce_busbw=busbw, p2p_bw=p2p,
        intra_latency_s=fabric.scale_up_latency_s, inter_latency_s=float(latency.max()),
        base_latency_s=consts["collectives"]["base_latency_us"]["value"] * 1e-6, nodes=nodes, scale_out=True,
        sm_contention=consts["overlap"]["sm_contention"]["scale_out"])


def members_path(fabric: Fabric, arch: str, groups: npt.ArrayLike, directed: bool = False) -> GroupPath:
    """The symmetric GroupPath of groups whose GPUs are the rows of ``groups``, all communicating at
    once: the slowest group's bandwidths and the longest latencies (a synchronous step waits for all).
    Computed on one tile of the job where the groups repeat (:func:`tile`), or on one flow per orbit of the
    fabric's shift where they span the job but repeat under it (:func:`_shifted_path`): the same figures."""
    groups = np.atleast_2d(np.asarray(groups, dtype=np.int64))
    tiled = tile(fabric, groups)
    if tiled is not None:
        fabric, groups = tiled
    elif not directed and (shifted := _shifted_path(fabric, arch, groups)) is not None:
        return shifted
    paths = set(_distinct_paths(fabric, arch, groups, directed)[0])
    if len(paths) == 1:
        return paths.pop()
    first = min(paths, key=lambda p: p.busbw)
    scale_out = any(p.scale_out for p in paths)
    return GroupPath(
        n=first.n, busbw=first.busbw, all_reduce_busbw=min(p.all_reduce_busbw for p in paths),
        p2p_bw=min(p.p2p_bw for p in paths), intra_latency_s=first.intra_latency_s,
        inter_latency_s=max(p.inter_latency_s for p in paths), base_latency_s=first.base_latency_s,
        nodes=max(p.nodes for p in paths), scale_out=scale_out,
        sm_contention=max(p.sm_contention for p in paths))


def a2a_paths(fabric: Fabric, arch: str, groups: np.ndarray) -> GroupPath:
    """The EP groups' path (``members_path``) with all-to-all figures: every member sends 1/n of its buffer
    to every member, all groups at once. Flows inside a scale-up domain use only the two GPUs' ports (each
    shared by the member's domain flows); flows that leave it share NICs and tier uplinks max-min fairly.
    A member's rate to each side is the sum of its flows' rates times the point-to-point efficiency, over
    the share of the buffer that goes there; the path keeps the slowest member's (the collective ends
    when the last flow does), in buffer bytes per second (GroupPath)."""
    groups = np.atleast_2d(np.asarray(groups, dtype=np.int64))
    path = members_path(fabric, arch, groups)
    n = groups.shape[1]
    if n == 1:
        return dataclasses.replace(path, domain_peers=1)
    eff = Efficiency.of(fabric, arch)
    dom = fabric.domain(groups)
    local = (dom[:, :, None] == dom[:, None, :]).sum(axis=2).ravel()  # members in each member's domain
    up = out = math.inf
    if (local > 1).any():  # a member's domain flows share its port: the port's rate for (local - 1)/n of S
        up = fabric.scale_up_byte_s * eff.up_p2p * n / float((local - 1).max())
    if (local < n).any():
        src = np.repeat(groups, n, axis=1).ravel()
        dst = np.tile(groups, (1, n)).ravel()
        keep = fabric.domain(src) != fabric.domain(dst)
        src, dst = src[keep], dst[keep]
        rates = max_min_rates(fabric.path_links(src, dst), fabric.capacity) * eff.out_p2p
        sent = np.bincount(src, weights=rates, minlength=fabric.num_gpus)
        members = groups.ravel()
        remote = n - local
        has = remote > 0
        out = float((sent[members[has]] * n / remote[has]).min())
    return dataclasses.replace(path, a2a_up_bw=up, a2a_out_bw=out, domain_peers=int(local.min()))


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
    key = (tuple(mesh.sizes[a] for a in Axis), mesh.order, layout.expert, layout.expert_tensor_degree)
    return _scenario_paths(topo, gpu.arch, key)


@functools.lru_cache(maxsize=256)
def _scenario_paths(topo: TopologySpec, arch: str, key: tuple) -> ScenarioPaths:
    sizes, order, expert, etp = key
    mesh = ParallelMesh(dict(zip(Axis, sizes, strict=True)), order)
    fabric = build_fabric(topo, mesh.num_ranks)
    pairs = stage_pairs(mesh)
    pp = members_path(fabric, arch, pairs, directed=True) if len(pairs) else members_path(fabric, arch, [[0]])
    dp = members_path(fabric, arch, group_members(mesh, Axis.CP, Axis.DP))
    tp = members_path(fabric, arch, group_members(mesh, Axis.TP))
    if expert == 1 and etp == mesh.sizes[Axis.TP]:  # dense layout: the expert mesh is the attention mesh
        ep, etp_path, edp = members_path(fabric, arch, [[0]]), tp, dp
    else:
        ep = a2a_paths(fabric, arch, expert_members(mesh, expert, etp))
        etp_path = members_path(fabric, arch, expert_tensor_members(mesh, expert, etp))
        edp = members_path(fabric, arch, expert_data_members(mesh, expert, etp))
    return ScenarioPaths(tp=tp, cp=members_path(fabric, arch, group_members(mesh, Axis.CP)), ep=ep, dp=dp, pp=pp,
                         etp=etp_path, edp=edp)


def hsdp_paths(topo: TopologySpec, gpu: GpuSpec, layout: ParallelismSpec) -> tuple[GroupPath, GroupPath]:
    """HSDP: the paths of the shard groups (``shard_group_size`` consecutive members of each CP x DP group)
    and of the replica groups (the members at the same place in every shard group), all at once."""
    mesh = ParallelMesh.from_layout(layout)
    key = (tuple(mesh.sizes[a] for a in Axis), mesh.order, layout.shard_size)
    return _hsdp_paths(topo, gpu.arch, key)


@functools.lru_cache(maxsize=64)
def _hsdp_paths(topo: TopologySpec, arch: str, key: tuple) -> tuple[GroupPath, GroupPath]:
    sizes, order, shard = key
    mesh = ParallelMesh(dict(zip(Axis, sizes, strict=True)), order)
    fabric = build_fabric(topo, mesh.num_ranks)
    members = group_members(mesh, Axis.CP, Axis.DP)
    replicas = members.shape[1] // shard
    shards = members.reshape(-1, shard)
    across = members.reshape(-1, replicas, shard).transpose(0, 2, 1).reshape(-1, replicas)
    return members_path(fabric, arch, shards), members_path(fabric, arch, across)
