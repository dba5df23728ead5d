"""``trainsim report`` and the ``--trace`` / ``--plot`` outputs of ``trainsim run``.

Files written are announced on stderr, so ``trainsim run --json`` keeps stdout to the JSON object.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from sim.analysis.evaluate import Evaluation
    from sim.analysis.runlevel import RunSummary


def add_run_options(run: argparse.ArgumentParser) -> None:
    """The visual outputs of ``trainsim run``."""
    run.add_argument("--trace", metavar="OUT.json",
                     help="write the simulated step as Chrome trace JSON (open in ui.perfetto.dev or "
                          "chrome://tracing), and the training run's timeline of replica 0 beside it as OUT.run.json")
    run.add_argument("--plot", metavar="DIR", help="write the step-level and run-level plots (PNG) into DIR")


def wants_run_events(args: argparse.Namespace) -> bool:
    """Whether the run level must keep replica 0's event timeline (for ``--trace`` / ``--plot``)."""
    return bool(args.trace or args.plot)


def run_trace_path(step_path: str | Path) -> Path:
    """Where ``--trace OUT.json`` puts the run trace: ``OUT.run.json`` (a second file, not a second process:
    the run spans months and the step seconds, so one time axis would hide one of them)."""
    return Path(step_path).with_suffix(".run.json")


def check_run_outputs(args: argparse.Namespace) -> None:
    """Exit 2 before any simulation if ``--trace`` or ``--plot`` cannot be written."""
    from sim.cli._common import check_output_dir, check_output_file

    if args.trace:
        check_output_file(args.trace, "--trace", (args.scenario,))
        check_output_file(run_trace_path(args.trace), "--trace (its run trace)", (args.scenario,))
    if args.plot:
        check_output_dir(args.plot, "--plot")


def _wrote(path: Path, what: str = "") -> None:
    print(f"trainsim: wrote {path}{f' ({what})' if what else ''}", file=sys.stderr)


def write_run_outputs(args: argparse.Namespace, ev: Evaluation, run: RunSummary | None = None) -> None:
    """Write what ``--trace`` and ``--plot`` ask for (nothing when neither is given). ``run`` is the run
    level, simulated with ``record=True`` (None without ``training.tokens`` or when the layout does not fit)."""
    if not wants_run_events(args):
        return
    if ev.step is None:
        print("trainsim: note: the layout does not fit in memory; no step or run level to trace or plot "
              "(the memory plot only)", file=sys.stderr)
    elif run is None:
        print("trainsim: note: no training.tokens in the scenario; no run level to trace or plot", file=sys.stderr)
    if args.trace and ev.step is not None:
        from sim.report.trace import summary_trace, write_step_trace, write_trace

        _wrote(write_step_trace(ev.step, args.trace), f"{ev.step.timeline.count()} intervals")
        if run is not None:
            path = write_trace(summary_trace(run, ev.scenario.name), run_trace_path(args.trace))
            _wrote(path, f"{len(run.replicas[0].events)} run events of replica 0")
    if args.plot:
        from sim.report.plots import run_plots, save_plots, step_plots

        figures = step_plots(ev) | (run_plots(run, ev.scenario.name) if run is not None else {})
        for path in save_plots(figures, args.plot):
            _wrote(path)


def _cmd_report(args: argparse.Namespace) -> int:
    from sim.cli._common import check_output_file, evaluate_with_run
    from sim.report.html import run_level, write_report

    check_output_file(args.output, "-o", (args.scenario,))
    ev, summary = evaluate_with_run(args, record=True)
    run = run_level(summary) if summary is not None else None
    path = write_report(ev, args.output, run=run)
    print(f"wrote {path}")
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    """Add ``trainsim report``."""
    from sim.cli._common import add_run_level_options

    rep = sub.add_parser("report", help="write a self-contained HTML report (summary, plots, assumptions)")
    rep.add_argument("scenario", help="scenario YAML file")
    rep.add_argument("-o", "--output", default="report.html", help="HTML file to write (default: report.html)")
    add_run_level_options(rep)
    rep.set_defaults(func=_cmd_report)
