"""One optimizer step at the scenario's fidelity: the symmetric engine (``sim.engine.step``) or every rank
(``sim.engine.full``, which runs the same op lists through its own transport)."""

from __future__ import annotations

from sim.engine.step import StepResult, StepSimulation
from sim.specs.enums import Fidelity
from sim.specs.scenario import Scenario


def simulate_step(scenario: Scenario, record: bool = False) -> StepResult:
    """Simulate one optimizer step of ``scenario`` at its ``simulation.fidelity``; ``record`` keeps the
    timeline of every interval (traces, plots)."""
    if scenario.simulation.fidelity is Fidelity.FULL:
        from sim.engine.full import FullStepSimulation  # the fabric process and flow routes: only when asked

        return FullStepSimulation(scenario, record).run()
    return StepSimulation(scenario, record).run()
