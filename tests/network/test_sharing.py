"""Max-min fair sharing (sim/network/sharing.py) against hand-computed cases and its defining property."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sim.network.sharing import drain, max_min_rates


def test_two_flows_on_one_link_get_half_each():
    assert max_min_rates(np.array([[0], [0]]), np.array([10.0])).tolist() == [5.0, 5.0]


def test_classic_three_link_example():
    # links A (cap 10), B (cap 4); flow 0 uses A and B, flows 1-2 use A only, flow 3 uses B only:
    # B saturates first at 2 each (flows 0, 3); A then gives flows 1, 2 (10 - 2) / 2 = 4 each.
    links = np.array([[0, 1], [0, -1], [0, -1], [1, -1]])
    rates = max_min_rates(links, np.array([10.0, 4.0]))
    assert rates.tolist() == pytest.approx([2.0, 4.0, 4.0, 2.0])


def test_rate_cap_frees_capacity_for_the_others():
    rates = max_min_rates(np.array([[0], [0]]), np.array([10.0]), cap=np.array([1.0, np.inf]))
    assert rates.tolist() == pytest.approx([1.0, 9.0])


def test_flow_without_links_is_unlimited():
    assert np.isinf(max_min_rates(np.array([[-1]]), np.array([1.0]))[0])


def test_drain_recomputes_when_a_flow_finishes():
    # two flows share a 10 B/s link: the 10 B flow ends at t = 2 (5 B/s), then the 30 B flow has
    # moved 10 B and takes the whole link for its last 20 B: t = 2 + 2 = 4
    finish = drain(np.array([[0], [0]]), np.array([10.0, 30.0]), np.array([10.0]))
    assert finish.tolist() == pytest.approx([2.0, 4.0])


@settings(max_examples=60, deadline=None)
@given(st.integers(1, 6), st.integers(1, 12), st.data())
def test_max_min_is_feasible_and_every_flow_has_a_bottleneck(n_links, n_flows, data):
    capacity = np.array(data.draw(st.lists(st.floats(1, 100), min_size=n_links, max_size=n_links)))
    routes = [data.draw(st.lists(st.integers(0, n_links - 1), min_size=1, max_size=3, unique=True))
              for _ in range(n_flows)]
    links = np.array([r + [-1] * (3 - len(r)) for r in routes], dtype=np.int64)
    rates = max_min_rates(links, capacity)
    load = np.zeros(n_links)
    for f, row in enumerate(links):
        for link in row[row >= 0]:
            load[link] += rates[f]
    assert np.all(load <= capacity * (1 + 1e-9))
    # max-min: every flow crosses a saturated link on which no other flow is faster
    for f, row in enumerate(links):
        ok = False
        for link in row[row >= 0]:
            on_link = [g for g in range(n_flows) if link in links[g]]
            if load[link] >= capacity[link] * (1 - 1e-9) and rates[f] >= max(rates[on_link]) * (1 - 1e-9):
                ok = True
        assert ok


def test_a_weighted_flow_shares_like_that_many_flows():
    # flow 0 stands for 2 flows on link 0 (cap 9): 3 flows there, 3 B/s each; flow 1 also crosses link 1
    # (cap 2) alone, which caps it at 2, so link 0 gives the other two (9 - 2) / 2 = 3.5 each
    rates = max_min_rates(np.array([[0, -1], [0, 1]]), np.array([9.0, 2.0]), weight=np.array([[2.0, 0.0], [1.0, 1.0]]))
    assert rates.tolist() == [3.5, 2.0]
    # the same as the flows written out, to the bit
    links = np.array([[0, 1], [0, -1], [0, -1], [1, 2], [1, 2]])
    capacity = np.array([7.0, 5.0, 3.0])
    weighted = max_min_rates(np.array([[0, 1], [0, -1], [1, 2]]), capacity,
                             weight=np.array([[1.0, 1.0], [2.0, 0.0], [2.0, 2.0]]))
    assert weighted.tolist() == max_min_rates(links, capacity)[[0, 1, 3]].tolist()
