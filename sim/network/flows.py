"""Collective algorithms decomposed into flows on the fabric's links, with NCCL's per-step latencies.

A :class:`Plan` is what one collective of ``size_bytes`` (the nccl-tests buffer size) on a group of GPUs
puts on the fabric: stages run one after the other, each a set of flows that run together and is
repeated ``repeat`` times (the identical steps of a ring); plus a latency term from NCCL's tuning model
(src/graph/tuning.cc, catalog ``collectives``). Time = latency + (sum of stage drain times) / size
efficiency (NCCL's measured large-message ramp, as in ``sim.costs.collectives``). Each flow's bytes are
divided by the efficiency of the links it uses (scale-up ring 0.78-0.82, a flow that leaves its domain
0.96, point-to-point 0.88 / 0.97), so links keep their line rates and fair sharing stays physical.

Algorithms (``members`` sorted by GPU; ``k`` scale-up domains with ``m`` members each):

* ``ring``: NCCL's ring on ``c = min(m, 32)`` channels; channel ``r`` leaves each domain from the rail
  peer of the next domain's entry member (``ring_orders``), so each NIC carries one channel's crossing.
  All-reduce ``2(n-1)`` steps, all-gather / reduce-scatter ``n-1``; each step every member sends
  ``S / (n c)`` per channel.
* ``tree``: NCCL's double binary tree (all-reduce): a chain through each domain, two binary trees over
  the domains (each half the buffer, one channel per member), reduce and broadcast pipelined.
* ``hierarchical``: reduce-scatter inside domains, ``m`` rail rings across domains on ``S/m``, all-gather
  inside domains (three stages in sequence).
* ``nvls``: NVSwitch in-network all-reduce inside one domain: every GPU sends ``S`` to the switch and
  receives ``S``, at most at the measured NVLS bus rate.
* ``nvls_tree``: NVLS inside domains plus SHARP across them (each GPU's ``S/m`` shard up to the lowest
  common switch group and back), where the topology has both.
* ``direct``: all-to-all (every ordered pair ``S/n``) and send/recv (one flow), point-to-point.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass
from enum import StrEnum

import numpy as np

from sim import catalog
from sim.costs.collectives import Collective, bus_factor, size_efficiency
from sim.network.graph import Fabric
from sim.network.sharing import drain
from sim.specs.enums import ScaleUpKind


class Algorithm(StrEnum):
    RING = "ring"
    TREE = "tree"
    HIERARCHICAL = "hierarchical"
    NVLS = "nvls"
    NVLS_TREE = "nvls_tree"
    DIRECT = "direct"


@dataclass(frozen=True)
class Flows:
    """Flows that start together: routes (link ids, -1 padded), bytes to move, optional rate caps."""

    links: np.ndarray
    nbytes: np.ndarray
    cap: np.ndarray | None = None

    @staticmethod
    def concat(parts: list[Flows]) -> Flows:
        width = max(p.links.shape[1] for p in parts)
        links = np.concatenate([np.pad(p.links, ((0, 0), (0, width - p.links.shape[1])), constant_values=-1)
                                for p in parts])
        caps = None
        if any(p.cap is not None for p in parts):
            caps = np.concatenate([p.cap if p.cap is not None else np.full(len(p.nbytes), np.inf) for p in parts])
        return Flows(links, np.concatenate([p.nbytes for p in parts]), caps)


@dataclass(frozen=True)
class Stage:
    flows: Flows
    repeat: int = 1

    def seconds(self, capacity: np.ndarray) -> float:
        return self.repeat * float(drain(self.flows.links, self.flows.nbytes, capacity, self.flows.cap).max())


@dataclass(frozen=True)
class Plan:
    """One collective on the fabric (see the module docstring)."""

    op: Collective
    algorithm: Algorithm
    n: int
    size_bytes: float
    latency_s: float
    stages: tuple[Stage, ...]

    def time(self, capacity: np.ndarray) -> float:
        """Seconds, alone on links of ``capacity`` (bytes/s per link id)."""
        if self.n <= 1 or self.size_bytes <= 0:
            return 0.0
        return self.latency_s + sum(s.seconds(capacity) for s in self.stages) / self._size_eff

    @property
    def _size_eff(self) -> float:
        return 1.0 if self.op is Collective.SEND_RECV else size_efficiency(self.size_bytes)

    def bus_bandwidth(self, capacity: np.ndarray) -> float:
        """nccl-tests busbw, bytes/s."""
        return bus_factor(self.op, self.n) * self.size_bytes / self.time(capacity)


def concurrent_time(plans: list[Plan], capacity: np.ndarray) -> float:
    """Seconds until the last of ``plans`` ends when they start together and share links stage by
    stage (their stages must line up: same algorithm shape)."""
    shapes = {tuple(s.repeat for s in p.stages) for p in plans}
    if len(shapes) != 1:
        raise ValueError("concurrent plans must have the same stages")
    stages = [Stage(Flows.concat([p.stages[i].flows for p in plans]), plans[0].stages[i].repeat)
              for i in range(len(plans[0].stages))]
    return (max(p.latency_s for p in plans)
            + sum(s.seconds(capacity) for s in stages) / plans[0]._size_eff)


# ---- efficiencies and constants ------------------------------------------------------------------
@functools.cache
def _consts() -> dict:
    return catalog.efficiency_table()["collectives"]


@dataclass(frozen=True, slots=True)
class Efficiency:
    """Achieved fraction of line rate per link class and pattern, and the NVLS bus-rate fraction."""

    up_ring: float
    out_ring: float
    up_p2p: float
    out_p2p: float
    nvls_fraction: float | None

    @classmethod
    def of(cls, fabric: Fabric, arch: str) -> Efficiency:
        c = _consts()
        ring = c["scale_up_ring_efficiency"]
        up = ring["by_kind"].get(fabric.scale_up_kind.value, ring["by_arch"].get(arch, 0.75))
        nvls = c["nvls_busbw_fraction"]["by_arch"].get(arch) if fabric.nvls else None
        if fabric.scale_up_kind is not ScaleUpKind.NVSWITCH:
            nvls = None
        return cls(up, c["scale_out_efficiency"]["value"], c["p2p_efficiency"]["scale_up"],
                   c["p2p_efficiency"]["scale_out"], nvls)


def flow_efficiency(fabric: Fabric, links: np.ndarray, ring: float, out: float) -> np.ndarray:
    """Per flow: ``out`` where the route leaves the scale-up domain, else ``ring``."""
    leaves = (fabric.level_padded[links] >= 1).any(axis=1)  # the -1 padding reads level 0
    return np.where(leaves, out, ring)


def route_latency(fabric: Fabric, links: np.ndarray) -> np.ndarray:
    """One-way latency of each route, s."""
    return fabric.latency_padded[links].sum(axis=1)  # the -1 padding reads 0.0


# ---- group structure -------------------------------------------------------------------------------
def by_domain(fabric: Fabric, members: np.ndarray) -> list[np.ndarray]:
    """Members split by scale-up domain, domains in GPU order."""
    members = np.sort(np.asarray(members))
    dom = fabric.domain(members)
    cuts = np.flatnonzero(np.diff(dom)) + 1
    return np.split(members, cuts)


def _entry_offsets(k: int, m: int) -> list[int]:
    """Entry member offset of each of ``k`` domains so that consecutive domains (the last and the first
    included) differ: 0,1,0,1,... for even ``k``; 0,1,2,1,2,... for odd ``k`` (needs ``m >= 3``)."""
    if k % 2 == 0 or m < 3:
        return [u % 2 for u in range(k)]
    return [0] + [1 + (u + 1) % 2 for u in range(1, k)]


def ring_orders(fabric: Fabric, members: np.ndarray) -> np.ndarray:
    """(channels, n) ring orders: channel ``r`` enters domain ``u`` at member ``r + off(u)`` and leaves it
    from member ``r + off(u + 1)``, the rail peer of the next domain's entry (``_entry_offsets``), so
    every hop between domains stays on one NIC index and each NIC carries one channel's crossing."""
    ordered = np.sort(np.asarray(members))
    dom = fabric.domain(ordered)
    if len(dom) < 2 or np.all(dom[1:] != dom[:-1]):  # one member per domain: one channel through them in order
        return ordered[None, :]
    parts = by_domain(fabric, members)
    m = min(len(p) for p in parts)
    if len(parts) == 1:
        return parts[0][None, :]
    channels = min(m, int(_consts()["max_channels"]["value"]))
    offsets = _entry_offsets(len(parts), m)
    rings = []
    for r in range(channels):
        order = []
        for u, part in enumerate(parts):
            size = len(part)
            entry, leave = (r + offsets[u]) % size, (r + offsets[(u + 1) % len(parts)]) % size
            inner = [part[i] for i in range(size) if i not in (entry, leave)]
            order += [part[entry], *inner] + ([part[leave]] if leave != entry else [])
        rings.append(order)
    return np.asarray(rings)


