"""Fast analytic pre-screen of a candidate table: estimated step time and peak memory per GPU.

Per-layer figures come from the real cost model (``sim.costs.layer``, ``sim.costs.memory``,
``sim.network.paths``), evaluated once per distinct (TP, CP, micro-batch, recompute) or communication
group; the pipeline is then assembled in closed form with numpy over the whole table:

* step ``= (m + (p-1)/v) T_mb`` for interleaved 1F1B, ``(m + p - 1) T_mb`` for 1F1B and GPipe, with
  ``T_mb`` the forward + backward of the most loaded stage, plus the pipeline fill's activation
  transfers, the exposed tail of the DP gradient reduction and parameter gather, and the optimizer;
  ZeRO-3 layers run at ``max(compute, parameter all-gather)``.
* memory mirrors ``sim.costs.memory.stage_memory`` (model state and buffers from its own functions, per
  distinct key) on the first, second and last pipeline ranks (the
  only ones that can peak: the first holds the embedding and the most micro-batches, the last the LM
  head and logits, the second the most micro-batches of the middle ranks), with each schedule's
  in-flight micro-batch count in closed form.

The estimate only orders candidates for simulation and discards the clearly out-of-memory ones; every
figure the search reports comes from ``evaluate``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from sim import catalog
from sim.analysis.explore.space import SCHEDULES, Candidates, Enumeration
from sim.costs import flops, fp8, layer, memory, shapes, zero
from sim.costs.collectives import Collective, collective_time
from sim.network.paths import group_path
from sim.parallelism.mesh import Axis, Group, ParallelMesh
from sim.specs.enums import GradDtype, Schedule
from sim.specs.scenario import Scenario
from sim.units import GIB

#: A layout is discarded by the pre-screen only when its estimated peak exceeds the GPU's memory by
#: more than this fraction; closer ones go to the exact memory model. The estimate reproduces
#: ``peak_memory`` for dense models (tests/explore/test_prescreen_memory.py); the slack covers MoE models,
#: whose per-stage parameters it averages over layers.
MEMORY_SLACK = 0.05

INTERLEAVED = SCHEDULES.index(Schedule.INTERLEAVED)
GPIPE = SCHEDULES.index(Schedule.GPIPE)


@dataclass(frozen=True, slots=True)
class Estimate:
    """Pre-screen figures per candidate."""

    step_s: np.ndarray
    memory_bytes: np.ndarray
    capacity_bytes: float

    @property
    def plausible(self) -> np.ndarray:
        """Candidates not clearly out of memory."""
        return self.memory_bytes <= self.capacity_bytes * (1 + MEMORY_SLACK)


def per_key(cands: Candidates, keys: Sequence[str], fn: Callable[[int], Sequence[float]]) -> np.ndarray:
    """``fn(i)`` on the first candidate of each distinct value of the ``keys`` columns, spread to all rows.

    Returns an array of shape (len(cands), len(fn's result)).
    """
    table = np.stack([cands[k] for k in keys], axis=1)
    _, first, inverse = np.unique(table, axis=0, return_index=True, return_inverse=True)
    values = np.array([fn(int(i)) for i in first], dtype=float)
    return values[inverse.reshape(-1)]


def _unique_map(fn: Callable[..., float], *arrays: np.ndarray) -> np.ndarray:
    """``fn`` evaluated once per distinct row of ``arrays``."""
    table = np.stack(arrays, axis=1)
    rows, inverse = np.unique(table, axis=0, return_inverse=True)
    return np.array([fn(*row) for row in rows], dtype=float)[inverse.reshape(-1)]


class _Probe:
    """Scenarios of the table on demand (the first row of each key), built with ``Layout.apply``."""

    def __init__(self, enum: Enumeration) -> None:
        self.enum = enum
        self.gpu = enum.base.gpu
        self.topo = enum.cluster.topology

    def scenario(self, i: int) -> Scenario:
        return self.enum.valid.layout(i).apply(self.enum.base, self.enum.cluster)

    def group_path(self, tp: int, cp: int, dp: int, *axes: Axis):
        """The path of one group of a (TP, CP, DP, PP=2) mesh, tiled alone (cheaper than the
        engine's all-groups-at-once paths, which the simulation then uses)."""
        mesh = ParallelMesh({Axis.TP: int(tp), Axis.CP: int(cp), Axis.DP: int(dp), Axis.PP: 2})
        return group_path(self.topo, self.gpu, mesh.group(*axes))

    def layer_figures(self, i: int) -> tuple[float, ...]:
        """Per (TP, CP, micro-batch, recompute, TP overlap): layer, embedding and head times; activation bytes."""
        s = self.scenario(i)
        mesh = ParallelMesh.from_layout(s.parallelism)
        topo, gpu = self.topo, self.gpu
        etp = s.parallelism.expert_tensor_degree
        expert = Group(s.parallelism.expert, etp)  # folded expert mesh: EP ranks are ETP ranks apart
        paths = layer.Paths(tp=group_path(topo, gpu, mesh.group(Axis.TP)),
                            cp=group_path(topo, gpu, mesh.group(Axis.CP)), ep=group_path(topo, gpu, expert),
                            etp=group_path(topo, gpu, Group(etp, 1)))
        m = s.model
        moe_share = flops.num_moe_layers(m) / m.num_layers
        dense = layer.layer_time(s, gpu, paths, moe=False)
        moe = layer.layer_time(s, gpu, paths, moe=True) if moe_share else dense
        fwd = (1 - moe_share) * dense.forward.total + moe_share * moe.forward.total
        bwd = (1 - moe_share) * dense.backward.total + moe_share * moe.backward.total
        emb, head = layer.embedding_time(s, gpu), layer.head_time(s, gpu, paths)
        return (fwd, bwd, emb.forward.total + emb.backward.total, head.forward.total + head.backward.total,
                memory.layer_activation_bytes(s), memory.recompute_working_bytes(s))

    def param_figures(self, i: int) -> tuple[float, float, float, float]:
        """Per TP degree: mean and largest layer parameters per GPU, the embedding's share, and the head's
        parameters besides an untied embedding copy (final norm, MTP modules)."""
        s = self.scenario(i)
        params = [memory.layer_params_per_gpu(s, k) for k in range(s.model.num_layers)]
        emb = memory.embedding_params_per_gpu(s)
        p = s.parallelism
        tied_alone = s.model.tied_embeddings and p.pipeline * p.virtual_pipeline == 1
        return float(np.mean(params)), max(params), emb, memory.head_params_per_gpu(s) - (0.0 if tied_alone else emb)

    def state_figures(self, i: int) -> tuple[float, float, float]:
        """Per (PP, CP, DP, ZeRO): bytes per parameter of weights (fp8 copies included), gradients and optimizer
        state under the scenario's data-parallel plan (``sim.costs.zero``: sharding per stage, framework,
        gradient sync, resharding, HSDP shard group)."""
        s = self.scenario(i)
        state = zero.state_bytes(memory.dp_plan(s), 1.0, memory.OPTIMIZER_BYTES[s.training.optimizer])
        fp8_weights = fp8.weight_copy_bytes(s, 1.0) if s.parallelism.zero_stage < 3 else 0.0
        return state.weights + fp8_weights, state.gradients, state.optimizer

    def buffer_bytes(self, i: int) -> tuple[float]:
        """Per (TP, PP, CP, DP, ZeRO, micro-batch): the memory model's communication buffers."""
        s = self.scenario(i)
        return (memory.buffer_bytes(s, memory.dp_plan(s)),)


def prescreen(enum: Enumeration) -> Estimate:
    """Estimated step time (s) and peak memory per GPU (bytes) of every valid candidate of ``enum``."""
    c, s, probe = enum.valid, enum.base, _Probe(enum)
    if len(c) == 0:
        return Estimate(np.zeros(0), np.zeros(0), s.gpu.memory_gib * GIB)
    pp, vp, split = c["pipeline"], c["virtual_pipeline"], c["split"]
    m = s.training.global_batch_size // (c["data"] * c["micro_batch_size"])
    lay = per_key(c, ("tensor", "context", "micro_batch_size", "activation_recompute", "tp_comm_overlap"),
                  probe.layer_figures)
    fwd, bwd, emb_t, head_t, act, working = lay.T
    lp, _, emb_p, head_extra = per_key(c, ("tensor",), probe.param_figures).T
    shape = _StageShape(s, pp, vp, split, emb_p, lp, head_extra)
    state = per_key(c, ("pipeline", "context", "data", "zero_stage"), probe.state_figures)
    buffers = per_key(c, ("tensor", "pipeline", "context", "data", "zero_stage", "micro_batch_size"),
                      probe.buffer_bytes)[:, 0]
    mem = _peak_memory(s, c, m, shape, act, working, state, buffers)
    step = _step_time(s, c, probe, m, shape, fwd, bwd, emb_t, head_t)
    return Estimate(step, mem, s.gpu.memory_gib * GIB)


class _StageShape:
    """Layers and parameters of the first, a middle and the last pipeline rank (vectorised)."""

    def __init__(self, s: Scenario, pp, vp, split, emb_p, lp, head_extra) -> None:
        per = (s.model.num_layers + 2 * split) // (pp * vp)
        self.per = per
        self.first_layers = per * vp - split
        self.last_layers = per * vp - split - np.where(pp == 1, split, 0)
        self.mid_layers = per * vp
        head_p = head_extra + np.where(s.model.tied_embeddings & (pp * vp == 1), 0.0, emb_p)
        self.emb_p, self.head_p = emb_p, head_p
        self.first_params = self.first_layers * lp + emb_p + np.where(pp == 1, head_p, 0.0)
        self.last_params = self.last_layers * lp + head_p
        self.mid_params = self.mid_layers * lp

    def chunk_layers(self, rank_is_end: np.ndarray, vp, split) -> np.ndarray:
        """Largest chunk of a rank: one layer fewer on an end rank without other chunks."""
        return self.per - np.where(rank_is_end & (vp == 1), split, 0)


def in_flight(schedule, pp, vp, rank, m) -> np.ndarray:
    """Closed form of ``sim.parallelism.schedules.in_flight_microbatches`` (vectorised)."""
    one_f_one_b = np.minimum(pp - rank, m)
    interleaved = np.minimum((pp - rank - 1) * 2 + (vp - 1) * pp + 1, m * vp)
    return np.where(schedule == GPIPE, m, np.where(schedule == INTERLEAVED, interleaved, one_f_one_b))


def _peak_memory(s: Scenario, c: Candidates, m, shape: _StageShape, act, working, state, buffers) -> np.ndarray:
    """``memory.stage_memory`` of ranks 0, 1 and p-1; the largest total. ``state``: bytes per parameter of
    weights, gradients and optimizer state (columns); ``buffers``: bytes per GPU."""
    mdl = s.model
    tp, pp, vp, cp, mb, split = (c["tensor"], c["pipeline"], c["virtual_pipeline"], c["context"],
                                 c["micro_batch_size"], c["split"])
    tokens = np.asarray(shapes.tokens_per_microbatch(mdl.seq_len, cp, mb))
    sp = shapes.sequence_split(tp, s.parallelism.sequence_parallel)
    consts = catalog.efficiency_table()["memory"]
    per_param = state.sum(axis=1)
    peak = np.zeros(len(c))
    for rank in (np.zeros_like(pp), np.minimum(1, pp - 1), pp - 1):
        first, last = rank == 0, rank == pp - 1
        params = np.where(first, shape.first_params, np.where(last, shape.last_params, shape.mid_params))
        held = in_flight(c["schedule"], pp, vp, rank, m)
        acts = held * shape.chunk_layers(first | last, vp, split) * act + working
        acts = acts + np.where(first, held * 2 * tokens * mdl.hidden_size / sp, 0.0)
        acts = acts + np.where(last, tokens * mdl.vocab_size / tp * (2 + 4), 0.0)
        counted = params * per_param + acts + buffers
        reserve = consts["runtime_reserve_gib"]["value"] * GIB + consts["fragmentation_fraction"]["value"] * counted
        peak = np.maximum(peak, counted + reserve)
    return peak


def _step_time(s: Scenario, c: Candidates, probe: _Probe, m, shape: _StageShape, fwd, bwd, emb_t, head_t):
    """Closed-form step time of each candidate (see the module docstring)."""
    p, mdl = s.parallelism, s.model
    tp, pp, vp, cp, dp, zero, mb = (c["tensor"], c["pipeline"], c["virtual_pipeline"], c["context"], c["data"],
                                    c["zero_stage"], c["micro_batch_size"])
    grad_bytes = 4 if p.grad_reduce_dtype is GradDtype.FP32 else 2
    dp_n = dp * cp

    def dp_time(op: Collective):
        return lambda t, c_, d, nbytes: collective_time(op, nbytes, probe.group_path(t, c_, d, Axis.CP, Axis.DP))

    def p2p_time(t, c_, d, nbytes):
        return collective_time(Collective.SEND_RECV, nbytes, probe.group_path(t, c_, d, Axis.PP))

    gather = _unique_map(dp_time(Collective.ALL_GATHER), tp, cp, dp, shape.mid_params / shape.mid_layers * 2)
    layer_f = np.where(zero == 3, np.maximum(fwd, gather), fwd)
    layer_b = np.where(zero == 3, np.maximum(bwd, gather), bwd)
    per_layer = layer_f + layer_b
    t_first = shape.first_layers * per_layer + emb_t + np.where(pp == 1, head_t, 0.0)
    t_last = shape.last_layers * per_layer + head_t
    t_mid = np.where(pp > 2, shape.mid_layers * per_layer, 0.0)
    t_mb = np.maximum(np.maximum(t_first, t_last), t_mid)
    pipeline = np.where(c["schedule"] == INTERLEAVED, (m + (pp - 1) / vp) * t_mb, (m + pp - 1) * t_mb)
    tokens = np.asarray(shapes.tokens_per_microbatch(mdl.seq_len, cp, mb))
    act_bytes = np.asarray(shapes.activation_bytes(tokens, mdl.hidden_size, tp, p.sequence_parallel))
    p2p = _unique_map(p2p_time, tp, cp, dp, act_bytes)
    fill = 2 * (pp - 1) * p2p
    params = np.maximum(np.maximum(shape.first_params, shape.last_params), shape.mid_params)
    reduce_op = np.where(zero == 0, 0, 1)
    reduce = np.where(reduce_op == 0,
                      _unique_map(dp_time(Collective.ALL_REDUCE), tp, cp, dp, params * grad_bytes),
                      _unique_map(dp_time(Collective.REDUCE_SCATTER), tp, cp, dp, params * grad_bytes))
    last_backward = shape.mid_layers / vp * layer_b
    exposed = np.where(dp_n > 1, np.maximum(reduce / vp, reduce - last_backward), 0.0)
    if p.overlap_param_gather:
        ag_chunk = _unique_map(dp_time(Collective.ALL_GATHER), tp, cp, dp, params / vp * 2)
    else:
        ag_chunk = _unique_map(dp_time(Collective.ALL_GATHER), tp, cp, dp, params * 2)
    exposed = exposed + np.where((zero == 1) | (zero == 2), ag_chunk, np.where(zero == 3, gather, 0.0))
    local = params / np.where(zero >= 1, dp_n, 1)
    optimizer = _unique_map(lambda n: layer.optimizer_time(s, probe.gpu, n), local)
    return pipeline + fill + exposed + optimizer
