"""The HTML report (sim/report/html.py): self-contained, with summary, plots and sourced assumptions."""

from __future__ import annotations

import base64
import re

from sim import catalog
from sim.report.html import RunLevel, assumptions, report_html, write_report

from .conftest import assert_not_empty

IMG = re.compile(r'<img [^>]*src="([^"]+)"')


def test_report_is_self_contained(small_eval):
    page = report_html(small_eval)
    assert page.startswith("<!DOCTYPE html>") and page.rstrip().endswith("</html>")
    # nothing is fetched: no external scripts, stylesheets, fonts or images
    assert not re.search(r'<(script|link|iframe)\b', page)
    assert not re.search(r'(src|href)="(https?:)?//', page)
    assert "url(" not in page and "@import" not in page
    sources = IMG.findall(page)
    assert len(sources) == 3
    for src in sources:
        head, data = src.split(",", 1)
        assert head == "data:image/png;base64"
        assert_not_empty(base64.b64decode(data))


def test_report_has_summary_and_sourced_assumptions(small_eval):
    page = report_html(small_eval)
    step = small_eval.step
    assert f"{step.step_time_s:.3f} s" in page and f"{step.mfu:.1%}" in page
    for section in ("Summary", "Step", "Assumptions"):
        assert f"<h2>{section}</h2>" in page
    for absent in ("Training run", "Layouts", "Cluster size"):
        assert f"<h2>{absent}</h2>" not in page
    gpu = catalog.gpu_table()["H100-SXM-80GB"]
    assert gpu["source"][:60].replace("'", "&#x27;") in page


def test_assumptions_name_a_source_for_every_figure(small_eval):
    rows = assumptions(small_eval.scenario)
    groups = {r.group for r in rows}
    assert {"GPU", "topology dgx-h100-superpod", "efficiency"} <= groups
    gpu = next(r for r in rows if r.group == "GPU")
    assert gpu.name == "H100-SXM-80GB" and "bf16 989.4" in gpu.value and "memory_gib 80" in gpu.value
    assert all(r.source.strip() for r in rows)
    names = {r.name for r in rows if r.group == "efficiency"}
    # the GPU's architecture (hopper) only: the ampere curves are left out
    assert "gemm.curve_by_ideal_us.hopper" in names and "gemm.curve_by_ideal_us.ampere" not in names
    assert "calibration.sustained_tensor_fraction" in names
    tensor = next(r for r in rows if r.name == "calibration.sustained_tensor_fraction")
    value = catalog.efficiency_table()["calibration"]["sustained_tensor_fraction"]["value"]
    assert tensor.value == f"value {value:.4g}"


def test_optional_sections_appear_when_their_data_are_passed(small_eval, tmp_path):
    run = RunLevel(summary={"days_p50": 63.1, "goodput": 0.91}, goodput_days=[0, 1, 2], goodput=[1.0, 0.9, 0.92],
                   days_samples=[60.0, 61.5, 63.0, 64.2, 66.0])
    path = write_report(small_eval, tmp_path / "r" / "report.html", run=run,
                        layouts=[("TP2 PP2", 1.0, 0.4), ("TP4 PP1", 1.1, 0.37)],
                        sizing=[(8, 10.0, 1e5), (16, 5.2, 1.04e5)])
    page = path.read_text()
    for section in ("Training run", "Layouts", "Cluster size"):
        assert f"<h2>{section}</h2>" in page
    assert "days_p50" in page and "63.1" in page
    assert len(IMG.findall(page)) == 3 + 2 + 1 + 1
    summary_only = report_html(small_eval, run=RunLevel(summary={"days_p50": 63.1}))
    assert len(IMG.findall(summary_only)) == 3
