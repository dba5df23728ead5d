"""Seeded random generators: every draw in trainsim comes from one of these, passed explicitly."""

from __future__ import annotations

import numpy as np


def make_rng(seed: int) -> np.random.Generator:
    """The root generator for a simulation seed."""
    return np.random.default_rng(np.random.SeedSequence(seed))


def spawn(rng: np.random.Generator, n: int) -> list[np.random.Generator]:
    """``n`` independent child generators (per Monte Carlo replica or failure population)."""
    return list(rng.spawn(n))
