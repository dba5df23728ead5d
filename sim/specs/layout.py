"""How it is trained: the parallel layout and schedule."""

from __future__ import annotations

from dataclasses import dataclass

from sim.errors import Issue
from sim.specs._schema import Spec, spec_field
from sim.specs.enums import GradDtype, Recompute, Schedule

#: The mesh axes a placement order names.
PLACEMENT_AXES = ("tp", "cp", "dp", "pp")


@dataclass(frozen=True, slots=True, kw_only=True)
class ParallelismSpec(Spec):
    """Degrees of the four dimensions (plus expert) and how each is run."""

    tensor: int = spec_field(1, doc="TP degree", ge=1)
    pipeline: int = spec_field(1, doc="PP degree", ge=1)
    context: int = spec_field(1, doc="CP degree", ge=1)
    data: int = spec_field(1, doc="DP degree", ge=1)
    expert: int = spec_field(1, doc="EP degree (subdivides data*context)", ge=1)
    zero_stage: int = spec_field(1, doc="0 none, 1 optimizer, 2 +gradients, 3 +parameters (FSDP)", ge=0, le=3)
    sequence_parallel: bool = spec_field(True, doc="Megatron sequence parallelism with TP")
    virtual_pipeline: int = spec_field(1, doc="model chunks per pipeline rank (>1 = interleaved)", ge=1)
    schedule: Schedule = spec_field(Schedule.ONE_F_ONE_B, doc="1f1b | interleaved-1f1b | gpipe")
    micro_batch_size: int = spec_field(1, doc="sequences per micro-batch", ge=1)
    activation_recompute: Recompute = spec_field(Recompute.NONE, doc="none | selective | full")
    tp_comm_overlap: bool = spec_field(False, doc="overlap TP collectives with GEMMs (TE userbuffers)")
    overlap_grad_reduce: bool = spec_field(True, doc="reduce gradient buckets during backward")
    overlap_param_gather: bool = spec_field(True, doc="ZeRO-1/2 parameter all-gather overlaps next forward")
    grad_reduce_dtype: GradDtype = spec_field(GradDtype.FP32, doc="dtype of DP gradient reduction")
    grad_bucket_mparams: float = spec_field(40.0, doc="DP gradient bucket, million parameters", ge=1)
    account_for_embedding_in_pipeline_split: bool = spec_field(
        False, doc="count the embedding as a layer of the first stage (Megatron option)")
    account_for_loss_in_pipeline_split: bool = spec_field(
        False, doc="count the LM head + loss as a layer of the last stage (Megatron option)")
    placement_order: str = spec_field(
        "tp,cp,dp,pp", doc="mesh axes laid onto consecutive GPUs, innermost first (Megatron: tp,cp,dp,pp)")

    @property
    def model_parallel(self) -> int:
        return self.tensor * self.pipeline * self.context

    @property
    def num_gpus(self) -> int:
        return self.model_parallel * self.data

    @property
    def placement_axes(self) -> tuple[str, ...]:
        return tuple(a.strip() for a in self.placement_order.split(","))

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
        return issues
