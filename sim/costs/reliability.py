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
from sim.costs.memory import OPTIMIZER_BYTES, WEIGHT_BYTES, stage_memory
from sim.specs.reliability import CheckpointSpec, FailureSpec, RepairSpec, RestartSpec
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
    repair_s: tuple[float, ...] = ()  # a trace event's evicted nodes' repair times (else drawn from the law)


def failure_classes(spec: FailureSpec, num_gpus: int, gpus_per_node: int) -> tuple[FailureClass, ...]:
    """The job's failure populations (sim/specs/reliability.py) as classes, planned stops last."""
    out = [FailureClass(p.name, p.entry["category"], p.rate_per_h / HOUR, p.entry["blast"],
                        p.entry["detect"] == "hang", silent=p.entry.get("silent", False))
           for p in spec.populations(num_gpus, gpus_per_node)]
    planned = spec.planned_rate_per_day()
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
    load_s: float  # from storage
    shard_bytes: float = 0.0  # the largest state one GPU holds (what its snapshot copies)
    host_copy_gbyte_s: float = 0.0
    memory_replicas: int = 0  # in-memory tier: nodes holding each snapshot (0: none)
    memory_load_s: float = 0.0  # restart load from a peer's host memory


def snapshot_bytes_per_gpu(s: Scenario) -> float:
    """The training state of the most loaded GPU: its working weights and its optimizer shard."""
    return max(mb.parameters + mb.optimizer for mb in (stage_memory(s, r) for r in range(s.parallelism.pipeline)))


def host_copy_gbyte_s(s: Scenario, spec: CheckpointSpec) -> float:
    """Device-to-host copy bandwidth per GPU: the scenario's, else the catalog's for the GPU."""
    if spec.host_copy_gbyte_s is not None:
        return spec.host_copy_gbyte_s
    table = catalog.reliability_table()["checkpoint"]["host_copy_gbyte_s"]
    return float(table["by_gpu"].get(s.gpu.name, table["default"]))


def checkpoint_times(s: Scenario, spec: CheckpointSpec) -> CheckpointTimes:
    """Synchronous saves block for size / write bandwidth; asynchronous and in-memory ones block for the
    snapshot (the largest per-GPU shard over the device-to-host bandwidth) and persist in the background.

    In-memory (Gemini): a restart reloads from a peer's host memory, the shard over the host copy plus the
    lost node's state over its NICs, instead of from storage.
    """
    size = checkpoint_bytes(s)
    write = size / (spec.storage_write_gbyte_s * GB)
    load = size / ((spec.storage_read_gbyte_s or spec.storage_write_gbyte_s) * GB)
    shard, bw = snapshot_bytes_per_gpu(s), host_copy_gbyte_s(s, spec)
    snapshot = shard / (bw * GB)
    memory = spec.memory
    if memory is not None:
        node = s.cluster.topology.node
        nic_per_gpu = node.nics * node.nic_bandwidth_gbit_s / 8 / node.gpus  # GB/s
        peer = shard / (nic_per_gpu * GB) if nic_per_gpu > 0 else 0.0
        stall = memory.snapshot_seconds if memory.snapshot_seconds is not None else (
            spec.stall_seconds if spec.stall_seconds is not None else snapshot)
        return CheckpointTimes(size, stall, write, load, shard, bw, memory.replicas, snapshot + peer)
    if spec.async_:
        stall = spec.stall_seconds if spec.stall_seconds is not None else snapshot
        return CheckpointTimes(size, stall, write, load, shard, bw)
    stall = spec.stall_seconds if spec.stall_seconds is not None else write
    return CheckpointTimes(size, stall, 0.0, load, shard, bw)


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


def restart_stages(num_gpus: int, load_s: float, given: RestartSpec | None = None) -> RestartStages:
    """The stage times for a job of ``num_gpus`` loading a checkpoint in ``load_s``: the scenario's
    (``failures.restart``) where given, else the catalog's."""
    st = catalog.reliability_table()["restart_stages"]
    g = given or RestartSpec()

    def pick(value: float | None, key: str) -> float:
        return float(st[key]["value"]) if value is None else value

    return RestartStages(pick(g.detect_s, "detect_explicit_s"), pick(g.hang_detect_s, "detect_hang_s"),
                         pick(g.diagnose_s, "diagnose_s"), pick(g.reschedule_s, "reschedule_s"),
                         collective_init_s(num_gpus), load_s, pick(g.warmup_s, "warmup_s"))


def repair_lognormal(given: RepairSpec | None) -> tuple[float, float]:
    """(mu, sigma) of the lognormal repair time in ln seconds: from the scenario's median and mean
    (mean = median x exp(sigma^2 / 2)), else the catalog's StepFun fit."""
    if given is None:
        table = catalog.reliability_table()["repair"]
        return table["lognormal_mu_ln_days"] + math.log(24 * HOUR), table["lognormal_sigma_ln_days"]
    return math.log(given.median * HOUR), math.sqrt(2 * math.log(given.mean / given.median))


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
