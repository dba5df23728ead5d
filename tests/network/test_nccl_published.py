"""The collective model against published nccl-tests figures (sim/catalog/nccl_measured.yaml).

Each row is tagged: ``fit`` rows set a constant of efficiency.yaml (ring efficiency per architecture, NVLS
fraction, scale-out efficiency, the size curve), so the model reproduces them by construction: their test
is a consistency check of the plumbing, not evidence of accuracy. Accuracy rests on the ``check`` rows:
large-message bus bandwidth within 10 %, the small-message latency floor within 2x.
"""

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


def _rows(kind: str, tag: str) -> list[nccl_tests.Comparison]:
    return [c for c in COMPARISONS if c.kind == kind and c.tag == tag]


def test_every_row_is_tagged_and_fit_rows_name_their_constant():
    assert {c.tag for c in COMPARISONS} == {"fit", "check"}
    assert all(c.row.get("sets") for c in COMPARISONS if c.tag == "fit")
    assert len(_rows("busbw", "check")) >= 5 and _rows("time", "check")


@pytest.mark.parametrize("c", _rows("busbw", "check"), ids=label)
def test_accuracy_large_message_busbw_within_10_percent(c):
    assert c.ratio == pytest.approx(1.0, abs=0.10)


@pytest.mark.parametrize("c", _rows("time", "check"), ids=label)
def test_accuracy_small_message_time_within_2x(c):
    assert 0.5 <= c.ratio <= 2.0


@pytest.mark.parametrize("c", _rows("busbw", "fit") + _rows("time", "fit"), ids=label)
def test_consistency_fitted_rows_are_reproduced(c):
    """Round trip: the constant set from this row gives the row back (within the same bounds)."""
    if c.kind == "busbw":
        assert c.ratio == pytest.approx(1.0, abs=0.10)
    else:
        assert 0.5 <= c.ratio <= 2.0


def test_every_published_row_is_compared():
    table = nccl_tests._table()
    assert len(COMPARISONS) == len(table["large_message_busbw"]) + len(table["small_message_time"])


def test_sweep_spans_1k_to_8g_and_busbw_grows_with_size():
    topo = load_topology("dgx-h100-superpod")
    points = nccl_tests.sweep(topo, nccl_tests.default_gpu(topo.name), 64, Collective.ALL_GATHER)
    assert [p.size_bytes for p in points] == [1024 * 2**k for k in range(24)]
    assert all(b.busbw >= a.busbw for a, b in itertools.pairwise(points))
