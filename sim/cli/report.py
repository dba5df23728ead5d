"""``trainsim report`` and the ``--trace`` / ``--plot`` outputs of ``trainsim run``.

Files written are announced on stderr, so ``trainsim run --json`` keeps stdout to the JSON object.
"""

from __future__ import annotations

import argparse
import sys
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from sim.analysis.evaluate import Evaluation


def add_run_options(run: argparse.ArgumentParser) -> None:
    """The visual outputs of ``trainsim run``."""
    run.add_argument("--trace", metavar="OUT.json",
                     help="write the simulated step as Chrome trace JSON (open in ui.perfetto.dev or chrome://tracing)")
    run.add_argument("--plot", metavar="DIR", help="write the step-level plots (PNG) into DIR")


def write_run_outputs(args: argparse.Namespace, ev: Evaluation) -> None:
    """Write what ``--trace`` and ``--plot`` ask for (nothing when neither is given)."""
    if args.trace:
        if ev.step is None:
            print("trainsim: note: the layout does not fit in memory; no step to trace", file=sys.stderr)
        else:
            from sim.report.trace import step_trace, write_trace

            path = write_trace(step_trace(ev.step), args.trace)
            print(f"trainsim: wrote {path} ({len(ev.step.timeline.intervals)} intervals)", file=sys.stderr)
    if args.plot:
        from sim.report.plots import save_plots, step_plots

        for path in save_plots(step_plots(ev), args.plot):
            print(f"trainsim: wrote {path}", file=sys.stderr)


def _cmd_report(args: argparse.Namespace) -> int:
    from sim.analysis.evaluate import evaluate
    from sim.report.html import write_report
    from sim.specs.scenario import load_scenario

    path = write_report(evaluate(load_scenario(args.scenario)), args.output)
    print(f"wrote {path}")
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    """Add ``trainsim report``."""
    rep = sub.add_parser("report", help="write a self-contained HTML report (summary, plots, assumptions)")
    rep.add_argument("scenario", help="scenario YAML file")
    rep.add_argument("-o", "--output", default="report.html", help="HTML file to write (default: report.html)")
    rep.set_defaults(func=_cmd_report)
