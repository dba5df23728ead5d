"""Pipeline schedules as ordered op lists per stage (pure, testable).

An op is ``(phase, microbatch, chunk)`` with phase :class:`Phase` (forward or backward). The engine runs each stage's
list in order; waiting for inputs from neighbours is what makes the bubble emerge.
"""

from __future__ import annotations

from enum import StrEnum
from typing import NamedTuple

from sim.specs.enums import Schedule


class Phase(StrEnum):
    """A pass over a block; the value is the letter timeline labels carry (``F3.vs1``)."""

    FORWARD = "F"
    BACKWARD = "B"


class PipeOp(NamedTuple):
    phase: Phase
    microbatch: int
    chunk: int


def gpipe(m: int) -> list[PipeOp]:
    """All forwards, then all backwards (Huang et al. 2019)."""
    return [PipeOp(Phase.FORWARD, i, 0) for i in range(m)] + [PipeOp(Phase.BACKWARD, i, 0) for i in range(m)]


def one_f_one_b(p: int, rank: int, m: int) -> list[PipeOp]:
    """PipeDream-Flush 1F1B (Narayanan et al. 2021 §2.2.1): warm-up, steady 1F1B, cool-down."""
    warmup = min(p - rank - 1, m)
    ops = [PipeOp(Phase.FORWARD, i, 0) for i in range(warmup)]
    f, b = warmup, 0
    while f < m:
        ops += [PipeOp(Phase.FORWARD, f, 0), PipeOp(Phase.BACKWARD, b, 0)]
        f, b = f + 1, b + 1
    ops += [PipeOp(Phase.BACKWARD, i, 0) for i in range(b, m)]
    return ops


def _virtual(k: int, p: int, v: int, forward: bool) -> tuple[int, int]:
    """Megatron's mapping of the k-th forward/backward of a rank to (microbatch, chunk)."""
    group, within = divmod(k, p * v)
    chunk = within // p
    if not forward:
        chunk = v - 1 - chunk
    return group * p + within % p, chunk


def interleaved(p: int, v: int, rank: int, m: int) -> list[PipeOp]:
    """Interleaved 1F1B (Narayanan et al. 2021 §2.2.2; Megatron-LM schedules.py); needs m % p == 0."""
    total = m * v
    warmup = min((p - rank - 1) * 2 + (v - 1) * p, total)
    ops = [PipeOp(Phase.FORWARD, *_virtual(k, p, v, True)) for k in range(warmup)]
    f, b = warmup, 0
    while f < total:
        ops += [PipeOp(Phase.FORWARD, *_virtual(f, p, v, True)), PipeOp(Phase.BACKWARD, *_virtual(b, p, v, False))]
        f, b = f + 1, b + 1
    ops += [PipeOp(Phase.BACKWARD, *_virtual(k, p, v, False)) for k in range(b, total)]
    return ops


def stage_ops(schedule: Schedule, p: int, v: int, rank: int, m: int) -> list[PipeOp]:
    """The op list of pipeline rank ``rank``."""
    if schedule is Schedule.GPIPE:
        return gpipe(m)
    if schedule is Schedule.INTERLEAVED:
        return interleaved(p, v, rank, m)
    return one_f_one_b(p, rank, m)


def in_flight_microbatches(schedule: Schedule, p: int, v: int, rank: int, m: int) -> int:
    """Most (microbatch, chunk) activations rank ``rank`` holds at once under its op list: the forwards before its
    first backward (after it, steady 1F1B alternates one forward and one backward, then only backwards drain), in
    closed form from the warm-up lengths above (tests/parallelism/test_schedules.py checks it against a walk of the
    op list: the memory model asks it for every rank of every layout a search evaluates)."""
    if schedule is Schedule.GPIPE:
        return m
    if schedule is Schedule.INTERLEAVED:
        return min((p - rank - 1) * 2 + (v - 1) * p + 1, m * v)
    return min(p - rank, m)
