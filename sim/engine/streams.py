"""Streams, channels and the timeline recorder of one simulated rank."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import simpy


@dataclass(frozen=True, slots=True)
class Interval:
    """One simulated interval: who, on which stream, what, when (s), and its figures."""

    rank: int
    stream: str
    name: str
    start: float
    end: float
    args: dict[str, Any] = field(default_factory=dict)


class Timeline:
    """Every interval the step simulation produced (the debugging and trace-export record)."""

    def __init__(self) -> None:
        self.intervals: list[Interval] = []

    def add(self, rank: int, stream: str, name: str, start: float, end: float, **args: Any) -> None:
        self.intervals.append(Interval(rank, stream, name, start, end, args))

    def busy(self, rank: int, stream: str) -> float:
        """Summed duration of a stream's intervals (streams run one interval at a time)."""
        return sum(i.end - i.start for i in self.intervals if i.rank == rank and i.stream == stream)


class Busy:
    """Cumulative busy seconds of a stream (a communication channel; in full fidelity, a rank's share
    of its group's collectives)."""

    def __init__(self) -> None:
        self._done = 0.0
        self._since: float | None = None

    def start(self, now: float) -> None:
        self._since = now

    def stop(self, now: float) -> None:
        self._done += now - self._since
        self._since = None

    def busy_until(self, now: float) -> float:
        """Cumulative busy seconds up to ``now``."""
        return self._done + (now - self._since if self._since is not None else 0.0)


class Channel:
    """A communication channel (FIFO, one transfer at a time) that tracks its busy time.

    ``busy_until(now)`` lets a compute stream measure how much communication ran beside it, which
    is what slows it (SM contention).
    """

    def __init__(self, env: simpy.Environment, rank: int, name: str, timeline: Timeline) -> None:
        self.env, self.rank, self.name, self.timeline = env, rank, name, timeline
        self.resource = simpy.Resource(env, capacity=1)
        self.busy = Busy()

    def busy_until(self, now: float) -> float:
        """Cumulative busy seconds up to ``now``."""
        return self.busy.busy_until(now)

    def transfer(self, name: str, seconds: float, done: simpy.Event | None = None, **args: Any):
        """Process: queue, hold the channel for ``seconds``, then trigger ``done``."""
        yield from self.run(name, lambda: self.env.timeout(seconds), done, **args)

    def run(self, name: str, work: Callable[[], simpy.Event], done: simpy.Event | None = None, **args: Any):
        """Process: queue, hold the channel until the event ``work()`` returns has fired, then trigger
        ``done`` with (start, end)."""
        with self.resource.request() as req:
            yield req
            start = self.env.now
            self.busy.start(start)
            yield work()
            self.busy.stop(self.env.now)
            self.timeline.add(self.rank, self.name, name, start, self.env.now, **args)
        if done is not None:
            done.succeed((start, self.env.now))
