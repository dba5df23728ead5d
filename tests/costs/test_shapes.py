"""The shared shapes: the sequence-parallel degree and the pipeline's activation message, by hand."""

from __future__ import annotations

import dataclasses

from sim.costs.shapes import microbatch_tokens, pipeline_activation_bytes, sp_degree
from sim.specs.scenario import scenario_from_mapping
from tests.specs.conftest import BASE, base_mapping


def _scenario(**parallelism):
    data = base_mapping()
    data["parallelism"].update(parallelism)
    return scenario_from_mapping(data)


def test_sp_degree_is_tp_only_with_sequence_parallelism_and_tp_above_one():
    s = _scenario(sequence_parallel=True)  # TP 2
    assert sp_degree(s.parallelism) == 2
    assert sp_degree(dataclasses.replace(s.parallelism, sequence_parallel=False)) == 1


def test_pipeline_activation_bytes_by_hand():
    """Llama 3 8B, seq 8192, micro-batch 1, TP 2 with SP: 2 bytes x 8192 tokens x 4096 / 2 = 33.5 MB."""
    s = _scenario(sequence_parallel=True)
    assert BASE["parallelism"]["tensor"] == 2
    assert microbatch_tokens(s) == 8192
    assert pipeline_activation_bytes(s) == 2 * 8192 * 4096 / 2
    no_sp = _scenario(sequence_parallel=False)
    assert pipeline_activation_bytes(no_sp) == 2 * 8192 * 4096