def ring_flows(fabric: Fabric, rings: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Routes of every ring hop (each member to its successor), and the hops' (src, dst)."""
    src = rings.ravel()
    dst = np.roll(rings, -1, axis=1).ravel()
    return fabric.path_links(src, dst), np.stack([src, dst], axis=1)


def _inter_latency(fabric: Fabric, links: np.ndarray) -> float:
    """Latency of the slowest hop that leaves its domain (0 when none does)."""
    lat = route_latency(fabric, links)
    leaves = flow_efficiency(fabric, links, 0.0, 1.0) > 0
    return float(lat[leaves].max()) if leaves.any() else 0.0


# ---- plans -------------------------------------------------------------------------------------------
def plan(fabric: Fabric, arch: str, op: Collective, algorithm: Algorithm, members: np.ndarray,
         size_bytes: float) -> Plan | None:
    """The :class:`Plan` of ``op`` by ``algorithm`` on ``members``, or None where the algorithm does not
    apply (NVLS without NVLS hardware, a tree for all-gather, ...)."""
    members = np.sort(np.asarray(members))
    eff = Efficiency.of(fabric, arch)
    builders = {Algorithm.RING: _ring, Algorithm.TREE: _tree, Algorithm.HIERARCHICAL: _hierarchical,
                Algorithm.NVLS: _nvls, Algorithm.NVLS_TREE: _nvls_tree, Algorithm.DIRECT: _direct}
    return builders[algorithm](fabric, eff, op, members, float(size_bytes))


def _ring(fabric: Fabric, eff: Efficiency, op: Collective, members: np.ndarray, size: float) -> Plan | None:
    if op not in (Collective.ALL_REDUCE, Collective.ALL_GATHER, Collective.REDUCE_SCATTER):
        return None
    n = len(members)
    rings = ring_orders(fabric, members)
    links, _ = ring_flows(fabric, rings)
    e = flow_efficiency(fabric, links, eff.up_ring, eff.out_ring)
    k = len(by_domain(fabric, members))
    steps, inter = (2 * (n - 1), 2 * (k - 1)) if op is Collective.ALL_REDUCE else (n - 1, k - 1)
    latency = (_consts()["base_latency_us"]["value"] * 1e-6 + (steps - inter) * fabric.scale_up_latency_s
               + inter * _inter_latency(fabric, links))
    flows = Flows(links, size / (n * len(rings)) / e)
    return Plan(op, Algorithm.RING, n, size, latency, (Stage(flows, steps),))


def _binary_parents(k: int, mirror: bool) -> list[tuple[int, int]]:
    """(child, parent) pairs of a binary tree over ``k`` domains; the mirrored tree turns leaves
    into inner nodes (NCCL's double binary tree)."""
    idx = (lambda i: k - 1 - i) if mirror else (lambda i: i)
    return [(idx(i), idx((i - 1) // 2)) for i in range(1, k)]


def _tree(fabric: Fabric, eff: Efficiency, op: Collective, members: np.ndarray, size: float) -> Plan | None:
    if op is not Collective.ALL_REDUCE:
        return None
    parts = by_domain(fabric, members)
    k, m = len(parts), min(len(p) for p in parts)
    src, dst, nbytes = [], [], []
    for part in parts:  # chains inside domains: up (reduce) and down (broadcast), both trees: S per hop
        src += [*part[1:], *part[:-1]]
        dst += [*part[:-1], *part[1:]]
        nbytes += [size] * (2 * (len(part) - 1))
    for mirror in (False, True):
        for child, parent in _binary_parents(k, mirror):
            for j in range(m):  # one channel per member: the tree's half of the buffer over m NICs
                a, b = parts[child][j], parts[parent][j]
                src += [a, b]
                dst += [b, a]
                nbytes += [size / 2 / m] * 2
    links = fabric.path_links(np.asarray(src, dtype=np.int64), np.asarray(dst, dtype=np.int64))
    e = flow_efficiency(fabric, links, eff.up_ring, eff.out_ring)
    lat = _consts()["algorithm_latency_us"]["tree"]
    hop = lat["pcie"] if fabric.scale_up_kind is ScaleUpKind.PCIE else lat["nvlink"]
    net = lat["net"] * 1e-6 + max(0.0, _inter_latency(fabric, links) - fabric.nic_latency_s)
    latency = lat["base"] * 1e-6 + 2 * ((m - 1) * hop * 1e-6 + math.log2(max(k, 1)) * net)
    flows = Flows(links, np.asarray(nbytes) / e)
    return Plan(op, Algorithm.TREE, len(members), size, latency, (Stage(flows),))


def _hierarchical(fabric: Fabric, eff: Efficiency, op: Collective, members: np.ndarray,
                  size: float) -> Plan | None:
    parts = by_domain(fabric, members)
    k, m = len(parts), len(parts[0])
    if op is not Collective.ALL_REDUCE or k == 1 or m == 1 or any(len(p) != m for p in parts):
        return None
    grid = np.asarray(parts)  # (k domains, m members)
    intra_links, _ = ring_flows(fabric, grid)
    intra = Flows(intra_links, np.full(len(intra_links), size / m / eff.up_ring))
    inter_links, _ = ring_flows(fabric, grid.T)  # m rail rings over the k domains
    e = flow_efficiency(fabric, inter_links, eff.up_ring, eff.out_ring)
    inter = Flows(inter_links, size / m / k / e)
    latency = (_consts()["base_latency_us"]["value"] * 1e-6 + 2 * (m - 1) * fabric.scale_up_latency_s
               + 2 * (k - 1) * _inter_latency(fabric, inter_links))
    stages = (Stage(intra, m - 1), Stage(inter, 2 * (k - 1)), Stage(intra, m - 1))
    return Plan(op, Algorithm.HIERARCHICAL, k * m, size, latency, stages)


def _nvls_flows(fabric: Fabric, eff: Efficiency, members: np.ndarray, size: float, n: int) -> Flows:
    """Every GPU sends ``size`` to its NVSwitch and receives ``size``, capped at the NVLS bus rate."""
    assert eff.nvls_fraction is not None  # only planned where the architecture has NVLS
    links = np.concatenate([fabric.scale_up_link(members, True), fabric.scale_up_link(members, False)])[:, None]
    rate = eff.nvls_fraction * fabric.scale_up_byte_s * n / (2 * (n - 1))
    return Flows(links, np.full(len(links), size), np.full(len(links), rate))


def _nvls(fabric: Fabric, eff: Efficiency, op: Collective, members: np.ndarray, size: float) -> Plan | None:
    n = len(members)
    if op is not Collective.ALL_REDUCE or not eff.nvls_fraction or n <= 2 or len(by_domain(fabric, members)) > 1:
        return None
    lat = _consts()["algorithm_latency_us"]["nvls"]
    flows = _nvls_flows(fabric, eff, members, size, n)
    return Plan(op, Algorithm.NVLS, n, size, (lat["base"] + lat["nvlink"]) * 1e-6, (Stage(flows),))


def _nvls_tree(fabric: Fabric, eff: Efficiency, op: Collective, members: np.ndarray,
               size: float) -> Plan | None:
    parts = by_domain(fabric, members)
    m = len(parts[0])
    if (op is not Collective.ALL_REDUCE or not eff.nvls_fraction or not fabric.sharp or len(parts) == 1
            or m <= 2 or any(len(p) != m for p in parts)):
        return None
    # after NVLS inside the nodes, member j of every domain holds shard j: SHARP reduces each shard
    # among those rail peers, in the lowest switch group they share
    grid = np.asarray(parts)
    links, climb = [], 0.0
    for peers in grid.T:
        top = fabric.lowest_common_tier(peers)
        links += [fabric.up_links(peers, top), fabric.down_links(peers, top)]
        climb = max(climb, 2 * sum(t.latency_s for t in fabric.tiers[:top]))
    routes = np.concatenate([np.pad(x, ((0, 0), (0, 1 + len(fabric.tiers) - x.shape[1])), constant_values=-1)
                             for x in links])
    flows = Flows.concat([_nvls_flows(fabric, eff, members, size, len(members)),
                          Flows(routes, np.full(len(routes), size / m / eff.out_ring))])
    lat = _consts()["algorithm_latency_us"]["nvls_tree"]
    latency = (lat["base"] + lat["nvlink"] + lat["net"]) * 1e-6 + climb
    return Plan(op, Algorithm.NVLS_TREE, len(members), size, latency, (Stage(flows),))


def _direct(fabric: Fabric, eff: Efficiency, op: Collective, members: np.ndarray, size: float) -> Plan | None:
    n = len(members)
    if op is Collective.SEND_RECV:
        src, dst, each = members[:1], members[-1:], size
    elif op is Collective.ALL_TO_ALL:
        src, dst = (a.ravel() for a in np.meshgrid(members, members, indexing="ij"))
        keep = src != dst
        src, dst, each = src[keep], dst[keep], size / n
    else:
        return None
    links = fabric.path_links(src, dst)
    e = flow_efficiency(fabric, links, eff.up_p2p, eff.out_p2p)
    base = 0.0 if op is Collective.SEND_RECV else _consts()["base_latency_us"]["value"] * 1e-6
    latency = base + float(route_latency(fabric, links).max())
    return Plan(op, Algorithm.DIRECT, n, size, latency, (Stage(Flows(links, each / e)),))


def nccl_plan(fabric: Fabric, arch: str, op: Collective, members: np.ndarray, size_bytes: float,
              capacity: np.ndarray | None = None) -> Plan:
    """The algorithm NCCL's tuner would run for this call, by its own rule: the least estimated time,
    where a tree all-reduce is rated at ``tree_bandwidth_fraction`` of the ring's bandwidth (tuning.cc),
    so a tree is chosen only where its logarithmic latency wins. ``hierarchical`` is not an NCCL
    algorithm and is never chosen. The returned plan's ``time`` is this model's time of that algorithm."""
    capacity = fabric.capacity if capacity is None else capacity
    plans = {a: p for a in Algorithm if a is not Algorithm.HIERARCHICAL
             and (p := plan(fabric, arch, op, a, members, size_bytes)) is not None}
    ring = plans.get(Algorithm.RING)

    def rated(p: Plan) -> float:
        if p.algorithm is Algorithm.TREE and ring is not None:
            ring_bw = ring.time(capacity) - ring.latency_s
            return p.latency_s + ring_bw / _consts()["tree_bandwidth_fraction"]["value"]
        return p.time(capacity)

    return min(plans.values(), key=rated)
