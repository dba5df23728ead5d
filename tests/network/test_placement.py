"""Placement of the rank mesh on GPUs (sim/parallelism/placement.py) and its validation."""

from __future__ import annotations

import numpy as np
import pytest

from sim.errors import ScenarioError
from sim.parallelism.mesh import Axis, Group, ParallelMesh
from sim.parallelism.placement import (
    expert_data_members,
    expert_members,
    expert_tensor_members,
    gpu_grid,
    group_members,
    stage_members,
    stage_pairs,
    tiled_members,
)
from sim.specs._schema import build
from sim.specs.layout import ParallelismSpec


def mesh(order: str = "tp,cp,dp,pp", **degrees) -> ParallelMesh:
    return ParallelMesh.from_layout(ParallelismSpec(placement_order=order, **degrees))


def test_default_order_tp_innermost():
    m = mesh(tensor=4, context=2, data=3, pipeline=2)
    grid = gpu_grid(m)
    assert grid.shape == (2, 3, 2, 4)
    assert grid[0, 0, 0].tolist() == [0, 1, 2, 3]  # a TP group: consecutive GPUs
    assert grid[0, 0, 1, 0] == 4 and grid[0, 1, 0, 0] == 8 and grid[1, 0, 0, 0] == 24
    assert group_members(m, Axis.TP)[0].tolist() == [0, 1, 2, 3]
    assert group_members(m, Axis.DP)[0].tolist() == [0, 8, 16]
    assert group_members(m, Axis.CP, Axis.DP)[0].tolist() == [0, 4, 8, 12, 16, 20]
    assert stage_pairs(m)[0].tolist() == [0, 24]


@pytest.mark.parametrize("degrees", [dict(tensor=2, context=1, data=4, pipeline=2),
                                     dict(tensor=8, context=2, data=2, pipeline=3)])
def test_groups_match_the_mesh_strides(degrees):
    m = mesh(**degrees)
    for axis in Axis:
        members = group_members(m, axis)
        assert members.shape == (m.num_ranks // m.sizes[axis], m.sizes[axis])
        assert np.all(np.diff(members, axis=1) == m.stride(axis))
        assert sorted(members.ravel().tolist()) == list(range(m.num_ranks))  # the groups tile the GPUs


def test_custom_order_moves_tp_apart():
    m = mesh("dp,tp,cp,pp", tensor=4, data=2)
    assert group_members(m, Axis.TP)[0].tolist() == [0, 2, 4, 6]
    assert group_members(m, Axis.DP)[0].tolist() == [0, 1]


def test_expert_groups_subdivide_cp_dp():
    m = mesh(tensor=2, data=8, expert=4)
    assert expert_members(m, 4).tolist()[:2] == [[0, 2, 4, 6], [8, 10, 12, 14]]


def test_tiled_members():
    assert tiled_members(Group(2, 4), 16).tolist() == [[0, 4], [1, 5], [2, 6], [3, 7], [8, 12], [9, 13],
                                                      [10, 14], [11, 15]]


@pytest.mark.parametrize("order", ["tp,cp,dp", "tp,tp,dp,pp", "tp,cp,dp,xp"])
def test_bad_placement_order_is_reported(order):
    with pytest.raises(ScenarioError) as err:
        build(ParallelismSpec, {"placement_order": order}, "parallelism")
    assert "parallelism.placement_order" in str(err.value)


def test_moe_parallel_folding_lays_etp_ep_edp_over_each_stage():
    # 32 GPUs, TP2 DP8 PP2: a stage's 16 GPUs re-read as ETP1 x EP4 x EDP4 (Megatron's expert mesh order)
    m = mesh(tensor=2, data=8, pipeline=2)
    assert stage_members(m)[1].tolist() == list(range(16, 32))
    assert expert_members(m, 4, 1).tolist()[:2] == [[0, 1, 2, 3], [4, 5, 6, 7]]
    assert expert_data_members(m, 4, 1).tolist()[0] == [0, 4, 8, 12]
    assert expert_tensor_members(m, 4, 2).tolist()[0] == [0, 1]
    for groups in (expert_members(m, 4, 1), expert_data_members(m, 4, 1), expert_tensor_members(m, 2, 2)):
        assert sorted(groups.ravel().tolist()) == list(range(32))  # each kind tiles the GPUs once


def test_expert_mesh_follows_a_custom_placement_order():
    m = mesh("tp,pp,cp,dp", tensor=2, data=4, pipeline=2)
    assert stage_members(m)[0].tolist() == [0, 1, 4, 5, 8, 9, 12, 13]  # PP is not outermost here
    assert expert_members(m, 4, 1).tolist()[0] == [0, 1, 4, 5]
