"""How it is trained: the parallel layout and schedule."""

from __future__ import annotations

import functools
from dataclasses import dataclass

from sim.errors import Issue
from sim.specs._schema import Spec, spec_field
from sim.specs.enums import Framework, GradDtype, GradSync, MoEDispatcher, Recompute, RecomputeModule, Schedule

#: The mesh axes a placement order names.
PLACEMENT_AXES = ("tp", "cp", "dp", "pp")


@functools.lru_cache(maxsize=64)
def _axes(placement_order: str) -> tuple[str, ...]:
    """The axes of a placement order string (parsed once per string: every layout a search builds is validated)."""
    return tuple(a.strip() for a in placement_order.split(","))


@dataclass(frozen=True, slots=True, kw_only=True)
class ParallelismSpec(Spec):
    """Degrees of the four dimensions (plus expert) and how each is run."""

    tensor: int = spec_field(1, doc="TP degree", ge=1)
    pipeline: int = spec_field(1, doc="PP degree", ge=1)
    context: int = spec_field(1, doc="CP degree", ge=1)
    data: int = spec_field(1, doc="DP degree", ge=1)
    expert: int = spec_field(1, doc="EP degree: experts of a layer split over this many ranks of the expert mesh", ge=1)
    expert_tensor: int | None = spec_field(
        None, doc="expert TP degree (ETP); default = tensor (Megatron's default). The expert mesh ETP x EP x EDP "
        "folds over the same GPUs of a pipeline stage as TP x CP x DP: ETP*EP divides num_gpus/pipeline", ge=1)
    moe_dispatcher: MoEDispatcher = spec_field(
        MoEDispatcher.ALLTOALL, doc="alltoall | allgather | deepep: token dispatch/combine over the EP group")
    moe_shared_expert_overlap: bool = spec_field(
        False, doc="shared-expert GEMMs run beside the dispatch/combine (Megatron --moe-shared-expert-overlap)")
    moe_a2a_overlap: bool = spec_field(
        False, doc="EP dispatch/combine of one micro-batch hidden under another's compute in the 1F1B steady "
        "state (Megatron --overlap-moe-expert-parallel-comm)")
    moe_router_fusion: bool = spec_field(
        True, doc="megatron-core: the router's elementwise ops fused by Transformer Engine (Megatron "
        "--moe-router-fusion): 31 kernels per forward instead of 72 (17 with the flex/DeepEP dispatcher's fused "
        "preprocess); default true (the recommended MoE setting)")
    zero_stage: int = spec_field(1, doc="0 none, 1 optimizer, 2 +gradients, 3 +parameters (FSDP)", ge=0, le=3)
    sequence_parallel: bool = spec_field(True, doc="Megatron sequence parallelism with TP")
    virtual_pipeline: int = spec_field(1, doc="model chunks per pipeline rank (>1 = interleaved)", ge=1)
    schedule: Schedule = spec_field(Schedule.ONE_F_ONE_B, doc="1f1b | interleaved-1f1b | gpipe")
    micro_batch_size: int = spec_field(1, doc="sequences per micro-batch", ge=1)
    activation_recompute: Recompute = spec_field(Recompute.NONE, doc="none | selective | full")
    recompute_modules: tuple[RecomputeModule, ...] | None = spec_field(
        None, doc="with activation_recompute selective on megatron-core: the modules recomputed in backward "
        "(Megatron --recompute-modules): core_attn, layernorm, mla_up_proj, mlp, moe_act, shared_experts, moe; "
        "default [core_attn] (Megatron's default)")
    tp_comm_overlap: bool = spec_field(False, doc="overlap TP collectives with GEMMs (TE userbuffers); each TP group "
                                      "must sit inside one NVLink domain")
    overlap_grad_reduce: bool | None = spec_field(
        None, doc="reduce gradient buckets during backward (ZeRO 0-2); default: the framework's: true, deepspeed "
        "false (its overlap_comm defaults to false below ZeRO-3, and its ZeRO-0/1 reduce after backward)")
    overlap_param_gather: bool = spec_field(True, doc="ZeRO-1/2 parameter all-gather overlaps next forward")
    grad_reduce_dtype: GradDtype = spec_field(GradDtype.FP32, doc="dtype of DP gradient reduction")
    grad_bucket_mparams: float = spec_field(40.0, doc="DP gradient bucket, million parameters", ge=1)
    account_for_embedding_in_pipeline_split: bool = spec_field(
        False, doc="count the embedding as a layer of the first stage (Megatron option)")
    account_for_loss_in_pipeline_split: bool = spec_field(
        False, doc="count the LM head + loss as a layer of the last stage (Megatron option)")
    first_stage_layers: int | None = spec_field(
        None, ge=0, doc="transformer layers of the first pipeline stage; the rest split evenly "
        "(Megatron --decoder-first-pipeline-num-layers)")
    last_stage_layers: int | None = spec_field(
        None, ge=0, doc="transformer layers of the last pipeline stage (Megatron --decoder-last-pipeline-num-layers)")
    pipeline_layout: tuple[int, ...] | None = spec_field(
        None, doc="explicit transformer layers per virtual stage, in pipeline order: pipeline*virtual_pipeline "
        "ints summing to num_layers (Megatron --pipeline-model-parallel-layout)")
    placement_order: str = spec_field(
        "tp,cp,dp,pp", doc="mesh axes laid onto consecutive GPUs, innermost first (Megatron: tp,cp,dp,pp)")
    framework: Framework = spec_field(
        Framework.MEGATRON_CORE, doc="megatron-core | torchtitan | deepspeed: whose code paths are costed")
    framework_version: str | None = spec_field(
        None, doc="an older release of the framework whose data-parallel code path is costed instead of the "
        "current one (catalog/frameworks.yaml data_parallel versions): deepspeed '0.3' = ZeRO-3 of DeepSpeed "
        "0.3.x (2021: blocking per-tensor collectives); default: the current release")
    reshard_after_forward: bool | None = spec_field(
        None, doc="ZeRO-3/FSDP: free gathered parameters after forward and gather them again in backward "
        "(false: keep them gathered from forward to backward, as FSDP SHARD_GRAD_OP); default: true, "
        "false for torchtitan with pipeline parallelism (its default policy)")
    fp8_all_gather: bool = spec_field(
        False, doc="torchtitan FSDP2 with fp8 tensorwise training: cast each Float8Linear weight shard to fp8 "
        "before the all-gather (enable_fsdp_float8_all_gather, with precompute_float8_dynamic_scale_for_fsdp): "
        "block weights move and are held gathered at 1 byte instead of 2")
    grad_sync: GradSync | None = spec_field(
        None, doc="ZeRO-2/3 under gradient accumulation: every-microbatch (sharded gradients, a reduce-scatter "
        "per micro-batch) | last-microbatch (unsharded accumulation, one reduce-scatter); default: the framework's")
    shard_group_size: int | None = spec_field(
        None, doc="GPUs of the DP x CP group one ZeRO shard spans; shards are replicated across groups "
        "(HSDP / hybrid shard); default: the whole DP x CP group", ge=1)

    @property
    def model_parallel(self) -> int:
        return self.tensor * self.pipeline * self.context

    @property
    def num_gpus(self) -> int:
        return self.model_parallel * self.data

    @property
    def shard_size(self) -> int:
        """GPUs over which ZeRO shards optimizer state, gradients and parameters."""
        return self.shard_group_size if self.shard_group_size is not None else self.data * self.context

    @property
    def expert_tensor_degree(self) -> int:
        """ETP: ``expert_tensor``, or the attention TP degree when unset (Megatron's default)."""
        return self.tensor if self.expert_tensor is None else self.expert_tensor

    @property
    def expert_data(self) -> int:
        """EDP: the expert mesh's data-parallel degree, ``num_gpus / (pipeline * ETP * EP)``."""
        return max(1, self.num_gpus // (self.pipeline * self.expert_tensor_degree * self.expert))

    @property
    def selective_modules(self) -> frozenset[RecomputeModule]:
        """The modules selective recompute covers on megatron-core: ``recompute_modules``, or Megatron's
        default (core attention); none without selective recompute."""
        if self.activation_recompute is not Recompute.SELECTIVE:
            return frozenset()
        return frozenset(self.recompute_modules or (RecomputeModule.CORE_ATTN,))

    @property
    def placement_axes(self) -> tuple[str, ...]:
        return _axes(self.placement_order)

    def _issues(self) -> list[Issue]:
        issues = []
        if sorted(self.placement_axes) != sorted(PLACEMENT_AXES):
            issues.append(Issue("placement_order", f"{self.placement_order!r} must name each of "
                                f"{', '.join(PLACEMENT_AXES)} once, innermost first; e.g. tp,cp,dp,pp"))
        interleaved = self.schedule is Schedule.INTERLEAVED
        if interleaved and self.virtual_pipeline < 2:
            issues.append(Issue("virtual_pipeline", f"{self.virtual_pipeline}: schedule interleaved-1f1b "
                                "needs virtual_pipeline >= 2"))
        if not interleaved and self.virtual_pipeline > 1:
            issues.append(Issue("schedule", f"{self.schedule.value} with virtual_pipeline "
                                f"{self.virtual_pipeline}; use schedule: interleaved-1f1b"))
        if interleaved and self.pipeline < 2:
            issues.append(Issue("schedule", "interleaved-1f1b needs pipeline >= 2"))
        if self.pipeline_layout is not None and any(n < 0 for n in self.pipeline_layout):
            issues.append(Issue("pipeline_layout", f"{list(self.pipeline_layout)}: layer counts must be >= 0"))
        if self.moe_a2a_overlap and self.expert < 2:
            issues.append(Issue("moe_a2a_overlap", "needs expert >= 2 (there is no EP dispatch to hide)"))
        if self.moe_a2a_overlap and self.moe_dispatcher is MoEDispatcher.ALLGATHER:
            issues.append(Issue("moe_a2a_overlap", "needs moe_dispatcher alltoall or deepep (Megatron overlaps "
                                "only the all-to-all and flex dispatchers)"))
        return issues + self._recompute_issues() + self._zero_issues()

    def _recompute_issues(self) -> list[Issue]:
        """Megatron's module list belongs to its selective granularity (the model-dependent rules are in
        ``sim.specs.scenario``)."""
        mods = self.recompute_modules
        if mods is None:
            return []
        if self.activation_recompute is not Recompute.SELECTIVE:
            return [Issue("recompute_modules", f"needs activation_recompute: selective (got "
                          f"{self.activation_recompute.value}; Megatron --recompute-granularity selective)")]
        if self.framework is not Framework.MEGATRON_CORE:
            return [Issue("recompute_modules", f"is Megatron-Core's option; {self.framework.value}'s selective "
                          "recompute is its own policy (catalog/frameworks.yaml selective_recompute)")]
        if not mods:
            return [Issue("recompute_modules", "is empty; name at least one module or use activation_recompute: "
                          "none")]
        dup = sorted({m.value for m in mods if mods.count(m) > 1})
        if dup:
            return [Issue("recompute_modules", f"names {', '.join(dup)} more than once")]
        return []

    def _zero_issues(self) -> list[Issue]:
        """ZeRO/FSDP options that do not exist at this stage or in this framework."""
        issues = []
        z, fw = self.zero_stage, self.framework
        if self.reshard_after_forward is False and z != 3:
            issues.append(Issue("reshard_after_forward", f"false applies to zero_stage 3 (FSDP) only, not "
                                f"zero_stage {z}, whose parameters are never sharded"))
        elif self.reshard_after_forward is False and fw is Framework.DEEPSPEED:
            issues.append(Issue("reshard_after_forward", "false is an FSDP option (torchtitan, megatron-core); "
                                "DeepSpeed ZeRO-3 releases every gathered parameter after use"))
        if self.overlap_grad_reduce and fw is Framework.DEEPSPEED and z < 2:
            issues.append(Issue("overlap_grad_reduce", f"true: DeepSpeed at zero_stage {z} reduces gradients after "
                                "backward (overlap_comm applies to ZeRO-2 and 3: DeepSpeed PR 1246)"))
        if self.fp8_all_gather and (fw is not Framework.TORCHTITAN or z != 3):
            issues.append(Issue("fp8_all_gather", f"true is torchtitan's FSDP2 option (framework torchtitan, "
                                f"zero_stage 3), not {fw.value} at zero_stage {z}"))
        if fw is Framework.TORCHTITAN and z in (1, 2):
            issues.append(Issue("zero_stage", f"{z}: torchtitan shards with FSDP2 (zero_stage 3; "
                                "reshard_after_forward false for SHARD_GRAD_OP) or replicates (0)"))
        if self.grad_sync is not None and z < 2:
            issues.append(Issue("grad_sync", f"applies to zero_stage 2 and 3; at zero_stage {z} gradients are "
                                "accumulated unsharded and reduced once per step"))
        elif self.grad_sync is GradSync.LAST_MICROBATCH and fw is Framework.DEEPSPEED:
            issues.append(Issue("grad_sync", "last-microbatch: DeepSpeed ZeRO-2/3 reduce gradients every "
                                "micro-batch (its no_sync refuses gradient partitioning)"))
        if self.shard_group_size is not None:
            if z == 0:
                issues.append(Issue("shard_group_size", "needs zero_stage >= 1 (nothing is sharded at 0)"))
            elif (self.data * self.context) % self.shard_group_size:
                issues.append(Issue("shard_group_size", f"{self.shard_group_size} does not divide data*context "
                                    f"({self.data * self.context})"))
            elif fw is Framework.DEEPSPEED and z < 3:
                issues.append(Issue("shard_group_size", "DeepSpeed shards in groups (MiCS) at zero_stage 3 only"))
        return issues
