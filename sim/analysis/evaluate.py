"""One scenario end to end: memory check, then the step simulation if the layout fits."""

from __future__ import annotations

from dataclasses import dataclass

from sim.costs.memory import MemoryBreakdown, peak_memory
from sim.engine.simulate import simulate_step
from sim.engine.step import StepResult
from sim.specs import budget
from sim.specs.scenario import Scenario
from sim.units import GIB


@dataclass(frozen=True)
class Evaluation:
    """Memory verdict plus, when it fits, the simulated step."""

    scenario: Scenario
    memory: MemoryBreakdown
    step: StepResult | None

    @property
    def fits(self) -> bool:
        return _fits(self.scenario, self.memory)


def _fits(scenario: Scenario, memory: MemoryBreakdown) -> bool:
    return memory.total <= scenario.gpu.memory_gib * GIB


def fits_in_memory(scenario: Scenario) -> bool:
    """Whether the most loaded pipeline stage fits in one GPU's memory."""
    return _fits(scenario, peak_memory(scenario))


def evaluate(scenario: Scenario, ignore_memory: bool = False, record: bool = False) -> Evaluation:
    """Check memory; simulate the step unless the layout is out of memory (or ``ignore_memory``);
    ``record`` keeps the step's timeline (traces, plots)."""
    budget.check_scenario(scenario)
    memory = peak_memory(scenario)
    ev = Evaluation(scenario, memory, None)
    if ev.fits or ignore_memory:
        ev = Evaluation(scenario, memory, simulate_step(scenario, record, memory))
    return ev
