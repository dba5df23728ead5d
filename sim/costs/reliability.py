"""Run-level cost models (pure): checkpoint size and times, failure populations, restart stages, and the
closed forms of Young (1974) and Daly (2006) that the run simulation is checked against.

Notation of the reliability reference (§1.9): M mean time between interruptions, δ blocking checkpoint
cost, R restart time, τ compute time between checkpoints. All times in seconds.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from sim import catalog
from sim.costs import flops
from sim.costs.memory import OPTIMIZER_BYTES, WEIGHT_BYTES
from sim.specs.reliability import CheckpointSpec, FailureSpec
from sim.specs.scenario import Scenario
from sim.units import GB, HOUR


@dataclass(frozen=True, slots=True)
class FailureClass:
    """One population of components that fail alike: its rate for the whole job and what an event does."""

    name: str
    category: str
    rate_per_s: float  # events per second for the whole job (component rate x population)
    blast_nodes: int  # nodes evicted (0 = the job restarts on the same nodes)
    hang: bool  # found by the collective watchdog rather than by an explicit error
    planned: bool = False  # maintenance: a checkpoint is forced first, so no work is lost
    silent: bool = False  # silent data corruption: found only after RunParams.sdc_detection_s


def failure_classes(spec: FailureSpec, num_gpus: int, gpus_per_node: int) -> tuple[FailureClass, ...]:
    """The job's failure populations: the packaged rate set (unless ``custom``) plus ``rates``, scaled."""
    table = catalog.reliability_table()
    nodes = max(1, num_gpus // gpus_per_node)
    population = {"gpu": num_gpus, "node": nodes, "job": 1}
    out: list[FailureClass] = []

    def add(name: str, rate_per_h: float, entry: dict) -> None:
        rate = rate_per_h * population[entry["per"]] * spec.rate_scale / HOUR
        if rate > 0:
            out.append(FailureClass(name, entry["category"], rate, entry["blast"], entry["detect"] == "hang",
                                    silent=entry.get("silent", False)))

    planned = 0.0
    if spec.model != "custom":
        rate_set = table["rate_sets"][spec.model]
        for name, entry in rate_set["components"].items():
            add(name, entry["count"] / rate_set["exposure_component_hours"], entry)
        planned = rate_set["planned_per_day"]
    for name, rate in (spec.rates or {}).items():
        add(name, rate, table["custom_components"][name])
    if spec.planned_per_day is not None:
        planned = spec.planned_per_day
    if planned > 0:
        out.append(FailureClass("planned_maintenance", "planned", planned / (24 * HOUR), 0, False, planned=True))
    return tuple(out)


def checkpoint_bytes(s: Scenario) -> float:
    """Training state saved: working weights plus optimizer state (fp32 master and moments).

    14 B/parameter for AdamW (reliability reference CK2); gradients are not saved.
    """
    return flops.total_params(s.model) * (WEIGHT_BYTES + OPTIMIZER_BYTES[s.training.optimizer])


@dataclass(frozen=True, slots=True)
class CheckpointTimes:
    """What one checkpoint costs: the blocking stall δ, the background persist, the load on restart."""

    size_bytes: float
    stall_s: float
    persist_s: float  # after the stall; 0 = durable when the stall ends (synchronous)
    load_s: float


def checkpoint_times(s: Scenario, spec: CheckpointSpec) -> CheckpointTimes:
    """Synchronous saves block for size / write bandwidth; asynchronous ones block for the snapshot only
    (GPU -> pinned host memory, MegaScale's 'several seconds') and persist in the background."""
    size = checkpoint_bytes(s)
    write = size / (spec.storage_write_gbyte_s * GB)
    load = size / ((spec.storage_read_gbyte_s or spec.storage_write_gbyte_s) * GB)
    if spec.async_:
        stall = spec.stall_seconds
        if stall is None:
            stall = catalog.reliability_table()["checkpoint"]["async_stall_s"]["value"]
        return CheckpointTimes(size, stall, write, load)
    stall = spec.stall_seconds if spec.stall_seconds is not None else write
    return CheckpointTimes(size, stall, 0.0, load)


@dataclass(frozen=True, slots=True)
class RestartStages:
    """The restart pipeline of the reliability reference §2.2, seconds per stage (spare waits come on top)."""

    detect_explicit_s: float
    detect_hang_s: float
    diagnose_s: float
    reschedule_s: float
    collective_init_s: float
    load_s: float
    warmup_s: float

    def total(self, hang: bool, planned: bool = False) -> float:
        """Detection to training resumed; a planned stop needs no detection or diagnosis."""
        found = 0.0 if planned else (self.detect_hang_s if hang else self.detect_explicit_s) + self.diagnose_s
        return found + self.reschedule_s + self.collective_init_s + self.load_s + self.warmup_s


def collective_init_s(num_gpus: int) -> float:
    """NCCL communicator set-up, c·N·log2 N (superlinear bootstrap; c from the one published point)."""
    c = catalog.reliability_table()["restart_stages"]["collective_init_c"]["value"]
    return c * num_gpus * math.log2(max(2, num_gpus))


def restart_stages(num_gpus: int, load_s: float) -> RestartStages:
    """The packaged stage times for a job of ``num_gpus`` loading a checkpoint in ``load_s``."""
    st = catalog.reliability_table()["restart_stages"]
    return RestartStages(st["detect_explicit_s"]["value"], st["detect_hang_s"]["value"], st["diagnose_s"]["value"],
                         st["reschedule_s"]["value"], collective_init_s(num_gpus), load_s, st["warmup_s"]["value"])


def young_interval(delta: float, mtbi: float) -> float:
    """Young (1974): τ = √(2δM)."""
    return math.sqrt(2 * delta * mtbi)


def daly_interval(delta: float, mtbi: float) -> float:
    """Daly (2006) higher-order optimum: √(2δM)·[1 + ⅓√(δ/2M) + (δ/2M)/9] − δ for δ < 2M, else M."""
    if delta >= 2 * mtbi:
        return mtbi
    x = delta / (2 * mtbi)
    return math.sqrt(2 * delta * mtbi) * (1 + math.sqrt(x) / 3 + x / 9) - delta


def daly_ettr(tau: float, delta: float, restart: float, mtbi: float) -> float:
    """Daly's expected useful fraction with exponential failures that may also hit restarts and saves:
    τ / [M e^{R/M} (e^{(τ+δ)/M} − 1)] (reliability reference TH4)."""
    return tau / (mtbi * math.exp(restart / mtbi) * math.expm1((tau + delta) / mtbi))
