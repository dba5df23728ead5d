"""Equitable partitions (sim/network/symmetry.py): hand-checked graphs, and max-min rates constant per cell."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from sim.network.sharing import max_min_rates
from sim.network.symmetry import equitable_cells, is_equitable


def undirected(pairs: list[tuple[int, int]]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    a = np.array([p[0] for p in pairs] + [p[1] for p in pairs])
    b = np.array([p[1] for p in pairs] + [p[0] for p in pairs])
    return a, b, np.zeros(len(a), dtype=np.int64)


def same_cells(cells: np.ndarray) -> list[list[int]]:
    groups: dict[int, list[int]] = {}
    for node, cell in enumerate(cells.tolist()):
        groups.setdefault(cell, []).append(node)
    return sorted(groups.values())


def test_path_of_three_splits_the_middle_from_the_ends():
    cells = equitable_cells(np.zeros(3, dtype=np.int64), *undirected([(0, 1), (1, 2)]))
    assert same_cells(cells) == [[0, 2], [1]]


def test_a_cycle_is_one_cell_until_a_node_is_coloured():
    ring = [(i, (i + 1) % 6) for i in range(6)]
    assert same_cells(equitable_cells(np.zeros(6, dtype=np.int64), *undirected(ring))) == [list(range(6))]
    # node 0 coloured apart: the others split by their distance from it
    colour = np.array([1, 0, 0, 0, 0, 0])
    assert same_cells(equitable_cells(colour, *undirected(ring))) == [[0], [1, 5], [2, 4], [3]]


def test_edge_labels_and_direction_count():
    # 0 -> 1 labelled 0, 0 -> 2 labelled 1 (both directions given with labels of their own): 1 and 2 differ
    src, dst, label = np.array([0, 1, 0, 2]), np.array([1, 0, 2, 0]), np.array([0, 2, 1, 3])
    assert same_cells(equitable_cells(np.zeros(3, dtype=np.int64), src, dst, label)) == [[0], [1], [2]]


def test_is_equitable_rejects_a_star_in_one_cell():
    src, dst, label = undirected([(0, 1), (0, 2), (0, 3)])
    assert not is_equitable(np.zeros(4, dtype=np.int64), src, dst, label)
    assert is_equitable(np.array([0, 1, 1, 1]), src, dst, label)


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 5), st.integers(0, 5)), min_size=1, max_size=8),
       st.lists(st.sampled_from([1.0, 2.0, 3.0]), min_size=6, max_size=6), st.integers(1, 3))
def test_max_min_rates_are_equal_within_a_cell(routes, capacity, copies):
    # ``copies`` disjoint copies of one random instance (flows over two of six links): flows and links of
    # a cell of the flows-links graph get the same max-min rate, to the bit
    links = np.array([(a, b if b != a else -1) for a, b in routes])
    links = np.concatenate([np.where(links >= 0, links + 6 * k, -1) for k in range(copies)])
    cap = np.tile(np.array(capacity), copies)
    n_flows, n_links = len(links), len(cap)
    flow, hop = np.nonzero(links >= 0)
    src = np.concatenate([flow, n_flows + links[flow, hop]])
    dst = np.concatenate([n_flows + links[flow, hop], flow])
    label = np.concatenate([np.zeros(len(flow), dtype=np.int64), np.ones(len(flow), dtype=np.int64)])
    colour = np.concatenate([np.zeros(n_flows, dtype=np.int64), 1 + np.searchsorted([1.0, 2.0, 3.0], cap)])
    cells = equitable_cells(colour, src, dst, label)
    assert len(cells) == n_flows + n_links
    rates = max_min_rates(links, cap)
    for members in same_cells(cells[:n_flows]):
        assert len(set(rates[members].tolist())) == 1
    if copies > 1:  # copies of a flow are alike
        assert cells[0] == cells[len(routes)]
