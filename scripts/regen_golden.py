"""Regenerate the pinned golden outputs of the bundled scenarios (tests/golden/*.json).

Each file holds what ``trainsim run SCENARIO --json`` prints, and the step's figures at full precision
(the JSON rounds to 6 digits; speed work must leave results unchanged to 1e-9 relative). Run this only
on purpose, when a modelling change moves results, and say in the commit message what moved and why:

    python scripts/regen_golden.py
"""

from __future__ import annotations

import contextlib
import io
import json
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
GOLDEN = ROOT / "tests" / "golden"


def golden(scenario: Path) -> dict[str, Any]:
    """The pinned record of one scenario: the CLI's JSON and the raw step figures."""
    from sim.analysis.evaluate import evaluate
    from sim.cli import main
    from sim.specs.scenario import load_scenario

    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        if main(["run", str(scenario), "--json", "-q"]) != 0:
            raise SystemExit(f"trainsim run {scenario} failed")
    ev = evaluate(load_scenario(scenario))
    raw: dict[str, Any] = {"memory_total_bytes": ev.memory.total}
    if ev.step is not None:
        raw.update(step_time_s=ev.step.step_time_s, breakdown_s=ev.step.breakdown_s,
                   stage_compute_s=ev.step.stage_compute_s, mfu=ev.step.mfu)
    return {"cli_json": json.loads(out.getvalue()), "raw_step": raw}


def scenarios() -> list[Path]:
    return sorted((ROOT / "scenarios").glob("*.yaml"))


def main() -> int:
    GOLDEN.mkdir(exist_ok=True)
    for path in scenarios():
        target = GOLDEN / f"{path.stem}.json"
        target.write_text(json.dumps(golden(path), indent=1, sort_keys=True) + "\n")
        print(f"wrote {target.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.path.insert(0, str(ROOT))
    sys.exit(main())
