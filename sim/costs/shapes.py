"""Shapes the cost models and the engine share, written once: the sequence-parallel degree and the bytes of
the activation a pipeline stage hands to the next."""

from __future__ import annotations

from typing import TYPE_CHECKING, TypeVar

from sim.specs.layout import ParallelismSpec
from sim.specs.scenario import Scenario

if TYPE_CHECKING:  # a column of the search pre-screen; the run path never imports numpy for a scalar
    import numpy as np

#: A degree or size: one layout's (int/float) or the search pre-screen's column over candidate layouts.
N = TypeVar("N", int, float, "np.ndarray")

#: Activations travel between pipeline stages in 16-bit (Megatron sends bf16/fp16 even under fp8 GEMMs).
ACTIVATION_BYTES = 2.0


def sequence_split(tensor: N, sequence_parallel: bool) -> N | int:
    """Ranks Megatron sequence parallelism splits the sequence over outside the attention and MLP GEMMs: the
    TP degree when ``sequence_parallel`` is on (1 at TP 1), else 1. ``tensor`` may be a column of degrees."""
    return tensor if sequence_parallel else 1


def sp_degree(p: ParallelismSpec) -> int:
    """:func:`sequence_split` of one layout."""
    return sequence_split(p.tensor, p.sequence_parallel)


def tokens_per_microbatch(seq_len: int, context: N, micro_batch_size: N) -> N | float:
    """Tokens of one micro-batch on one CP rank."""
    return seq_len / context * micro_batch_size


def microbatch_tokens(s: Scenario) -> float:
    """:func:`tokens_per_microbatch` of one scenario."""
    p = s.parallelism
    return tokens_per_microbatch(s.model.seq_len, p.context, p.micro_batch_size)


def activation_bytes(tokens: N, hidden_size: int, tensor: N, sequence_parallel: bool) -> N | float:
    """Bytes one TP rank sends to the next pipeline stage per micro-batch (the input gradient going back is the
    same size): the hidden states of the micro-batch, each TP rank sending its 1/t share under SP (Megatron's
    scatter/gather optimisation, Narayanan et al. 2021 §4.1)."""
    return ACTIVATION_BYTES * tokens * hidden_size / sequence_split(tensor, sequence_parallel)


def pipeline_activation_bytes(s: Scenario) -> float:
    """:func:`activation_bytes` of one scenario."""
    p = s.parallelism
    return activation_bytes(microbatch_tokens(s), s.model.hidden_size, p.tensor, p.sequence_parallel)
