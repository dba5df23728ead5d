"""The fabric of a job: links with per-direction capacity and latency, as arrays.

A :class:`Fabric` is built from a :class:`~sim.specs.topology.TopologySpec` for the ``num_gpus`` GPUs of
one job (GPUs ``0..num_gpus-1`` fill nodes, scale-up domains and switch groups in order). It has four
kinds of link, each one per direction (``up`` away from the GPU, ``down`` towards it):

* ``scale_up``: a GPU's port on its scale-up domain (NVSwitch, NVLink domain, PCIe switch); capacity
  ``scale_up.bandwidth_gbyte_s_per_gpu``. Two GPUs of one domain talk over ``up(src), down(dst)``.
* ``nic``: a scale-out NIC's link to its leaf. With at least one NIC per GPU the NIC is folded into the
  GPU (capacity ``nics/gpus`` NICs); with fewer, ``gpus/nics`` GPUs share one NIC.
* ``tier t``: the uplink of one switch group of tier ``t`` (``tiers[t].span_gpus`` GPUs, one group per
  rail at a rail-optimized leaf) to the tier above; capacity = the group's GPUs x NIC rate per GPU /
  the product of the oversubscriptions of tiers ``0..t`` (``tiers[t].oversubscription`` is the down:up
  ratio of tier t's uplinks, spec/topology.md).

A switch group of a tier is ONE node with the summed capacity of its switches (ECMP spreads flows over
them; fair sharing sees the sum), so the graph has ``G + G/d + G/n_nic_shared + sum_t units_t`` nodes
for ``G`` GPUs in domains of ``d`` (meta-llama3-24k at 16,384 GPUs: 16,384 + 2,048 + 1,024 racks + 6
pods + 1 cluster). Only the tiers a job reaches are built: the first tier with a single group is the
top; a job bigger than the top tier's span gets a non-blocking root above it. Flows are routed on the
array form (``path_links``, vectorized, O(flows x tiers)) by the symmetric paths and by full fidelity
alike; the networkx graph (``sim.network.nxgraph.build_graph``) is the same fabric for inspection
(``trainsim placement`` prints its size) and its shortest paths are the array routes (tests/network/test_graph.py).

Routing is the tree's unique shortest path: up to the lowest common switch group, then down.
Latencies: a scale-up hop costs ``scale_up.latency_us``; a scale-out transfer ``scale_out.latency_us``
(NCCL's per-step network latency, which includes a typical switch path) plus, for every tier whose
groups it crosses, that tier's ``latency_us`` up and again down.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from sim.specs.enums import ScaleUpKind
from sim.specs.topology import TopologySpec


@dataclass(frozen=True, slots=True)
class Tier:
    """One scale-out switch tier as the job sees it."""

    name: str
    span_gpus: int  # GPUs under one switch group
    rails: int  # switch groups per span (NICs per node at a rail-optimized leaf, else 1)
    uplink_byte_s: float  # capacity of one group's uplink per direction (inf at the top tier)
    latency_s: float  # one traversal of the uplink (paid up and again down)


@dataclass(frozen=True)
class Fabric:
    """Links of a job's fabric in array form (see the module docstring for the layout).

    Not slotted: the link arrays are cached on the instance (``functools.cached_property``)."""

    name: str
    num_gpus: int
    node_gpus: int
    domain_gpus: int
    scale_up_kind: ScaleUpKind
    scale_up_byte_s: float  # per GPU port, per direction
    scale_up_latency_s: float  # GPU to GPU inside a domain
    nvls: bool
    sharp: bool
    nics_per_node: int
    nic_byte_s: float  # one NIC link (folded NICs: all of a GPU's NICs), per direction
    gpus_per_nic: int  # GPUs sharing one NIC link (1 when NICs are folded into GPUs)
    nic_latency_s: float  # base latency of a scale-out transfer
    tiers: tuple[Tier, ...]

    # ---- sizes and block offsets of the link index -------------------------------------------
    @property
    def num_nics(self) -> int:
        return math.ceil(self.num_gpus / self.gpus_per_nic)

    def units(self, t: int) -> int:
        """Switch groups of tier ``t`` in this job."""
        tier = self.tiers[t]
        return math.ceil(self.num_gpus / tier.span_gpus) * tier.rails

    @functools.cached_property
    def _offsets(self) -> tuple[int, ...]:
        sizes = [self.num_gpus, self.num_gpus, self.num_nics, self.num_nics]
        for t in range(len(self.tiers) - 1):
            sizes += [self.units(t), self.units(t)]
        return tuple(np.cumsum([0, *sizes]).tolist())

    @property
    def num_links(self) -> int:
        return self._offsets[-1]

    @functools.cached_property
    def capacity(self) -> np.ndarray:
        """Capacity of every link, bytes/s, indexed by link id."""
        cap = np.empty(self.num_links)
        o = self._offsets
        cap[o[0]:o[2]] = self.scale_up_byte_s
        cap[o[2]:o[4]] = self.nic_byte_s
        for t in range(len(self.tiers) - 1):
            cap[o[4 + 2 * t]:o[6 + 2 * t]] = self.tiers[t].uplink_byte_s
        return cap

    @functools.cached_property
    def latency(self) -> np.ndarray:
        """One-way latency of every link, s (a path's latency is the sum over its links)."""
        lat = np.empty(self.num_links)
        o = self._offsets
        lat[o[0]:o[2]] = self.scale_up_latency_s / 2
        lat[o[2]:o[4]] = self.nic_latency_s / 2
        for t in range(len(self.tiers) - 1):
            lat[o[4 + 2 * t]:o[6 + 2 * t]] = self.tiers[t].latency_s
        return lat

    @functools.cached_property
    def level(self) -> np.ndarray:
        """Level of every link: 0 scale-up, 1 NIC, 2 + t the uplink of tier t."""
        lvl = np.empty(self.num_links, dtype=np.int64)
        for k in range(len(self._offsets) - 1):
            lvl[self._offsets[k]:self._offsets[k + 1]] = k // 2
        return lvl

    @functools.cached_property
    def level_padded(self) -> np.ndarray:
        """``level`` with one more entry, 0, at the end: indexed by a -1-padded route, the padding reads 0."""
        return np.append(self.level, 0)

    @functools.cached_property
    def latency_padded(self) -> np.ndarray:
        """``latency`` with one more entry, 0.0, at the end (as ``level_padded``)."""
        return np.append(self.latency, 0.0)

    def level_name(self, level: int) -> str:
        if level == 0:
            return f"{self.scale_up_kind.value} domain"
        if level == 1:
            return "NIC"
        return f"{self.tiers[level - 2].name} uplink"

    # ---- link ids (vectorized over GPU arrays) ----------------------------------------------
    def domain(self, gpu: np.ndarray) -> np.ndarray:
        return np.asarray(gpu) // self.domain_gpus

    def scale_up_link(self, gpu: npt.ArrayLike, up: bool) -> np.ndarray:
        return np.asarray(gpu) + (self._offsets[0] if up else self._offsets[1])

    def nic(self, gpu: npt.ArrayLike) -> np.ndarray:
        return np.asarray(gpu) // self.gpus_per_nic

    def nic_link(self, gpu: npt.ArrayLike, up: bool) -> np.ndarray:
        return self.nic(gpu) + (self._offsets[2] if up else self._offsets[3])

    def unit(self, t: int, gpu: npt.ArrayLike) -> np.ndarray:
        """Switch group of tier ``t`` that GPU ``gpu`` hangs under."""
        gpu = np.asarray(gpu)
        tier = self.tiers[t]
        if tier.rails == 1:
            return gpu // tier.span_gpus
        rail = (gpu % self.node_gpus) * tier.rails // self.node_gpus
        return (gpu // tier.span_gpus) * tier.rails + rail

    def tier_link(self, t: int, gpu: npt.ArrayLike, up: bool) -> np.ndarray:
        return self.unit(t, gpu) + self._offsets[4 + 2 * t + (0 if up else 1)]

    def path_links(self, src: np.ndarray, dst: np.ndarray, into: Fabric | None = None) -> np.ndarray:
        """Links of the route from each ``src`` GPU to its ``dst`` GPU: (flows, max hops), -1 padded.

        ``into``: this fabric cut to its first ``T`` GPUs, where shifting every GPU by ``T`` (mod the job) maps
        the fabric onto itself (``sim.network.paths.period``): the routes are this fabric's, each link given
        as the id in ``into`` of its shift by a multiple of ``T`` (its orbit's first link)."""
        src, dst = np.atleast_1d(np.asarray(src)), np.atleast_1d(np.asarray(dst))
        ids = self if into is None else into
        local_src, local_dst = (src, dst) if into is None else (src % into.num_gpus, dst % into.num_gpus)
        same_domain = self.domain(src) == self.domain(dst)
        cols = [np.where(same_domain, ids.scale_up_link(local_src, True), ids.nic_link(local_src, True)),
                np.where(same_domain, ids.scale_up_link(local_dst, False), ids.nic_link(local_dst, False))]
        # a flow climbs tier t's uplink while its ends sit under different groups of tier t
        for t in range(len(self.tiers) - 1):
            src_unit, dst_unit = self.unit(t, src), self.unit(t, dst)
            climbs = ~same_domain & (src_unit != dst_unit)
            if into is not None:
                src_unit, dst_unit = into.unit(t, local_src), into.unit(t, local_dst)
            cols.append(np.where(climbs, src_unit + ids._offsets[4 + 2 * t], -1))  # tier_link, unit computed once
            cols.append(np.where(climbs, dst_unit + ids._offsets[5 + 2 * t], -1))
        same = src == dst
        out = np.stack(cols, axis=1)
        out[same] = -1
        return out

    def up_links(self, gpu: np.ndarray, top: int) -> np.ndarray:
        """Links from each GPU up to its group of tier ``top`` (NIC, then uplinks of tiers < top)."""
        gpu = np.atleast_1d(np.asarray(gpu))
        cols = [self.nic_link(gpu, True)] + [self.tier_link(t, gpu, True) for t in range(top)]
        return np.stack(cols, axis=1)

    def down_links(self, gpu: np.ndarray, top: int) -> np.ndarray:
        gpu = np.atleast_1d(np.asarray(gpu))
        cols = [self.nic_link(gpu, False)] + [self.tier_link(t, gpu, False) for t in range(top)]
        return np.stack(cols, axis=1)

    def lowest_common_tier(self, gpus: np.ndarray) -> int:
        """The lowest tier with one group holding all ``gpus`` (-1: one scale-up domain)."""
        gpus = np.asarray(gpus)
        if np.all(self.domain(gpus) == self.domain(gpus.flat[0])):
            return -1
        for t in range(len(self.tiers)):
            u = self.unit(t, gpus)
            if np.all(u == u.flat[0]):
                return t
        return len(self.tiers) - 1


def build_fabric(topo: TopologySpec, num_gpus: int) -> Fabric:
    """The :class:`Fabric` of ``num_gpus`` GPUs on ``topo`` (only the tiers the job reaches)."""
    return _build_fabric(topo, num_gpus)


@functools.lru_cache(maxsize=64)
def _build_fabric(topo: TopologySpec, num_gpus: int) -> Fabric:
    node, out = topo.node, topo.scale_out
    nic_byte_s = node.nic_bandwidth_gbit_s * 1e9 / 8
    if node.nics >= node.gpus:
        gpus_per_nic, nic_link = 1, nic_byte_s * node.nics / node.gpus
    else:
        gpus_per_nic, nic_link = node.gpus // max(node.nics, 1), nic_byte_s
    per_gpu = nic_link / gpus_per_nic
    tiers: list[Tier] = []
    oversub = 1.0
    span = max(topo.domain_gpus, node.gpus)
    for i, spec in enumerate(out.tiers):
        span = spec.span_gpus or span * max(1, spec.radix // 2)
        rails = max(1, min(node.nics, node.gpus)) if (i == 0 and out.rail_optimized) else 1
        oversub *= spec.oversubscription
        uplink = span // rails * per_gpu / oversub
        tiers.append(Tier(spec.name, span, rails, uplink, spec.latency_us * 1e-6))
        if math.ceil(num_gpus / span) * rails == 1:
            break
    if not tiers or math.ceil(num_gpus / tiers[-1].span_gpus) * tiers[-1].rails > 1:
        # bigger than the named fabric: assume a non-blocking root above its top tier
        tiers.append(Tier("root", max(num_gpus, span), 1, math.inf, 0.0))
    tiers[-1] = Tier(tiers[-1].name, tiers[-1].span_gpus, tiers[-1].rails, math.inf, tiers[-1].latency_s)
    return Fabric(
        name=topo.name, num_gpus=num_gpus, node_gpus=node.gpus, domain_gpus=topo.domain_gpus,
        scale_up_kind=node.scale_up.kind, scale_up_byte_s=node.scale_up.bandwidth_gbyte_s_per_gpu * 1e9,
        scale_up_latency_s=node.scale_up.latency_us * 1e-6, nvls=node.scale_up.nvls, sharp=out.sharp,
        nics_per_node=node.nics, nic_byte_s=nic_link, gpus_per_nic=gpus_per_nic,
        nic_latency_s=out.latency_us * 1e-6, tiers=tuple(tiers))
