"""Time of an MoE block's expert side for one micro-batch on one GPU: router, permutation, token dispatch and
combine over the EP group, the grouped expert GEMMs, the shared expert, load imbalance and dropping.

Sources, per term:

* Dispatchers (Megatron-Core ``megatron/core/transformer/moe/token_dispatcher.py``): ``alltoall`` permutes each
  rank's ``T`` tokens into ``T k`` routed copies, all-to-alls them over the EP group (the combine is the same
  all-to-all back), then all-gathers / reduce-scatters them over the expert-TP group when ETP > 1;
  ``allgather`` all-gathers every rank's ``T`` tokens over the EP group and reduce-scatters the outputs;
  ``deepep`` (the flex dispatcher on DeepEP's normal kernels, deepseek-ai/DeepEP docs/legacy.md) sends a
  token once per destination node over RDMA and forwards it inside the node over NVLink, so inter-node
  traffic is per distinct node, not per routed copy, and the dispatch is FP8 with fp8 training (DeepSeek-V3
  report §3.3: FP8 dispatch, BF16 combine) except under MXFP8, whose EP dispatch is not supported (bf16).
* All-to-all time on the EP group's fabric figures (``GroupPath.a2a_up_bw`` / ``a2a_out_bw``, from every
  group's flows at once, ``sim.network.paths.a2a_paths``): the NVLink and network parts move concurrently.
* Router, permute / unpermute and the expert activation are memory-bound (``kernels.hbm_time``); the router's
  gate is a small GEMM.
* Expert GEMMs: one dense GEMM per local expert (Megatron-Core's Transformer Engine grouped linear, DeepSpeed-MoE),
  or a grouped kernel's efficiency by tokens per local expert: catalog ``moe.yaml`` ``grouped_gemm`` (sourced there);
  under fp8 each expert's slice is quantized by its own kernel (``fp8.expert_quantize_time``).
* Kernels launched (the host-bound floor of a pass, ``layer._host_bound``): :func:`forward_kernels`.
* Load imbalance (``moe.routing: natural``) and token dropping (``moe.capacity_factor``): the busiest EP rank
  sets the pace (every rank waits for it at the combine); catalog ``moe.yaml`` ``routing``.
* Overlap: ``moe_shared_expert_overlap`` runs the shared expert beside the dispatch/combine (Megatron
  ``--moe-shared-expert-overlap``); ``moe_a2a_overlap`` (``--overlap-moe-expert-parallel-comm``) hides one
  micro-batch's all-to-all under another's compute, which only the steady 1F1B phase pairs
  (:func:`a2a_overlap_fraction`).
"""

from __future__ import annotations

import functools
import itertools
import math
from dataclasses import dataclass

from sim import catalog
from sim.costs import fp8, kernels
from sim.costs.collectives import Collective, GroupPath, collective_time, size_efficiency
from sim.parallelism.schedules import stage_ops
from sim.specs.enums import Activation, Fp8Recipe, Framework, MoEDispatcher, Precision, Routing, Schedule
from sim.specs.hardware import GpuSpec
from sim.specs.scenario import Scenario

#: Bytes per element of an FP8 dispatch payload: one byte plus one fp32 scale per 128 elements (DeepEP /
#: DeepSeek-V3 1x128 tile-wise activation scaling).
FP8_DISPATCH_BYTES = 1 + 4 / 128


@functools.cache
def _consts() -> dict:
    return catalog.moe_table()


def grouped_gemm_fraction(tokens_per_expert: float, framework: Framework) -> float:
    """Fraction of the dense efficiency the expert GEMMs of ``framework`` reach with this many rows per expert:
    1 where the framework runs one dense GEMM per expert (catalog ``per_expert_gemm``), else the grouped
    kernel's curve."""
    table = _consts()["grouped_gemm"]
    if framework.value in table["per_expert_gemm"]:
        return 1.0
    return kernels.interp_log(table["points"], max(tokens_per_expert, 1.0))


def grouped_gemm_time(gpu: GpuSpec, dtype: str, tokens_per_expert: float, experts: int, n: float, k: float,
                      framework: Framework) -> float:
    """Seconds for the ``experts`` GEMMs of (tokens_per_expert x k) @ (k x n) of one expert linear.

    Each expert's GEMM gets the dense efficiency of its own size (``kernels.gemm_time``), scaled by
    :func:`grouped_gemm_fraction`; the memory side (weights of every expert read once) is kept as is."""
    if tokens_per_expert <= 0 or experts <= 0:
        return 0.0
    one = kernels.gemm_time(gpu, dtype, tokens_per_expert, n, k)
    flops = 2.0 * tokens_per_expert * n * k
    compute = flops / (gpu.peak_flops(dtype) * kernels.gemm_efficiency(gpu, dtype, flops))
    if one > compute:  # memory-bound (few tokens): reading the experts' weights sets the time
        return experts * one
    return experts * compute / grouped_gemm_fraction(tokens_per_expert, framework)


