"""Benchmark: CPU time of one step in full fidelity (every rank, every DP/PP flow on the fabric; placement,
fabric and rank classes included) at 64, 128, 256 and 1,024 GPUs, beside the symmetric engine on the same
scenario and the two step times; "classes" is how many rank processes full fidelity ran (one per class of
alike ranks, ``sim.network.symmetry``). No timeline is recorded (as in ``trainsim run`` without
``--trace``/``--plot``).

The scenario is Llama 3 70B (preset) on DGX H100 SuperPOD nodes, TP 8, PP 4, DP 2/4/8, 32 micro-batches
per pipeline, full recompute: the layout family of the Megatron runs, scaled down to full fidelity's range.

Run: python benchmarks/full_fidelity_speed.py   (prints a table; not a timed unit test)
"""

from __future__ import annotations

import sys
import time

from sim.engine.full import FullTransport
from sim.engine.step import StepSimulation
from sim.specs.scenario import Scenario, scenario_from_mapping


def scenario(data: int) -> Scenario:
    return scenario_from_mapping({
        "model": {"preset": "llama3-70b"},
        "cluster": {"gpu": "H100-SXM-80GB", "num_gpus": 32 * data, "topology": "dgx-h100-superpod"},
        "parallelism": {"tensor": 8, "pipeline": 4, "data": data, "activation_recompute": "full"},
        "training": {"global_batch_size": 32 * data},
        "simulation": {"fidelity": "full"}})


def cpu(fn) -> tuple[float, object]:
    start = time.process_time()
    out = fn()
    return time.process_time() - start, out


def main() -> int:
    print(f"{'GPUs':>5} {'classes':>7} {'full CPU s':>10} {'sym CPU s':>10} {'fabric solves':>13} "
          f"{'full step s':>11} {'sym step s':>10} {'diff':>7}")
    for data in (2, 4, 8, 32):
        s = scenario(data)
        transport = FullTransport()
        t_full, full = cpu(StepSimulation(s, record=False, transport=transport).run)
        t_sym, sym = cpu(StepSimulation(s, record=False).run)
        print(f"{s.cluster.num_gpus:>5} {len(transport.classes):>7} {t_full:>10.2f} {t_sym:>10.3f} "
              f"{transport.fabric_flows.solves:>13,} {full.step_time_s:>11.4f} {sym.step_time_s:>10.4f} "
              f"{full.step_time_s / sym.step_time_s - 1:>+7.2%}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
