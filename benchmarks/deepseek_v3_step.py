"""Benchmark: CPU time of one simulated DeepSeek-V3 step on 2,048 H800 (issue 10: < 0.5 s of CPU).

Run: python benchmarks/deepseek_v3_step.py   (prints figures; not a timed unit test)
"""

from __future__ import annotations

import statistics
import time
from pathlib import Path

from sim.analysis.evaluate import evaluate
from sim.specs.scenario import load_scenario

SCENARIO = Path(__file__).resolve().parents[1] / "scenarios" / "deepseek-v3-2048-h800.yaml"


def main() -> int:
    s = load_scenario(SCENARIO)
    times = []
    for _ in range(5):
        start = time.process_time()
        ev = evaluate(s)
        times.append(time.process_time() - start)
    step = ev.step
    assert step is not None
    hours = s.training.tokens / s.tokens_per_step * step.step_time_s * s.cluster.num_gpus / 3600
    print(f"{SCENARIO.name}: {s.cluster.num_gpus:,} GPUs, step {step.step_time_s:.3f} s, MFU {step.mfu:.1%}, "
          f"{hours / 1e6:.3f} M GPU-hours for {s.training.tokens:.3g} tokens (failure-free; report: 2.664 M)")
    print(f"CPU per step evaluation: median {statistics.median(times):.3f} s, first {times[0]:.3f} s "
          f"(target < 0.5 s)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
