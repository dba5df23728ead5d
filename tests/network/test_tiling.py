"""Group paths computed on one tile of the job (sim.network.paths.tile) are those of the whole job, exactly."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from sim.network import paths
from sim.network.graph import build_fabric
from sim.network.paths import _distinct_paths, a2a_paths, members_path, tile
from sim.parallelism.mesh import Axis, ParallelMesh
from sim.parallelism.placement import (
    expert_data_members,
    expert_members,
    expert_tensor_members,
    group_members,
    stage_pairs,
)
from sim.specs.layout import ParallelismSpec
from sim.specs.topology import load_topology

TOPOLOGIES = ("dgx-h100-superpod", "dgx-a100-superpod", "meta-llama3-24k", "gb200-nvl72", "pcie-h100", "dgx-b200")
LAYOUTS = [  # (tp, cp, pp, dp, ep)
    (8, 1, 4, 16, 1), (4, 2, 2, 32, 1), (2, 1, 8, 64, 1), (8, 2, 16, 4, 1), (1, 1, 2, 512, 1), (8, 1, 1, 128, 8),
    (4, 1, 4, 8, 4), (8, 4, 8, 8, 1)]
ORDERS = ("tp,cp,dp,pp", "tp,cp,pp,dp", "dp,tp,cp,pp")


def jobs(topology: str):
    """Every layout x placement order on ``topology``: its mesh, EP degree, order and fabric."""
    topo = load_topology(topology)
    for (tp, cp, pp, dp, ep), order in itertools.product(LAYOUTS, ORDERS):
        mesh = ParallelMesh.from_layout(ParallelismSpec(tensor=tp, context=cp, pipeline=pp, data=dp,
                                                        placement_order=order))
        yield mesh, ep, order, build_fabric(topo, mesh.num_ranks)


def kinds(mesh: ParallelMesh, ep: int) -> dict[str, tuple[np.ndarray, bool]]:
    out = {"pp": (stage_pairs(mesh), True), "dp": (group_members(mesh, Axis.CP, Axis.DP), False),
           "tp": (group_members(mesh, Axis.TP), False), "cp": (group_members(mesh, Axis.CP), False)}
    if ep > 1:
        out["ep"] = (expert_members(mesh, ep, 1), False)
        out["etp"] = (expert_tensor_members(mesh, ep, 1), False)
        out["edp"] = (expert_data_members(mesh, ep, 1), False)
    dp = out["dp"][0]
    if dp.shape[1] % 4 == 0:  # HSDP: shards of 4 consecutive members, and the replicas across them
        out["shard"] = (dp.reshape(-1, 4), False)
        out["replica"] = (dp.reshape(-1, dp.shape[1] // 4, 4).transpose(0, 2, 1).reshape(-1, dp.shape[1] // 4), False)
    return out


@pytest.mark.parametrize("topology", TOPOLOGIES)
def test_tiled_paths_equal_the_whole_jobs(topology):
    tiled_kinds = 0
    for mesh, ep, order, fabric in jobs(topology):
        for name, (groups, directed) in kinds(mesh, ep).items():
            if not len(groups):  # one stage: no pipeline hop
                continue
            whole = set(_distinct_paths(fabric, "hopper", groups, directed)[0])
            found = tile(fabric, groups)
            if found is None:
                continue
            tiled_kinds += 1
            sub, first = found
            assert sub.num_gpus < fabric.num_gpus and fabric.num_gpus % sub.num_gpus == 0
            assert set(_distinct_paths(sub, "hopper", first, directed)[0]) == whole, (topology, order, name)
            with pytest.MonkeyPatch.context() as patch:
                patch.setattr(paths, "tile", lambda fabric, groups: None)
                expected = members_path(fabric, "hopper", groups, directed)
            assert members_path(fabric, "hopper", groups, directed) == expected
        if ep > 1:
            a2a_paths(fabric, "hopper", kinds(mesh, ep)["ep"][0])  # runs on the tiled members path
    assert tiled_kinds > 0 or topology == "gb200-nvl72"  # 72-GPU domains: these power-of-two jobs never repeat


def test_no_tile_where_groups_do_not_repeat():
    fabric = build_fabric(load_topology("dgx-h100-superpod"), 64)
    groups = np.arange(64).reshape(8, 8)
    groups[[0, 1]] = groups[[1, 0]]  # rows in another order: still a tiling
    assert tile(fabric, groups) is not None
    groups[0] = groups[0][::-1]  # members of one group in another order (its ring differs): not a tiling
    assert tile(fabric, groups) is None
    uneven = np.array([[0, 8], [16, 24], [32, 48], [40, 56]])  # tile 1 holds a different pattern than tile 0
    assert tile(fabric, uneven) is None
    spanning = np.arange(64).reshape(2, 32).T  # every group spans both halves
    assert tile(fabric, spanning) is None


@pytest.mark.parametrize("topology", TOPOLOGIES)
def test_shifted_paths_equal_the_whole_jobs(topology):
    """Groups that span the job and cannot be tiled, but repeat under the fabric's shift with wrap-around
    (DP outermost, its rings crossing the end of the job back to its start): one flow per orbit gives the
    whole job's figures, bit for bit."""
    shifted_kinds = 0
    for mesh, ep, order, fabric in jobs(topology):
        for name, (groups, directed) in kinds(mesh, ep).items():
            if directed or not len(groups) or tile(fabric, groups) is not None:
                continue
            found = paths._shifted_path(fabric, "hopper", groups)
            if found is None:
                continue
            shifted_kinds += 1
            with pytest.MonkeyPatch.context() as patch:
                patch.setattr(paths, "_shifted_path", lambda fabric, arch, groups: None)
                expected = members_path(fabric, "hopper", groups)
            assert found == expected, (topology, order, name)
    # no shift on A100 superpods (their tier spans do not divide these jobs) nor on 72-GPU domains
    assert shifted_kinds > 0 or topology in ("dgx-a100-superpod", "gb200-nvl72")


def test_shift_needs_flows_that_repeat():
    fabric = build_fabric(load_topology("dgx-h100-superpod"), 1024)
    assert paths.period(fabric) == 256  # leaf groups of 256 GPUs under a top spine of 1,024
    spanning = np.arange(1024).reshape(8, 128).T  # members 128 apart: the shift by 256 maps each ring onto itself
    assert paths._shifted_path(fabric, "hopper", spanning) is not None
    backwards = np.ascontiguousarray(spanning[:, ::-1])  # members in falling GPU order: the same rings (built in
    found = paths._shifted_path(fabric, "hopper", backwards)  # GPU order), point-to-point flows the other way
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(paths, "_shifted_path", lambda fabric, arch, groups: None)
        assert found == members_path(fabric, "hopper", backwards)
    skewed = spanning.copy()
    skewed[0] = skewed[0][[1, 0, *range(2, 8)]]  # one group's ring in another order: no longer shift-invariant
    assert paths._shifted_path(fabric, "hopper", skewed) is None
    assert paths.period(build_fabric(load_topology("meta-llama3-24k"), 16384)) is None  # pods of 3,072 GPUs
