"""Benchmark: CPU time of one simulated step vs cluster size (issue: < 1 s at 16,384 GPUs, and the
same within 2x from 1,024 to 131,072 GPUs because cost grows with distinct ranks, not GPUs).

Run: python benchmarks/step_speed.py   (prints a table; not a timed unit test)
"""

from __future__ import annotations

import dataclasses
import statistics
import sys
import time
from pathlib import Path

from sim.analysis.evaluate import evaluate
from sim.specs.scenario import load_scenario

SCENARIO = Path(__file__).resolve().parents[1] / "scenarios" / "llama3-405b-16k-h100-tp8-pp16-dp128.yaml"


def cpu_seconds(fn, repeat: int = 5) -> float:
    times = []
    for _ in range(repeat):
        start = time.process_time()
        fn()
        times.append(time.process_time() - start)
    return statistics.median(times)


def main() -> int:
    base = load_scenario(SCENARIO)
    load = cpu_seconds(lambda: load_scenario(SCENARIO))
    print(f"scenario {SCENARIO.name}: load {load * 1e3:.1f} ms CPU")
    print(f"{'GPUs':>8} {'DP':>5} {'global batch':>12} {'step s':>8} {'MFU':>6} {'CPU s/step':>11}")
    rows = []
    for dp in (8, 32, 128, 512, 1024):
        p = base.parallelism
        s = dataclasses.replace(
            base,
            cluster=dataclasses.replace(base.cluster, num_gpus=p.model_parallel * dp),
            parallelism=dataclasses.replace(p, data=dp),
            training=dataclasses.replace(base.training, global_batch_size=16 * dp),  # 16 micro-batches each
        )
        # simulated whether or not it fits: ZeRO-2 shards gradients and optimizer state over fewer replicas
        # at small DP, and this measures simulation cost, not the layout
        result = evaluate(s, ignore_memory=True)
        cpu = cpu_seconds(lambda s=s: evaluate(s, ignore_memory=True))
        rows.append(cpu)
        st = result.step
        print(f"{s.cluster.num_gpus:>8,} {dp:>5} {s.training.global_batch_size:>12,} {st.step_time_s:>8.3f} "
              f"{st.mfu:>6.1%} {cpu:>11.3f}{'' if result.fits else '  (would not fit in memory)'}")
    print(f"max/min CPU time across sizes: {max(rows) / min(rows):.2f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
