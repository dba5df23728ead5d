"""Benchmark: the collective model as nccl-tests would measure it, against published figures.

Prints (1) simulated all-reduce / all-gather / reduce-scatter bus bandwidth at 1 KiB, 1 MiB, 64 MiB and
8 GiB for 8 GPUs in a DGX A100 and a DGX H100 and for 32..1,024 GPUs across nodes (``trainsim collectives``
prints every size), and (2) every published figure of ``sim/catalog/nccl_measured.yaml`` beside the model
with the issue's bounds: large-message busbw within 10 %, small-message time within 2x.

Run: python benchmarks/collectives.py   (exit status 1 if a bound is missed)
"""

from __future__ import annotations

import sys
import time

from sim.costs.collectives import Collective
from sim.network import nccl_tests
from sim.specs.topology import load_topology

TOPOLOGIES = ("dgx-a100-superpod", "dgx-h100-superpod")
GPUS = (8, 32, 64, 128, 256, 512, 1024)
SIZES = (2**10, 2**20, 2**26, 2**33)
OPS = (Collective.ALL_REDUCE, Collective.ALL_GATHER, Collective.REDUCE_SCATTER)


def main() -> int:
    start = time.process_time()
    for name in TOPOLOGIES:
        topo = load_topology(name)
        gpu = nccl_tests.default_gpu(name)
        for op in OPS:
            print(f"\n{name} ({gpu.name}) {op.value} busbw GB/s [algorithm NCCL would pick]")
            print(f"{'GPUs':>5} " + " ".join(f"{_size(s):>18}" for s in SIZES))
            for n in GPUS:
                points = nccl_tests.sweep(topo, gpu, n, op, sizes=SIZES)
                print(f"{n:>5} " + " ".join(f"{p.busbw / 1e9:>8.1f} {p.algorithm.value:<9}" for p in points))
    print("\npublished vs model")
    ok = True
    for c in nccl_tests.published():
        r = c.row
        bound = (0.9, 1.1) if c.kind == "busbw" else (0.5, 2.0)
        good = bound[0] <= c.ratio <= bound[1]
        ok &= good
        unit, scale = ("GB/s", 1e9) if c.kind == "busbw" else ("us", 1e-6)
        print(f"  {'ok  ' if good else 'MISS'} {r['system']:<58} {r.get('algorithm', 'nccl'):<9} "
              f"{_size(r['size_bytes']):>5}: published {c.published / scale:7.1f} {unit}, model "
              f"{c.simulated / scale:7.1f} ({c.ratio:.2f}x; bound {bound[0]}-{bound[1]})")
    print(f"\nCPU {time.process_time() - start:.1f} s")
    return 0 if ok else 1


def _size(n: int) -> str:
    for unit, scale in (("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10)):
        if n >= scale:
            return f"{n // scale}{unit}"
    return f"{n}B"


if __name__ == "__main__":
    sys.exit(main())
