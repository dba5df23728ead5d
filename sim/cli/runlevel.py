"""``trainsim checkpoint-interval``: sweep the checkpoint interval of a scenario with the run simulation."""

from __future__ import annotations

import argparse

from sim.cli._common import int_at_least


def register(sub) -> None:
    cmd = sub.add_parser("checkpoint-interval",
                         help="simulate the run over checkpoint intervals and report the best one")
    cmd.add_argument("scenario", help="scenario YAML file (needs training.tokens and a failures block)")
    cmd.add_argument("--points", type=int_at_least(3), default=9, help="intervals tried (default 9)")
    cmd.add_argument("--span", type=float, default=4.0,
                     help="try Daly's interval divided and multiplied by this factor (default 4)")
    cmd.add_argument("--replicas", type=int_at_least(1), help="replicas per interval (default: simulation.monte_carlo)")
    cmd.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    cmd.set_defaults(func=_cmd_checkpoint_interval)


def _cmd_checkpoint_interval(args: argparse.Namespace) -> int:
    import numpy as np

    from sim.analysis.evaluate import evaluate
    from sim.analysis.runlevel import run_plan, search_interval
    from sim.cli._common import load_checked, progress_bar
    from sim.costs.reliability import daly_interval
    from sim.errors import TrainsimError
    from sim.specs import budget
    from sim.units import DAY

    if not 1 < args.span < 1e6:
        raise TrainsimError(f"--span {args.span}: must be > 1 and < 1e6")
    budget.check("--points", args.points, budget.LIMITS.interval_points)
    s = load_checked(args.scenario)
    if not s.training.tokens or s.failures is None:
        raise TrainsimError(f"{args.scenario}: the interval search needs training.tokens and a failures block")
    ev = evaluate(s)
    if ev.step is None:
        raise TrainsimError(f"{args.scenario}: the layout does not fit in memory (see trainsim run)")
    plan = run_plan(s, ev.step.step_time_s)
    p = plan.params
    if p.stall_s <= 0:
        raise TrainsimError("a checkpoint with no stall has no optimum interval: checkpoint as often as possible")
    daly = daly_interval(p.stall_s, plan.mtbi_s)
    taus = daly * np.geomspace(1 / args.span, args.span, args.points)
    replicas = args.replicas or s.simulation.monte_carlo
    res = search_interval(p, p.stall_s, plan.mtbi_s, taus.tolist(), replicas, s.simulation.seed,
                          progress=None if args.quiet else progress_bar("interval"))
    print(f"{s.name}: stall {p.stall_s:.1f} s, one interruption every {plan.mtbi_s / 3600:.2f} h, "
          f"{replicas} replicas per interval (same seeds)")
    print(f"{'interval min':>13} {'goodput':>9} {'days':>8}")
    best = int(np.argmax(res.goodput))
    for i, (tau, good) in enumerate(zip(res.intervals_s, res.goodput, strict=True)):
        mark = "  <- best simulated" if i == best else ""
        print(f"{tau / 60:13.1f} {good:9.2%} {p.work_s / good / DAY:8.1f}{mark}")
    print(f"optimum (parabola through the best points): {res.best_s / 60:.1f} min; "
          f"Daly's formula: {res.daly_s / 60:.1f} min")
    return 0
