"""Benchmark: CPU time of the run-level Monte Carlo (issue: 100 replicas of a 54-day, 16,384-GPU run with
the llama3 rate set in < 10 s; no slow-down with GPU count beyond the number of events). The spare pool
scales with the cluster (the bundled 64 nodes per 16,384 GPUs).

The run's failure-free length is fixed at 54 days (step time 8.3 s, the bundled layout's order of
magnitude); the GPU count changes the failure rate, so events per replica grow with it. Checkpoint cycles
between two failures are advanced arithmetically (one timeout), so the CPU time per *interruption* is
what must stay flat.

Run: python benchmarks/run_speed.py   (prints a table; not a timed unit test)
"""

from __future__ import annotations

import dataclasses
import os
import statistics
import time
from pathlib import Path

from sim.analysis.runlevel import simulate_run_level
from sim.specs import budget
from sim.specs.reliability import InMemorySpec, RepairSpec, RestartSpec, StragglerSpec
from sim.specs.scenario import load_scenario

SCENARIO = Path(__file__).resolve().parents[1] / "scenarios" / "llama3-405b-16k-h100-tp8-pp16-dp128.yaml"
STEP_S = 8.3
REPLICAS = 100
REPEATS = 5


def main() -> int:
    os.environ.setdefault(budget.ENV, "1")  # the largest sizes are above the default run-level budget on purpose
    base = load_scenario(SCENARIO)
    simulate_run_level(base, STEP_S, replicas=1)  # untimed: first-call costs (catalog reads) are start-up
    print(f"{'GPUs':>8} {'interruptions':>14} {'checkpoints':>12} "
          f"{'CPU s / 100 replicas':>21} {'us / interruption':>18}")
    for gpus in (1_024, 4_096, 16_384, 65_536, 131_072):
        p = base.parallelism
        layout = dataclasses.replace(p, data=gpus // (p.tensor * p.pipeline * p.context))
        steps = 54 * 86_400 / STEP_S
        gbs = max(base.training.global_batch_size, layout.data * p.pipeline)  # interleaving needs m % p == 0
        scenario = dataclasses.replace(
            base, cluster=dataclasses.replace(base.cluster, num_gpus=gpus), parallelism=layout,
            failures=dataclasses.replace(base.failures, hot_spares=base.failures.hot_spares * gpus // 16_384),
            training=dataclasses.replace(base.training, global_batch_size=gbs, tokens=steps * gbs * base.model.seq_len))
        start = time.process_time()
        run = simulate_run_level(scenario, STEP_S, replicas=REPLICAS)
        cpu = time.process_time() - start
        interruptions = sum(r.interruption_count for r in run.replicas)
        checkpoints = sum(r.checkpoints for r in run.replicas) / REPLICAS
        print(f"{gpus:>8,} {run.interruptions_mean:>14.0f} {checkpoints:>12.0f} "
              f"{cpu:>21.2f} {cpu / interruptions * 1e6:>18.1f}")
    everything_on(base)
    return 0


def everything_on(base) -> None:
    """Issue 13: 100 replicas of the bundled 405B run with every run-level feature on (in-memory checkpoints,
    bursts, lemons, late SDC, fail-slow episodes, a spare pool with the StepFun repairs, restart stages from
    the scenario, stragglers) in <= 3 s of CPU. Stragglers twice: the per-node share (drawn anew at every
    restart) without eviction, and exactly 2 slow nodes evicted after 30 min. (The share with eviction sends
    ~10 of 2,048 nodes to a 132 h repair after nearly every restart: the 64 spares run dry and the run hits
    the 20x cap, a scenario's outcome, not a benchmark.) The CPU time counts the 100 replicas and the run plan
    (``simulate_run_level``), not Python's imports or the scenario's loading; an untimed one-replica run of the same
    scenario first keeps first-call costs out too (~20 ms). Printed: the median of five timed runs, with their range."""
    fail = dataclasses.replace(base.failures, burst_fraction=0.054, lemon_fraction=0.24, sdc_detection_hours=24,
                               restart=RestartSpec(detect_s=30, diagnose_s=240),
                               repair_hours=RepairSpec(median=20.4, mean=132))
    print()
    for label, stragglers in (("per-node share", StragglerSpec(episodes_per_day=2)),
                              ("exactly 2 slow, evicted", StragglerSpec(episodes_per_day=2, count=2,
                                                                       evict_after_minutes=30))):
        scenario = dataclasses.replace(
            base, failures=fail, stragglers=stragglers,
            checkpoint=dataclasses.replace(base.checkpoint, in_memory=InMemorySpec(replicas=2)))
        simulate_run_level(scenario, STEP_S, replicas=1)  # untimed: first-call costs (catalog reads) are start-up
        times = []
        for _ in range(REPEATS):  # single runs of this loop swing by ~10-20 % even on an idle machine
            start = time.process_time()
            run = simulate_run_level(scenario, STEP_S, replicas=REPLICAS)
            times.append(time.process_time() - start)
        evictions = run.interruptions_by_category().get("straggler", 0.0)
        print(f"bundled 405B run, every feature on, stragglers {label}: {REPLICAS} replicas in "
              f"{statistics.median(times):.2f} s CPU (median of {REPEATS}, range {min(times):.2f}-{max(times):.2f}; "
              f"{run.interruptions_mean:.0f} interruptions of which {evictions:.0f} evictions, "
              f"{run.recoveries_from_memory:.0f} from memory, {run.storage_fallbacks:.1f} from storage, "
              f"goodput {run.goodput:.1%}, effective MFU pace {run.training_pace:.1%}, {run.unfinished} unfinished)")


if __name__ == "__main__":
    raise SystemExit(main())
