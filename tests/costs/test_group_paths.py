"""Bottleneck paths of communication groups on bundled topologies (sim/network/paths.py).

(Kept beside the cost tests: GroupPath is what the collective costs consume.)
"""

from __future__ import annotations

import pytest
import yaml

from sim import catalog
from sim.costs.collectives import Collective, collective_time
from sim.network.paths import group_path
from sim.parallelism.mesh import Group
from sim.specs._schema import build
from sim.specs.scenario import gpu_spec
from sim.specs.topology import TopologySpec

H100 = gpu_spec("H100-SXM-80GB")
NVLINK = 450e9  # bytes/s per GPU per direction
NIC = 400e9 / 8  # one 400 Gb/s NIC per GPU = 50 GB/s
RING_EFF = 0.82  # efficiency.yaml collectives.scale_up_ring_efficiency.hopper
NET_EFF = 0.96  # efficiency.yaml collectives.scale_out_efficiency
P2P_NET = 0.97  # efficiency.yaml collectives.p2p_efficiency.scale_out


def topology(name: str) -> TopologySpec:
    path = catalog.resolve_topology(name, None)
    return build(TopologySpec, yaml.safe_load(path.read_text()), "topology")


SUPERPOD = topology("dgx-h100-superpod")
META = topology("meta-llama3-24k")


def test_tp8_group_stays_in_nvlink():
    p = group_path(SUPERPOD, H100, Group(size=8, stride=1))
    assert p.n == 8
    assert p.busbw == pytest.approx(NVLINK * RING_EFF)
    assert not p.scale_out
    assert p.nodes == 1
    assert p.intra_latency_s == pytest.approx(1.9e-6)
    # NVLS in-network reduction lifts the all-reduce bus bandwidth (480 GB/s measured on 8x H100)
    assert p.all_reduce_busbw == pytest.approx(NVLINK * 1.067)
    assert p.p2p_bw == pytest.approx(NVLINK * 0.88)
    assert p.sm_contention == pytest.approx(0.15)


def test_tp2_group_in_one_node_has_no_nvls_boost():
    p = group_path(SUPERPOD, H100, Group(size=2, stride=1))
    assert p.busbw == pytest.approx(NVLINK * RING_EFF)
    assert p.all_reduce_busbw == pytest.approx(NVLINK * RING_EFF)  # NVLS needs n > 2


def test_dp_group_across_16_nodes_is_nic_bound():
    # TP8 inside each node: the DP ring has one member per node and each hop leaves on the member's own
    # NIC (rail-optimized, one NIC per GPU): 8 concurrent DP rings per node, one flow per NIC
    p = group_path(SUPERPOD, H100, Group(size=16, stride=8))
    assert p.busbw == pytest.approx(NIC * NET_EFF)
    assert p.all_reduce_busbw == pytest.approx(NIC * NET_EFF)
    assert p.scale_out
    assert p.nodes == 16
    assert p.p2p_bw == pytest.approx(NIC * P2P_NET)
    assert p.sm_contention == pytest.approx(0.02)
    assert p.inter_latency_s == pytest.approx(4.0e-6)  # stays under one leaf group (256 GPUs)


def test_32_gpus_in_4_nodes_ring_uses_every_nic():
    # 8 channels, one per NIC: each channel's ring leaves every node once, so each NIC carries one flow
    # (48 GB/s) and a GPU's NVLink port 7 (450 / 7 * 0.82 = 52.7 each): busbw = 8 x 48 = 384
    p = group_path(SUPERPOD, H100, Group(size=32, stride=1))
    assert p.busbw == pytest.approx(8 * NIC * NET_EFF)
    assert p.nodes == 4
    assert p.scale_out


def test_group_crossing_leaf_groups_pays_spine_latency():
    # 64 members, one per node (stride 8), span 512 GPUs: two leaf groups of 256
    p = group_path(SUPERPOD, H100, Group(size=64, stride=8))
    assert p.busbw == pytest.approx(NIC * NET_EFF)  # non-blocking spine
    # crossing a leaf group's boundary adds the leaf tier's up-and-down hops to the NIC latency
    assert p.inter_latency_s == pytest.approx((4.0 + 2 * 0.3) * 1e-6)


@pytest.mark.parametrize("size", [2, 8])
def test_meta_group_spanning_pods_is_limited_by_the_pod_uplink(size):
    # one member per 3,072-GPU pod and every GPU in such a group: all cross the 1:7 aggregation layer
    p = group_path(META, H100, Group(size=size, stride=3072))
    assert p.busbw == pytest.approx(NIC / 7 * NET_EFF)
    assert p.p2p_bw == pytest.approx(NIC / 7 * P2P_NET)
    assert p.scale_out
    # rack (4.0 + 0.6) then pod (+ 0.6): the crossing of the pod tier sets the latency
    assert p.inter_latency_s == pytest.approx((4.0 + 0.6 + 0.6) * 1e-6)


def test_meta_group_inside_one_pod_is_not_oversubscribed():
    p = group_path(META, H100, Group(size=16, stride=128))  # 2,048 GPUs: one pod
    assert p.busbw == pytest.approx(NIC * NET_EFF)


def test_meta_pairs_half_across_pods_share_the_uplink_by_the_computed_factor():
    # 4,096 GPUs, pairs 2,048 apart: pairs starting below GPU 1,024 stay in pod 0, the other 1,024
    # cross it; pod 0's uplink (3,072 x 50 / 7 GB/s) carries those 1,024 flows: 21.4 GB/s each
    p = group_path(META, H100, Group(size=2, stride=2048), num_gpus=4096)
    assert p.busbw == pytest.approx(3072 * NIC / 7 / 1024 * NET_EFF)


def test_meta_pair_across_pods_is_7x_slower_than_inside_a_pod():
    inside = group_path(META, H100, Group(size=2, stride=1024))
    across = group_path(META, H100, Group(size=2, stride=3072))
    size = 1e9
    t_in = collective_time(Collective.ALL_REDUCE, size, inside)
    t_out = collective_time(Collective.ALL_REDUCE, size, across)
    assert t_out / t_in == pytest.approx(7.0, rel=0.01)


def test_single_rank_group():
    p = group_path(SUPERPOD, H100, Group(size=1, stride=1))
    assert p.n == 1
    assert collective_time(Collective.ALL_REDUCE, 1e9, p) == 0.0