def routing_imbalance(s: Scenario) -> float:
    """Routed tokens on the busiest EP rank over the mean: 1 for balanced routing; for natural routing the
    catalog's per-expert excess shrunk by the square root of the rank's local experts; capped by the
    capacity factor (tokens beyond an expert's capacity are dropped)."""
    moe = s.model.moe
    assert moe is not None
    factor = 1.0
    if moe.routing is Routing.NATURAL:
        local = moe.num_experts / s.parallelism.expert
        excess = _consts()["routing"]["natural_max_over_mean"]["value"] - 1.0
        factor = 1.0 + excess / math.sqrt(local)
    if moe.capacity_factor is not None:
        factor = min(factor, moe.capacity_factor)
    return factor


def tokens_per_local_expert(s: Scenario, tokens: float) -> float:
    """Mean rows of each local expert's GEMM: the ``tokens x top_k`` routed copies of the ETP x EP ranks
    (``tokens`` each) spread over all experts; every ETP rank of an expert sees all of its rows."""
    moe, p = s.model.moe, s.parallelism
    assert moe is not None
    return tokens * moe.top_k * p.expert * p.expert_tensor_degree / moe.num_experts


def a2a_time(size_bytes: float, path: GroupPath) -> float:
    """Seconds for an all-to-all of a ``size_bytes`` buffer per rank on ``path``: its in-domain and
    out-of-domain parts at the path's all-to-all rates, concurrently, plus one hop's latency. Without
    all-to-all figures (a path not built by ``a2a_paths``) the ring bus bandwidth stands in."""
    if size_bytes <= 0 or path.n <= 1:
        return 0.0
    if path.a2a_up_bw <= 0 and path.a2a_out_bw <= 0:
        return collective_time(Collective.ALL_TO_ALL, size_bytes, path)
    latency = path.base_latency_s + (path.inter_latency_s if path.scale_out else path.intra_latency_s)
    return latency + max(size_bytes / path.a2a_up_bw, size_bytes / path.a2a_out_bw) / size_efficiency(size_bytes)


def deepep_time(copies_bytes: float, token_bytes: float, top_k: int, path: GroupPath) -> float:
    """DeepEP normal-kernel dispatch (or combine): each token crosses the network once per distinct remote
    node its ``top_k`` experts sit on, then NVLink forwards every routed copy inside the node.

    ``copies_bytes``: the rank's routed copies (tokens x top_k x hidden x bytes); ``token_bytes``: its tokens
    once. With experts spread evenly over ``nodes`` domains, the expected distinct remote nodes per token is
    ``(nodes - 1) (1 - (1 - 1/nodes)^k)``."""
    if copies_bytes <= 0 or path.n <= 1:
        return 0.0
    if path.a2a_up_bw <= 0 and path.a2a_out_bw <= 0:
        return collective_time(Collective.ALL_TO_ALL, copies_bytes, path)
    n, nodes = path.n, max(path.nodes, 1)
    peers = path.domain_peers or n
    latency = path.base_latency_s + (path.inter_latency_s if path.scale_out else path.intra_latency_s)
    # the buffer rates are for an even spread over n; convert back to each side's per-GPU byte rate
    intra = copies_bytes * (peers - 1) / max(peers, 1)
    t_intra = intra / (path.a2a_up_bw * (peers - 1) / n) if peers > 1 else 0.0
    t_inter = 0.0
    if nodes > 1 and peers < n:
        remote = (nodes - 1) * (1 - (1 - 1 / nodes) ** top_k)
        t_inter = token_bytes * remote / (path.a2a_out_bw * (n - peers) / n)
    return latency + max(t_intra, t_inter) / size_efficiency(copies_bytes)


def a2a_overlap_fraction(schedule: Schedule, p: int, v: int, m: int) -> float:
    """Share of a rank's forward passes that the steady 1F1B phase pairs with a backward (Megatron's EP
    overlap runs a forward and a backward of different micro-batches together; warm-up and cool-down passes
    have no partner), averaged over pipeline ranks."""
    if schedule is Schedule.GPIPE:
        return 0.0
    paired = 0
    total = 0
    for rank in range(p):
        ops = stage_ops(schedule, p, v, rank, m)
        total += sum(op.phase == "F" for op in ops)
        paired += sum(a.phase == "F" and b.phase == "B" for a, b in itertools.pairwise(ops))
    return paired / total if total else 0.0


