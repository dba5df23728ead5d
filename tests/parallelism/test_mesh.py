"""The rank mesh: strides, groups and coordinates (sim/parallelism/mesh.py)."""

from __future__ import annotations

import itertools

import pytest

from sim.parallelism.mesh import Axis, Group, ParallelMesh
from sim.specs.layout import ParallelismSpec

LAYOUTS = [(1, 1, 1, 1), (8, 1, 1, 1), (8, 2, 4, 16), (2, 4, 3, 2), (4, 1, 8, 1), (1, 3, 1, 5)]


def mesh(t, c, d, p) -> ParallelMesh:
    return ParallelMesh.from_layout(ParallelismSpec(tensor=t, context=c, data=d, pipeline=p))


@pytest.mark.parametrize(("t", "c", "d", "p"), LAYOUTS)
def test_strides_tp_innermost(t, c, d, p):
    m = mesh(t, c, d, p)
    assert m.num_ranks == t * c * d * p
    assert m.stride(Axis.TP) == 1
    assert m.stride(Axis.CP) == t
    assert m.stride(Axis.DP) == t * c
    assert m.stride(Axis.PP) == t * c * d


@pytest.mark.parametrize(("t", "c", "d", "p"), LAYOUTS)
def test_groups(t, c, d, p):
    m = mesh(t, c, d, p)
    assert m.group(Axis.TP) == Group(size=t, stride=1)
    assert m.group(Axis.CP) == Group(size=c, stride=t)
    assert m.group(Axis.DP) == Group(size=d, stride=t * c)
    assert m.group(Axis.PP) == Group(size=p, stride=t * c * d)
    # the DP x CP group that reduces gradients, in either argument order
    assert m.group(Axis.CP, Axis.DP) == m.group(Axis.DP, Axis.CP) == Group(size=c * d, stride=t)
    assert m.group(Axis.TP, Axis.CP) == Group(size=t * c, stride=1)


def test_group_of_non_adjacent_axes_is_refused():
    with pytest.raises(ValueError, match="adjacent"):
        mesh(2, 2, 2, 2).group(Axis.TP, Axis.DP)


@pytest.mark.parametrize(("t", "c", "d", "p"), LAYOUTS)
def test_coords_are_a_bijection(t, c, d, p):
    m = mesh(t, c, d, p)
    seen = set()
    for rank in range(m.num_ranks):
        xy = m.coords(rank)
        assert 0 <= xy[Axis.TP] < t and 0 <= xy[Axis.CP] < c and 0 <= xy[Axis.DP] < d and 0 <= xy[Axis.PP] < p
        # rank = tp + t (cp + c (dp + d pp))
        assert rank == xy[Axis.TP] + t * (xy[Axis.CP] + c * (xy[Axis.DP] + d * xy[Axis.PP]))
        seen.add(tuple(xy[a] for a in (Axis.TP, Axis.CP, Axis.DP, Axis.PP)))
    assert seen == set(itertools.product(range(t), range(c), range(d), range(p)))


def test_group_members_differ_only_along_their_axis():
    m = mesh(4, 2, 2, 2)
    for axis in Axis:
        g = m.group(axis)
        members = [k * g.stride for k in range(g.size)]  # the group of rank 0
        coords = [m.coords(r) for r in members]
        for other in Axis:
            values = {xy[other] for xy in coords}
            assert values == (set(range(g.size)) if other is axis else {0})


def test_tp8_group_fills_one_node():
    m = mesh(8, 1, 16, 16)
    g = m.group(Axis.TP)
    assert g.size * g.stride <= 8
