"""``trainsim size``: the GPU count (and layout) that trains a model on a token budget by a deadline, or
within a budget, at the lowest cost, for one or more GPU types.

For each GPU type a grid of whole-node GPU counts is searched (a reduced layout space per count, see
:data:`SIZE_SPACE`); each count's fastest simulated layout gives its days and cost
(:func:`~sim.analysis.explore.objective.run_figures`, the run level when the base scenario configures
failures; its hot spares are scaled with the node count, so every size keeps the base's spare fraction).
The chosen point is the cheapest that meets the deadline (and budget); with a budget alone, the fastest
within it.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from sim import catalog
from sim.analysis.estimate import estimate_6nd_days
from sim.analysis.explore.search import search
from sim.analysis.explore.space import Layout, SearchSpace
from sim.errors import Issue, ScenarioError, TrainsimError
from sim.specs.enums import Schedule
from sim.specs.pricing import CostsSpec
from sim.specs.scenario import ClusterSpec, Scenario
from sim.specs.topology import load_topology

#: The bundled fabric a GPU type is sized on when none is named: the DGX SuperPOD reference
#: architecture of its generation (the topology files cite them).
DEFAULT_TOPOLOGY = {"A100-SXM-40GB": "dgx-a100-superpod", "A100-SXM-80GB": "dgx-a100-superpod",
                    "H100-SXM-80GB": "dgx-h100-superpod", "H100-PCIe-80GB": "pcie-h100", "B200": "dgx-b200",
                    "GB200": "gb200-nvl72"}

#: Layouts tried per GPU count: the usual production choices (micro-batch 1, ZeRO-1, 1F1B or
#: interleaved, the scenario's TP overlap) with every degree, chunk count, recompute mode and pipeline
#: split. ``search`` covers the full space for one count.
SIZE_SPACE = SearchSpace(micro_batch_sizes=(1,), zero_stages=(1,),
                         schedules=(Schedule.ONE_F_ONE_B, Schedule.INTERLEAVED), tp_comm_overlaps=None)


@dataclass(frozen=True, slots=True)
class SizePoint:
    """The best layout found for one GPU type and count (``layout`` None when none is valid and fits)."""

    gpu: str
    num_gpus: int
    layout: Layout | None
    figures: dict | None
    note: str = ""

    @property
    def days(self) -> float | None:
        return None if self.figures is None else self.figures["days"]

    @property
    def cost_usd(self) -> float | None:
        return None if self.figures is None else self.figures["cost_usd"]

    def meets(self, deadline_days: float | None, budget_usd: float | None) -> bool:
        if self.days is None or self.cost_usd is None:
            return False
        return ((deadline_days is None or self.days <= deadline_days)
                and (budget_usd is None or self.cost_usd <= budget_usd))


@dataclass(frozen=True, slots=True)
class SizeResult:
    """The curve (one point per GPU count searched) and the chosen point, per GPU type."""

    curves: dict[str, list[SizePoint]]
    choice: dict[str, SizePoint | None]
    deadline_days: float | None
    budget_usd: float | None


def gpu_cluster(gpu: str, topology: str | None, num_gpus: int) -> ClusterSpec:
    """A cluster of ``num_gpus`` of ``gpu`` on a bundled (or file) topology, default per GPU type."""
    name = catalog.canonical_gpu(gpu)
    if name is None:
        raise ScenarioError([Issue("--gpu", f"{gpu!r} is not in the GPU catalog; known: "
                                   f"{', '.join(catalog.gpu_table())}")])
    ref = topology or DEFAULT_TOPOLOGY.get(name)
    if ref is None:
        raise ScenarioError([Issue("--gpu", f"no default topology for {name}; name one: --gpu {name}:TOPOLOGY "
                                   f"(bundled: {', '.join(catalog.topology_names())})")])
    return ClusterSpec(gpu=name, num_gpus=num_gpus, topology=load_topology(ref))


def count_grid(low: float, high: float, node_gpus: int) -> list[int]:
    """Whole-node GPU counts ``node x 2^k`` and ``node x 3 x 2^(k-1)`` within ``[low, high]``."""
    out = set()
    for k in range(0, 40):
        for count in (node_gpus * 2**k, node_gpus * 3 * 2**k // 2):
            if low <= count <= high and count % node_gpus == 0:
                out.add(count)
    return sorted(out)


def default_counts(base: Scenario, cluster: ClusterSpec, deadline_days: float | None) -> list[int]:
    """A grid from a quarter to four times the 6ND count for the deadline (or the base's count)."""
    centre = float(base.cluster.num_gpus)
    if deadline_days is not None:
        probe = dataclasses.replace(base, cluster=dataclasses.replace(base.cluster, gpu=cluster.gpu))
        days = estimate_6nd_days(probe)
        if days is not None:
            centre = days * probe.cluster.num_gpus / deadline_days
    return count_grid(centre / 4, centre * 4, cluster.topology.node.gpus)


def size(base: Scenario, tokens: float, clusters: Sequence[ClusterSpec], *,
         deadline_days: float | None = None, budget_usd: float | None = None, counts: Sequence[int] | None = None,
         prices: dict[str, float] | None = None, space: SearchSpace = SIZE_SPACE, simulate: int = 8,
         replicas: int | None = None, workers: int | None = None,
         progress: Callable[[int, int], None] | None = None) -> SizeResult:
    """Search GPU counts for each of ``clusters`` (a GPU type on its fabric); see the module docstring.

    ``counts`` is the grid (default :func:`default_counts`); ``prices`` maps a GPU name to USD per
    GPU-hour (default: the base's ``costs``, else CostsSpec's).
    """
    if deadline_days is None and budget_usd is None:
        raise TrainsimError("size needs a deadline (--deadline-days) or a budget (--budget-usd)")
    base = dataclasses.replace(base, training=dataclasses.replace(base.training, tokens=tokens))
    plans = []
    for cluster in clusters:
        grid = sorted(set(counts)) if counts else default_counts(base, cluster, deadline_days)
        plans.append((cluster, grid, _priced(base, cluster.gpu, prices)))
    total = sum(len(grid) for _, grid, _ in plans)
    curves: dict[str, list[SizePoint]] = {}
    done = 0
    for cluster, grid, priced in plans:
        curve = curves.setdefault(cluster.gpu, [])
        for n in grid:
            sized = dataclasses.replace(cluster, num_gpus=n)
            curve.append(_best_at(scaled_spares(priced, sized), sized, space, simulate, replicas, workers))
            done += 1
            if progress is not None:
                progress(done, total)
    choice = {gpu: choose(curve, deadline_days, budget_usd) for gpu, curve in curves.items()}
    return SizeResult(curves, choice, deadline_days, budget_usd)


def _priced(base: Scenario, gpu: str, prices: dict[str, float] | None) -> Scenario:
    if not prices or gpu not in prices:
        return base
    costs = dataclasses.replace(base.costs or CostsSpec(), usd_per_gpu_hour=prices[gpu])
    return dataclasses.replace(base, costs=costs)


def scaled_spares(base: Scenario, cluster: ClusterSpec) -> Scenario:
    """``base`` with ``failures.hot_spares`` scaled from its node count to ``cluster``'s (rounded)."""
    fail = base.failures
    if fail is None or fail.hot_spares is None:
        return base
    nodes = cluster.num_gpus / cluster.topology.node.gpus
    base_nodes = base.cluster.num_gpus / base.cluster.topology.node.gpus
    spares = round(fail.hot_spares * nodes / base_nodes)
    return dataclasses.replace(base, failures=dataclasses.replace(fail, hot_spares=spares))


def _best_at(base: Scenario, cluster: ClusterSpec, space: SearchSpace, simulate: int, replicas: int | None,
             workers: int | None) -> SizePoint:
    result = search(base, space, cluster=cluster, simulate=simulate, run_top=1, replicas=replicas,
                    objective="days", workers=workers)
    ranked = result.ranked()
    note = _fabric_note(cluster)
    if ranked:
        layout, row = ranked[0]
        return SizePoint(cluster.gpu, cluster.num_gpus, layout, row, note)
    enum = result.enumeration
    if len(enum.valid) == 0:
        worst = max(enum.rejected.values(), key=lambda r: r.count, default=None)
        why = f"no valid layout ({worst.example})" if worst else "no valid layout"
    else:
        why = "no layout fits in memory"
    return SizePoint(cluster.gpu, cluster.num_gpus, None, None, "; ".join(x for x in (why, note) if x))


def _fabric_note(cluster: ClusterSpec) -> str:
    tiers = cluster.topology.scale_out.tiers
    span = tiers[-1].span_gpus if tiers else None
    if span is not None and cluster.num_gpus > span:
        return f"beyond the fabric's largest tier ({span:,} GPUs): assumed to extend non-blocking"
    return ""


def choose(curve: Sequence[SizePoint], deadline_days: float | None, budget_usd: float | None) -> SizePoint | None:
    """The cheapest point meeting the deadline and budget (ties: fewer GPUs); budget only: the fastest."""
    feasible = [p for p in curve if p.meets(deadline_days, budget_usd)]
    if not feasible:
        return None
    if deadline_days is None:
        return min(feasible, key=lambda p: (p.days, p.num_gpus))
    return min(feasible, key=lambda p: (p.cost_usd, p.num_gpus))


def smaller_neighbour(curve: Sequence[SizePoint], point: SizePoint) -> SizePoint | None:
    """The next smaller GPU count searched on the same curve."""
    smaller = [p for p in curve if p.num_gpus < point.num_gpus]
    return max(smaller, key=lambda p: p.num_gpus) if smaller else None


