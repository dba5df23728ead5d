"""Check the search against tuned published layouts: Megatron-Core r0.8's H100 weak-scaling rows
(sim/catalog/validation/published_runs.yaml ``mcore-r0.8-h100-weak-*``, NVIDIA's tuned layouts).

For each row: the row's scenario as validation simulates it (its layout, open choices filled by the
validation rules), then ``search`` over the same model, GPUs, global batch and framework options. Printed:
the published step time, the simulation of the published layout (its validation error), the best layout
the search simulates and how much faster than the published step it claims to be, then the same for the
best layout whose every feature validation covers (``--validated-only``). A search you can believe should
not beat the tuned published layout by more than the validation error explains. ``beats`` = published /
best - 1; the error explains ``pub/sim`` = published / simulated published layout - 1 (the model already
runs the published layout that much faster, or slower); ``excess`` = the rest = simulated published / best
- 1, the gain the search claims in the model's own terms over NVIDIA's tuned choice.

Run: python benchmarks/published_layouts.py [--simulate N] [--workers N] [ROW-ID ...]
"""

from __future__ import annotations

import argparse
import sys
import time

from sim.analysis.explore.search import search
from sim.analysis.validation import published_rows, simulate_row


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("rows", nargs="*", help="row ids (default: every mcore-r0.8-h100-weak row)")
    parser.add_argument("--simulate", type=int, default=64)
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args(argv)
    rows = [r for r in published_rows() if r.id.startswith("mcore-r0.8-h100-weak")]
    if args.rows:
        rows = [r for r in rows if r.id in args.rows]
    print(f"{'row':<28} {'GPUs':>5} {'published':>9} {'sim pub':>8} {'error':>6}  {'best simulated layout':<72} "
          f"{'step s':>7} {'beats':>6} {'pub/sim':>7} {'excess':>6} {'time':>5}")
    for row in rows:
        start = time.perf_counter()
        outcome = simulate_row(row)
        assert outcome.scenario is not None and outcome.error is not None
        result = search(outcome.scenario, simulate=args.simulate, run_top=0, objective="step",
                        workers=args.workers)
        for validated_only in (False, True):
            result.validated_only = validated_only
            ranked = result.ranked()
            head = (f"{row.id:<28} {outcome.scenario.cluster.num_gpus:>5} {row.published_step_s:>9.3f} "
                    f"{outcome.simulated_step_s:>8.3f} {outcome.error:>+6.1%}" if not validated_only else
                    f"{'  validated only':<58}")
            if not ranked:
                print(f"{head}  no simulated layout is fully validated", flush=True)
                continue
            layout, best = ranked[0]
            beats = row.published_step_s / best["step_time_s"] - 1
            explained = row.published_step_s / outcome.simulated_step_s - 1
            excess = outcome.simulated_step_s / best["step_time_s"] - 1
            print(f"{head}  {layout.label():<72} {best['step_time_s']:>7.3f} {beats:>+6.1%} {explained:>+7.1%} "
                  f"{excess:>+6.1%} {time.perf_counter() - start:>4.0f}s", flush=True)
            if best["unvalidated"]:
                print(f"{'':>30}unvalidated: {best['unvalidated']}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
