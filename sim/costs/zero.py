"""Data parallelism per ZeRO stage and framework: what is sharded in memory and what crosses the DP group.

The memory model (``sim.costs.memory``) and the step engine (``sim.engine.step``) read one plan, so memory
and time cannot disagree: a stage that keeps gradients sharded reduce-scatters them after every
micro-batch's backward; one that reduces once per step holds the unsharded gradients until then
(MODELLING.md, "under gradient accumulation memory and traffic go together"). What each framework does by
default is data (``catalog/frameworks.yaml``, with sources).

* ZeRO-0: all-reduce of the gradients once per step.
* ZeRO-1 (Megatron's distributed optimizer): full gradient buffer, one reduce-scatter per step, the
  updated parameters all-gathered after the optimizer.
* ZeRO-2: gradients reduce-scattered every micro-batch into a sharded buffer (``every-microbatch``), or
  accumulated unsharded and reduced once (``last-microbatch``: ZeRO-1's traffic at ZeRO-1's gradient memory).
* ZeRO-3 / FSDP: per layer, an all-gather before forward and again before backward unless
  ``reshard_after_forward`` is false (then the gathered parameters are held from forward to backward:
  full-weight memory); one more before the recompute where the framework frees parameters in between
  (DeepSpeed past ``stage3_max_reuse_distance``). Under ``last-microbatch`` without resharding, the
  parameters are gathered once per step and held (torch.distributed.pipelining's no-sync path).
* HSDP (``shard_group_size``): shards span a group; gathers and reduce-scatters run inside it and each
  gradient shard is then all-reduced across the replica groups.
* Releases (``parallelism.framework_version``): an older code path of a framework overrides its entry, e.g.
  DeepSpeed 0.3's ZeRO-3, whose collectives are blocking (no overlap with compute) and issued per parameter
  tensor, each with a host cost that grows with the group size.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Any

from sim import catalog
from sim.costs.collectives import Collective
from sim.specs.enums import Activation, Framework, GradDtype, GradSync, Recompute
from sim.specs.layout import ParallelismSpec
from sim.specs.model import ModelSpec
from sim.specs.scenario import Scenario

#: bf16/fp16 working parameters, the bytes every parameter all-gather moves.
PARAM_BYTES = 2
#: fp8 (e4m3) weights, what an fp8 FSDP all-gather moves per parameter.
FP8_PARAM_BYTES = 1


def grad_bytes(dtype: GradDtype) -> int:
    """Bytes per gradient element accumulated and reduced (fp32 main grads or bf16)."""
    return 4 if dtype is GradDtype.FP32 else 2


@functools.cache
def framework_dp(framework: Framework, version: str | None = None) -> dict[str, Any]:
    """The data-parallel entry of ``framework`` in catalog/frameworks.yaml; a ``version`` listed under its
    ``versions`` overrides the keys it names (the current release: none)."""
    entry = dict(catalog.frameworks_table()["data_parallel"][framework.value])
    releases = entry.pop("versions", {})
    return entry if version is None else {**entry, **releases[version]}


def framework_versions(framework: Framework) -> dict[str, dict[str, Any]]:
    """The older releases of ``framework`` whose data-parallel code paths are modelled, by version."""
    return dict(catalog.frameworks_table()["data_parallel"][framework.value].get("versions", {}))


def _entry(p: ParallelismSpec) -> dict[str, Any]:
    return framework_dp(p.framework, p.framework_version)


def layer_param_tensors(m: ModelSpec) -> int:
    """Parameter tensors of one dense transformer layer as Megatron-style modules hold them (fused QKV, fused
    gate/up): two norms, the QKV and output projections, the MLP's input and output matrices; GPT-style models
    (gelu: GPT-2/3, OPT, BLOOM) also carry a bias per linear and per LayerNorm, Llama-style (swiglu) ones none.
    A framework that gathers per tensor issues this many collectives per layer."""
    weights = 2 + 2 + 2
    return 2 * weights if m.activation is Activation.GELU else weights


@dataclass(frozen=True, slots=True)
class DataParallelPlan:
    """How one pipeline rank's data parallelism runs in one optimizer step."""

    stage: int
    shard: int  # GPUs one shard of optimizer state (and gradients, parameters) spans
    expert_shard: int  # the same for routed-expert parameters, replicated only over the EDP group
    replicas: int  # shard groups the DP x CP group holds (HSDP > 1)
    grad_sync: GradSync  # when gradients are reduced (stages 0 and 1: last-microbatch)
    reshard_after_forward: bool  # ZeRO-3: gather again before backward
    regather_for_recompute: bool  # ZeRO-3: gather again before the recompute of a layer
    prefetch_layers: int  # ZeRO-3: layer all-gathers issued ahead of the layer being computed
    gather_copy_passes: int  # full-size memory-bound copies per parameter all-gather (FSDP2 copy-out)
    reduce_copy_passes: int  # full-size memory-bound copies per gradient reduce-scatter (FSDP2 chunk_cat)
    grad_bytes: int
    overlap_grad_reduce: bool = True  # ZeRO 0-2: gradient buckets reduced during backward
    reduce_blocks_compute: bool = False  # ZeRO 0-2 without overlap: the reduction runs on the compute stream
    blocking: bool = False  # ZeRO-3 collectives issued once the device is idle and waited at once: no overlap
    per_tensor: bool = False  # ZeRO-3: one collective per parameter tensor (not one per layer)
    collective_host_s: float = 0.0  # host seconds per blocking collective call, the device idle meanwhile
    block_gather_bytes: float = PARAM_BYTES  # ZeRO-3: bytes per transformer-block parameter gathered (fp8: 1)

    @property
    def grads_sharded(self) -> bool:
        """Gradient memory is sharded (each micro-batch's gradients reduce-scattered into the shard)."""
        return self.stage >= 2 and self.grad_sync is GradSync.EVERY_MICROBATCH

    @property
    def params_held(self) -> bool:
        """ZeRO-3 parameters stay gathered through the step (no reshard and no gradient sync before the
        last backward), so they are gathered once, before the first forward of each model chunk."""
        return self.stage == 3 and not self.reshard_after_forward and self.grad_sync is GradSync.LAST_MICROBATCH

    @property
    def full_weights_resident(self) -> bool:
        """ZeRO-3 without resharding after forward: the chunk's whole unsharded weights are in memory at the
        peak (held from forward to backward while micro-batches are in flight)."""
        return self.stage == 3 and not self.reshard_after_forward

    @property
    def reduce_op(self) -> Collective:
        return Collective.ALL_REDUCE if self.stage == 0 else Collective.REDUCE_SCATTER

    def reduces_after(self, last_backward: bool) -> bool:
        """Whether a backward reduces its gradients (every micro-batch, or only the chunk's last)."""
        return last_backward or self.grads_sharded

    def gathers(self, phase_forward: bool, first_forward: bool) -> int:
        """ZeRO-3 all-gathers of a layer's parameters before one forward or backward pass."""
        if self.stage != 3:
            return 0
        if self.params_held:
            return 1 if phase_forward and first_forward else 0
        if phase_forward:
            return 1
        return int(self.reshard_after_forward) + int(self.regather_for_recompute)


