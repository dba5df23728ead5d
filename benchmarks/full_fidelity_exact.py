"""Check: full fidelity with alike ranks simulated once (``FullTransport``, the default) against every
rank simulated (``symmetry=False``) on layouts of different TP/PP/DP, ZeRO stages, interleaving, MoE and an
asymmetric placement: the largest relative difference over step time, breakdown, per-stage compute and
the timeline (every rank's intervals), the rank classes and the CPU seconds of each.

Run: python benchmarks/full_fidelity_exact.py [--big]   (--big adds 70B on 512 GPUs; prints a table)
"""

from __future__ import annotations

import sys
import time

from sim.engine.full import FullTransport
from sim.engine.step import StepSimulation
from sim.specs.scenario import Scenario, scenario_from_mapping

SMALL = {"num_layers": 8, "hidden_size": 2048, "ffn_hidden_size": 8192, "num_attention_heads": 16,
         "num_kv_heads": 8, "vocab_size": 32000, "seq_len": 2048}


def scenario(model: dict, topology: str, gpu: str, par: dict, micro: int = 4) -> Scenario:
    par = {"tensor": 1, "pipeline": 1, "context": 1, "data": 1, **par}
    n = par["tensor"] * par["pipeline"] * par["context"] * par["data"]
    return scenario_from_mapping({
        "model": model, "cluster": {"gpu": gpu, "num_gpus": n, "topology": topology}, "parallelism": par,
        "training": {"global_batch_size": micro * par["data"] * par["context"] * par["pipeline"]},
        "simulation": {"fidelity": "full"}})


H100 = ("dgx-h100-superpod", "H100-SXM-80GB")
LAYOUTS = {
    "tp8 pp2 dp4": (SMALL, *H100, {"tensor": 8, "pipeline": 2, "data": 4}),
    "tp4 pp2 dp8 zero0": (SMALL, *H100, {"tensor": 4, "pipeline": 2, "data": 8, "zero_stage": 0}),
    "tp4 pp2 dp4 zero2": (SMALL, *H100, {"tensor": 4, "pipeline": 2, "data": 4, "zero_stage": 2}),
    "tp8 pp2 dp4 zero1 gather after": (SMALL, *H100, {"tensor": 8, "pipeline": 2, "data": 4, "zero_stage": 1,
                                                      "overlap_param_gather": False}),
    "tp8 dp8 zero3": (SMALL, *H100, {"tensor": 8, "data": 8, "zero_stage": 3}),
    "tp2 pp4 dp8 interleaved": (SMALL, *H100, {"tensor": 2, "pipeline": 4, "data": 8, "virtual_pipeline": 2,
                                               "schedule": "interleaved-1f1b"}),
    "tp4 cp2 dp8": (SMALL, *H100, {"tensor": 4, "context": 2, "data": 8}),
    "tp4 pp2 dp16 gb200 (asymmetric)": (SMALL, "gb200-nvl72", "GB200", {"tensor": 4, "pipeline": 2, "data": 16}),
    "tp8 pp2 dp16 meta 24k": (SMALL, "meta-llama3-24k", "H100-SXM-80GB", {"tensor": 8, "pipeline": 2, "data": 16}),
    "mixtral tp2 pp2 dp16 ep8": ({"preset": "mixtral-8x7b"}, *H100,
                                 {"tensor": 2, "pipeline": 2, "data": 16, "expert": 8,
                                  "activation_recompute": "full"}),
    "70b tp8 pp4 dp8": ({"preset": "llama3-70b"}, *H100,
                        {"tensor": 8, "pipeline": 4, "data": 8, "activation_recompute": "full"}),
}


def figures(s: Scenario, transport: FullTransport) -> tuple[float, list[float], float]:
    start = time.process_time()
    r = StepSimulation(s, transport=transport).run()
    cpu = time.process_time() - start
    timeline = sorted((i.rank, i.stream, i.name, i.start, i.end) for i in r.timeline.intervals)
    values = [r.step_time_s, *r.breakdown_s.values(), *r.stage_compute_s, float(r.bottleneck_stage)]
    values += [x for i in timeline for x in (float(i[0]), i[3], i[4])]
    return cpu, values, len(timeline)


def main(argv: list[str]) -> int:
    layouts = dict(LAYOUTS)
    if "--big" in argv:
        layouts["70b tp8 pp4 dp16"] = ({"preset": "llama3-70b"}, *H100,
                                       {"tensor": 8, "pipeline": 4, "data": 16, "activation_recompute": "full"})
    print(f"{'layout':34} {'GPUs':>5} {'classes':>7} {'max rel diff':>12} {'CPU s':>7} {'ref CPU s':>9}")
    worst = 0.0
    for name, (model, topology, gpu, par) in layouts.items():
        s = scenario(model, topology, gpu, par)
        transport = FullTransport()
        cpu, got, n = figures(s, transport)
        classes = len(transport.classes)
        ref_cpu, want, m = figures(s, FullTransport(symmetry=False))
        diff = float("inf") if n != m else max(abs(a - b) / max(abs(b), 1e-300) for a, b in zip(got, want, strict=True))
        worst = max(worst, diff)
        print(f"{name:34} {s.cluster.num_gpus:>5} {classes:>7} {diff:>12.1e} {cpu:>7.2f} {ref_cpu:>9.2f}")
    print(f"largest relative difference: {worst:.1e} (must be <= 1e-9)")
    return 0 if worst <= 1e-9 else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
