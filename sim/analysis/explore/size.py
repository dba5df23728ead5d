"""``trainsim size``: the GPU count (and layout) that trains a model on a token budget by a deadline, or
within a budget, at the lowest cost, for one or more GPU types.

For each GPU type a grid of whole-node GPU counts is searched (a reduced layout space per count, see
:data:`SIZE_SPACE`); each count's fastest simulated layout gives its days and cost
(:func:`~sim.analysis.explore.objective.run_figures`, the run level when the base scenario configures
failures; its hot spares are scaled with the node count, so every size keeps the base's spare fraction).
The chosen point is the cheapest that meets the deadline (and budget); with a budget alone, the fastest
within it. GPU counts (and global batch sizes, when a range is given) are searched in parallel worker
processes. A count slower than a smaller one gets a line saying why (:func:`explain_slower`).

Prices per GPU type, first found: ``prices`` (``--price``), the scenario's ``costs`` for its own GPU type,
the catalog's ``usd_per_gpu_hour`` (gpus.yaml, with its source), the ``CostsSpec`` default.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from sim import catalog
from sim.analysis.estimate import estimate_6nd_days
from sim.analysis.explore import pool
from sim.analysis.explore.search import search
from sim.analysis.explore.space import Layout, SearchSpace
from sim.errors import Issue, ScenarioError, TrainsimError
from sim.specs.budget import BudgetError
from sim.specs.enums import Schedule
from sim.specs.pricing import CostsSpec
from sim.specs.scenario import ClusterSpec, Scenario, gpu_spec
from sim.specs.topology import load_topology

#: The bundled fabric a GPU type is sized on when none is named: the DGX SuperPOD reference
#: architecture of its generation (the topology files cite them).
DEFAULT_TOPOLOGY = {"A100-SXM-40GB": "dgx-a100-superpod", "A100-SXM-80GB": "dgx-a100-superpod",
                    "H100-SXM-80GB": "dgx-h100-superpod", "H100-PCIe-80GB": "pcie-h100", "B200": "dgx-b200",
                    "GB200": "gb200-nvl72"}

#: Layouts tried per GPU count: the usual production choices (micro-batch 1, ZeRO-1, 1F1B or
#: interleaved, the scenario's TP overlap where it can run, off at TP 1 and beyond one NVLink domain) with every
#: degree, chunk count, recompute mode and pipeline split. ``search`` covers the full space for one count.
SIZE_SPACE = SearchSpace(micro_batch_sizes=(1,), zero_stages=(1,),
                         schedules=(Schedule.ONE_F_ONE_B, Schedule.INTERLEAVED), tp_comm_overlaps=None)


#: Layouts simulated per GPU count, the pre-screen's best first (each count's rank correlation is reported). On
#: 405B over H100 (8,192, 24,576), B200 (4,096, 16,384) and GB200 (8,192) the fastest of 8 simulated was always
#: among the pre-screen's first 4 (its picks 1, 1, 1, 1, 3).
SIZE_SIMULATE = 4


@dataclass(frozen=True, slots=True)
class SizePoint:
    """The best layout found for one GPU type and count (``layout`` None when none is valid and fits)."""

    gpu: str
    num_gpus: int
    layout: Layout | None
    figures: dict | None
    note: str = ""
    global_batch: int | None = None
    """Sequences per step of the best layout (one of the global-batch range)."""
    why_slower: str = ""
    """Why this count is slower than a smaller one searched (empty when it is not)."""
    spearman: float | None = None
    """The pre-screen's rank correlation with the simulation over this count's simulated layouts."""

    @property
    def days(self) -> float | None:
        return None if self.figures is None else self.figures["days"]

    @property
    def cost_usd(self) -> float | None:
        return None if self.figures is None else self.figures["cost_usd"]

    def meets(self, deadline_days: float | None, budget_usd: float | None) -> bool:
        if self.days is None or self.cost_usd is None or (self.figures and self.figures.get("unfinished")):
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
    prices: dict[str, tuple[float, str]]
    """USD per GPU-hour per GPU type and where it comes from."""


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
         prices: dict[str, float] | None = None, space: SearchSpace = SIZE_SPACE, simulate: int = SIZE_SIMULATE,
         replicas: int | None = None, workers: int | None = None, global_batches: Sequence[int] | None = None,
         progress: Callable[[int, int], None] | None = None) -> SizeResult:
    """Search GPU counts for each of ``clusters`` (a GPU type on its fabric); see the module docstring.

    ``counts`` is the grid (default :func:`default_counts`); ``prices`` maps a GPU name to USD per
    GPU-hour (see the module docstring for the defaults); ``global_batches`` are the global batch sizes
    tried at every count (default: the base's), the best kept.
    """
    if deadline_days is None and budget_usd is None:
        raise TrainsimError("size needs a deadline (--deadline-days) or a budget (--budget-usd)")
    base = dataclasses.replace(base, training=dataclasses.replace(base.training, tokens=tokens))
    batches = list(dict.fromkeys(global_batches or [base.training.global_batch_size]))
    items: list[tuple[Scenario, ClusterSpec, SearchSpace, int, int | None]] = []
    used: dict[str, tuple[float, str]] = {}
    for cluster in clusters:
        grid = sorted(set(counts)) if counts else default_counts(base, cluster, deadline_days)
        usd, where = gpu_price(base, cluster.gpu, prices)
        used[cluster.gpu] = (usd, where)
        costs = dataclasses.replace(base.costs or CostsSpec(), usd_per_gpu_hour=usd)
        for n in grid:
            sized = dataclasses.replace(cluster, num_gpus=n)
            for gbs in batches:
                training = dataclasses.replace(base.training, global_batch_size=gbs)
                scenario = dataclasses.replace(base, costs=costs, training=training)
                items.append((scaled_spares(scenario, sized), sized, space, simulate, replicas))
    # Heaviest first, so that no long count starts last while the other workers idle: the step simulations grow with
    # the micro-batches per pipeline, so with the global batch per GPU (the smallest counts).
    items.sort(key=lambda item: item[1].num_gpus / item[0].training.global_batch_size)
    # counts in parallel, one process each; a single count searches its layouts on all workers instead
    outer = workers or pool.default_workers()
    inner = 1 if outer > 1 and len(items) > 1 else workers
    best: dict[tuple[str, int], SizePoint] = {}
    with pool.Pool((inner,), outer if inner == 1 else 1) as counts_pool:
        for done, (_item, point) in enumerate(counts_pool.imap_unordered(_best_at_item, items), 1):
            key = (point.gpu, point.num_gpus)
            if key not in best or _better(point, best[key]):
                best[key] = point
            if progress is not None:
                progress(done, len(items))
    curves: dict[str, list[SizePoint]] = {gpu: [] for gpu in used}
    for (gpu, _n), point in sorted(best.items(), key=lambda kv: kv[0][1]):
        curves[gpu].append(point)
    curves = {gpu: explain_curve(curve) for gpu, curve in curves.items()}
    choice = {gpu: choose(curve, deadline_days, budget_usd) for gpu, curve in curves.items()}
    return SizeResult(curves, choice, deadline_days, budget_usd, used)


def gpu_price(base: Scenario, gpu: str, prices: dict[str, float] | None) -> tuple[float, str]:
    """USD per GPU-hour of ``gpu`` and where it comes from (the module docstring's order)."""
    if prices and gpu in prices:
        return prices[gpu], "--price"
    if base.costs is not None and gpu == base.cluster.gpu:
        return base.costs.usd_per_gpu_hour, "the scenario's costs"
    spec = gpu_spec(gpu)
    if spec.usd_per_gpu_hour is not None:
        return spec.usd_per_gpu_hour, "catalog: sim/catalog/gpus.yaml price_source"
    if base.costs is not None:
        return base.costs.usd_per_gpu_hour, f"the scenario's costs (no catalog price for {gpu})"
    return CostsSpec().usd_per_gpu_hour, f"default (no catalog price for {gpu}; give --price)"


def _better(a: SizePoint, b: SizePoint) -> bool:
    """Fewer days (points without a layout lose)."""
    if a.days is None:
        return False
    return b.days is None or a.days < b.days


def _best_at_item(item: tuple[Scenario, ClusterSpec, SearchSpace, int, int | None]) -> SizePoint:
    (inner,) = pool.shared()
    base, cluster, space, simulate, replicas = item
    try:
        return _best_at(base, cluster, space, simulate, replicas, inner)
    except BudgetError as err:  # one count beyond the work budget (its run level, say) does not stop the others
        return SizePoint(cluster.gpu, cluster.num_gpus, None, None, f"not evaluated: {err}",
                         base.training.global_batch_size)


def explain_curve(curve: Sequence[SizePoint]) -> list[SizePoint]:
    """``curve`` (by GPU count) with :func:`explain_slower` on every point slower than a smaller count."""
    out: list[SizePoint] = []
    for point in curve:
        smaller = [q for q in out if q.days is not None]
        if point.days is not None and smaller:
            faster = min(smaller, key=lambda q: q.days or 0.0)
            if faster.days is not None and faster.days < point.days:
                point = dataclasses.replace(point, why_slower=explain_slower(point, faster))
        out.append(point)
    return out


def explain_slower(point: SizePoint, faster: SizePoint) -> str:
    """Why ``point`` (more GPUs) trains slower than ``faster``: the batch (micro-batches per pipeline, so the
    bubble) and the divisibility of the GPU count (the layouts it allows), from the two best layouts."""
    a, b = point.layout, faster.layout
    assert a is not None and b is not None and point.figures is not None and faster.figures is not None
    gbs_a, gbs_b = point.global_batch or 0, faster.global_batch or 0
    m_a, m_b = gbs_a // (a.data * a.micro_batch_size), gbs_b // (b.data * b.micro_batch_size)
    reasons = []
    if m_a < m_b:
        reasons.append(f"batch: {gbs_a:,} sequences over DP {a.data} x micro-batch {a.micro_batch_size} leave "
                       f"{m_a} micro-batches per pipeline (vs {m_b} at {faster.num_gpus:,}), pipeline bubble "
                       f"{point.figures['bubble_fraction']:.0%} vs {faster.figures['bubble_fraction']:.0%}")
    odd = point.num_gpus // (point.num_gpus & -point.num_gpus)
    if odd > 1 and (a.tensor, a.pipeline, a.context) != (b.tensor, b.pipeline, b.context):
        reasons.append(f"divisibility: {point.num_gpus:,} = {point.num_gpus // odd:,} x {odd}; the degrees must "
                       f"multiply to it and divide the heads, layers and batch, and the best that do is "
                       f"TP{a.tensor} PP{a.pipeline} CP{a.context} DP{a.data} (vs TP{b.tensor} PP{b.pipeline} "
                       f"CP{b.context} DP{b.data})")
    if not reasons:
        reasons.append(f"its best layout runs at MFU {point.figures['mfu']:.1%} vs {faster.figures['mfu']:.1%} "
                       f"(step {point.figures['step_time_s']:.2f} s vs {faster.figures['step_time_s']:.2f} s)")
    return f"slower than {faster.num_gpus:,} GPUs ({faster.days:.1f} days): " + "; ".join(reasons)


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
    gbs = base.training.global_batch_size
    if ranked:
        layout, row = ranked[0]
        note = "; ".join(x for x in (batch_cap_note(gbs, cluster.num_gpus, layout), note) if x)
        return SizePoint(cluster.gpu, cluster.num_gpus, layout, row, note, gbs, spearman=result.prescreen_spearman())
    enum = result.enumeration
    if len(enum.valid) == 0:
        worst = max(enum.rejected.values(), key=lambda r: r.count, default=None)
        why = f"no valid layout ({worst.example})" if worst else "no valid layout"
    else:
        why = "no layout fits in memory"
    return SizePoint(cluster.gpu, cluster.num_gpus, None, None, "; ".join(x for x in (why, note) if x), gbs)


def batch_cap_note(global_batch: int, num_gpus: int, layout: Layout) -> str:
    """Why a count's best layout is pushed into model parallelism, when it is: DP divides both the global batch and
    the GPU count, so it is at most their greatest common divisor; where the best layout sits at that cap, TP x PP x
    CP are not chosen but forced (a batch of 6,250 = 2 x 5^5 sequences on 16,384 GPUs allows DP 2 at most)."""
    cap = math.gcd(global_batch, num_gpus)
    if layout.data != cap or cap == num_gpus:
        return ""
    return (f"batch: DP {cap} is the most {global_batch:,} sequences allow on {num_gpus:,} GPUs (DP divides both), "
            f"so TP x PP x CP must span {num_gpus // cap:,} GPUs; a global batch with more factors in common with the "
            f"count (--global-batch) allows more DP")


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


