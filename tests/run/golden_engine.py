"""Pinned engine outputs for the refactor of sim/engine/run.py (issue 13, item 5): a set of run
parameters with every optional feature on, each simulated on fixed seeds. ``python -m tests.run.golden_engine``
rewrites tests/run/data/golden_engine.json; test_golden.py compares the engine against it."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np

from sim.costs.reliability import FailureClass, RestartStages
from sim.engine.run import RunParams, simulate_run

H = 3600.0
PATH = Path(__file__).parent / "data" / "golden_engine.json"
SEEDS = (0, 1, 2, 3, 4)

_HW = FailureClass("gpu", "gpu", 1 / (6 * H), 1, False)
_SW = FailureClass("sw", "software", 1 / (20 * H), 0, False)
_HANG = FailureClass("nccl", "software", 1 / (40 * H), 0, True)
_PLANNED = FailureClass("planned_maintenance", "planned", 1 / (24 * H), 0, False, planned=True)
_SDC = FailureClass("sdc", "gpu", 1 / (60 * H), 1, False, silent=True)
_STAGES = RestartStages(30, 600, 300, 120, 40, 20, 60)


def cases() -> dict[str, RunParams]:
    base = dict(work_s=300 * H, interval_s=H, stall_s=10.0, persist_s=120.0, nodes=64, dp_replicas=16,
                nodes_per_replica=4.0)
    return {
        "plain": RunParams(**base, failures=(_HW, _SW), restart_s=600.0),
        "stages_spares": RunParams(**base, failures=(_HW, _SW, _HANG, _PLANNED), stages=_STAGES, spares=2,
                                   repair_mu_ln_s=math.log(12 * H), repair_sigma_ln=1.0),
        "weibull_shrink": RunParams(**base, failures=(_HW, _SW, _PLANNED), weibull_shape=0.7, restart_s=400.0,
                                    spares=0, shrink=True, repair_mu_ln_s=math.log(8 * H), repair_sigma_ln=1.5),
        "everything": RunParams(**base, failures=(_HW, _SW, _HANG, _PLANNED, _SDC), stages=_STAGES, spares=1,
                                repair_mu_ln_s=math.log(10 * H), repair_sigma_ln=1.2, straggler_fraction=0.01,
                                straggler_slowdown=0.1, burst_fraction=0.2, lemon_fraction=0.2,
                                lemon_multiplier=2.5, sdc_detection_s=5 * H, episode_rate_per_s=0.5 / (24 * H),
                                episode_mu_ln_s=math.log(1200), episode_sigma_ln=1.0, episode_slowdown=0.3,
                                inject_s=(5 * H, 5 * H + 100)),
        "capped": RunParams(work_s=100 * H, interval_s=H, stall_s=10.0, failures=(FailureClass("x", "gpu", 1 / 600,
                            0, False),), restart_s=900.0, max_wall_factor=3.0),
    }


def outputs() -> dict[str, list[dict]]:
    out = {}
    for name, p in cases().items():
        rows = []
        for seed in SEEDS:
            r = simulate_run(p, np.random.default_rng(seed))
            rows.append({"wall_s": r.wall_s, "work_s": r.work_s, "finished": r.finished,
                         "interruptions_by_name": dict(sorted(r.interruptions_by_name.items())),
                         "losses_s": r.losses_s, "checkpoints": r.checkpoints})
        out[name] = rows
    return out


if __name__ == "__main__":
    PATH.write_text(json.dumps(outputs(), indent=1, sort_keys=True) + "\n")
