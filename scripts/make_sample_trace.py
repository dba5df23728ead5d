"""Write the bundled sample failure trace, scenarios/traces/sample-node-faults.csv (synthetic, seeded).

Not a real trace: faults of a 64-node fleet over 180 days drawn from the StepFun trace's published aggregates
(stepfun-ai/InfiniteHBD-Trace, SIGCOMM'25; sim/catalog/reliability.yaml sources stepfun, stepfun_clustering):
4.23 node faults per 1,000 node-days, Poisson; the class shares of its README (GPU 27 %, cable and NIC 12 %,
PSU, fan and other host parts 12 %, software 4 %, unknown and stress-test 45 %) mapped to trainsim's categories;
repair lognormal with median 0.85 d and mean 5.5 d; 7.5 % of events evict 2 or 3 nodes at once (14.6 % of its
faults share a timestamp). Run ``python scripts/make_sample_trace.py`` to rewrite it identically.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

OUT = Path(__file__).resolve().parents[1] / "scenarios" / "traces" / "sample-node-faults.csv"
NODES, DAYS, SEED = 64, 180, 0
RATE_PER_NODE_DAY = 4.23 / 1000
CATEGORIES = {"gpu": 0.27, "nic": 0.12, "host": 0.12, "software": 0.04, "node": 0.45}
REPAIR_MEDIAN_D, REPAIR_MEAN_D = 0.85, 5.5
BURST_SHARE = 0.075


def rows(rng: np.random.Generator) -> list[tuple[float, str, str, float]]:
    sigma = math.sqrt(2 * math.log(REPAIR_MEAN_D / REPAIR_MEDIAN_D))
    names, shares = list(CATEGORIES), np.array(list(CATEGORIES.values()))
    out, t = [], 0.0
    while True:
        t += rng.exponential(1 / (RATE_PER_NODE_DAY * NODES))
        if t > DAYS:
            return out
        size = int(rng.integers(2, 4)) if rng.random() < BURST_SHARE else 1
        category = names[int(rng.choice(len(names), p=shares / shares.sum()))]
        for node in rng.choice(NODES, size=size, replace=False):
            repair = 0.0 if category == "software" else rng.lognormal(math.log(REPAIR_MEDIAN_D), sigma) * 24
            out.append((t * 24, f"n{node:02d}", category, repair))


def main() -> None:
    lines = ["# SYNTHETIC sample trace (not measured): scripts/make_sample_trace.py, seed 0, 64 nodes, 180 days,",
             "# drawn from the StepFun trace's published aggregates (stepfun-ai/InfiniteHBD-Trace): 4.23 faults per",
             "# 1,000 node-days, its class shares, repair median 0.85 d and mean 5.5 d, 7.5 % of events on 2-3 nodes.",
             "time_hours,node,category,repair_hours"]
    lines += [f"{t:.2f},{node},{cat},{rep:.2f}" for t, node, cat, rep in rows(np.random.default_rng(SEED))]
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text("\n".join(lines) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
