"""The fabric as a SimPy process: flows share links max-min fairly, re-solved whenever flows start or end.

``FabricFlows.transfer(links, nbytes, cap, weight)`` starts a batch of flows (one collective's or one
send's) and returns an event that fires when the last of them has moved its bytes; a flow of ``weight``
stands for that many alike flows on each of its links (full fidelity's classes of alike ranks). Between
changes every flow moves at its max-min rate (``sim.network.sharing.max_min_rates`` over all active
flows); a start or a finish advances every flow to now, drops the finished ones and solves again. Batches started at the
same simulated instant are solved once together (the fabric process wakes after them).
"""

from __future__ import annotations

import numpy as np
import simpy

from sim.network.sharing import REL_TOL, max_min_rates


class FabricFlows:
    """Active flows on links of ``capacity`` (bytes/s per link id)."""

    def __init__(self, env: simpy.Environment, capacity: np.ndarray) -> None:
        self.env, self.capacity = env, capacity
        self.links = np.zeros((0, 1), dtype=np.int64)
        self.weight = np.zeros((0, 1))
        self.left = np.zeros(0)
        self.total = np.zeros(0)
        self.cap = np.zeros(0)
        self.batch = np.zeros(0, dtype=np.int64)
        self.rates = np.zeros(0)
        self.events: dict[int, simpy.Event] = {}
        self._next_batch = 0
        self._last = 0.0
        self._wake = env.event()
        # started, not yet merged: links, bytes, caps, weights, batch
        self._pending: list[tuple[np.ndarray, np.ndarray, np.ndarray | None, np.ndarray, int]] = []
        self.solves = 0
        env.process(self._run())

    def transfer(self, links: np.ndarray, nbytes: np.ndarray, cap: np.ndarray | None = None,
                 weight: np.ndarray | None = None) -> simpy.Event:
        """Start flows (routes ``links``, ``nbytes`` each, optional rate caps, optional flows per link entry);
        the event fires when all of them are done."""
        done = self.env.event()
        keep = np.asarray(nbytes) > 0
        if not keep.any():
            done.succeed()
            return done
        self._advance()
        caps = None if cap is None else np.asarray(cap, dtype=float)[keep]
        links = np.asarray(links, dtype=np.int64)[keep]
        weights = np.ones(links.shape) if weight is None else np.asarray(weight, dtype=float)[keep]
        self._pending.append((links, np.asarray(nbytes, dtype=float)[keep], caps, weights, self._next_batch))
        self.events[self._next_batch] = done
        self._next_batch += 1
        if not self._wake.triggered:
            self._wake.succeed()
        return done

    def _merge(self) -> None:
        """Append the flows started since the fabric last ran (one concatenation for all of them: transfers
        started at one instant are solved together anyway)."""
        if not self._pending:
            return
        links, nbytes, caps, weights, batches = zip(*self._pending, strict=True)
        self._pending = []
        width = max(self.links.shape[1], *(x.shape[1] for x in links))
        self.links = np.concatenate([_pad(self.links, width), *(_pad(x, width) for x in links)])
        self.weight = np.concatenate([_pad(self.weight, width), *(_pad(x, width) for x in weights)])
        self.left = np.concatenate([self.left, *nbytes])
        self.total = np.concatenate([self.total, *nbytes])
        self.cap = np.concatenate([self.cap, *(np.full(len(n), np.inf) if c is None else c
                                               for n, c in zip(nbytes, caps, strict=True))])
        self.batch = np.concatenate([self.batch, *(np.full(len(n), b) for n, b in zip(nbytes, batches, strict=True))])
        self.rates = np.concatenate([self.rates, np.zeros(sum(len(n) for n in nbytes))])

    def _advance(self) -> None:
        now = self.env.now
        self.left -= self.rates * (now - self._last)
        self._last = now

    def _solve(self) -> None:
        self.solves += 1
        self.rates = max_min_rates(self.links, self.capacity, self.cap, self.weight)

    def _finish(self) -> None:
        """Drop flows that are done and fire the events of batches with no flow left."""
        done = self.left <= REL_TOL * self.total
        if not done.any():
            return
        finished = set(np.unique(self.batch[done]).tolist())
        keep = ~done
        self.links, self.weight = self.links[keep], self.weight[keep]
        self.left, self.total = self.left[keep], self.total[keep]
        self.cap, self.batch, self.rates = self.cap[keep], self.batch[keep], self.rates[keep]
        for b in finished - set(np.unique(self.batch).tolist()):
            self.events.pop(b).succeed()

    def _run(self):
        while True:
            if not len(self.left) and not self._pending:
                yield self._wake
                self._wake = self.env.event()
            self._advance()
            self._merge()
            self._finish()
            if not len(self.left):
                continue
            self._solve()
            if np.isinf(self.rates).any():  # routes that cross no link: done at once
                self.left[np.isinf(self.rates)] = 0.0
                self.rates[np.isinf(self.rates)] = 0.0
                continue
            finish_in = self.left / self.rates
            dt = float(np.min(finish_in))
            if self.env.now + dt == self.env.now:
                # below the clock's resolution at this time (a slow fabric: seconds are large), the clock
                # would not move and the loop would spin: the flows due within one tick are done now
                self.left[finish_in <= np.spacing(self.env.now)] = 0.0
                continue
            yield self.env.timeout(dt) | self._wake
            if self._wake.triggered:
                self._wake = self.env.event()


def _pad(links: np.ndarray, width: int) -> np.ndarray:
    """Routes (or their weights) padded with -1 to ``width`` hops (np.pad costs ~50x more on these small
    arrays; a padded weight is never read: its link is -1)."""
    missing = width - links.shape[1]
    if not missing:
        return links
    return np.concatenate([links, np.full((len(links), missing), -1, dtype=links.dtype)], axis=1)
