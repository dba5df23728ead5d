"""Benchmark: the figures issue 12's acceptance asks for, printed (not a timed unit test).

* one 405B / 16k step with the run level off (no ``training.tokens``): CPU seconds of the whole
  ``trainsim run --json`` process, and of the step in-process (first call, and again with warm caches);
* the whole process at 1,024, 16,384 and 131,072 GPUs (DP 8, 128, 1,024; 16 micro-batches per pipeline; full
  activation recompute, without which DP 8 does not fit and its step would not be simulated) and the largest
  over the smallest;
* full fidelity (every rank and flow) at 1,024 GPUs: CPU seconds per step;
* ``trainsim search`` on the bundled 405B scenario (512 layouts by default): wall and CPU seconds (this
  process's children, all workers), layouts simulated;
* ``trainsim size`` for 405B over H100, B200 and GB200: wall and CPU seconds.

Run: python benchmarks/acceptance.py [step] [scale] [full] [search] [size]   (default: all; search and size
take minutes). Child processes read cached bytecode as an installed copy does (``CHILD_ENV``).
"""

from __future__ import annotations

import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
SCENARIO = ROOT / "scenarios" / "llama3-405b-16k-h100-tp8-pp16-dp128.yaml"


def children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


#: Child processes run as an installed trainsim does, reading its modules' cached bytecode (__pycache__):
#: with PYTHONDONTWRITEBYTECODE set (as on the development machine) and no cache written yet, every process
#: compiles the package from source (~0.25 s of CPU that no installed copy spends).
CHILD_ENV = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}


def run_process(args: list[str]) -> tuple[float, float, str]:
    """CPU seconds (user + system, the process and its children), wall seconds, stdout."""
    before, start = children_cpu(), time.perf_counter()
    out = subprocess.run([sys.executable, "-m", "sim.cli", *args], check=True, capture_output=True, text=True,
                         cwd=ROOT, env=CHILD_ENV).stdout
    return children_cpu() - before, time.perf_counter() - start, out


def step_only(data: int, folder: Path, recompute: str | None = None) -> Path:
    """The bundled 405B scenario without the run level (no training.tokens), at DP ``data`` (and activation
    recompute ``recompute`` when given)."""
    s = yaml.safe_load(SCENARIO.read_text())
    s["training"].pop("tokens", None)
    if recompute:
        s["parallelism"]["activation_recompute"] = recompute
    s["parallelism"]["data"] = data
    s["cluster"]["num_gpus"] = data * s["parallelism"]["tensor"] * s["parallelism"]["pipeline"]
    s["training"]["global_batch_size"] = 16 * data  # 16 micro-batches per pipeline at every size
    if data != 128:
        s["cluster"]["topology"] = "dgx-h100-superpod"  # meta-llama3-24k holds 24k GPUs; 131k needs a root
    path = folder / f"405b-dp{data}{f'-{recompute}' if recompute else ''}.yaml"
    path.write_text(yaml.safe_dump(s))
    return path


def whole_process(path: Path, repeat: int = 5) -> tuple[list[float], str]:
    """CPU seconds of ``trainsim run --json`` in each of ``repeat`` processes (after one that is not counted,
    which writes the bytecode cache where it is missing), and the last one's stdout."""
    run_process(["run", str(path), "--json"])
    runs = [run_process(["run", str(path), "--json"]) for _ in range(repeat)]
    return [cpu for cpu, _, _ in runs], runs[-1][2]


def spread(cpus: list[float]) -> str:
    """Median and range of CPU seconds (the machine is shared: single runs swing)."""
    return f"{statistics.median(cpus):.3f} s CPU (range {min(cpus):.2f}-{max(cpus):.2f} over {len(cpus)} processes)"


def bench_step(folder: Path) -> None:
    from sim.engine.simulate import simulate_step
    from sim.specs.scenario import load_scenario

    path = step_only(128, folder)
    print(f"405B / 16,384 GPUs, run level off: whole process {spread(whole_process(path)[0])} (target <= 0.2)")
    s = load_scenario(path)
    start = time.process_time()
    simulate_step(s)
    cold = time.process_time() - start
    warm = []
    for _ in range(5):
        start = time.process_time()
        simulate_step(s)
        warm.append(time.process_time() - start)
    print(f"  in-process step: first {cold * 1e3:.0f} ms CPU (placement paths built), then "
          f"{statistics.median(warm) * 1e3:.0f} ms (target <= 15 ms)")


def bench_scale(folder: Path) -> None:
    """With full recompute: at DP 8 the bundled layout's activations do not fit, and a layout that does not fit
    is not simulated (its whole process would leave the step out of the comparison)."""
    times = {}
    for data in (8, 128, 1024):
        path = step_only(data, folder, "full")
        cpus, out = whole_process(path)
        times[data] = statistics.median(cpus)
        step = json.loads(out).get("step") or {}
        gpus = data * 128
        print(f"  whole process at {gpus:>7,} GPUs (full recompute): {spread(cpus)}; step simulated: "
              f"{step.get('step_time_s', 'no')} s")
    print(f"whole process, largest / smallest median: {max(times.values()) / min(times.values()):.2f}x "
          f"(target <= 1.3x)")


def bench_full() -> None:
    from sim.engine.simulate import simulate_step
    from sim.specs.scenario import scenario_from_mapping

    s = scenario_from_mapping({
        "model": {"preset": "llama3-70b"},
        "cluster": {"gpu": "H100-SXM-80GB", "num_gpus": 1024, "topology": "dgx-h100-superpod"},
        "parallelism": {"tensor": 8, "pipeline": 4, "data": 32, "activation_recompute": "full"},
        "training": {"global_batch_size": 32 * 32},
        "simulation": {"fidelity": "full"}})
    start = time.process_time()
    result = simulate_step(s)
    print(f"full fidelity, 70B TP8 PP4 DP32 on 1,024 GPUs: {time.process_time() - start:.1f} s CPU per step "
          f"(target <= 1 s); step {result.step_time_s:.3f} s")


def bench_search() -> None:
    cpu, wall, out = run_process(["search", str(SCENARIO), "-q", "--workers", "2"])
    simulated = next(line for line in out.splitlines() if line.startswith("simulated"))
    rho = next((line for line in out.splitlines() if "Spearman" in line), "")
    print(f"trainsim search {SCENARIO.name}: {wall:.0f} s wall, {cpu:.0f} s CPU on 2 workers (target <= 25 s CPU)")
    print(f"  {simulated.strip()}\n  {rho.strip()}")


def bench_size() -> None:
    cpu, wall, _ = run_process(["size", str(SCENARIO), "--tokens", "15.6e12", "--deadline-days", "60", "--gpu",
                                "H100-SXM-80GB", "--gpu", "B200", "--gpu", "GB200", "-q", "--workers", "2"])
    print(f"trainsim size 405B over H100, B200, GB200: {wall:.0f} s wall, {cpu:.0f} s CPU (target <= 120 s)")


def main(argv: list[str]) -> int:
    parts = argv or ["step", "scale", "full", "search", "size"]
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        for part in parts:
            if part == "step":
                bench_step(folder)
            elif part == "scale":
                bench_scale(folder)
            elif part == "full":
                bench_full()
            elif part == "search":
                bench_search()
            elif part == "size":
                bench_size()
            else:
                raise SystemExit(f"unknown part {part!r}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
