"""The fabric of a job (sim/network/graph.py): tiers built, capacities, routes, graph size."""

from __future__ import annotations

import math

import networkx as nx
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sim.network.graph import build_fabric
from sim.network.nxgraph import build_graph, graph_path_links

from .conftest import A100_POD, META, NVL72, PCIE, SUPERPOD, one_nic_topology

NIC = 50e9  # 400 Gb/s


def test_superpod_tiers_only_as_far_as_the_job_reaches():
    f = build_fabric(SUPERPOD, 512)  # two 256-GPU leaf groups: leaf and spine, no core
    assert [t.name for t in f.tiers] == ["leaf", "spine"]
    leaf = f.tiers[0]
    assert leaf.rails == 8  # rail-optimized: one leaf per NIC index
    assert leaf.uplink_byte_s == pytest.approx(32 * NIC)  # 32 GPUs of a rail per leaf, non-blocking
    assert math.isinf(f.tiers[-1].uplink_byte_s)  # the top tier has no uplink
    assert f.units(0) == 2 * 8


def test_meta_pod_uplink_is_one_seventh():
    f = build_fabric(META, 16384)
    assert [t.name for t in f.tiers] == ["rack", "pod", "cluster"]
    assert f.tiers[1].uplink_byte_s == pytest.approx(3072 * NIC / 7)
    assert f.tiers[0].uplink_byte_s == pytest.approx(16 * NIC)


def test_cluster_bigger_than_the_named_fabric_gets_a_nonblocking_root():
    f = build_fabric(SUPERPOD, 32768)
    assert f.tiers[-1].name == "root"
    assert f.tiers[-2].name == "core" and f.tiers[-2].uplink_byte_s == pytest.approx(16384 * NIC)


def test_shared_nic_is_one_link_for_its_gpus():
    f = build_fabric(one_nic_topology(gpus_per_node=4), 16)
    assert f.gpus_per_nic == 4 and f.num_nics == 4
    assert f.nic_link(np.array([0, 3]), True).tolist() == [f.nic_link(0, True)] * 2
    assert f.capacity[f.nic_link(0, True)] == pytest.approx(NIC)


def test_routes():
    f = build_fabric(SUPERPOD, 512)
    inside = f.path_links(np.array([0]), np.array([5]))[0]
    assert sorted(f.level[inside[inside >= 0]].tolist()) == [0, 0]  # NVLink up and down
    same_rail = f.path_links(np.array([0]), np.array([8]))[0]  # GPU 0 of node 0 and of node 1: rail 0
    assert sorted(f.level[same_rail[same_rail >= 0]].tolist()) == [1, 1]  # NIC up, leaf, NIC down
    cross_rail = f.path_links(np.array([0]), np.array([9]))[0]
    assert sorted(f.level[cross_rail[cross_rail >= 0]].tolist()) == [1, 1, 2, 2]  # via the spine
    far = f.path_links(np.array([0]), np.array([256]))[0]  # other leaf group, same rail
    assert sorted(f.level[far[far >= 0]].tolist()) == [1, 1, 2, 2]
    latency = f.latency[far[far >= 0]].sum()
    assert latency == pytest.approx((4.0 + 2 * 0.3) * 1e-6)


@pytest.mark.parametrize("topo", [SUPERPOD, A100_POD, META, NVL72, PCIE, one_nic_topology()],
                         ids=lambda t: t.name)
def test_graph_shortest_paths_are_the_array_routes(topo):
    f = build_fabric(topo, 576)
    g = build_graph(f)
    rng = np.random.default_rng(7)
    src, dst = rng.integers(0, 576, 60), rng.integers(0, 576, 60)
    routes = f.path_links(src, dst)
    for s, d, row in zip(src.tolist(), dst.tolist(), routes, strict=True):
        expected = sorted(graph_path_links(g, s, d)) if s != d else []
        assert sorted(row[row >= 0].tolist()) == expected


def test_graph_edges_carry_the_array_capacities():
    f = build_fabric(META, 64)
    g = build_graph(f)
    for _a, _b, data in g.edges(data=True):
        if data["link"] >= 0:
            assert data["capacity_byte_s"] == f.capacity[data["link"]]
    assert {d["link"] for *_, d in g.edges(data=True)} - {-1} == set(range(f.num_links))


@pytest.mark.parametrize(("gpus", "nodes"), [(64, 64 + 8 + 4 + 1), (512, 512 + 64 + 32 + 1)])
def test_graph_size_is_gpus_plus_domains_plus_switch_groups(gpus, nodes):
    # meta-llama3-24k: GPUs + 8-GPU domains + 16-GPU racks + one pod (the top tier)
    assert build_graph(build_fabric(META, gpus)).number_of_nodes() == nodes


def test_16k_fabric_aggregates_tiers():
    f = build_fabric(META, 16384)
    switch_groups = sum(f.units(t) for t in range(len(f.tiers)))
    assert switch_groups == 1024 + 6 + 1  # racks, pods, the cluster: not one node per switch
    assert f.num_links == 4 * 16384 + 2 * (1024 + 6)


@settings(max_examples=30, deadline=None)
@given(st.integers(2, 300), st.data())
def test_route_climbs_exactly_to_the_lowest_common_group(n, data):
    f = build_fabric(META, 16 * n)
    src = data.draw(st.integers(0, 16 * n - 1))
    dst = data.draw(st.integers(0, 16 * n - 1))
    row = f.path_links(np.array([src]), np.array([dst]))[0]
    levels = sorted(f.level[row[row >= 0]].tolist())
    if src == dst:
        assert levels == []
    elif src // 8 == dst // 8:
        assert levels == [0, 0]
    elif src // 16 == dst // 16:
        assert levels == [1, 1]
    elif src // 3072 == dst // 3072:
        assert levels == [1, 1, 2, 2]
    else:
        assert levels == [1, 1, 2, 2, 3, 3]


def test_graph_is_a_tree_above_the_gpus():
    g = build_graph(build_fabric(SUPERPOD, 64)).to_undirected()
    switches = g.subgraph(n for n in g if n[0] == "tier")
    assert nx.is_tree(switches)
