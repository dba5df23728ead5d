"""What the commands share: the progress bar on stderr, integer argument types, the run-level options and
the evaluation of a scenario with its run level."""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable

Progress = Callable[[int, int], None]


def progress_bar(label: str) -> Progress:
    """A progress bar on stderr: ``callback(done, total)``; redrawn at most every 1 % of the work, with the
    time so far and the time left at the rate so far."""
    start = time.monotonic()

    def show(done: int, total: int) -> None:
        if done == total or done % max(1, total // 100) == 0:
            width = 30
            filled = width * done // total
            end = "\n" if done == total else ""
            elapsed = time.monotonic() - start
            eta = f", ETA {_clock(elapsed / done * (total - done))}" if 0 < done < total else ""
            print(f"\r{label} [{'#' * filled}{'.' * (width - filled)}] {done}/{total} {_clock(elapsed)}{eta}  ",
                  end=end, file=sys.stderr, flush=True)

    return show


def _clock(seconds: float) -> str:
    minutes, secs = divmod(round(seconds), 60)
    return f"{minutes}:{secs:02d}"


def int_at_least(minimum: int) -> Callable[[str], int]:
    """An argparse type: an integer >= ``minimum``, or a one-line error naming the value."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r}: expected an integer >= {minimum}") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"{text!r}: expected an integer >= {minimum}")
        return value

    return parse


def add_run_level_options(parser: argparse.ArgumentParser) -> None:
    """``--replicas``, ``--seed`` and ``-q`` of the commands that simulate the run level."""
    parser.add_argument("--replicas", type=int_at_least(1),
                        help="Monte Carlo replicas (default: simulation.monte_carlo)")
    parser.add_argument("--seed", type=int_at_least(0), help="root seed (default: simulation.seed)")
    parser.add_argument("-q", "--quiet", action="store_true", help="no progress bar (shown only on a terminal)")


def evaluate_with_run(args: argparse.Namespace, record: bool = False):
    """Load ``args.scenario``, simulate its step, and its run level when it fits and has ``training.tokens``:
    ``(Evaluation, RunSummary | None)``. ``record`` keeps the step's timeline and replica 0's run events."""
    from sim.analysis.evaluate import evaluate
    from sim.analysis.runlevel import simulate_run_level
    from sim.specs.scenario import load_scenario

    ev = evaluate(load_scenario(args.scenario), record=record)
    if ev.step is None or not ev.scenario.training.tokens:
        return ev, None
    progress = progress_bar("run level") if sys.stderr.isatty() and not args.quiet else None
    return ev, simulate_run_level(ev.scenario, ev.step.step_time_s, replicas=args.replicas, seed=args.seed,
                                  progress=progress, record=record)
