"""Collective algorithms as flows on the fabric (sim/network/flows.py), against hand-computed times."""

from __future__ import annotations

import math

import numpy as np
import pytest

from sim.costs.collectives import Collective, size_efficiency
from sim.network.flows import Algorithm, concurrent_time, nccl_plan, plan, ring_orders
from sim.network.graph import build_fabric

from .conftest import A100_POD, SUPERPOD, one_nic_topology

NVLINK, NIC = 450e9, 50e9
RING_UP, RING_OUT, P2P_UP, P2P_OUT = 0.82, 0.96, 0.88, 0.97  # efficiency.yaml collectives
S = 16 * 2**30  # large enough that NCCL's size efficiency is 1
AR = Collective.ALL_REDUCE


def run(topo, n, op, algorithm, size=S, members=None):
    f = build_fabric(topo, n)
    p = plan(f, "hopper" if topo is not A100_POD else "ampere", op, algorithm,
             np.arange(n) if members is None else members, size)
    return p, f


def test_ring_8_gpus_in_one_nvswitch_domain():
    p, f = run(SUPERPOD, 8, AR, Algorithm.RING)
    latency = 14e-6 + 14 * 1.9e-6  # NCCL tuning.cc: base + 2(n-1) NVLink steps
    assert p.latency_s == pytest.approx(latency)
    step = S / 8 / (NVLINK * RING_UP)  # each GPU sends S/n to its successor per step
    assert p.time(f.capacity) == pytest.approx(latency + 14 * step)
    assert p.bus_bandwidth(f.capacity) == pytest.approx(NVLINK * RING_UP, rel=1e-3)


def test_ring_channels_are_rail_aligned():
    f = build_fabric(SUPERPOD, 32)
    rings = ring_orders(f, np.arange(32))
    assert rings.shape == (8, 32)
    for ring in rings:
        assert sorted(ring.tolist()) == list(range(32))
        nxt = np.roll(ring, -1)
        crossing = ring // 8 != nxt // 8
        assert crossing.sum() == 4  # one hop out of each node per channel
        assert np.all(ring[crossing] % 8 == nxt[crossing] % 8)  # same NIC index (rail) at both ends
    exits = [r[np.flatnonzero(r // 8 != np.roll(r, -1) // 8)] for r in rings]
    assert sorted(int(e[0]) % 8 for e in exits) == list(range(8))  # node 0 leaves on every NIC once


def test_ring_32_gpus_across_4_nodes_uses_every_nic():
    # 8 channels, each node's crossing on its own NIC: busbw = 8 x 50 x 0.96 = 384 (published 370-380)
    p, f = run(SUPERPOD, 32, AR, Algorithm.RING)
    bw_time = p.time(f.capacity) - p.latency_s
    assert bw_time == pytest.approx(62 * S / 32 / 8 / (NIC * RING_OUT))
    assert p.latency_s == pytest.approx(14e-6 + 56 * 1.9e-6 + 6 * 4.0e-6)


def test_nvls_reaches_the_measured_bus_rate():
    p, f = run(SUPERPOD, 8, AR, Algorithm.NVLS)
    assert p.time(f.capacity) == pytest.approx(25e-6 + 2 * 7 / 8 * S / (NVLINK * 1.067))
    assert run(SUPERPOD, 8, Collective.ALL_GATHER, Algorithm.NVLS)[0] is None
    assert run(A100_POD, 8, AR, Algorithm.NVLS)[0] is None  # NVSwitch gen2 has no NVLS


def test_nvls_tree_is_flat_in_the_gpu_count():
    p, f = run(SUPERPOD, 32, AR, Algorithm.NVLS_TREE)
    assert p.latency_s == pytest.approx((25 + 20.9) * 1e-6)
    assert p.bus_bandwidth(f.capacity) == pytest.approx(NVLINK * 1.067, rel=1e-3)


def test_tree_latency_is_logarithmic_in_nodes():
    # NCCL tuning.cc: base + 2 ((GPUs per node - 1) NVLink hops + log2(nodes) network hops); the tree
    # links rail peers, so 32 nodes under one leaf group add no tier latency, 64 nodes add the spine's
    p, _ = run(SUPERPOD, 256, AR, Algorithm.TREE)
    assert p.latency_s == pytest.approx(14e-6 + 2 * (7 * 1.25e-6 + math.log2(32) * 8.5e-6))
    p, _ = run(SUPERPOD, 512, AR, Algorithm.TREE)
    assert p.latency_s == pytest.approx(14e-6 + 2 * (7 * 1.25e-6 + math.log2(64) * (8.5e-6 + 0.6e-6)))


def test_hierarchical_is_three_stages():
    p, f = run(SUPERPOD, 32, AR, Algorithm.HIERARCHICAL)
    intra = 7 * (S / 8 / (NVLINK * RING_UP))  # ring reduce-scatter inside the node: 7 steps of S/8
    inter = 6 * (S / 8 / 4 / (NIC * RING_OUT))  # 8 rail rings over 4 nodes on S/8: 6 steps of S/32
    assert p.time(f.capacity) - p.latency_s == pytest.approx(2 * intra + inter)


def test_all_to_all_and_send_recv():
    p, f = run(SUPERPOD, 8, Collective.ALL_TO_ALL, Algorithm.DIRECT, size=8e9)
    # every GPU sends 7 flows of S/8 through its NVLink port
    per_flow = NVLINK / 7
    assert p.time(f.capacity) - p.latency_s == pytest.approx(1e9 / P2P_UP / per_flow / size_efficiency(8e9))
    p, f = run(SUPERPOD, 16, Collective.SEND_RECV, Algorithm.DIRECT, size=1e9, members=np.array([0, 8]))
    assert p.time(f.capacity) == pytest.approx(4.0e-6 + 1e9 / (NIC * P2P_OUT))  # same rail: NIC, leaf, NIC
    p, f = run(SUPERPOD, 16, Collective.SEND_RECV, Algorithm.DIRECT, size=1e9, members=np.array([0, 15]))
    assert p.time(f.capacity) == pytest.approx(4.6e-6 + 1e9 / (NIC * P2P_OUT))  # other rail: via the spine


def test_two_all_reduces_sharing_one_nic_take_twice_one():
    topo = one_nic_topology(gpus_per_node=2)  # two GPUs per node, one NIC
    f = build_fabric(topo, 8)
    a, b = np.array([0, 2, 4, 6]), np.array([1, 3, 5, 7])  # GPU 0 of each node, GPU 1 of each node
    one = plan(f, "hopper", AR, Algorithm.RING, a, 2**30)
    two = [one, plan(f, "hopper", AR, Algorithm.RING, b, 2**30)]
    alone, together = one.time(f.capacity), concurrent_time(two, f.capacity)
    assert (together - one.latency_s) / (alone - one.latency_s) == pytest.approx(2.0, rel=1e-9)
    assert together / alone == pytest.approx(2.0, rel=0.01)


def test_nccl_plan_picks_tree_for_small_and_ring_for_large_messages_across_nodes():
    f = build_fabric(A100_POD, 256)
    assert nccl_plan(f, "ampere", AR, np.arange(256), 32768).algorithm is Algorithm.TREE
    assert nccl_plan(f, "ampere", AR, np.arange(256), 8 * 2**30).algorithm is Algorithm.RING
