"""Check that an engine change leaves the step simulation's figures unchanged: ~30 varied layouts (ZeRO 0-3,
HSDP, MoE, interleaved / 1F1B / GPipe, gradient buckets, blocking DeepSpeed 0.3, the 405B search's favourite
layouts) simulated, and their step time, breakdown and per-stage compute written to or compared with a file.

Run on the code before a change:  python scripts/engine_equivalence.py --save before.json
and after it:                     python scripts/engine_equivalence.py --check before.json
(``--check`` exits 1 if any figure differs by more than 1e-9 relative, printing the largest difference.)
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from sim.analysis.explore.prescreen import prescreen
from sim.analysis.explore.search import screen_order
from sim.analysis.explore.space import SearchSpace, enumerate_space
from sim.engine.simulate import simulate_step
from sim.errors import ScenarioError
from sim.specs._schema import replace
from sim.specs.enums import Framework, GradSync, Recompute, Schedule
from sim.specs.scenario import Scenario, load_scenario

ROOT = Path(__file__).resolve().parents[1]
SCENARIOS = ROOT / "scenarios"
TOLERANCE = 1e-9


def _vary(base: Scenario, gbs: int | None = None, **par) -> Scenario:
    training = base.training if gbs is None else replace(base.training, global_batch_size=gbs)
    return replace(base, parallelism=replace(base.parallelism, **par), training=training)


def layouts(search: int) -> dict[str, Scenario]:
    """Named scenarios: variations of the bundled ones and the first ``search`` layouts of the 405B search."""
    l70 = load_scenario(SCENARIOS / "llama3-70b-1k-h100.yaml")
    l405 = load_scenario(SCENARIOS / "llama3-405b-16k-h100-tp8-pp16-dp128.yaml")
    moe = load_scenario(SCENARIOS / "gpt4-class-moe-25k-a100.yaml")
    dsv3 = load_scenario(SCENARIOS / "deepseek-v3-2048-h800.yaml")
    plain = dict(virtual_pipeline=1, schedule=Schedule.ONE_F_ONE_B)
    variants = {
        "70b": lambda: l70,
        "70b-zero0": lambda: _vary(l70, zero_stage=0),
        "70b-zero0-no-overlap": lambda: _vary(l70, zero_stage=0, overlap_grad_reduce=False),
        "70b-zero1-bucket1": lambda: _vary(l70, grad_bucket_mparams=1.0),
        "70b-zero1-gather-after": lambda: _vary(l70, overlap_param_gather=False),
        "70b-zero2": lambda: _vary(l70, zero_stage=2),
        "70b-zero2-every-mb": lambda: _vary(l70, zero_stage=2, grad_sync=GradSync("every-microbatch")),
        "70b-zero2-hsdp": lambda: _vary(l70, zero_stage=2, shard_group_size=8),
        "70b-zero3": lambda: _vary(l70, zero_stage=3),
        "70b-zero3-held": lambda: _vary(l70, zero_stage=3, reshard_after_forward=False),
        "70b-zero3-hsdp": lambda: _vary(l70, zero_stage=3, shard_group_size=16),
        "70b-zero3-prefetch-last": lambda: _vary(l70, zero_stage=3, grad_sync=GradSync("last-microbatch")),
        "70b-1f1b-m64": lambda: _vary(l70, gbs=2048, **plain),
        "70b-gpipe": lambda: _vary(l70, virtual_pipeline=1, schedule=Schedule.GPIPE),
        "70b-gpipe-zero3": lambda: _vary(l70, virtual_pipeline=1, schedule=Schedule.GPIPE, zero_stage=3),
        "70b-interleaved-m64-zero2": lambda: _vary(l70, gbs=2048, zero_stage=2),
        "70b-deepspeed-0.3-zero3": lambda: _vary(l70, framework=Framework.DEEPSPEED, framework_version="0.3",
                                                 zero_stage=3, activation_recompute=Recompute.FULL, **plain),
        "70b-deepspeed-zero2": lambda: _vary(l70, framework=Framework.DEEPSPEED, zero_stage=2,
                                             activation_recompute=Recompute.FULL, **plain),
        "70b-torchtitan-zero3": lambda: _vary(l70, framework=Framework("torchtitan"), zero_stage=3,
                                              activation_recompute=Recompute.FULL, **plain),
        "405b": lambda: l405,
        "405b-zero1": lambda: _vary(l405, zero_stage=1, reshard_after_forward=None),
        "405b-zero2-every-mb": lambda: _vary(l405, zero_stage=2, reshard_after_forward=None,
                                             grad_sync=GradSync("every-microbatch")),
        "gpt4-moe": lambda: moe,
        "gpt4-moe-zero3": lambda: _vary(moe, zero_stage=3),
        "gpt4-moe-zero0-bucket1": lambda: _vary(moe, zero_stage=0, grad_bucket_mparams=1.0),
        "dsv3": lambda: dsv3,
        "dsv3-zero2": lambda: _vary(dsv3, zero_stage=2),
    }
    out: dict[str, Scenario] = {}
    for name, build in variants.items():
        try:
            out[name] = build()
        except ScenarioError as e:
            print(f"  skipped {name}: {e}", file=sys.stderr)
    if search:
        enum = enumerate_space(l405, SearchSpace())
        for rank, i in enumerate(screen_order(prescreen(enum))[:search]):
            layout = enum.valid.layout(int(i))
            out[f"405b-search{rank}-{layout.label()}"] = layout.apply(l405)
    return out


def figures(s: Scenario) -> dict:
    r = simulate_step(s)
    return {"step_time_s": r.step_time_s, "breakdown_s": r.breakdown_s, "stage_compute_s": r.stage_compute_s}


def _flat(d: dict) -> dict[str, float]:
    out = {"step_time_s": d["step_time_s"]}
    out.update({f"breakdown_s.{k}": v for k, v in d["breakdown_s"].items()})
    out.update({f"stage_compute_s[{i}]": v for i, v in enumerate(d["stage_compute_s"])})
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    mode = parser.add_mutually_exclusive_group(required=True)
    mode.add_argument("--save", type=Path)
    mode.add_argument("--check", type=Path)
    parser.add_argument("--search", type=int, default=12, help="405B search layouts to include")
    args = parser.parse_args()
    scenarios = layouts(args.search)
    results, cpu = {}, 0.0
    for name, s in scenarios.items():
        start = time.process_time()
        results[name] = figures(s)
        dt = time.process_time() - start
        cpu += dt
        print(f"  {name:<60} {results[name]['step_time_s']:.6f} s  ({dt * 1e3:.0f} ms CPU)")
    print(f"{len(results)} layouts, {cpu:.2f} s CPU")
    if args.save:
        args.save.write_text(json.dumps(results, indent=1))
        return 0
    before = json.loads(args.check.read_text())
    worst, where, bad = 0.0, "", 0
    for name, now in results.items():
        if name not in before:
            print(f"  {name}: not in {args.check}")
            bad += 1
            continue
        a, b = _flat(before[name]), _flat(now)
        if a.keys() != b.keys():
            print(f"  {name}: different figures")
            bad += 1
            continue
        for k, x in a.items():
            rel = abs(b[k] - x) / max(abs(x), 1e-300) if b[k] != x else 0.0
            if rel > worst:
                worst, where = rel, f"{name} {k}: {x!r} -> {b[k]!r}"
            if rel > TOLERANCE:
                bad += 1
    print(f"largest relative difference {worst:.3g}{' (' + where + ')' if where else ''}; "
          f"{bad} figures beyond {TOLERANCE:g}")
    return 1 if bad else 0


if __name__ == "__main__":
    raise SystemExit(main())
