"""Pipeline schedules as op lists (sim/parallelism/schedules.py)."""

from __future__ import annotations

import itertools

import pytest

from sim.parallelism.schedules import (
    Phase,
    PipeOp,
    gpipe,
    in_flight_microbatches,
    interleaved,
    one_f_one_b,
    stage_ops,
)
from sim.specs.enums import Schedule

PM = [(p, m) for p in (1, 2, 3, 4, 8) for m in (1, 2, 3, 4, 7, 8, 16)]
PVM = [(p, v, m) for p in (2, 4) for v in (2, 3, 4) for m in (p, 2 * p, 4 * p)]


def all_stage_lists(schedule: Schedule, p: int, v: int, m: int) -> list[list[PipeOp]]:
    return [stage_ops(schedule, p, v, r, m) for r in range(p)]


def check_each_op_once(ops: list[PipeOp], m: int, v: int) -> None:
    fwd = [(o.microbatch, o.chunk) for o in ops if o.phase is Phase.FORWARD]
    bwd = [(o.microbatch, o.chunk) for o in ops if o.phase is Phase.BACKWARD]
    expected = sorted(itertools.product(range(m), range(v)))
    assert sorted(fwd) == expected
    assert sorted(bwd) == expected
    assert len(ops) == 2 * m * v
    assert {o.phase for o in ops} == set(Phase)
    position = {(o.phase, o.microbatch, o.chunk): i for i, o in enumerate(ops)}
    for mb, c in expected:
        assert position["F", mb, c] < position["B", mb, c]


@pytest.mark.parametrize(("p", "m"), PM)
def test_gpipe_and_1f1b_contain_each_op_once(p, m):
    for r in range(p):
        check_each_op_once(stage_ops(Schedule.GPIPE, p, 1, r, m), m, 1)
        check_each_op_once(stage_ops(Schedule.ONE_F_ONE_B, p, 1, r, m), m, 1)


@pytest.mark.parametrize(("p", "v", "m"), PVM)
def test_interleaved_contains_each_op_once(p, v, m):
    for r in range(p):
        check_each_op_once(stage_ops(Schedule.INTERLEAVED, p, v, r, m), m, v)


def test_gpipe_order():
    assert gpipe(3) == [PipeOp("F", 0, 0), PipeOp("F", 1, 0), PipeOp("F", 2, 0),
                        PipeOp("B", 0, 0), PipeOp("B", 1, 0), PipeOp("B", 2, 0)]


def test_1f1b_hand_example():
    # p = 4, rank 1, m = 5: 2 warm-up forwards, then F/B pairs, then the cool-down backwards
    assert [f"{o.phase}{o.microbatch}" for o in one_f_one_b(4, 1, 5)] == \
        ["F0", "F1", "F2", "B0", "F3", "B1", "F4", "B2", "B3", "B4"]


@pytest.mark.parametrize(("p", "m"), PM)
def test_1f1b_warmup_is_p_minus_rank_minus_1(p, m):
    for r in range(p):
        ops = one_f_one_b(p, r, m)
        leading = next(i for i, o in enumerate(ops) if o.phase is Phase.BACKWARD)
        # warm-up p - r - 1 forwards (capped at m), then the first steady-state forward
        assert sum(1 for o in ops[:leading] if o.phase is Phase.FORWARD) == min(p - r - 1, m) + (m > p - r - 1)
        assert leading == min(p - r, m)
        # backwards and forwards alternate in steady state
        steady = ops[leading - 1: 2 * m - (leading - 1)]
        assert all(a.phase != b.phase for a, b in itertools.pairwise(steady))
        # micro-batches run in order in each phase
        assert [o.microbatch for o in ops if o.phase is Phase.FORWARD] == list(range(m))
        assert [o.microbatch for o in ops if o.phase is Phase.BACKWARD] == list(range(m))


@pytest.mark.parametrize(("p", "m"), PM)
def test_in_flight_microbatches(p, m):
    assert in_flight_microbatches(Schedule.ONE_F_ONE_B, p, 1, 0, m) == min(p, m)
    for r in range(p):
        assert in_flight_microbatches(Schedule.ONE_F_ONE_B, p, 1, r, m) == min(p - r, m)
        assert in_flight_microbatches(Schedule.GPIPE, p, 1, r, m) == m


