"""Shapes the cost models and the engine share, written once: the sequence-parallel degree and the bytes of
the activation a pipeline stage hands to the next."""

from __future__ import annotations

from sim.specs.layout import ParallelismSpec
from sim.specs.scenario import Scenario

#: Activations travel between pipeline stages in 16-bit (Megatron sends bf16/fp16 even under fp8 GEMMs).
ACTIVATION_BYTES = 2.0


def sp_degree(p: ParallelismSpec) -> int:
    """Ranks Megatron sequence parallelism splits the sequence over outside the attention and MLP GEMMs: the
    TP degree when ``sequence_parallel`` is on with TP > 1, else 1."""
    return p.tensor if (p.sequence_parallel and p.tensor > 1) else 1


def microbatch_tokens(s: Scenario) -> float:
    """Tokens of one micro-batch on one CP rank."""
    return s.model.seq_len / s.parallelism.context * s.parallelism.micro_batch_size


def pipeline_activation_bytes(s: Scenario) -> float:
    """Bytes one TP rank sends to the next pipeline stage per micro-batch (the input gradient going back is the
    same size): the hidden states of the micro-batch, each TP rank sending its 1/t share under SP (Megatron's
    scatter/gather optimisation, Narayanan et al. 2021 §4.1)."""
    return ACTIVATION_BYTES * microbatch_tokens(s) * s.model.hidden_size / sp_degree(s.parallelism)
