"""Contention between concurrent groups in the symmetric paths (sim/network/paths.py): shared NICs and
oversubscribed uplinks slow a group by the factor the placement and the fabric give, and only then."""

from __future__ import annotations

import pytest

from sim.costs.collectives import Collective, collective_bandwidth_time, collective_time
from sim.network.paths import group_path, scenario_paths
from sim.parallelism.mesh import Group
from sim.specs.layout import ParallelismSpec
from sim.specs.scenario import gpu_spec

from .conftest import META, SUPERPOD, one_nic_topology

H100 = gpu_spec("H100-SXM-80GB")
NIC, NET_EFF = 50e9, 0.96
AR = Collective.ALL_REDUCE


def dp_path(**layout):
    return scenario_paths(META, H100, ParallelismSpec(**layout)).dp


def test_dp_all_reduce_crossing_pods_is_slowed_by_the_aggregation_oversubscription():
    # 6,144 GPUs = 2 pods. DP innermost-but-TP keeps each DP pair in one node's rack; DP outermost puts
    # the pair 3,072 GPUs apart: every GPU's DP traffic crosses its pod's 1:7 uplink at once
    inside = dp_path(tensor=8, pipeline=384, data=2)
    across = dp_path(tensor=8, pipeline=384, data=2, placement_order="tp,cp,pp,dp")
    assert inside.busbw == pytest.approx(NIC * NET_EFF)
    assert across.busbw == pytest.approx(NIC / 7 * NET_EFF)
    size = 4e9
    assert (collective_bandwidth_time(AR, size, across) / collective_bandwidth_time(AR, size, inside)
            == pytest.approx(7.0))
    assert collective_time(AR, size, across) / collective_time(AR, size, inside) == pytest.approx(7.0, rel=1e-3)


def test_dp_all_reduce_inside_a_pod_is_not_slowed_however_far_it_reaches():
    # DP over 384 nodes of one pod (stride 8 x 384 = 3,072 GPUs): crosses racks, never the pod uplink
    path = dp_path(tensor=8, data=384, pipeline=2)
    assert path.busbw == pytest.approx(NIC * NET_EFF)
    assert path.scale_out and path.nodes == 384


def test_only_the_groups_that_cross_load_the_uplink():
    # pairs 2,048 apart on 4,096 GPUs: 1,024 of the 2,048 pairs leave pod 0, the others stay inside;
    # pod 0's uplink (3,072 x 50 / 7 GB/s) divided among the 1,024 crossing flows: factor 7 x 1024/3072
    p = group_path(META, H100, Group(size=2, stride=2048), num_gpus=4096)
    factor = NIC / (3072 * NIC / 7 / 1024)
    assert factor == pytest.approx(7 / 3)
    assert p.busbw == pytest.approx(NIC / factor * NET_EFF)


def test_dp_of_all_tp_ranks_share_a_node_nic():
    # two GPUs per node, one NIC: both GPUs' DP rings leave through it at once -> half each; with a
    # NIC per GPU (rail-optimized DGX) nothing is shared
    shared = group_path(one_nic_topology(gpus_per_node=2), H100, Group(size=4, stride=2), num_gpus=8)
    assert shared.busbw == pytest.approx(NIC / 2 * NET_EFF)
    own = group_path(SUPERPOD, H100, Group(size=4, stride=8), num_gpus=32)
    assert own.busbw == pytest.approx(NIC * NET_EFF)


def test_pipeline_hops_at_a_pod_boundary_share_the_uplink():
    # the bundled 405B layout (TP8, PP16, DP128 on 16,384 GPUs): every 3rd stage boundary is a pod
    # boundary, and the 1,024 GPUs of the stage before it send across the 1:7 uplink at once
    pp = scenario_paths(META, H100, ParallelismSpec(tensor=8, pipeline=16, data=128)).pp
    assert pp.p2p_bw == pytest.approx(3072 * NIC / 7 / 1024 * 0.97)
