"""One scenario end to end: memory check, then the step simulation if the layout fits."""

from __future__ import annotations

from dataclasses import dataclass

from sim.costs.memory import MemoryBreakdown, peak_memory
from sim.engine.step import StepResult, simulate_step
from sim.specs.scenario import Scenario
from sim.units import GIB


@dataclass(frozen=True)
class Evaluation:
    """Memory verdict plus, when it fits, the simulated step."""

    scenario: Scenario
    memory: MemoryBreakdown
    step: StepResult | None

    @property
    def capacity_bytes(self) -> float:
        return self.scenario.gpu.memory_gib * GIB

    @property
    def fits(self) -> bool:
        return self.memory.total <= self.capacity_bytes


def evaluate(scenario: Scenario, ignore_memory: bool = False) -> Evaluation:
    """Check memory; simulate the step unless the layout is out of memory (or ``ignore_memory``)."""
    memory = peak_memory(scenario)
    fits = memory.total <= scenario.gpu.memory_gib * GIB
    step = simulate_step(scenario) if fits or ignore_memory else None
    return Evaluation(scenario, memory, step)