def held_at_most(ops: list[PipeOp]) -> int:
    """The most activations held at once walking the op list (a forward stores one, a backward frees one)."""
    held = peak = 0
    for op in ops:
        held += 1 if op.phase is Phase.FORWARD else -1
        peak = max(peak, held)
    return peak


def test_in_flight_closed_form_equals_a_walk_of_every_op_list():
    for schedule, p, rank, m in itertools.product(Schedule, range(1, 10), range(9), range(1, 25)):
        if rank >= p:
            continue
        for v in range(2, 6) if schedule is Schedule.INTERLEAVED else (1,):
            if schedule is Schedule.INTERLEAVED and m % p:
                continue
            ops = stage_ops(schedule, p, v, rank, m)
            assert in_flight_microbatches(schedule, p, v, rank, m) == held_at_most(ops), (schedule, p, v, rank, m)


@pytest.mark.parametrize(("p", "v", "m"), PVM)
def test_interleaved_in_flight_rank0(p, v, m):
    # Megatron warm-up 2(p - r - 1) + (v - 1) p, plus the first steady forward; activation memory of rank 0
    # is then (v p + p - 1) chunks of L/(v p) layers = L (1 + (p - 1)/(v p)) layers (MODELLING.md)
    assert in_flight_microbatches(Schedule.INTERLEAVED, p, v, 0, m) == min(v * p + p - 1, v * m)


def test_interleaved_hand_example():
    # p = 2, v = 2, m = 2, rank 1: warm-up 0 + 1*2 = 2 forwards; chunk order by groups of p micro-batches
    ops = interleaved(2, 2, 1, 2)
    assert [f"{o.phase}{o.microbatch}c{o.chunk}" for o in ops] == \
        ["F0c0", "F1c0", "F0c1", "B0c1", "F1c1", "B1c1", "B0c0", "B1c0"]


# ---- the schedules run to completion on a pipeline and give the textbook bubble -----------------
def simulate(schedule: Schedule, p: int, v: int, m: int, t_f: float, t_b: float) -> float:
    """Run every stage's op list with free communication; F of virtual stage k needs F of k-1 done,
    B of k needs B of k+1 done. Chunk time is t/v. Returns the makespan (fails on a deadlock)."""
    lists = all_stage_lists(schedule, p, v, m)
    done: dict[tuple[str, int, int], float] = {}
    pos, clock = [0] * p, [0.0] * p
    n_virtual = p * v
    progress = True
    while progress:
        progress = False
        for r in range(p):
            while pos[r] < len(lists[r]):
                op = lists[r][pos[r]]
                vs = op.chunk * p + r
                if op.phase is Phase.FORWARD:
                    dep = ("F", op.microbatch, vs - 1) if vs > 0 else None
                else:
                    dep = ("B", op.microbatch, vs + 1) if vs < n_virtual - 1 else ("F", op.microbatch, vs)
                if dep is not None and dep not in done:
                    break
                start = max(clock[r], done[dep] if dep else 0.0)
                clock[r] = start + (t_f if op.phase is Phase.FORWARD else t_b) / v
                done[op.phase, op.microbatch, vs] = clock[r]
                pos[r] += 1
                progress = True
    assert all(pos[r] == len(lists[r]) for r in range(p)), "schedule deadlocks"
    return max(clock)


@pytest.mark.parametrize(("p", "m"), [(p, m) for p in (1, 2, 4, 8) for m in (1, 3, 8, 16)])
@pytest.mark.parametrize("schedule", [Schedule.GPIPE, Schedule.ONE_F_ONE_B])
def test_gpipe_1f1b_bubble_with_free_communication(schedule, p, m):
    t_f, t_b = 1.0, 2.0
    makespan = simulate(schedule, p, 1, m, t_f, t_b)
    assert makespan == pytest.approx((m + p - 1) * (t_f + t_b))
    bubble = 1 - m * (t_f + t_b) / makespan
    assert bubble == pytest.approx((p - 1) / (m + p - 1))


@pytest.mark.parametrize(("p", "v", "m"), PVM)
def test_interleaved_bubble_with_free_communication(p, v, m):
    t_f, t_b = 1.0, 2.0
    makespan = simulate(Schedule.INTERLEAVED, p, v, m, t_f, t_b)
    bubble = 1 - m * (t_f + t_b) / makespan
    assert bubble == pytest.approx((p - 1) / (v * m + p - 1))
    assert bubble <= (p - 1) / (m + p - 1) + 1e-12  # never worse than plain 1F1B
