"""Per-rank share of the model: which layers a pipeline stage (and model chunk) holds."""

from __future__ import annotations

import functools

from sim.specs.layout import ParallelismSpec
from sim.specs.scenario import Scenario, virtual_stage_layer_counts


def chunk_layers(s: Scenario) -> tuple[tuple[int, ...], ...]:
    """Transformer layers of every virtual stage, in pipeline order (``p * v`` tuples).

    Virtual stage ``j * p + r`` is chunk ``j`` of pipeline rank ``r``. With Megatron's
    ``account_for_embedding/loss_in_pipeline_split`` the embedding (loss) takes one layer slot of the
    first (last) virtual stage, which then holds one transformer layer fewer; ``first/last_stage_layers``
    and ``pipeline_layout`` split unevenly (``virtual_stage_layer_counts``). Cached per model and
    layout: the memory model and the engine ask for it per stage and per chunk.
    """
    return _chunk_layers(s.model.num_layers, s.parallelism)


@functools.lru_cache(maxsize=1024)
def _chunk_layers(num_layers: int, p: ParallelismSpec) -> tuple[tuple[int, ...], ...]:
    out, start = [], 0
    for c in virtual_stage_layer_counts(num_layers, p):
        out.append(tuple(range(start, start + c)))
        start += c
    return tuple(out)


def rank_layers(s: Scenario, rank: int) -> list[int]:
    """All transformer layers held by pipeline rank ``rank`` (over its virtual chunks)."""
    p = s.parallelism
    chunks = chunk_layers(s)
    return [layer for j in range(p.virtual_pipeline) for layer in chunks[j * p.pipeline + rank]]
