"""Symmetry of a job's ranks and flows: the coarsest equitable partition of a coloured graph.

Full fidelity (``sim.engine.full``) describes a step as a graph: ranks, their pipeline routes, DP groups and
their ring flows, and the fabric's links, each node coloured by what it is (a rank's stage and block
durations, a route's latency and efficiency, a link's capacity), edges for "sends on", "crosses", "is a
member of". A partition of the nodes is *equitable* when the nodes of a cell agree in colour and every node
of a cell has as many neighbours in each cell, per edge label, as any other node of that cell.

On an equitable partition max-min sharing is constant per cell: progressive filling
(``sim.network.sharing``) raises all flows of a cell together, every link of a cell then carries the same
number of unfrozen flows of each flow cell with the same capacity left, so links of a cell saturate in the
same round and flows of a cell freeze at the same rate (by induction over the rounds; each round's sums
are of the same numbers, so the rates are equal to the bit). The same holds on any union of flow cells,
so ranks of a cell, started together and running the same op list, stay together for the whole step:
simulating one rank per cell, with the flows of all of them on the fabric, gives every rank's figures.

:func:`equitable_cells` refines the colours (Weisfeiler-Lehman colour refinement, neighbour multisets
hashed to 64 bits) and then checks the result exactly; should a hash collision ever make it wrong, the
check fails and every node gets its own cell (no reduction, still exact).
"""

from __future__ import annotations

import numpy as np

_GOLDEN = np.uint64(0x9E3779B97F4A7C15)


def _mix(x: np.ndarray) -> np.ndarray:
    """splitmix64 finaliser: a well-spread 64-bit hash of each value (wrapping arithmetic)."""
    z = x + _GOLDEN
    z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return z ^ (z >> np.uint64(31))


def equitable_cells(colour: np.ndarray, src: np.ndarray, dst: np.ndarray, label: np.ndarray) -> np.ndarray:
    """Cell id of every node in the coarsest equitable partition refining ``colour``.

    Parameters
    ----------
    colour : (nodes,) int array, the initial colours.
    src, dst, label : (edges,) int arrays of directed labelled edges (give both directions, with labels of
        their own, for an undirected relation; an edge repeated counts as often as it appears).

    Returns
    -------
    (nodes,) int array of cell ids (0..cells-1); ``np.arange(nodes)`` when the exact check fails.
    """
    n = len(colour)
    with np.errstate(over="ignore"):
        cells = np.unique(colour, return_inverse=True)[1].astype(np.int64)
        count = int(cells.max()) + 1 if n else 0
        lab = label.astype(np.uint64) << np.uint64(40)
        while True:
            h = _mix(lab + cells[dst].astype(np.uint64))
            acc = np.zeros(n, dtype=np.uint64)
            np.add.at(acc, src, h)
            acc = _mix(acc ^ _mix(cells.astype(np.uint64)))
            _, new = np.unique(acc, return_inverse=True)
            new_count = int(new.max()) + 1 if n else 0
            if new_count == count:
                break
            cells, count = new.astype(np.int64), new_count
    _, first = np.unique(cells, return_index=True)
    keeps_colours = bool(np.all(colour == colour[first][cells]))
    return cells if keeps_colours and is_equitable(cells, src, dst, label) else np.arange(n)


def is_equitable(cells: np.ndarray, src: np.ndarray, dst: np.ndarray, label: np.ndarray) -> bool:
    """Whether every node of each cell has the same number of ``label`` edges into each cell (exact)."""
    if not len(src):
        return True
    n, labels = len(cells), int(label.max()) + 1
    if n * labels * n * (len(src) + 1) >= 2**63:  # the integer keys below would overflow: no verdict
        return False
    # (node, label, neighbour cell) -> edges, as one integer key
    keys, per_node = np.unique((src * labels + label) * n + cells[dst], return_counts=True)
    node, rest = np.divmod(keys, labels * n)
    # (cell, label, neighbour cell, edges) -> nodes having exactly that many: must be the whole cell
    rows, nodes = np.unique((cells[node] * labels * n + rest) * (len(src) + 1) + per_node, return_counts=True)
    size = np.bincount(cells)
    return bool(np.all(nodes == size[rows // ((len(src) + 1) * labels * n)]))
