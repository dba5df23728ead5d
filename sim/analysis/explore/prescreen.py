"""Fast analytic pre-screen of a candidate table: estimated step time and peak memory per GPU.

Per-layer figures come from the real cost model (``sim.costs.layer``, ``sim.costs.memory``,
``sim.costs.zero``, ``sim.network.paths``), evaluated once per distinct (TP, CP, micro-batch, recompute, EP,
ETP), pipeline split or communication group; the pipeline is then assembled in closed form with numpy over
the whole table:

* step ``= (m + (p-1)/v) T_mb`` for interleaved 1F1B, ``(m + p - 1) T_mb`` for 1F1B and GPipe, with
  ``T_mb`` the forward + backward of the most loaded stage (its dense and MoE layers each at their own
  time), plus the pipeline fill's activation transfers, the DP traffic the ZeRO plan the engine runs
  (``memory.dp_plan``) leaves exposed, and the optimizer on the plan's shard. The plan decides the traffic:
  one gradient reduction per step, or one per micro-batch (ZeRO-2/3 ``every-microbatch``), exposed beyond
  the last chunk's tail only when it outlasts the compute it overlaps; ZeRO-3 layer passes take the longer
  of their compute (plus FSDP2's copies) and their parameter gathers (as many per pass as the plan says:
  resharding, re-gather for recompute) plus the per-micro-batch reduce-scatter, or their sum where the
  plan's collectives block (DeepSpeed 0.3; their host time is not estimated); parameters held from the
  first forward are gathered once. As in the engine, routed-expert parameters are gathered and their gradients
  reduced on the expert-data-parallel (EDP) group's path, the rest on the DP path, one after the other.
* memory mirrors ``sim.costs.memory.stage_memory`` (parameters per rank, routed-expert parameters sharded
  over EP x ETP and ZeRO over EDP, model state and buffers from its own functions, per distinct key) on the
  pipeline ranks that can peak (the first holds the embedding and the most micro-batches, the last the LM
  head and logits; of the middle ranks with the same layers and parameters, the lowest holds the most
  micro-batches), with each schedule's in-flight micro-batch count in closed form.

The estimate only orders candidates for simulation and discards the clearly out-of-memory ones; every
figure the search reports comes from ``evaluate``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from sim import catalog
from sim.analysis.explore.space import SCHEDULES, Candidates, Enumeration
from sim.costs import flops, fp8, kernels, layer, memory, shapes, zero
from sim.costs.collectives import Collective, collective_time
from sim.network.paths import group_path
from sim.parallelism.mesh import Axis, Group, ParallelMesh
from sim.parallelism.sharding import chunk_layers
from sim.specs import budget
from sim.specs.enums import Schedule
from sim.specs.scenario import Scenario
from sim.units import GIB

#: A layout is discarded by the pre-screen only when its estimated peak exceeds the GPU's memory by more than this
#: fraction. The estimate reproduces ``peak_memory`` for dense and MoE models (tests/explore/test_prescreen_memory.py,
#: to 1e-9): the slack only absorbs float rounding.
MEMORY_SLACK = 1e-6

INTERLEAVED = SCHEDULES.index(Schedule.INTERLEAVED)
GPIPE = SCHEDULES.index(Schedule.GPIPE)


@dataclass(frozen=True, slots=True)
class Estimate:
    """Pre-screen figures per candidate."""

    step_s: np.ndarray
    memory_bytes: np.ndarray
    capacity_bytes: float
    within_budget: np.ndarray | None = None
    """Pipeline work items of one step (micro-batches x stages x chunks) within the work budget
    (``sim.specs.budget``; all when it is lifted); None: all."""

    @property
    def plausible(self) -> np.ndarray:
        """Candidates not clearly out of memory."""
        return self.memory_bytes <= self.capacity_bytes * (1 + MEMORY_SLACK)


def per_key(cands: Candidates, keys: Sequence[str], fn: Callable[[int], Sequence[float]],
            pad: int | None = None) -> np.ndarray:
    """``fn(i)`` on the first candidate of each distinct value of the ``keys`` columns, spread to all rows.

    Returns an array of shape (len(cands), len(fn's result)). With ``pad``, results may differ in length: the
    shorter ones repeat their ``pad`` values after the first two (one pipeline rank's figures, see
    :meth:`_Probe.stage_figures`) up to the longest.
    """
    first, inverse = _unique_rows([cands[k] for k in keys])
    results = [list(fn(int(i))) for i in first]
    if pad is not None:
        width = max(len(r) for r in results)
        results = [r + r[2:2 + pad] * ((width - len(r)) // pad) for r in results]
    values = np.array(results, dtype=float)
    return values[inverse.reshape(-1)]


def _unique_map(fn: Callable[..., float], *arrays: np.ndarray) -> np.ndarray:
    """``fn`` evaluated once per distinct row of ``arrays``."""
    first, inverse = _unique_rows([np.asarray(a) for a in arrays])
    rows = np.stack(arrays, axis=1)[first]
    return np.array([fn(*row) for row in rows], dtype=float)[inverse]


def _unique_rows(columns: Sequence[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """``np.unique(np.stack(columns, axis=1), axis=0, return_index=True, return_inverse=True)`` without its
    row sort (a lexicographic argsort of the whole table, seconds on a search's ~10^5 rows): each column
    becomes its sorted distinct-value codes, combined into one mixed-radix integer per row (same order as the
    rows' lexicographic order), whose 1-D unique is fast. Returns the first row of each distinct row, in that
    order, and each row's group."""
    n = len(columns[0])
    key = np.zeros(n, dtype=np.int64)
    radix = 1
    for col in columns:
        values, codes = np.unique(col, return_inverse=True)
        radix *= len(values)
        if radix >= 2**62:  # too many combinations for one integer: the plain row unique
            _, first, inverse = np.unique(np.stack(columns, axis=1), axis=0, return_index=True, return_inverse=True)
            return first, inverse.reshape(-1)
        key = key * len(values) + codes.reshape(-1)
    _, first, inverse = np.unique(key, return_index=True, return_inverse=True)
    return first, inverse.reshape(-1)


class _Probe:
    """Scenarios of the table on demand (the first row of each key), built with ``Layout.apply`` on the base without
    its failures block: the pre-screen's figures never read it, and its rules (which read only the job's size) were
    checked once by the enumeration, so each probe need not re-run them."""

    def __init__(self, enum: Enumeration) -> None:
        self.enum = enum
        self.base = dataclasses.replace(enum.base, failures=None)
        self.gpu = enum.base.gpu
        self.topo = enum.cluster.topology
        self._scenarios: dict[int, Scenario] = {}
        self._largest: dict[tuple[int, int, int], float] = {}

    def scenario(self, i: int) -> Scenario:
        if i not in self._scenarios:
            self._scenarios[i] = self.enum.valid.layout(i).apply(self.base, self.enum.cluster)
        return self._scenarios[i]

    def dp_plan(self, s: Scenario) -> zero.DataParallelPlan:
        """``memory.dp_plan(s)``, its largest layer (a sum over every layer) computed once per (TP, EP, ETP)."""
        p = s.parallelism
        key = (p.tensor, p.expert, p.expert_tensor_degree)
        if key not in self._largest:
            self._largest[key] = memory.largest_layer_params(s)
        return zero.plan(s, self._largest[key])

    def group_path(self, tp: int, cp: int, dp: int, *axes: Axis):
        """The path of one group of a (TP, CP, DP, PP=2) mesh, tiled alone (cheaper than the
        engine's all-groups-at-once paths, which the simulation then uses)."""
        mesh = ParallelMesh({Axis.TP: int(tp), Axis.CP: int(cp), Axis.DP: int(dp), Axis.PP: 2})
        return group_path(self.topo, self.gpu, mesh.group(*axes))

    def edp_path(self, tp: int, cp: int, dp: int, ep: int, etp: int):
        """The path of one EDP group (MoE parallel folding: EDP ranks are ETP x EP apart in a stage), tiled alone."""
        return group_path(self.topo, self.gpu, Group(int(tp * cp * dp // (etp * ep)), int(etp * ep)))

    def expert_layer_params(self, i: int) -> tuple[float]:
        """Per (TP, EP, ETP): the routed-expert parameters per GPU of an MoE layer."""
        s = self.scenario(i)
        return (memory.expert_layer_params_per_gpu(s, next(x for x in range(s.model.num_layers)
                                                            if flops.is_moe_layer(s.model, x))),)

    def layer_figures(self, i: int) -> tuple[float, ...]:
        """Per (TP, CP, micro-batch, recompute, TP overlap, EP, ETP): forward and backward times of a dense and of
        an MoE layer, embedding and head times; activation bytes."""
        s = self.scenario(i)
        mesh = ParallelMesh.from_layout(s.parallelism)
        topo, gpu = self.topo, self.gpu
        etp = s.parallelism.expert_tensor_degree
        expert = Group(s.parallelism.expert, etp)  # folded expert mesh: EP ranks are ETP ranks apart
        paths = layer.Paths(tp=group_path(topo, gpu, mesh.group(Axis.TP)),
                            cp=group_path(topo, gpu, mesh.group(Axis.CP)), ep=group_path(topo, gpu, expert),
                            etp=group_path(topo, gpu, Group(etp, 1)))
        dense = layer.layer_time(s, gpu, paths, moe=False)
        moe = layer.layer_time(s, gpu, paths, moe=True) if s.model.moe is not None else dense
        emb, head = layer.embedding_time(s, gpu), layer.head_time(s, gpu, paths)
        return (dense.forward.total, dense.backward.total, moe.forward.total, moe.backward.total,
                emb.forward.total + emb.backward.total, head.forward.total + head.backward.total,
                memory.layer_activation_bytes(s), memory.recompute_working_bytes(s))

    def stage_figures(self, i: int) -> tuple[float, ...]:
        """Per (TP, PP, virtual PP, split, EP, ETP), from the memory model's own functions: the parameters per GPU
        of a dense and of an MoE layer, then :data:`RANK_FIELDS` of every pipeline rank that can peak or be the
        slowest: the first, the last, and of the middle ranks the lowest of each distinct set of figures (the
        same figures on a later rank hold fewer micro-batches in flight), padded to ``max_ranks`` with the
        first rank's."""
        s = self.scenario(i)
        p, m = s.parallelism, s.model
        chunks = chunk_layers(s)
        kinds = {flops.is_moe_layer(m, x): x for x in range(m.num_layers)}
        dense_layer = memory.layer_params_per_gpu(s, kinds.get(False, 0))
        moe_layer = memory.layer_params_per_gpu(s, kinds[True]) if True in kinds else dense_layer
        out: dict[tuple[float, ...], int] = {}
        for rank in (0, p.pipeline - 1, *range(1, p.pipeline - 1)):
            layers = [x for j in range(p.virtual_pipeline) for x in chunks[j * p.pipeline + rank]]
            moe = sum(flops.is_moe_layer(m, x) for x in layers)
            figures = (memory.stage_params_per_gpu(s, rank), memory.stage_expert_params_per_gpu(s, rank),
                       max(len(chunks[j * p.pipeline + rank]) for j in range(p.virtual_pipeline)),
                       len(layers) - moe, moe)
            if rank in (0, p.pipeline - 1):
                out[(rank, *figures)] = rank
            else:
                out.setdefault(figures, rank)
        rows = [(rank, *figures[-5:]) for figures, rank in out.items()]
        return (dense_layer, moe_layer, *(x for row in rows for x in row))

    def state_figures(self, i: int) -> tuple[float, float]:
        """Per (PP, CP, DP, ZeRO, EP, ETP): bytes per parameter of weights (fp8 copies included), gradients and
        optimizer state under the scenario's data-parallel plan (``sim.costs.zero``: sharding per stage,
        framework, gradient sync, resharding, HSDP shard group), for a dense and for a routed-expert parameter
        (sharded over the EDP group instead). ``zero.state_bytes`` is linear in both counts."""
        s = self.scenario(i)
        plan, opt = self.dp_plan(s), memory.OPTIMIZER_BYTES[s.training.optimizer]
        fp8_weights = fp8.weight_copy_bytes(s, 1.0) if s.parallelism.zero_stage < 3 else 0.0
        dense, expert = zero.state_bytes(plan, 1.0, opt), zero.state_bytes(plan, 1.0, opt, 1.0)
        return (dense.weights + dense.gradients + dense.optimizer + fp8_weights,
                expert.weights + expert.gradients + expert.optimizer + fp8_weights)

    def plan_figures(self, i: int) -> tuple[float, ...]:
        """Per (TP, PP, CP, DP, ZeRO, recompute, EP, ETP): the data-parallel plan (``memory.dp_plan``, the one the
        engine runs) as :data:`PLAN_FIELDS`."""
        s = self.scenario(i)
        plan = self.dp_plan(s)
        return (plan.grads_sharded, plan.gathers(True, False), plan.gathers(False, False), plan.params_held,
                plan.gather_copy_passes, plan.reduce_copy_passes, plan.grad_bytes, plan.replicas, plan.shard,
                plan.expert_shard, plan.blocking, plan.block_gather_bytes)

    def buffer_bytes(self, i: int) -> tuple[float]:
        """Per (TP, PP, CP, DP, ZeRO, micro-batch, EP, ETP): the memory model's communication buffers."""
        s = self.scenario(i)
        return (memory.buffer_bytes(s, self.dp_plan(s)),)


#: Per pipeline rank of :meth:`_Probe.stage_figures`: its index, parameters per GPU (before ZeRO), the routed-expert
#: part of them, the layers of its largest model chunk, its dense and its MoE layers.
RANK_FIELDS = ("rank", "params", "expert_params", "chunk_layers", "dense_layers", "moe_layers")

EXPERT_MESH = ("expert", "expert_tensor")

#: An uneven pipeline split's first and last stage layers (0, 0 when even).
UNEVEN = ("first_stage_layers", "last_stage_layers")

#: :meth:`_Probe.plan_figures`: what ``zero.DataParallelPlan`` says of one step (gathers per forward and backward
#: pass of a layer after its first forward).
PLAN_FIELDS = ("grads_sharded", "forward_gathers", "backward_gathers", "params_held", "gather_copy_passes",
               "reduce_copy_passes", "grad_bytes", "replicas", "shard", "expert_shard", "blocking",
               "block_gather_bytes")


def prescreen(enum: Enumeration) -> Estimate:
    """Estimated step time (s) and peak memory per GPU (bytes) of every valid candidate of ``enum``."""
    c, s, probe = enum.valid, enum.base, _Probe(enum)
    if len(c) == 0:
        return Estimate(np.zeros(0), np.zeros(0), s.gpu.memory_gib * GIB, np.zeros(0, dtype=bool))
    m = s.training.global_batch_size // (c["data"] * c["micro_batch_size"])
    lay = per_key(c, ("tensor", "context", "micro_batch_size", "activation_recompute", "tp_comm_overlap",
                      *EXPERT_MESH), probe.layer_figures)
    stages = per_key(c, ("tensor", "pipeline", "virtual_pipeline", "split", *UNEVEN, *EXPERT_MESH),
                     probe.stage_figures, pad=len(RANK_FIELDS))
    n = len(RANK_FIELDS)
    layer_params = stages[:, :2].T
    ranks = [dict(zip(RANK_FIELDS, stages[:, 2 + k * n:2 + (k + 1) * n].T, strict=True))
             for k in range((stages.shape[1] - 2) // n)]
    state = per_key(c, ("pipeline", "context", "data", "zero_stage", *EXPERT_MESH), probe.state_figures)
    buffers = per_key(c, ("tensor", "pipeline", "context", "data", "zero_stage", "micro_batch_size", *EXPERT_MESH),
                      probe.buffer_bytes)[:, 0]
    mem = _peak_memory(s, c, m, ranks, lay[:, 6], lay[:, 7], state, buffers)
    step = _step_time(s, c, probe, m, ranks, layer_params, lay[:, :6].T)
    items = m * c["pipeline"] * c["virtual_pipeline"]
    return Estimate(step, mem, s.gpu.memory_gib * GIB, budget.allowed() | (items <= budget.LIMITS.pipeline_items))


def in_flight(schedule, pp, vp, rank, m) -> np.ndarray:
    """Closed form of ``sim.parallelism.schedules.in_flight_microbatches`` (vectorised)."""
    one_f_one_b = np.minimum(pp - rank, m)
    interleaved = np.minimum((pp - rank - 1) * 2 + (vp - 1) * pp + 1, m * vp)
    return np.where(schedule == GPIPE, m, np.where(schedule == INTERLEAVED, interleaved, one_f_one_b))


def _peak_memory(s: Scenario, c: Candidates, m, ranks, act, working, state, buffers) -> np.ndarray:
    """``memory.stage_memory`` of the ranks that can peak; the largest total. ``state``: bytes per
    dense and per routed-expert parameter (columns); ``buffers``: bytes per GPU."""
    mdl = s.model
    tp, pp, vp, cp, mb = c["tensor"], c["pipeline"], c["virtual_pipeline"], c["context"], c["micro_batch_size"]
    tokens = np.asarray(shapes.tokens_per_microbatch(mdl.seq_len, cp, mb))
    sp = shapes.sequence_split(tp, s.parallelism.sequence_parallel)
    consts = catalog.efficiency_table()["memory"]
    peak = np.zeros(len(c))
    for r in ranks:
        rank = r["rank"]
        first, last = rank == 0, rank == pp - 1
        held = in_flight(c["schedule"], pp, vp, rank, m)
        acts = held * r["chunk_layers"] * act + working
        acts = acts + np.where(first, held * 2 * tokens * mdl.hidden_size / sp, 0.0)
        acts = acts + np.where(last, tokens * mdl.vocab_size / tp * (2 + 4), 0.0)
        model_state = (r["params"] - r["expert_params"]) * state[:, 0] + r["expert_params"] * state[:, 1]
        counted = model_state + acts + buffers
        reserve = consts["runtime_reserve_gib"]["value"] * GIB + consts["fragmentation_fraction"]["value"] * counted
        peak = np.maximum(peak, counted + reserve)
    return peak


def _step_time(s: Scenario, c: Candidates, probe: _Probe, m, ranks, layer_params, layer_times) -> np.ndarray:
    """Closed-form step time of each candidate (see the module docstring)."""
    tp, pp, vp, cp, dp, zero_stage = (c["tensor"], c["pipeline"], c["virtual_pipeline"], c["context"], c["data"],
                                      c["zero_stage"])
    mdl = s.model
    plan = dict(zip(PLAN_FIELDS, per_key(c, ("tensor", "pipeline", "context", "data", "zero_stage",
                                              "activation_recompute", *EXPERT_MESH), probe.plan_figures).T,
                    strict=True))
    dense_f, dense_b, moe_f, moe_b, emb_t, head_t = layer_times
    dense_p, moe_p = layer_params
    dp_n = dp * cp
    moe = s.model.moe is not None
    ep, etp = c["expert"], c["expert_tensor"]
    edp = tp * cp * dp // np.maximum(etp * ep, 1) if moe else np.ones(len(c), dtype=np.int64)
    moe_e = per_key(c, ("tensor", *EXPERT_MESH), probe.expert_layer_params)[:, 0] if moe else np.zeros(len(c))
    any_dp = (dp_n > 1) | (edp > 1)  # the engine's DP traffic: dense over DP x CP, routed experts over EDP
    sharded_dp = (zero_stage == 3) & any_dp
    grads_sharded = plan["grads_sharded"] > 0

    def dp_time(op: Collective):
        return lambda t, c_, d, nbytes: collective_time(op, nbytes, probe.group_path(t, c_, d, Axis.CP, Axis.DP))

    def edp_time(op: Collective, expert_params, bytes_per_param):
        """``op`` on ``expert_params`` routed-expert parameters over the EDP group (0 where it has one rank)."""
        if not moe:
            return 0.0
        t = _unique_map(lambda t_, c_, d, e, x, nbytes: collective_time(op, nbytes, probe.edp_path(t_, c_, d, e, x)),
                        tp, cp, dp, ep, etp, expert_params * bytes_per_param)
        return np.where((edp > 1) & (expert_params > 0), t, 0.0)

    def p2p_time(t, c_, d, nbytes):
        return collective_time(Collective.SEND_RECV, nbytes, probe.group_path(t, c_, d, Axis.PP))

    def gather(params, expert_params, param_bytes=zero.PARAM_BYTES):
        dense = _unique_map(dp_time(Collective.ALL_GATHER), tp, cp, dp, (params - expert_params) * param_bytes)
        return np.where(dp_n > 1, dense, 0.0) + edp_time(Collective.ALL_GATHER, expert_params, param_bytes)

    def copies(params, bytes_per_param):
        """FSDP2's copy-out / chunk_cat around collectives, on the compute stream (the engine's _copy_time):
        one read and one write of ``bytes_per_param`` (summed over the copy passes) per parameter."""
        return _unique_map(lambda n: kernels.hbm_time(probe.gpu, n), 2 * params * bytes_per_param)

    # ZeRO-3: every layer pass waits for its parameter gathers (``gathers`` per pass, prefetched) and, with sharded
    # gradients, its backward's reduce-scatter shares the DP link: the pass takes the longer of compute and traffic.
    held = plan["params_held"] > 0
    gf = np.where(held, 0, plan["forward_gathers"])
    gb = np.where(held, 0, plan["backward_gathers"])
    times = []
    for fwd, bwd, params, expert in ((dense_f, dense_b, dense_p, 0.0), (moe_f, moe_b, moe_p, moe_e)):
        g = gather(params, expert, plan["block_gather_bytes"])
        rs = np.where(dp_n > 1, _unique_map(dp_time(Collective.REDUCE_SCATTER), tp, cp, dp,
                                            (params - expert) * plan["grad_bytes"]), 0.0)
        rs = np.where(grads_sharded, rs + edp_time(Collective.REDUCE_SCATTER, expert, plan["grad_bytes"]), 0.0)
        gather_copy = plan["gather_copy_passes"] * plan["block_gather_bytes"]  # bytes per parameter and gather
        fc = fwd + copies(params, gf * gather_copy)
        reduce_copy = np.where(grads_sharded, plan["reduce_copy_passes"], 0) * zero.PARAM_BYTES
        bc = bwd + copies(params, gb * gather_copy + reduce_copy)
        blocking = plan["blocking"] > 0  # DeepSpeed 0.3: the collectives wait for an idle device, nothing overlaps
        f3 = np.where(blocking, fc + gf * g, np.maximum(fc, gf * g))
        b3 = np.where(blocking, bc + gb * g + rs, np.maximum(bc, gb * g + rs))
        times.append((np.where(sharded_dp, f3, fwd), np.where(sharded_dp, b3, bwd), g))
    (dense_f3, dense_b3, dense_g), (moe_f3, moe_b3, moe_g) = times
    busy = [r["dense_layers"] * (dense_f3 + dense_b3) + r["moe_layers"] * (moe_f3 + moe_b3)
            + np.where(r["rank"] == 0, emb_t, 0.0) + np.where(r["rank"] == pp - 1, head_t, 0.0) for r in ranks]
    t_mb = np.max(busy, axis=0)
    pipeline = np.where(c["schedule"] == INTERLEAVED, (m + (pp - 1) / vp) * t_mb, (m + pp - 1) * t_mb)
    tokens = np.asarray(shapes.tokens_per_microbatch(mdl.seq_len, cp, c["micro_batch_size"]))
    act_bytes = np.asarray(shapes.activation_bytes(tokens, mdl.hidden_size, tp, s.parallelism.sequence_parallel))
    fill = 2 * (pp - 1) * _unique_map(p2p_time, tp, cp, dp, act_bytes)

    # The rank with the most parameters reduces the most gradients and updates the largest shard.
    top = np.argmax(np.stack([r["params"] for r in ranks]), axis=0)
    params = np.choose(top, [r["params"] for r in ranks])
    expert_params = np.choose(top, [r["expert_params"] for r in ranks])
    layers = np.choose(top, [r["dense_layers"] + r["moe_layers"] for r in ranks])
    grad = (params - expert_params) * plan["grad_bytes"]
    reduce = np.where(zero_stage == 0, _unique_map(dp_time(Collective.ALL_REDUCE), tp, cp, dp, grad),
                      _unique_map(dp_time(Collective.REDUCE_SCATTER), tp, cp, dp, grad))
    # HSDP: each dense gradient shard is all-reduced across the replica groups (costed on the DP path)
    reduce = reduce + np.where(plan["replicas"] > 1, _unique_map(dp_time(Collective.ALL_REDUCE), tp, cp, dp,
                                                                 grad / plan["shard"]), 0.0)
    reduce = np.where(dp_n > 1, reduce, 0.0)
    # routed-expert gradients: the same reduction over the EDP group (HSDP included: one collective)
    reduce = reduce + np.where(zero_stage == 0, edp_time(Collective.ALL_REDUCE, expert_params, plan["grad_bytes"]),
                               edp_time(Collective.REDUCE_SCATTER, expert_params, plan["grad_bytes"]))
    # Gradients reduced once per step (or every micro-batch with sharded gradients, ZeRO-2 every-microbatch):
    # the last chunk's reduction ends after the last backward; the rest is hidden unless the link is busier than
    # the compute it overlaps.
    per_layer_b = (dense_b3 * np.choose(top, [r["dense_layers"] for r in ranks])
                   + moe_b3 * np.choose(top, [r["moe_layers"] for r in ranks])) / np.maximum(layers, 1)
    tail = np.maximum(reduce / vp, reduce - layers / vp * per_layer_b)
    reductions = np.where(grads_sharded, m, 1)
    exposed = np.where(sharded_dp & grads_sharded, 0.0, np.maximum(tail, reductions * reduce - m * t_mb))
    exposed = np.where(any_dp, exposed, 0.0)
    # ZeRO-1/2 gather the updated parameters (ahead of each chunk's first forward when overlapped); ZeRO-3 cannot
    # hide the first layer's gather, and when the parameters are held the whole stage is gathered in the first
    # forward.
    per_chunk = np.where(s.parallelism.overlap_param_gather, vp, 1)
    stage_gather = gather(params / per_chunk, expert_params / per_chunk)
    first_layer = np.where(moe_p > dense_p, moe_g, dense_g)
    held_gathers = np.maximum(first_layer, sum(r_l * np.maximum(g - f, 0.0) for r_l, g, f in (
        (np.choose(top, [r["dense_layers"] for r in ranks]), dense_g, dense_f),
        (np.choose(top, [r["moe_layers"] for r in ranks]), moe_g, moe_f))))
    gathers = np.where(zero_stage == 3, np.where(held, held_gathers, first_layer),
                       np.where(zero_stage >= 1, stage_gather, 0.0))
    exposed = exposed + np.where(any_dp, gathers, 0.0)
    local = np.where(zero_stage >= 1, (params - expert_params) / plan["shard"] + expert_params / plan["expert_shard"],
                     params)
    optimizer = _unique_map(lambda n: layer.optimizer_time(s, probe.gpu, n), local)
    return pipeline + fill + exposed + optimizer
