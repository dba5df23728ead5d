"""Frozen, validated specs loaded from YAML. No SimPy, no numpy draws here."""

from sim.specs.scenario import Scenario, load_scenario, scenario_from_mapping

__all__ = ["Scenario", "load_scenario", "scenario_from_mapping"]
