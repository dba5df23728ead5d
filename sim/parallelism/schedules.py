"""Pipeline schedules as ordered op lists per stage (pure, testable).

An op is ``(phase, microbatch, chunk)`` with phase :class:`Phase` (forward or backward). The engine runs each stage's
list in order; waiting for inputs from neighbours is what makes the bubble emerge.
"""

from __future__ import annotations

from enum import StrEnum
from typing import NamedTuple, TypeVar

from sim.specs.enums import Schedule


class Phase(StrEnum):
    """A pass over a block; the value is the letter timeline labels carry (``F3.vs1``)."""

    FORWARD = "F"
    BACKWARD = "B"


T = TypeVar("T")


class PipeOp(NamedTuple):
    phase: Phase
    microbatch: int
    chunk: int


def gpipe(m: int) -> list[PipeOp]:
    """All forwards, then all backwards (Huang et al. 2019)."""
    return stage_ops(Schedule.GPIPE, 1, 1, 0, m)


def one_f_one_b(p: int, rank: int, m: int) -> list[PipeOp]:
    """PipeDream-Flush 1F1B (Narayanan et al. 2021 §2.2.1): warm-up, steady 1F1B, cool-down."""
    return stage_ops(Schedule.ONE_F_ONE_B, p, 1, rank, m)


def _virtual(k: int, p: int, v: int) -> tuple[int, int]:
    """Megatron's mapping of the k-th forward of a rank to (microbatch, chunk)."""
    group, within = divmod(k, p * v)
    return group * p + within % p, within // p


def interleaved(p: int, v: int, rank: int, m: int) -> list[PipeOp]:
    """Interleaved 1F1B (Narayanan et al. 2021 §2.2.2; Megatron-LM schedules.py); needs m % p == 0."""
    return stage_ops(Schedule.INTERLEAVED, p, v, rank, m)


def forward_order(schedule: Schedule, p: int, v: int, m: int) -> list[tuple[int, int]]:
    """(microbatch, chunk) of the k-th forward of every rank; its k-th backward is of the same micro-batch and the
    mirrored chunk, v - 1 - chunk (Megatron's interleaved order: groups of p micro-batches per chunk)."""
    if schedule is Schedule.INTERLEAVED:
        return [_virtual(k, p, v) for k in range(m * v)]
    return [(i, 0) for i in range(m)]


def warmup_forwards(schedule: Schedule, p: int, v: int, rank: int, m: int) -> int:
    """Forwards rank ``rank`` runs before its first backward's turn: all of them (GPipe), p - rank - 1 (1F1B), or
    Megatron's interleaved warm-up 2 (p - rank - 1) + (v - 1) p, capped at the micro-batches x chunks."""
    if schedule is Schedule.GPIPE:
        return m
    if schedule is Schedule.INTERLEAVED:
        return min((p - rank - 1) * 2 + (v - 1) * p, m * v)
    return min(p - rank - 1, m)


def one_forward_one_backward(forwards: list[T], backwards: list[T], warmup: int) -> list[T]:
    """The op order of every schedule: ``warmup`` forwards, then one forward and one backward in turn until the
    forwards are done (steady state), then the backwards left (cool-down); list slicing, no loop per op (the
    engine orders every rank of every layout a search simulates)."""
    steady = len(forwards) - warmup
    out = forwards[:warmup] + forwards[warmup:] * 2 + backwards[steady:]  # the steady slots, overwritten next
    out[warmup:warmup + 2 * steady:2] = forwards[warmup:]
    out[warmup + 1:warmup + 2 * steady:2] = backwards[:steady]
    return out


def stage_ops(schedule: Schedule, p: int, v: int, rank: int, m: int) -> list[PipeOp]:
    """The op list of pipeline rank ``rank``."""
    order = forward_order(schedule, p, v, m)
    return one_forward_one_backward([PipeOp(Phase.FORWARD, mb, chunk) for mb, chunk in order],
                                    [PipeOp(Phase.BACKWARD, mb, v - 1 - chunk) for mb, chunk in order],
                                    warmup_forwards(schedule, p, v, rank, m))


def in_flight_microbatches(schedule: Schedule, p: int, v: int, rank: int, m: int) -> int:
    """Most (microbatch, chunk) activations rank ``rank`` holds at once under its op list: the forwards before its
    first backward (after it, steady 1F1B alternates one forward and one backward, then only backwards drain), in
    closed form from the warm-up (tests/parallelism/test_schedules.py checks it against a walk of the op list: the
    memory model asks it for every rank of every layout a search evaluates)."""
    return min(warmup_forwards(schedule, p, v, rank, m) + 1, m * v if schedule is Schedule.INTERLEAVED else m)
