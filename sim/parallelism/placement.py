"""Placement: which physical GPU each rank of the mesh runs on, and the GPUs of every group.

Ranks are laid on GPUs in rank order, and the rank number is built from the mesh coordinates in the
mesh's placement order, innermost first (``ParallelMesh.order``; default TP, CP, DP, PP, so a TP group
fills consecutive GPUs of a node). Changing the order moves groups across the fabric: ``dp,tp,cp,pp``
puts DP replicas side by side and spreads each TP group over ``dp`` GPUs. Pure numpy, no topology:
``sim.network`` turns the GPU sets into routes and reports which tiers they cross.
"""

from __future__ import annotations

import math

import numpy as np

from sim.parallelism.mesh import Axis, Group, ParallelMesh


def gpu_grid(mesh: ParallelMesh) -> np.ndarray:
    """GPU of every rank, indexed ``[pp, dp, cp, tp]`` (whatever the placement order)."""
    order = mesh.order
    shape = [mesh.sizes[a] for a in reversed(order)]  # C order: the last (fastest) axis is innermost
    grid = np.arange(mesh.num_ranks).reshape(shape)
    canonical = (Axis.PP, Axis.DP, Axis.CP, Axis.TP)
    return grid.transpose([len(order) - 1 - order.index(a) for a in canonical])


def group_members(mesh: ParallelMesh, *axes: Axis) -> np.ndarray:
    """GPUs of every group spanning ``axes``: shape (groups, group size), members in rank order."""
    order = mesh.order
    grid = np.arange(mesh.num_ranks).reshape([mesh.sizes[a] for a in reversed(order)])
    inside = sorted(axes, key=order.index, reverse=True)  # outermost first, so the innermost varies fastest
    positions = [len(order) - 1 - order.index(a) for a in inside]
    rest = [i for i in range(len(order)) if i not in positions]
    size = math.prod(mesh.sizes[a] for a in axes)
    return grid.transpose(rest + positions).reshape(-1, size)


def expert_members(mesh: ParallelMesh, expert: int) -> np.ndarray:
    """GPUs of every EP group: consecutive ``expert`` ranks of each CP x DP group (EP subdivides it)."""
    return group_members(mesh, Axis.CP, Axis.DP).reshape(-1, expert)


def stage_pairs(mesh: ParallelMesh) -> np.ndarray:
    """(sender, receiver) GPUs of every pipeline hop from stage ``s`` to ``s + 1``: shape (pairs, 2)."""
    stages = group_members(mesh, Axis.PP)
    return np.stack([stages[:, :-1].ravel(), stages[:, 1:].ravel()], axis=1)


def tiled_members(group: Group, num_gpus: int) -> np.ndarray:
    """Every group of ``group``'s shape (``size`` ranks ``stride`` apart) tiling ``num_gpus`` GPUs, as
    the default placement makes them: shape (groups, size)."""
    block = group.size * group.stride
    if num_gpus % block:
        raise ValueError(f"{num_gpus} GPUs are not a whole number of {block}-GPU blocks")
    grid = np.arange(num_gpus).reshape(num_gpus // block, group.size, group.stride)
    return grid.transpose(0, 2, 1).reshape(-1, group.size)
