"""Streams, channels, mailboxes and the timeline recorder of simulated ranks.

Two kinds of channel:

* :class:`FifoChannel` and :class:`DpLink` are *analytic*: a transfer's start and end follow from the
  channel's queue when it is submitted (FIFO, one at a time; the DP link's two channels share its
  bandwidth equally while both move bytes), so no SimPy process runs per transfer. Only the rank that
  owns them submits, in its own time order, which is what makes this exact.
* :class:`Channel` runs transfers whose duration depends on other ranks (full fidelity: flows on a shared
  fabric) from event callbacks, still FIFO and one at a time.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import simpy

from sim.network.sharing import REL_TOL


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
    """Every interval the step simulation produced (the debugging and trace-export record). Off unless
    ``enabled`` (``--trace``, ``--plot``, tests): recording costs as much as simulating.

    The simulated ranks record (``recorded``, ``rank`` their slot); when one slot stands for several ranks (full
    fidelity's classes of alike ranks, :meth:`stand_for`), every rank's copy is made only when ``intervals`` is
    first read: a trace is written from the slots (``groups``) without making them."""

    def __init__(self, enabled: bool = True) -> None:
        self.enabled = enabled
        self.recorded: list[Interval] = []
        self.members: list[list[int]] | None = None  # per slot, the ranks it stands for; None: itself
        self.stages: list[int] | None = None  # per slot, its pipeline stage; None: the slot is its stage
        self._every: list[Interval] | None = None

    def add(self, rank: int, stream: str, name: str, start: float, end: float, **args: Any) -> None:
        if self.enabled:
            self.recorded.append(Interval(rank, stream, name, start, end, args))

    def stand_for(self, members: list[list[int]], stages: list[int]) -> None:
        """Once the step is over: slot ``k`` recorded the intervals of each rank of ``members[k]`` (ranks
        disjoint across slots), all of pipeline stage ``stages[k]``."""
        self.members, self.stages, self._every = members, stages, None

    @property
    def intervals(self) -> list[Interval]:
        """Every rank's intervals: each recorded one, copied to every rank its slot stands for (in that order)."""
        if self.members is None:
            return self.recorded
        if self._every is None:
            members = self.members
            self._every = [Interval(g, i.stream, i.name, i.start, i.end, i.args)
                           for i in self.recorded for g in members[i.rank]]
        return self._every

    def count(self) -> int:
        """How many intervals ``intervals`` holds (without making the copies)."""
        if self.members is None:
            return len(self.recorded)
        members = self.members
        return sum(len(members[i.rank]) for i in self.recorded)

    def stage(self, slot: int) -> int:
        """The pipeline stage of a slot."""
        return slot if self.stages is None else self.stages[slot]

    def groups(self) -> list[tuple[int, list[Interval], list[int]]]:
        """Per slot that recorded anything, in slot order: the slot, its intervals (in recording order) and the
        ranks they stand for. Rank ``g``'s intervals in ``intervals`` are its slot's, in the same order, with
        rank ``g``."""
        by_slot: dict[int, list[Interval]] = {}
        for i in self.recorded:
            by_slot.setdefault(i.rank, []).append(i)
        members = self.members
        return [(k, by_slot[k], [k] if members is None else members[k]) for k in sorted(by_slot)]

    def by_stage(self) -> list[Interval]:
        """One rank's intervals per pipeline stage, ``rank`` its stage (what a plot by stage draws): the recorded
        ones when each slot is a stage; else those of the first slot of each stage (its lowest rank: ranks of one
        stage may differ under full fidelity)."""
        if self.stages is None:
            return self.recorded
        first: dict[int, int] = {}
        for slot, stage in enumerate(self.stages):
            first.setdefault(stage, slot)
        shown = {slot: stage for stage, slot in first.items()}
        return [Interval(shown[i.rank], i.stream, i.name, i.start, i.end, i.args) for i in self.recorded
                if i.rank in shown]

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
        assert self._since is not None
        self._done += now - self._since
        self._since = None

    def busy_until(self, now: float) -> float:
        """Cumulative busy seconds up to ``now``."""
        return self._done + (now - self._since if self._since is not None else 0.0)


class FifoChannel:
    """A point-to-point channel with fixed-duration transfers (FIFO, one at a time), costed analytically.

    Its transfers are submitted by its owner at its own clock, so one that has to queue starts when the one
    before ends: from any instant of the owner's on, the channel is busy without a gap until ``free_at``
    (what a block computing beside it needs to know, ``SymmetricIO._compute``: no busy history is kept)."""

    __slots__ = ("free_at", "name", "rank", "timeline")

    def __init__(self, rank: int, name: str, timeline: Timeline) -> None:
        self.rank, self.name, self.timeline = rank, name, timeline
        self.free_at = 0.0

    def submit(self, now: float, name: str, seconds: float, **args: Any) -> tuple[float, float]:
        """Queue a transfer issued at ``now``: its (start, end)."""
        start = max(now, self.free_at)
        end = start + seconds
        self.free_at = end
        self.timeline.add(self.rank, self.name, name, start, end, **args)
        return start, end


class DpTransfer:
    """One transfer on a :class:`DpLink` channel: a latency, then ``work`` seconds of exclusive link time."""

    __slots__ = ("channel", "end", "latency", "left", "name", "nbytes", "start")

    def __init__(self, channel: int, name: str, latency: float, work: float, nbytes: float) -> None:
        self.channel, self.name, self.latency, self.left, self.nbytes = channel, name, latency, work, nbytes
        self.start: float | None = None
        self.end: float | None = None


class DpLink:
    """The DP group path of one rank with its two channels (gradient reduction, parameter gather): each
    channel runs its transfers in order; a transfer holds its channel through its latency and its bytes;
    while both channels move bytes they share the link equally (max-min on one link).

    Analytic and lazy: the state is moved only from phase change (a latency over, a transfer done) to phase
    change, and only as far as the owning rank asks, which is exact because only that rank submits, in its
    own time order: nothing can change the past of a time it has reached. Between phase changes nothing
    needs moving (the moving heads' remaining work falls linearly), so a question about a time before the
    next one (``next``) costs nothing. Written out for its two channels (the step's innermost loop)."""

    def __init__(self, rank: int, names: tuple[str, str], timeline: Timeline) -> None:
        self.rank, self.names, self.timeline = rank, names, timeline
        self.queues: tuple[deque[DpTransfer], deque[DpTransfer]] = (deque(), deque())
        self.drained = [0.0, 0.0]  # when each channel's queue last became empty
        self.t = 0.0  # the last phase change moved to: the heads' remaining work is as of then
        self.next = math.inf  # no phase change before this (a lower bound)

    def submit(self, now: float, channel: int, name: str, latency: float, work: float, nbytes: float) -> DpTransfer:
        if now >= self.next:  # the phase changes up to now first
            self._run(now, None)
        tr = DpTransfer(channel, name, latency, work, nbytes)
        queue = self.queues[channel]
        queue.append(tr)
        if len(queue) == 1:  # a new head: its latency ends at a phase change
            tr.start = now
            if now + latency < self.next:
                self.next = now + latency
        return tr

    def busy_between(self, start: float, end: float) -> tuple[float, float]:
        """Busy seconds of both channels from ``start`` (not before the owner's last submission) to ``end``
        (gather's, then reduce's: the order the step adds them in); moves the link to ``end``. A channel is busy
        while its queue holds a transfer (its head holds it through its latency and its bytes), and nothing is
        submitted between the two (the owner is computing), so a channel busy at ``start`` stays busy until its
        queue drains: one pass to ``end``, no busy history."""
        if end >= self.next:
            self._run(end, None)
        q0, q1 = self.queues
        gather = (end if q1 else self.drained[1]) - start
        reduce = (end if q0 else self.drained[0]) - start
        return (gather if gather > 0.0 else 0.0), (reduce if reduce > 0.0 else 0.0)

    def finish(self, tr: DpTransfer) -> float:
        """End of ``tr``, moving the link until it is done (the owner is waiting for it: no new
        submission can come before)."""
        if tr.end is None:
            self._run(math.inf, tr)
        return tr.end  # type: ignore[return-value]

    def finish_all(self, transfers: list[DpTransfer]) -> None:
        """Move the link until every one of ``transfers`` (in submission order) is done: as far as :meth:`finish` of
        each in turn, in at most one move per channel (each runs its transfers in order: its last of them ends
        after the others). Stopping at a phase change and going on from it is the same arithmetic."""
        last: dict[int, DpTransfer] = {}
        for tr in transfers:
            last[tr.channel] = tr
        for tr in last.values():
            if tr.end is None:
                self._run(math.inf, tr)

    def _run(self, until: float, target: DpTransfer | None) -> None:
        """Move from phase change to phase change up to ``until``, or until ``target`` is done. A head moves bytes
        once its latency is over; the moving heads share the link equally. One loop, no call per phase change:
        the step's innermost loop."""
        q0, q1 = self.queues
        if not (q0 and q1):  # one channel busy at most: the other stays idle (only the owner submits, not now)
            if q0 or q1:
                self._run_one(q0 if q0 else q1, until, target)
            else:
                self.next = math.inf
            return
        t = self.t
        nxt = math.inf
        while q0 or q1:
            if target is not None and target.end is not None:
                nxt = t  # not looked at: the next question looks
                break
            h0 = q0[0] if q0 else None
            h1 = q1[0] if q1 else None
            m0 = h0 is not None and h0.start + h0.latency <= t  # type: ignore[operator]
            m1 = h1 is not None and h1.start + h1.latency <= t  # type: ignore[operator]
            n = m0 + m1
            nxt = math.inf
            if h0 is not None:
                nxt = t + h0.left * n if m0 else h0.start + h0.latency  # type: ignore[operator]
            if h1 is not None:
                other = t + h1.left * n if m1 else h1.start + h1.latency  # type: ignore[operator]
                if other < nxt:
                    nxt = other
            if nxt > until:
                break
            if nxt <= t:
                if n:
                    # what is left is below the clock's resolution at t (a very slow link: t is large), so the
                    # clock cannot move: those transfers are done now, or the loop would spin forever
                    tick = math.ulp(t)
                    if m0 and h0.left * n <= tick:  # type: ignore[union-attr]
                        h0.left = 0.0  # type: ignore[union-attr]
                    if m1 and h1.left * n <= tick:  # type: ignore[union-attr]
                        h1.left = 0.0  # type: ignore[union-attr]
            else:
                if n:
                    share = (nxt - t) / n
                    if m0:
                        h0.left -= share  # type: ignore[union-attr]
                    if m1:
                        h1.left -= share  # type: ignore[union-attr]
                t = nxt
            if m0 and h0.left <= REL_TOL * max(1.0, abs(h0.left)):  # type: ignore[union-attr]
                self._complete(h0, q0, t)  # type: ignore[arg-type]
            if m1 and h1.left <= REL_TOL * max(1.0, abs(h1.left)):  # type: ignore[union-attr]
                self._complete(h1, q1, t)  # type: ignore[arg-type]
        self.t = t
        self.next = nxt

    def _run_one(self, queue: deque[DpTransfer], until: float, target: DpTransfer | None) -> None:
        """:meth:`_run` with one channel busy (most of the time: gathers and reductions take turns), the same
        arithmetic without the other's terms (one moving head: n = 1, ``x * 1`` and ``x / 1`` are ``x``)."""
        t = self.t
        nxt = math.inf
        timeline = self.timeline
        while queue:
            if target is not None and target.end is not None:
                nxt = t
                break
            head = queue[0]
            ready = head.start + head.latency  # type: ignore[operator]
            moving = ready <= t
            nxt = t + head.left if moving else ready
            if nxt > until:
                break
            if nxt <= t:
                if moving and head.left <= math.ulp(t):  # below the clock's resolution (see _run)
                    head.left = 0.0
            else:
                if moving:
                    head.left -= nxt - t
                t = nxt
            # head.left <= REL_TOL * max(1.0, abs(head.left)), without the calls
            if moving and (head.left <= REL_TOL or head.left <= REL_TOL * head.left):
                head.end = t  # _complete, written out
                queue.popleft()
                if timeline.enabled:
                    timeline.add(self.rank, self.names[head.channel], head.name, head.start, t,  # type: ignore[arg-type]
                                 bytes=head.nbytes)
                if queue:
                    queue[0].start = t
                else:
                    self.drained[head.channel] = t
        self.t = t
        self.next = nxt

    def _complete(self, tr: DpTransfer, queue: deque[DpTransfer], t: float) -> None:
        assert tr.start is not None
        tr.end = t
        queue.popleft()
        if self.timeline.enabled:
            self.timeline.add(self.rank, self.names[tr.channel], tr.name, tr.start, t, bytes=tr.nbytes)
        if queue:
            queue[0].start = t
        else:
            self.drained[tr.channel] = t


class Mailbox:
    """Messages between rank processes: a value (a transfer's start and end) under a key, and SimPy events
    for the ranks that ask before it is sent.

    A waiting rank is woken as soon as the message is sent, not at its arrival time: each rank keeps its
    own clock and a message carries its arrival, and nothing but messages passes between ranks, so the
    order in which SimPy resumes them cannot change a figure (a rank's work is a function of the messages
    it receives); one event per wait instead of a timeout and an event. Each message is received once, so
    the box holds only those sent and not yet received (a step sends ~10^5: a box of them all is slow to
    reach)."""

    def __init__(self, env: simpy.Environment) -> None:
        self.env = env
        self.values: dict[Any, tuple[float, float]] = {}
        self.waiting: dict[Any, simpy.Event] = {}

    def put(self, key: Any, value: tuple[float, float]) -> None:
        if key in self.waiting:  # to the waiting rank
            self.waiting.pop(key).succeed(value)
        else:
            self.values[key] = value

    def get(self, key: Any):
        """Process step: the message under ``key``, waiting for it if it has not been sent."""
        value = self.values.pop(key, None)
        if value is None:
            self.waiting[key] = event = self.env.event()
            return (yield event)
        return value


class Channel:
    """A communication channel of full fidelity (FIFO, one transfer at a time) whose transfers last as long as
    the fabric says: each waits its latency, then for the event its flows return; driven by event callbacks,
    no SimPy process per transfer. Tracks its busy time: ``busy_until(now)`` lets a compute stream measure how
    much communication ran beside it, which is what slows it (SM contention)."""

    def __init__(self, env: simpy.Environment, rank: int, name: str, timeline: Timeline) -> None:
        self.env, self.rank, self.name, self.timeline = env, rank, name, timeline
        self.busy = Busy()
        self.queue: deque[tuple[str, float, Callable[[], simpy.Event], simpy.Event, dict[str, Any]]] = deque()
        self.active = False

    def busy_until(self, now: float) -> float:
        """Cumulative busy seconds up to ``now``."""
        return self.busy.busy_until(now)

    def submit(self, name: str, latency: float, flows: Callable[[], simpy.Event], done: simpy.Event,
               **args: Any) -> None:
        """Queue a transfer: when the channel is free, ``latency`` seconds, then the event ``flows()`` returns
        (started then); ``done`` fires with (start, end) when that event has."""
        self.queue.append((name, latency, flows, done, args))
        if not self.active:
            self._start()

    def _start(self) -> None:
        name, latency, flows, done, args = self.queue.popleft()
        self.active = True
        env = self.env
        start = env.now
        self.busy.start(start)

        def finish(_: simpy.Event) -> None:
            now = env.now
            self.busy.stop(now)
            self.timeline.add(self.rank, self.name, name, start, now, **args)
            self.active = False
            done.succeed((start, now))
            if self.queue:
                self._start()

        env.timeout(latency).callbacks.append(lambda _: flows().callbacks.append(finish))
