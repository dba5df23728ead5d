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


def stage_members(mesh: ParallelMesh) -> np.ndarray:
    """GPUs of every pipeline stage in attention-mesh rank order (innermost axis fastest): (pp, gpus / pp)."""
    order = mesh.order
    grid = np.arange(mesh.num_ranks).reshape([mesh.sizes[a] for a in reversed(order)])
    return np.moveaxis(grid, len(order) - 1 - order.index(Axis.PP), 0).reshape(mesh.sizes[Axis.PP], -1)


def expert_mesh(mesh: ParallelMesh, expert: int, expert_tensor: int | None = None) -> np.ndarray:
    """Megatron's MoE parallel folding: each stage's GPUs, in attention rank order, re-read as the expert
    mesh ETP (innermost) x EP x EDP; shape (pp, edp, ep, etp). ``expert_tensor`` defaults to the TP size,
    which makes EP groups stride over TP as they did when EP subdivided CP x DP."""
    etp = mesh.sizes[Axis.TP] if expert_tensor is None else expert_tensor
    return stage_members(mesh).reshape(mesh.sizes[Axis.PP], -1, expert, etp)


def expert_members(mesh: ParallelMesh, expert: int, expert_tensor: int | None = None) -> np.ndarray:
    """GPUs of every EP group (rows; consecutive members ETP ranks apart)."""
    return expert_mesh(mesh, expert, expert_tensor).transpose(0, 3, 1, 2).reshape(-1, expert)


def expert_tensor_members(mesh: ParallelMesh, expert: int, expert_tensor: int | None = None) -> np.ndarray:
    """GPUs of every expert-TP group: consecutive ranks of a stage."""
    grid = expert_mesh(mesh, expert, expert_tensor)
    return grid.reshape(-1, grid.shape[3])


def expert_data_members(mesh: ParallelMesh, expert: int, expert_tensor: int | None = None) -> np.ndarray:
    """GPUs of every expert-DP group (EDP: ranks holding the same experts, which reduce their gradients)."""
    grid = expert_mesh(mesh, expert, expert_tensor)
    return grid.transpose(0, 2, 3, 1).reshape(-1, grid.shape[1])


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
