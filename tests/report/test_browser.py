"""The HTML report opens in a real browser: scripts/screenshot_report.sh renders it with headless
Chromium (installing Debian's ``chromium`` when it is missing) and the screenshot is not blank."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from sim.report.html import write_report

from .conftest import png_pixels

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "screenshot_report.sh"

#: needs root and network when chromium is missing (apt): deselected by plain pytest, run by .ci/run
pytestmark = pytest.mark.browser


def test_report_renders_in_headless_chromium(small_eval, tmp_path):
    report = write_report(small_eval, tmp_path / "report.html")
    shot = tmp_path / "report.png"
    done = subprocess.run([str(SCRIPT), str(report), str(shot)], capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stderr[-3000:]
    rgb = png_pixels(shot)
    assert rgb.shape[:2] == (2000, 1280)
    assert rgb.var() > 1e-3, "blank screenshot"
    white = (rgb.min(axis=-1) > 0.98).mean()
    assert white < 0.97, f"{white:.1%} of the screenshot is white"
    # the plots were decoded and painted: a share of the page is saturated colour (the KPI boxes and
    # headings alone paint 0.4% of the small report)
    saturation = rgb.max(axis=-1) - rgb.min(axis=-1)
    assert (saturation > 0.25).mean() > 0.015
