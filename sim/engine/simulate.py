"""One optimizer step at the scenario's fidelity: the step simulation (``sim.engine.step``) with the transport
of that fidelity injected, symmetric (one process per pipeline rank, the default) or full (``sim.engine.full``:
every rank, its transfers as flows on the fabric), both running the same op lists."""

from __future__ import annotations

from sim.costs.memory import MemoryBreakdown
from sim.engine.step import StepResult, StepSimulation
from sim.specs.enums import Fidelity
from sim.specs.scenario import Scenario


def simulate_step(scenario: Scenario, record: bool = False, memory: MemoryBreakdown | None = None) -> StepResult:
    """Simulate one optimizer step of ``scenario`` at its ``simulation.fidelity``; ``record`` keeps the
    timeline of every interval (traces, plots); ``memory``: its peak memory if already computed."""
    if scenario.simulation.fidelity is Fidelity.FULL:
        from sim.engine.full import FullTransport  # the fabric process and flow routes: only when asked

        return StepSimulation(scenario, record, FullTransport(), memory).run()
    return StepSimulation(scenario, record, memory=memory).run()
