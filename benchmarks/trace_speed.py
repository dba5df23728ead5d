"""Benchmark: CPU time of a full-fidelity step with its timeline recorded (``--trace``, ``--plot``) and of
writing its Chrome trace (``write_step_trace``, what ``trainsim run --trace`` does), with the trace's size.

Every rank of a class of alike ranks has the intervals of the one simulated: the timeline keeps them per
class (each rank's copy is made only when ``Timeline.intervals`` is read) and the trace encodes each class's
events once, filling in each rank's process id. The scenario is ``full_fidelity_speed.py``'s (Llama 3 70B,
TP 8, PP 4, DP 8 / 32 on DGX H100 SuperPOD nodes, 4 rank classes).

Run: python benchmarks/trace_speed.py   (prints a table; not a timed unit test; writes into a temporary folder)
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

from full_fidelity_speed import cpu, scenario

from sim.engine.simulate import simulate_step
from sim.report.trace import write_step_trace


def main() -> int:
    print(f"{'GPUs':>5} {'step CPU s':>10} {'recorded CPU s':>14} {'intervals':>10} {'trace CPU s':>11} "
          f"{'trace MB':>8}")
    with tempfile.TemporaryDirectory() as tmp:
        for data in (8, 32):
            s = scenario(data)
            bare, _ = cpu(lambda s=s: simulate_step(s))
            recorded, step = cpu(lambda s=s: simulate_step(s, record=True))
            path = Path(tmp) / f"step-{data}.json"
            write, _ = cpu(lambda step=step, path=path: write_step_trace(step, path))
            print(f"{s.cluster.num_gpus:>5} {bare:>10.2f} {recorded:>14.2f} {step.timeline.count():>10,} "
                  f"{write:>11.2f} {path.stat().st_size / 1e6:>8.0f}")
            path.unlink()
    return 0


if __name__ == "__main__":
    sys.exit(main())
