"""Bottleneck path of a communication group on a hierarchical topology.

Levels, innermost first: the scale-up domain (NVLink/NVSwitch), then each scale-out tier's switch
group (``span_gpus``). A group whose members span ``k > 1`` units of a level pushes
``busbw * (k-1)/(n-1)`` bytes/s per rank across that level's boundary (the hierarchical / multi-ring
relation in hardware.yaml ``collectives.alpha_beta``), so a level with per-GPU capacity ``c`` caps
``busbw <= c * eff * (n-1)/(k-1)``. Every GPU of a node is assumed to run its own group's collective
at the same time (the symmetric case), so a GPU's scale-out share is its node's NIC bandwidth / GPUs.
"""

from __future__ import annotations

import math

from sim import catalog
from sim.costs.collectives import GroupPath
from sim.parallelism.mesh import Group
from sim.specs.hardware import GpuSpec
from sim.specs.topology import TopologySpec


def _coll_constants() -> dict:
    return catalog.efficiency_table()["collectives"]


def _members_per_unit(group: Group, unit_gpus: int) -> int:
    """Members of ``group`` inside one aligned block of ``unit_gpus`` GPUs."""
    if group.stride >= unit_gpus:
        return 1
    return max(1, min(group.size, unit_gpus // group.stride))


def tier_spans(topo: TopologySpec) -> list[tuple[int, float, float]]:
    """(GPUs per unit, per-GPU bandwidth leaving it in bytes/s, latency to cross it in s) per level."""
    nic = topo.nic_byte_s_per_gpu
    levels = [(topo.domain_gpus, nic, topo.scale_out.latency_us * 1e-6)]
    oversub, latency = 1.0, topo.scale_out.latency_us
    span = max(topo.domain_gpus, topo.node.gpus)
    for tier in topo.scale_out.tiers:
        oversub *= tier.oversubscription
        latency += 2 * tier.latency_us
        span = tier.span_gpus or span * max(1, tier.radix // 2)
        levels.append((span, nic / oversub, latency * 1e-6))
    return levels


def group_path(topo: TopologySpec, gpu: GpuSpec, group: Group) -> GroupPath:
    """The GroupPath of ``group`` placed on ``topo``."""
    consts = _coll_constants()
    n = group.size
    up = topo.node.scale_up
    nvlink = up.bandwidth_gbyte_s_per_gpu * 1e9
    ring_eff = consts["scale_up_ring_efficiency"]["by_arch"].get(gpu.arch, 0.75)
    net_eff = consts["scale_out_efficiency"]["value"]
    in_domain = _members_per_unit(group, topo.domain_gpus)
    domains = math.ceil(n / in_domain)
    inter_latency = up.latency_us * 1e-6
    caps = [nvlink * ring_eff] if in_domain > 1 else []
    crossed = []  # raw per-GPU capacity of every level boundary the group crosses
    for span, cap, latency in tier_spans(topo):
        units = math.ceil(n / _members_per_unit(group, span))
        if units > 1:
            crossed.append(cap)
            caps.append(cap * net_eff * (n - 1) / (units - 1))
            inter_latency = latency
    busbw = min(caps) if caps else nvlink * ring_eff
    ar_busbw = busbw
    nvls = consts["nvls_busbw_fraction"]["by_arch"].get(gpu.arch)
    if up.nvls and nvls and domains == 1 and n > 2:
        ar_busbw = max(busbw, nvlink * nvls)
    scale_out = bool(crossed)
    p2p_eff = consts["p2p_efficiency"]
    p2p = min(crossed) * p2p_eff["scale_out"] if crossed else nvlink * p2p_eff["scale_up"]
    contention = catalog.efficiency_table()["overlap"]["sm_contention"]
    return GroupPath(
        n=n, busbw=busbw, all_reduce_busbw=ar_busbw, p2p_bw=p2p,
        intra_latency_s=up.latency_us * 1e-6, inter_latency_s=inter_latency,
        base_latency_s=consts["base_latency_us"]["value"] * 1e-6, nodes=domains,
        scale_out=scale_out, sm_contention=contention["scale_out" if scale_out else "scale_up"])
