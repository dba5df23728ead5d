"""Exploring many scenarios: layout search, cluster sizing and sweeps (DESIGN.md §2 ``analysis``).

``space`` enumerates layouts and checks them with the spec validation, ``prescreen`` ranks them with a
fast analytic estimate, ``search`` simulates the best of them in worker processes, ``size`` searches
GPU counts against a deadline or budget, ``sweep`` runs a grid of scenario variants (locally or on
Dask) into a resumable results file. ``objective`` turns one evaluation into days and cost.
"""