def _default(p: ParallelismSpec, key: str) -> Any:
    entry = _entry(p)
    return entry[f"{key}_with_pipeline"] if p.pipeline > 1 else entry[key]


def resolved_grad_sync(p: ParallelismSpec) -> GradSync:
    if p.zero_stage < 2:
        return GradSync.LAST_MICROBATCH
    if p.grad_sync is not None:
        return p.grad_sync
    return GradSync(_default(p, "grad_sync"))


def resolved_reshard_after_forward(p: ParallelismSpec) -> bool:
    if p.reshard_after_forward is not None:
        return p.reshard_after_forward
    return bool(_entry(p)["reshard_after_forward_with_pipeline"]) if p.pipeline > 1 else True


def resolved_overlap_grad_reduce(p: ParallelismSpec) -> bool:
    if p.overlap_grad_reduce is not None:
        return p.overlap_grad_reduce
    return bool(_entry(p)["overlap_grad_reduce"])


def plan(s: Scenario, largest_layer_params: float) -> DataParallelPlan:
    """The data-parallel plan of ``s``; ``largest_layer_params`` (per GPU) decides DeepSpeed's re-gather
    for recompute (a layer larger than ``stage3_max_reuse_distance`` is freed between the two uses)."""
    p = s.parallelism
    entry = _entry(p)
    regather = bool(entry["regather_for_recompute"]) and p.activation_recompute is Recompute.FULL
    if regather and "max_reuse_distance_params" in entry:
        regather = largest_layer_params > float(entry["max_reuse_distance_params"])
    return DataParallelPlan(
        stage=p.zero_stage, shard=p.shard_size, replicas=p.data * p.context // p.shard_size,
        # HSDP keeps the same replica count for experts: their shard is the EDP group over those replicas
        expert_shard=max(1, p.expert_data * p.shard_size // (p.data * p.context)),
        grad_sync=resolved_grad_sync(p), reshard_after_forward=resolved_reshard_after_forward(p),
        regather_for_recompute=regather, prefetch_layers=int(entry["prefetch_layers"]),
        gather_copy_passes=int(entry["gather_copy_passes"]), reduce_copy_passes=int(entry["reduce_copy_passes"]),
        grad_bytes=grad_bytes(p.grad_reduce_dtype), overlap_grad_reduce=resolved_overlap_grad_reduce(p),
        reduce_blocks_compute=bool(entry["reduce_on_compute_stream"]),
        blocking=bool(entry.get("blocking_collectives", False)),
        per_tensor=bool(entry.get("collective_per_tensor", False)),
        collective_host_s=float(entry.get("collective_host_s", 0.0))
        + float(entry.get("collective_host_per_rank_s", 0.0)) * p.shard_size,
        # torchao casts each Float8Linear weight shard to fp8 before FSDP2's all-gather (torchtitan
        # docs/float8.md); norms' weights (< 0.01 % of a block) are counted at fp8 too
        block_gather_bytes=FP8_PARAM_BYTES if p.fp8_all_gather else PARAM_BYTES)


@dataclass(frozen=True, slots=True)
class StateBytes:
    """Bytes per GPU of weights, gradients and optimizer state for ``params`` parameters."""

    weights: float
    gradients: float
    optimizer: float


def state_bytes(dp: DataParallelPlan, params: float, optimizer_bytes: float, expert_params: float = 0.0) -> StateBytes:
    """Model state of ``params`` parameters (one pipeline rank's, per GPU) under ``dp``: ZeRO-1 shards the
    optimizer, ZeRO-2 the gradients too when they are reduce-scattered every micro-batch, ZeRO-3 the
    parameters, whose whole unsharded copy is resident as well when they are not resharded after forward.
    ``expert_params`` of them are routed experts, sharded over ``dp.expert_shard`` instead (Megatron's
    distributed optimizer shards expert parameters over the expert-data-parallel group)."""
    weights = sharded_params(dp, params, expert_params, dp.stage >= 3) * PARAM_BYTES
    if dp.full_weights_resident:  # at bf16 under fp8 all-gather too: an upper bound (embedding and head are bf16)
        weights += params * PARAM_BYTES
    grads = sharded_params(dp, params, expert_params, dp.grads_sharded) * dp.grad_bytes
    optim = sharded_params(dp, params, expert_params, dp.stage >= 1) * optimizer_bytes
    return StateBytes(weights, grads, optim)


def sharded_params(dp: DataParallelPlan, params: float, expert_params: float, sharded: bool = True) -> float:
    """Of ``params`` per GPU (``expert_params`` of them routed experts), those one GPU keeps when ``sharded``:
    the dense part over the shard group, the expert part over the expert shard group."""
    if not sharded:
        return params
    return (params - expert_params) / dp.shard + expert_params / dp.expert_shard


def gathered_layer_params(s: Scenario, dp: DataParallelPlan, largest_layer_params: float) -> float:
    """ZeRO-3 (resharding) parameters gathered at once: the layer computing plus those prefetched, capped by
    DeepSpeed's ``stage3_max_live_parameters`` (never below one layer, which must be whole to run)."""
    live = (1 + dp.prefetch_layers) * largest_layer_params
    cap = _entry(s.parallelism).get("max_live_params")
    if cap is not None:
        live = max(largest_layer_params, min(live, float(cap)))
    return live


def reduce_bucket_params(s: Scenario) -> float:
    """Gradient elements reduced at once: Megatron's bucket (``grad_bucket_mparams``), DeepSpeed's
    ``reduce_bucket_size``."""
    entry = _entry(s.parallelism)
    if "reduce_bucket_params" in entry:
        return float(entry["reduce_bucket_params"])
    return s.parallelism.grad_bucket_mparams * 1e6


def blocking_overhead_s(dp: DataParallelPlan, tensors: int, collectives: int, latency_s: float) -> float:
    """Device-idle seconds that ``collectives`` blocking collectives over a block of ``tensors`` parameter tensors
    add beyond one transfer of the block's bytes each: every tensor's call costs ``dp.collective_host_s`` on the
    host, and every tensor past the first its own collective latency ``latency_s`` (per-tensor plans only)."""
    if not dp.blocking:
        return 0.0
    calls = collectives * (tensors if dp.per_tensor else 1)
    return calls * dp.collective_host_s + (calls - collectives) * latency_s


@dataclass(frozen=True, slots=True)
class Traffic:
    """DP collectives one GPU takes part in during one step: message bytes summed over the step, and counts
    (per block of parameters: a layer under ZeRO-3, the rank's whole stage otherwise)."""

    all_gather_bytes: float = 0.0
    reduce_scatter_bytes: float = 0.0
    all_reduce_bytes: float = 0.0  # ZeRO-0, and the HSDP all-reduce across replicas
    all_gathers: int = 0
    reduce_scatters: int = 0


def step_traffic(dp: DataParallelPlan, params: float, microbatches: int, layers: int = 1) -> Traffic:
    """DP traffic of one step for ``params`` parameters per GPU split in ``layers`` equal blocks, with
    ``microbatches`` micro-batches (the same counting the engine does)."""
    reductions = microbatches if dp.grads_sharded else 1
    grad = params * dp.grad_bytes
    if dp.stage == 0:
        return Traffic(all_reduce_bytes=reductions * grad)
    if dp.stage == 3:
        per_mb = dp.gathers(True, False) + dp.gathers(False, False)
        gathers = 1 if dp.params_held else microbatches * per_mb
    else:
        gathers = 1  # the updated parameters, after the optimizer
    blocks = layers if dp.stage == 3 else 1
    replica_ar = reductions * grad / dp.shard if dp.replicas > 1 else 0.0
    return Traffic(all_gather_bytes=gathers * params * PARAM_BYTES, reduce_scatter_bytes=reductions * grad,
                   all_reduce_bytes=replica_ar, all_gathers=gathers * blocks, reduce_scatters=reductions * blocks)
