"""The pre-screen: closed-form in-flight counts and memory equal the exact models; its order is close."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from sim.analysis.explore.prescreen import in_flight, prescreen
from sim.analysis.explore.space import SCHEDULES, SearchSpace, enumerate_space
from sim.costs.memory import peak_memory
from sim.parallelism.schedules import in_flight_microbatches
from sim.specs.enums import Schedule
from tests.explore.conftest import TINY_SPACE, tiny


@settings(max_examples=200, deadline=None)
@given(schedule=st.sampled_from(list(Schedule)), p=st.integers(1, 12), v=st.integers(1, 4),
       rank=st.integers(0, 11), m=st.integers(1, 40))
def test_in_flight_closed_form_matches_the_schedules(schedule, p, v, rank, m):
    rank = rank % p
    if schedule is Schedule.INTERLEAVED:
        m = p * max(1, m // p)  # interleaved needs m % p == 0
    else:
        v = 1
    code = SCHEDULES.index(schedule)
    got = in_flight(np.array([code]), np.array([p]), np.array([v]), np.array([rank]), np.array([m]))[0]
    assert got == in_flight_microbatches(schedule, p, v, rank, m)


def test_memory_estimate_equals_the_memory_model_on_every_candidate():
    base = tiny(num_gpus=8, global_batch=32)
    enum = enumerate_space(base, SearchSpace(micro_batch_sizes=(1, 4), max_virtual=2))
    est = prescreen(enum)
    exact = np.array([peak_memory(enum.valid.layout(i).apply(base)).total for i in range(len(enum.valid))])
    np.testing.assert_allclose(est.memory_bytes, exact, rtol=1e-12)


def test_estimated_order_agrees_with_the_simulation_on_the_tiny_model():
    from sim.analysis.evaluate import evaluate

    base = tiny()
    enum = enumerate_space(base, TINY_SPACE)
    est = prescreen(enum)
    sim = np.array([evaluate(enum.valid.layout(i).apply(base)).step.step_time_s for i in range(len(enum.valid))])
    rank = lambda x: np.argsort(np.argsort(x))  # noqa: E731
    spearman = np.corrcoef(rank(est.step_s), rank(sim))[0, 1]
    assert spearman > 0.8
    assert np.all(est.step_s > 0)
