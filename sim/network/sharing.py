"""Fair sharing of links between concurrent flows: flow-level max-min (progressive filling).

A flow is a route (link ids, ``-1`` padded) and optionally a rate cap; links have capacities in
bytes/s. :func:`max_min_rates` gives every flow its max-min fair rate: all unfrozen flows grow
together until a link saturates, the flows through it freeze at that rate, and the rest keep growing
(Bertsekas & Gallager, Data Networks, 6.5.2). :func:`drain` advances flows with given byte counts,
recomputing the rates whenever a flow finishes, and returns the finish times. Pure numpy; the SimPy
process that does the same while flows start at arbitrary times is ``sim.engine.fabric``.
"""

from __future__ import annotations

import numpy as np

#: A flow counts as finished (and a link as saturated) within this relative tolerance.
REL_TOL = 1e-9


def max_min_rates(links: np.ndarray, capacity: np.ndarray, cap: np.ndarray | None = None,
                  weight: np.ndarray | None = None) -> np.ndarray:
    """Max-min fair rate (bytes/s) of every flow.

    Parameters
    ----------
    links : (flows, hops) int array of link ids, ``-1`` where a route is shorter.
    capacity : capacity of every link id, bytes/s.
    cap : optional per-flow rate limit, bytes/s (``inf`` for none).
    weight : optional (flows, hops) counts: the flow stands for ``weight`` alike flows on that link (a cell of
        an equitable partition, ``sim.network.symmetry``, whose links of a cell stand for one); 1 if omitted.

    Returns
    -------
    rates : (flows,) float array; a flow with no links and no cap gets ``inf``.
    """
    links = np.asarray(links, dtype=np.int64).reshape(len(links), -1)
    n_flows = len(links)
    remaining = np.asarray(capacity, dtype=float).copy()
    if weight is None:
        weight = np.ones(links.shape)
    if cap is not None:  # a rate cap is a private link of that capacity
        extra = np.arange(len(remaining), len(remaining) + n_flows)
        links = np.concatenate([links, np.where(np.isfinite(cap), extra, -1)[:, None]], axis=1)
        weight = np.concatenate([weight, np.ones((n_flows, 1))], axis=1)
        remaining = np.concatenate([remaining, np.where(np.isfinite(cap), cap, 0.0)])
    valid = links >= 0
    flow_of = np.repeat(np.arange(n_flows), links.shape[1])[valid.ravel()]
    link_of = links[valid]
    weight_of = np.asarray(weight, dtype=float)[valid]
    # only the links some flow crosses, renumbered (a fabric has many more): the same figures per link
    crossed = np.zeros(len(remaining), dtype=bool)
    crossed[link_of] = True
    link_of = (np.cumsum(crossed) - 1)[link_of]
    remaining = remaining[crossed]
    rates = np.zeros(n_flows)
    frozen = np.logical_not(valid.any(axis=1))
    rates[frozen] = np.inf
    while not frozen.all():
        # flow_of / link_of hold only the unfrozen flows' (flow, link) pairs: frozen ones are dropped below
        # flows on each link (weights are small whole numbers: the float sums are exact)
        count = np.bincount(link_of, weights=weight_of, minlength=len(remaining))
        used = count > 0
        share = np.full(len(remaining), np.inf)
        share[used] = remaining[used] / count[used]
        step = share.min()
        rates[~frozen] += step
        remaining[used] -= step * count[used]
        saturated = used & (share <= step * (1 + REL_TOL))
        hit = np.zeros(n_flows, dtype=bool)
        hit[flow_of[saturated[link_of]]] = True
        frozen |= hit
        keep = ~hit[flow_of]
        flow_of, link_of, weight_of = flow_of[keep], link_of[keep], weight_of[keep]
    return rates


def drain(links: np.ndarray, nbytes: np.ndarray, capacity: np.ndarray,
          cap: np.ndarray | None = None) -> np.ndarray:
    """Finish time (s from a common start) of flows of ``nbytes`` bytes each sharing ``capacity``
    max-min fairly, with the rates recomputed every time a flow finishes."""
    links = np.asarray(links, dtype=np.int64).reshape(len(links), -1)
    left = np.asarray(nbytes, dtype=float).copy()
    finish = np.zeros(len(left))
    live = left > 0
    now = 0.0
    while live.any():
        idx = np.flatnonzero(live)
        rates = max_min_rates(links[idx], capacity, None if cap is None else cap[idx])
        unlimited = ~np.isfinite(rates)  # a flow that crosses no link arrives at once
        if unlimited.any():
            finish[idx[unlimited]] = now
            live[idx[unlimited]] = False
            continue
        dt = np.min(left[idx] / rates)
        now += dt
        left[idx] -= rates * dt
        done = idx[left[idx] <= REL_TOL * np.asarray(nbytes)[idx]]
        finish[done] = now
        live[done] = False
    return finish
