"""recovery.Subsets draws the nodes a recovery lost exactly as numpy's Generator.choice(n, k, replace=False) would:
same set, same stream afterwards (the run's results were pinned with choice)."""

from __future__ import annotations

import numpy as np
import pytest

from sim.engine.run.recovery import Subsets


@pytest.mark.parametrize(("n", "k"), [(2048, 2), (2048, 9), (64, 5), (7, 6), (3, 2), (16_384, 3), (20_000, 500)])
def test_subsets_are_numpys_choice_draw_for_draw(n, k):
    for seed in range(40):
        numpy_rng, ours_rng = np.random.default_rng(seed), np.random.default_rng(seed)
        ours = Subsets(ours_rng)
        for step in range(4):
            assert ours.draw(n, k) == set(numpy_rng.choice(n, size=k, replace=False).tolist())
            if step % 2:  # a 64-bit user of the same generator in between (repair times) leaves the half word
                assert ours_rng.lognormal(0, 1) == numpy_rng.lognormal(0, 1)
        assert ours_rng.random() == numpy_rng.random()


def test_subsets_are_uniform():
    # each of 6 items is in a 3-of-6 draw with probability 1/2 (sd of the mean over 20,000 draws ~0.0035)
    ours = Subsets(np.random.default_rng(1))
    hits = np.zeros(6)
    for _ in range(20_000):
        hits[list(ours.draw(6, 3))] += 1
    assert np.allclose(hits / 20_000, 0.5, atol=0.015)
