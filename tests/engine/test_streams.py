"""The analytic channels of the symmetric step engine (sim/engine/streams.py) against hand-computed timings."""

from __future__ import annotations

import simpy

from sim.engine.streams import DpLink, FifoChannel, Mailbox, Timeline

REDUCE, GATHER = 0, 1


def link() -> DpLink:
    return DpLink(0, ("dp_reduce", "dp_gather"), Timeline(enabled=True))


def test_one_transfer_holds_its_channel_through_latency_and_bytes():
    dp = link()
    tr = dp.submit(0.0, REDUCE, "r", 1.0, 2.0, 8.0)
    # busy from its submission on, latency included; the other channel idle
    assert dp.busy_between(0.5, 1.5) == (0.0, 1.0)
    assert dp.finish(tr) == 3.0
    assert dp.busy_between(3.0, 4.0) == (0.0, 0.0)
    (interval,) = dp.timeline.intervals
    assert (interval.stream, interval.start, interval.end, interval.args) == ("dp_reduce", 0.0, 3.0, {"bytes": 8.0})


def test_two_channels_share_the_link_while_both_move_bytes():
    dp = link()
    gather = dp.submit(0.0, GATHER, "g", 0.0, 1.0, 1.0)
    reduce = dp.submit(0.0, REDUCE, "r", 0.0, 3.0, 1.0)
    # half the link each until the gather is done (1 s of work at half rate: t = 2), then the reduce alone: its
    # 3 - 1 = 2 s left end at 4
    assert dp.busy_between(1.0, 3.0) == (1.0, 2.0)
    assert gather.end == 2.0
    assert dp.finish(reduce) == 4.0


def test_a_queued_transfer_starts_when_the_one_before_ends():
    dp = link()
    first = dp.submit(0.0, REDUCE, "a", 1.0, 1.0, 1.0)
    second = dp.submit(0.5, REDUCE, "b", 1.0, 1.0, 1.0)
    assert dp.finish(second) == 4.0
    assert (first.start, first.end, second.start) == (0.0, 2.0, 2.0)
    # drained at 4: busy from 3 to 4 of a question from 3 to 6
    assert dp.busy_between(3.0, 6.0) == (0.0, 1.0)


def test_a_question_before_the_next_phase_change_moves_nothing():
    dp = link()
    tr = dp.submit(0.0, REDUCE, "r", 1.0, 10.0, 1.0)
    assert dp.busy_between(0.0, 0.5) == (0.0, 0.5)
    assert (dp.t, tr.left) == (0.0, 10.0)  # the state stays at its last phase change
    assert dp.busy_between(0.5, 6.0) == (0.0, 5.5)
    assert (dp.t, tr.left) == (1.0, 10.0)  # latency over at 1; no phase change since
    assert dp.finish(tr) == 11.0


def test_fifo_channel_queues_behind_its_last_transfer():
    channel = FifoChannel(0, "pp_send_fwd", Timeline(enabled=False))
    assert channel.submit(0.0, "a", 2.0) == (0.0, 2.0)
    assert channel.submit(1.0, "b", 2.0) == (2.0, 4.0)
    assert channel.submit(5.0, "c", 1.0) == (5.0, 6.0)
    assert channel.free_at == 6.0


def test_mailbox_wakes_a_waiting_rank_with_the_message():
    env = simpy.Environment()
    mail = Mailbox(env)
    got = []

    def receiver():
        got.append((yield from mail.get("k")))

    env.process(receiver())
    env.run()
    assert got == []  # waiting
    mail.put("k", (1.0, 2.5))
    env.run()
    assert got == [(1.0, 2.5)]
