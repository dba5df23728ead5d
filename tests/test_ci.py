"""CI runs exactly the README's test command, and that command runs the tests plain `pytest` leaves out."""

from __future__ import annotations

import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _ci_command() -> str:
    lines = [ln for ln in (ROOT / ".ci" / "run").read_text().splitlines() if ln and not ln.startswith("#")]
    return lines[-1]


def test_ci_runs_the_readme_test_command():
    assert _ci_command() in (ROOT / "README.md").read_text().splitlines()


def test_plain_pytest_deselects_root_and_network_tests_and_ci_runs_them():
    options = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["pytest"]["ini_options"]
    assert "-m 'not browser and not notebook'" in options["addopts"]
    assert {m.split(":")[0] for m in options["markers"]} == {"browser", "notebook"}
    assert _ci_command().endswith("pytest && pytest -m 'browser or notebook'")