@dataclass(frozen=True, slots=True)
class MoETimes:
    """Seconds of one MoE block's expert side for one micro-batch (forward; backward), split into compute
    on the GPU, EP communication on the critical path, and EP communication hidden beside compute."""

    compute_fwd: float
    comm_fwd: float
    hidden_fwd: float
    compute_bwd: float
    comm_bwd: float
    hidden_bwd: float
    activation_fwd: float = 0.0  # the routed experts' activation (in compute_fwd; what moe_act recomputes)
    shared_fwd: float = 0.0  # the shared expert's forward (in compute_fwd; what shared_experts recomputes)
    before_sync_fwd: float = 0.0  # router and shared expert (in compute_fwd): the GPU work before the host sync


@dataclass(frozen=True, slots=True)
class MoEKernels:
    """Kernels one MoE block's forward launches beyond a dense layer's (whose MLP GEMMs, activation and fp8
    quantizes stand for the shared expert's), split at the host sync of a dropless block."""

    router: int  # the router (and the flex dispatcher's fused preprocess): before the sync
    after_sync: int  # dispatch to combine: the dispatcher's kernels, the experts' GEMMs and quantizes, activation

    @property
    def total(self) -> int:
        return self.router + self.after_sync


def forward_kernels(s: Scenario) -> MoEKernels:
    """Kernels of an MoE block's forward (:class:`MoEKernels`): the router's and the dispatcher's own (catalog
    ``moe.yaml`` ``kernels``; the router unfused adds ``router_unfused_extra``), the expert activation, and per
    local expert one GEMM per linear -- Transformer Engine's grouped linear runs one cuBLAS GEMM per expert on
    several streams -- plus, under fp8, one quantize per expert and linear
    (:func:`sim.costs.fp8.expert_quantize_time`)."""
    moe, p = s.model.moe, s.parallelism
    assert moe is not None
    table = _consts()["kernels"]
    local = moe.num_experts // p.expert
    per_linear = 1 + fp8.kernels_per_quantize(s)
    dispatcher = p.moe_dispatcher.value
    router = int(table["router"][dispatcher]) + (0 if p.moe_router_fusion else int(table["router_unfused_extra"]))
    return MoEKernels(router, int(table["dispatch"][dispatcher]) + 1 + 2 * local * per_linear)


def host_sync(s: Scenario) -> bool:
    """Whether an MoE block's forward waits on the device for its tokens per expert: a dropless block (no
    capacity factor) sizes the experts' GEMMs on the host (Transformer Engine's grouped linear takes the
    per-expert row counts as a host list), so the host cannot run ahead of the GPU across it (Megatron-LM
    DeepSeek-V3 GB200 report sec. 3.1: 'the device-host sync in the MoE model (its purpose is to get the tokens
    per expert information)'); token-drop blocks pad every expert to its capacity (static shapes, no sync)."""
    moe = s.model.moe
    return moe is not None and moe.capacity_factor is None and s.parallelism.framework is Framework.MEGATRON_CORE


