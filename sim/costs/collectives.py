"""Collective time: alpha-beta on a group's path (nccl-tests bus-bandwidth relations).

With ``n`` ranks, message ``S`` bytes (the nccl-tests buffer size), bus bandwidth ``B`` and per-step
latency ``alpha``: ring all-reduce ``2(n-1) alpha + 2(n-1)/n S/B``; all-gather and reduce-scatter
``(n-1) alpha + (n-1)/n S/B`` (NCCL docs, PERFORMANCE.md of nccl-tests). Steps that cross the
scale-out network pay the inter-node latency, the rest the scale-up latency (NCCL tuning.cc).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from enum import StrEnum

from sim import catalog
from sim.costs.kernels import interp_log


class Collective(StrEnum):
    ALL_REDUCE = "all_reduce"
    ALL_GATHER = "all_gather"
    REDUCE_SCATTER = "reduce_scatter"
    ALL_TO_ALL = "all_to_all"
    SEND_RECV = "send_recv"


@dataclass(frozen=True, slots=True)
class GroupPath:
    """What a communication group's placement yields: size, bandwidths (bytes/s), latencies (s).

    ``busbw`` is the achieved ring bus bandwidth of the bottleneck level; ``all_reduce_busbw`` may
    exceed it where in-network reduction (NVLS/SHARP) applies; ``nodes`` is the number of scale-up
    domains the group spans (steps between them pay ``inter_latency_s``).
    """

    n: int
    busbw: float
    all_reduce_busbw: float
    p2p_bw: float
    intra_latency_s: float
    inter_latency_s: float
    base_latency_s: float
    nodes: int
    scale_out: bool
    sm_contention: float
    # All-to-all figures (EP groups; 0 = not computed: the ring bus bandwidth stands in). Each is a rate in
    # bytes of the all-to-all BUFFER per second (the buffer spread evenly over the n members): the part sent
    # to peers inside the member's scale-up domain and the part sent outside it move at once, so an
    # all-to-all of S bytes takes max(S / a2a_up_bw, S / a2a_out_bw) (+ latency) on the slowest member.
    # ``domain_peers``: the fewest members of one group sharing a scale-up domain.
    a2a_up_bw: float = 0.0
    a2a_out_bw: float = 0.0
    domain_peers: int = 0


def bus_factor(op: Collective, n: int) -> float:
    """nccl-tests bus-bandwidth factor: bytes each rank moves per byte of buffer."""
    if op is Collective.ALL_REDUCE:
        return 2.0 * (n - 1) / n
    if op is Collective.SEND_RECV:
        return 1.0
    return (n - 1) / n


def _latency(path: GroupPath, steps: int, inter_steps: int) -> float:
    inter_steps = min(inter_steps, steps)
    return (path.base_latency_s + (steps - inter_steps) * path.intra_latency_s
            + inter_steps * path.inter_latency_s)


@functools.cache
def _size_points() -> tuple[tuple[float, float], ...]:
    points = catalog.efficiency_table()["collectives"]["size_efficiency"]["points"]
    return tuple((float(x), float(y)) for x, y in points)


def size_efficiency(size_bytes: float) -> float:
    """Fraction of the plateau bus bandwidth a collective of ``size_bytes`` reaches (measured NCCL)."""
    return interp_log(_size_points(), max(size_bytes, 1.0))


def collective_latency(op: Collective, size_bytes: float, path: GroupPath) -> float:
    """The latency (alpha) part of ``collective_time``, s."""
    n = path.n
    if size_bytes <= 0 or (n <= 1 and op is not Collective.SEND_RECV):
        return 0.0
    if op is Collective.SEND_RECV:
        return path.inter_latency_s if path.scale_out else path.intra_latency_s
    if op is Collective.ALL_REDUCE:
        return _latency(path, 2 * (n - 1), 2 * (path.nodes - 1))
    return _latency(path, n - 1, path.nodes - 1)


def collective_bandwidth_time(op: Collective, size_bytes: float, path: GroupPath) -> float:
    """The bandwidth (beta) part of ``collective_time``, s."""
    n = path.n
    if size_bytes <= 0 or (n <= 1 and op is not Collective.SEND_RECV):
        return 0.0
    if op is Collective.SEND_RECV:
        return size_bytes / path.p2p_bw
    bw = path.all_reduce_busbw if op is Collective.ALL_REDUCE else path.busbw
    return bus_factor(op, n) * size_bytes / (bw * size_efficiency(size_bytes))


def collective_time(op: Collective, size_bytes: float, path: GroupPath) -> float:
    """Seconds for one collective of ``size_bytes`` (nccl-tests buffer size) on ``path``."""
    return collective_latency(op, size_bytes, path) + collective_bandwidth_time(op, size_bytes, path)


def bus_bandwidth(op: Collective, size_bytes: float, path: GroupPath) -> float:
    """nccl-tests busbw (bytes/s) the model predicts for a message: ``factor * S / t``."""
    t = collective_time(op, size_bytes, path)
    return bus_factor(op, path.n) * size_bytes / t if t > 0 else float("inf")
