"""Benchmark: layout search speed (issue: the whole search on the bundled Llama 3 405B / 16,384 H100
scenario in < 60 s on a 2-core machine; configurations simulated per second per core on a mid-size model;
the analytic pre-screen at >= 10,000 configurations per second).

Run: python benchmarks/search_speed.py   (prints figures; not a timed unit test)
"""

from __future__ import annotations

import time
from pathlib import Path

from sim.analysis.evaluate import evaluate
from sim.analysis.explore.pool import default_workers
from sim.analysis.explore.prescreen import prescreen
from sim.analysis.explore.search import screen_order, search
from sim.analysis.explore.space import SearchSpace, enumerate_space
from sim.specs.scenario import load_scenario

ROOT = Path(__file__).resolve().parents[1]
BIG = ROOT / "scenarios" / "llama3-405b-16k-h100-tp8-pp16-dp128.yaml"
MID = ROOT / "scenarios" / "llama3-70b-1k-h100.yaml"


def whole_search() -> None:
    base = load_scenario(BIG)
    start = time.perf_counter()
    result = search(base)
    wall = time.perf_counter() - start
    enum = result.enumeration
    print(f"search {BIG.name} ({default_workers()} cores): {wall:.1f} s wall "
          f"({', '.join(f'{k} {v:.1f} s' for k, v in result.timings_s.items())})")
    print(f"  enumerated {enum.total:,}; rejected by the rules {enum.num_rejected:,}; rejected for memory "
          f"{result.screened_out_of_memory:,} (pre-screen) + {result.out_of_memory} (exact); simulated "
          f"{result.simulated}; best {result.ranked()[0][0].label()} "
          f"{result.ranked()[0][1]['step_time_s']:.3f} s/step")
    for r in sorted(enum.rejected.values(), key=lambda r: -r.count):
        print(f"    {r.count:>9,}  {r.example}")


def prescreen_rate(path: Path) -> None:
    base = load_scenario(path)
    enum = enumerate_space(base, SearchSpace())
    prescreen(enum)  # warm the per-key caches of the cost model once, as a search does
    start = time.perf_counter()
    prescreen(enum)
    dt = time.perf_counter() - start
    print(f"pre-screen {path.name}: {len(enum.valid):,} valid layouts in {dt:.2f} s = "
          f"{len(enum.valid) / dt:,.0f} configurations/s (one core)")


def simulate_rate(path: Path, n: int = 24) -> None:
    """Per core: the ``n`` layouts a search would simulate first, evaluated one after another."""
    base = load_scenario(path)
    enum = enumerate_space(base, SearchSpace())
    order = screen_order(prescreen(enum))[:n]
    scenarios = [enum.valid.layout(int(i)).apply(base) for i in order]
    start = time.process_time()
    for s in scenarios:
        evaluate(s)
    dt = time.process_time() - start
    print(f"simulate {path.name}: {n} layouts in {dt:.1f} CPU s = {n / dt:.2f} configurations/s per core "
          f"(memory check + step simulation)")


def main() -> int:
    prescreen_rate(BIG)
    prescreen_rate(MID)
    simulate_rate(MID)
    simulate_rate(BIG, n=8)
    whole_search()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