def moe_block_times(s: Scenario, gpu: GpuSpec, tokens: float, sp: int, ep_path: GroupPath,
                    etp_path: GroupPath) -> MoETimes:
    """The expert side of one MoE block (router to combine, shared expert included) on one GPU.

    ``tokens``: the micro-batch's tokens on this GPU before sequence parallelism; ``sp`` the SP degree
    (the dispatcher starts from the SP shard of ``tokens / sp``)."""
    m, p = s.model, s.parallelism
    moe = m.moe
    assert moe is not None
    dtype = s.training.precision.value
    h, k = m.hidden_size, moe.top_k
    gate = m.activation is Activation.SWIGLU
    etp, ep = p.expert_tensor_degree, p.expert
    local_tokens = tokens / sp
    imbalance = routing_imbalance(s)
    rows = tokens_per_local_expert(s, local_tokens) * imbalance
    local_experts = moe.num_experts // ep
    f = moe.expert_ffn_hidden_size / etp
    up = (2 if gate else 1) * f
    experts = (grouped_gemm_time(gpu, dtype, rows, local_experts, up, h, p.framework)
               + grouped_gemm_time(gpu, dtype, rows, local_experts, h, f, p.framework)) / fp8.gemm_rate(s)
    quant_fwd = fp8.expert_quantize_time(s, gpu, rows * local_experts, local_experts, h, up, f, backward=False)
    quant_bwd = fp8.expert_quantize_time(s, gpu, rows * local_experts, local_experts, h, up, f, backward=True)
    act = kernels.hbm_time(gpu, 2.0 * (3 if gate else 2) * rows * local_experts * f)
    # shared expert: a dense MLP of the whole micro-batch, TP-sharded like the attention
    shared_width = moe.shared_experts * moe.shared_expert_ffn_hidden_size
    t = p.tensor
    shared = shared_quant_fwd = 0.0
    if shared_width:
        shared = ((kernels.gemm_time(gpu, dtype, tokens, (2 if gate else 1) * shared_width / t, h)
                   + kernels.gemm_time(gpu, dtype, tokens, h, shared_width / t)) / fp8.gemm_rate(s)
                  + kernels.hbm_time(gpu, 2.0 * (3 if gate else 2) * tokens * shared_width / t))
        # the shared expert's two linears quantize their inputs (forward) and output gradients (backward)
        shared_linears = (fp8.Linear(tokens, h, (2 if gate else 1) * shared_width / t, tokens * h),
                          fp8.Linear(tokens, shared_width / t, h, tokens * shared_width / t))
        shared_quant_fwd = fp8.quantize_time(s, gpu, shared_linears, backward=False)
        quant_fwd += shared_quant_fwd
        quant_bwd += fp8.quantize_time(s, gpu, shared_linears, backward=True)
    router = (kernels.gemm_time(gpu, kernels.half_dtype(gpu), local_tokens, moe.num_experts, h)
              + kernels.hbm_time(gpu, local_tokens * moe.num_experts * _consts()["router"]["bytes_per_score"]))
    copies = local_tokens * k
    received = copies * imbalance * etp  # rows this rank's experts see, over all its local experts
    # permute (read T, write T k), sort by local expert after the dispatch and back before the combine
    # (read + write each, when the rank holds more than one expert), unpermute (read T k, write T)
    sort = 2 * 2 * received if local_experts > 1 else 0.0
    permute = kernels.hbm_time(gpu, 2.0 * h * (2 * (local_tokens + copies) + sort))
    comm = _dispatch_combine(s, local_tokens, imbalance, ep_path, etp_path)
    compute_fwd = router + permute + experts + act + shared + quant_fwd
    compute_bwd = 2 * (router + experts + shared) + permute + act + quant_bwd
    hidden_fwd = hidden_bwd = 0.0
    if p.moe_shared_expert_overlap and shared:
        hidden_fwd, hidden_bwd = min(comm, shared), min(comm, 2 * shared)
    before_sync = router + shared + shared_quant_fwd
    return MoETimes(compute_fwd, comm - hidden_fwd, hidden_fwd, compute_bwd, comm - hidden_bwd, hidden_bwd,
                    act, shared, before_sync)


def _dispatch_combine(s: Scenario, local_tokens: float, imbalance: float, ep: GroupPath, etp: GroupPath) -> float:
    """Seconds of one pass's dispatch plus combine (the backward runs the same pair in reverse)."""
    m, p = s.model, s.parallelism
    moe = m.moe
    assert moe is not None
    h, k = m.hidden_size, moe.top_k
    token_bytes = 2.0 * local_tokens * h
    # DeepEP's FP8 dispatch takes 1x128-scaled fp8 (DeepSeek-V3's recipe); MXFP8 EP dispatch is not supported
    # (Megatron-LM DeepSeek-V3 GB200 report sec. 2.1.3), so it moves bf16
    fp8_dispatch = (s.training.precision is Precision.FP8 and p.moe_dispatcher is MoEDispatcher.DEEPEP
                    and s.training.fp8 is not Fp8Recipe.MXFP8)
    dispatch_bytes = token_bytes * (FP8_DISPATCH_BYTES / 2 if fp8_dispatch else 1.0)
    if p.moe_dispatcher is MoEDispatcher.ALLGATHER:
        size = token_bytes * ep.n
        comm = (collective_time(Collective.ALL_GATHER, size, ep)
                + collective_time(Collective.REDUCE_SCATTER, size, ep))
    elif p.moe_dispatcher is MoEDispatcher.DEEPEP:
        comm = (deepep_time(dispatch_bytes * k * imbalance, dispatch_bytes, k, ep)
                + deepep_time(token_bytes * k * imbalance, token_bytes, k, ep))
    else:
        comm = a2a_time(dispatch_bytes * k * imbalance, ep) + a2a_time(token_bytes * k * imbalance, ep)
    if etp.n > 1 and p.moe_dispatcher is not MoEDispatcher.ALLGATHER:
        gathered = token_bytes * k * imbalance * etp.n
        comm += (collective_time(Collective.ALL_GATHER, gathered, etp)
                 + collective_time(Collective.REDUCE_SCATTER, gathered, etp))
    return comm


def overlap_split(comm: float, other_compute: float, fraction: float) -> tuple[float, float]:
    """(exposed, hidden) of ``comm`` when ``fraction`` of the passes run it beside ``other_compute``."""
    hidden = fraction * min(comm, other_compute)
    return comm - hidden, hidden
