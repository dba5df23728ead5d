
"""Alpha-beta collective times against the nccl-tests relations (sim/costs/collectives.py)."""

from __future__ import annotations

import itertools
import math

import pytest

from sim.costs.collectives import Collective, GroupPath, bus_bandwidth, bus_factor, collective_time, size_efficiency


def path(n=8, busbw=100e9, ar_busbw=None, p2p=40e9, intra=2e-6, inter=5e-6, base=0.0, nodes=1,
         scale_out=False) -> GroupPath:
    return GroupPath(n=n, busbw=busbw, all_reduce_busbw=busbw if ar_busbw is None else ar_busbw, p2p_bw=p2p,
                     intra_latency_s=intra, inter_latency_s=inter, base_latency_s=base, nodes=nodes,
                     scale_out=scale_out, sm_contention=0.1)


S = 256e6  # bytes


def test_bus_factors():
    assert bus_factor(Collective.ALL_REDUCE, 8) == pytest.approx(2 * 7 / 8)
    assert bus_factor(Collective.ALL_GATHER, 8) == pytest.approx(7 / 8)
    assert bus_factor(Collective.REDUCE_SCATTER, 4) == pytest.approx(3 / 4)
    assert bus_factor(Collective.SEND_RECV, 2) == 1.0


# Measured NCCL size efficiency at S = 256e6 B: log-interpolated between 64 MiB (0.776) and 256 MiB (0.840).
E = 0.776 + (math.log(256e6 / 67108864) / math.log(4)) * (0.840 - 0.776)


def test_size_efficiency_hand_values():
    assert size_efficiency(256e6) == pytest.approx(E, rel=1e-9)
    assert size_efficiency(1.0) == pytest.approx(0.076)  # clamped below the first point
    assert size_efficiency(1e13) == pytest.approx(1.0)  # clamped above the last point


def test_ring_all_reduce_single_node():
    p = path(n=8, busbw=100e9, intra=2e-6)
    # 2(n-1) alpha + 2(n-1)/n S/(B * eff(S))
    expected = 2 * 7 * 2e-6 + 2 * 7 / 8 * 256e6 / (100e9 * E)
    assert collective_time(Collective.ALL_REDUCE, S, p) == pytest.approx(expected, rel=1e-12)


@pytest.mark.parametrize("op", [Collective.ALL_GATHER, Collective.REDUCE_SCATTER])
def test_ring_all_gather_reduce_scatter_single_node(op):
    p = path(n=4, busbw=50e9, intra=3e-6)
    expected = 3 * 3e-6 + 3 / 4 * 256e6 / (50e9 * E)  # (n-1) alpha + (n-1)/n S/(B eff)
    assert collective_time(op, S, p) == pytest.approx(expected, rel=1e-12)


def test_all_reduce_uses_all_reduce_busbw():
    p = path(n=8, busbw=100e9, ar_busbw=400e9, intra=0.0)
    assert collective_time(Collective.ALL_REDUCE, S, p) == pytest.approx(2 * 7 / 8 * S / (400e9 * E))
    assert collective_time(Collective.ALL_GATHER, S, p) == pytest.approx(7 / 8 * S / (100e9 * E))


def test_base_latency_is_added_once():
    with_base = path(n=8, base=14e-6)
    without = path(n=8, base=0.0)
    for op in (Collective.ALL_REDUCE, Collective.ALL_GATHER, Collective.REDUCE_SCATTER):
        diff = collective_time(op, S, with_base) - collective_time(op, S, without)
        assert diff == pytest.approx(14e-6, rel=1e-9)


def test_multi_node_latency_split_nccl_tuning():
    # 32 ranks on 4 nodes: all-reduce 2*31 = 62 steps of which 2*(4-1) = 6 cross nodes (NCCL tuning.cc);
    # all-gather 31 steps of which 3 cross nodes.
    p = path(n=32, busbw=80e9, intra=2e-6, inter=5e-6, nodes=4, scale_out=True)
    ar = (62 - 6) * 2e-6 + 6 * 5e-6 + 2 * 31 / 32 * S / (80e9 * E)
    ag = (31 - 3) * 2e-6 + 3 * 5e-6 + 31 / 32 * S / (80e9 * E)
    assert collective_time(Collective.ALL_REDUCE, S, p) == pytest.approx(ar, rel=1e-12)
    assert collective_time(Collective.ALL_GATHER, S, p) == pytest.approx(ag, rel=1e-12)


def test_one_domain_per_rank_pays_inter_latency_on_every_step():
    p = path(n=16, intra=1e-6, inter=7e-6, nodes=16, scale_out=True, busbw=1e30)
    assert collective_time(Collective.ALL_REDUCE, 1.0, p) == pytest.approx(30 * 7e-6, rel=1e-9)
    assert collective_time(Collective.REDUCE_SCATTER, 1.0, p) == pytest.approx(15 * 7e-6, rel=1e-9)


def test_send_recv():
    local = path(n=2, p2p=40e9, intra=2e-6, inter=5e-6, base=14e-6, scale_out=False)
    remote = path(n=2, p2p=40e9, intra=2e-6, inter=5e-6, base=14e-6, scale_out=True)
    # one hop: latency of the link crossed + S / p2p; no ring base latency
    assert collective_time(Collective.SEND_RECV, S, local) == pytest.approx(2e-6 + S / 40e9)
    assert collective_time(Collective.SEND_RECV, S, remote) == pytest.approx(5e-6 + S / 40e9)


def test_trivial_cases_cost_nothing():
    single = path(n=1)
    ops = (Collective.ALL_REDUCE, Collective.ALL_GATHER, Collective.REDUCE_SCATTER, Collective.ALL_TO_ALL)
    for op in ops:
        assert collective_time(op, S, single) == 0.0
        assert collective_time(op, 0.0, path()) == 0.0


@pytest.mark.parametrize("op", [Collective.ALL_REDUCE, Collective.ALL_GATHER, Collective.REDUCE_SCATTER])
def test_bus_bandwidth_approaches_busbw_for_large_messages(op):
    p = path(n=8, busbw=100e9, intra=2e-6, base=14e-6)
    sizes = [1e3 * 4**k for k in range(14)]
    measured = [bus_bandwidth(op, size, p) for size in sizes]
    assert all(b2 > b1 for b1, b2 in itertools.pairwise(measured))  # latency amortizes
    assert all(b < 100e9 for b in measured)
    assert bus_bandwidth(op, 1e13, p) == pytest.approx(100e9, rel=1e-4)
    assert measured[0] < 0.01 * 100e9  # a 1 kB message is latency-bound


def test_bus_bandwidth_of_empty_message_is_infinite():
    assert bus_bandwidth(Collective.ALL_REDUCE, 0.0, path()) == float("inf")
