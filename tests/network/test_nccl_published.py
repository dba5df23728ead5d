"""The collective model against published nccl-tests figures (sim/catalog/nccl_measured.yaml): large-message
bus bandwidth within 10 %, the small-message latency floor within 2x (issue: nccl-tests reproduction)."""

from __future__ import annotations

import itertools

import pytest

from sim.costs.collectives import Collective
from sim.network import nccl_tests
from sim.specs.topology import load_topology

COMPARISONS = nccl_tests.published()


def label(c: nccl_tests.Comparison) -> str:
    r = c.row
    return f"{r['topology']}-{r['gpus']}-{r['op']}-{r.get('algorithm', 'nccl')}-{r['size_bytes']}"


@pytest.mark.parametrize("c", [c for c in COMPARISONS if c.kind == "busbw"], ids=label)
def test_large_message_busbw_within_10_percent(c):
    assert c.ratio == pytest.approx(1.0, abs=0.10)


@pytest.mark.parametrize("c", [c for c in COMPARISONS if c.kind == "time"], ids=label)
def test_small_message_time_within_2x(c):
    assert 0.5 <= c.ratio <= 2.0


def test_every_published_row_is_compared():
    table = nccl_tests._table()
    assert len(COMPARISONS) == len(table["large_message_busbw"]) + len(table["small_message_time"])


def test_sweep_spans_1k_to_8g_and_busbw_grows_with_size():
    topo = load_topology("dgx-h100-superpod")
    points = nccl_tests.sweep(topo, nccl_tests.default_gpu(topo.name), 64, Collective.ALL_GATHER)
    assert [p.size_bytes for p in points] == [1024 * 2**k for k in range(24)]
    assert all(b.busbw >= a.busbw for a, b in itertools.pairwise(points))
