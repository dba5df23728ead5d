"""Sweeps, sizing, Monte Carlo and validation on top of the engine."""
