"""The job: batch, tokens, precision, optimizer."""

from __future__ import annotations

from dataclasses import dataclass

from sim.specs._schema import Spec, spec_field
from sim.specs.enums import AttentionKernel, Optimizer, Precision


@dataclass(frozen=True, slots=True, kw_only=True)
class TrainingSpec(Spec):
    """One training job's batch and numerics."""

    global_batch_size: int = spec_field(doc="sequences per optimizer step", ge=1)
    tokens: float | None = spec_field(None, doc="total training tokens (run level)", gt=0)
    precision: Precision = spec_field(Precision.BF16, doc="bf16 | fp16 | fp8 (GEMM precision)")
    optimizer: Optimizer = spec_field(Optimizer.ADAMW, doc="adamw | adamw-8bit | sgd-momentum")
    attention: AttentionKernel = spec_field(AttentionKernel.FLASH, doc="flash | unfused (materialized scores)")
