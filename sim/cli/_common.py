"""What the commands share: the progress bar on stderr, integer argument types, the run-level options and
the evaluation of a scenario with its run level."""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable
from pathlib import Path

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
    ev = evaluate(load_checked(args.scenario), record=record)
    if ev.step is None or not ev.scenario.training.tokens:
        return ev, None
    from sim.analysis.runlevel import simulate_run_level  # its SimPy engine only when the run is simulated

    progress = progress_bar("run level") if sys.stderr.isatty() and not args.quiet else None
    return ev, simulate_run_level(ev.scenario, ev.step.step_time_s, replicas=args.replicas, seed=args.seed,
                                  progress=progress, record=record)


def load_checked(path: str):
    """Load a scenario and check its step-level work budget (sim/specs/budget.py) before anything is built."""
    from sim.specs import budget
    from sim.specs.scenario import load_scenario

    s = load_scenario(path)
    budget.check_scenario(s)
    return s


def _nearest_existing(path: Path) -> Path:
    """``path`` or its closest ancestor that exists (the writers create the folders in between)."""
    for candidate in (path, *path.parents):
        try:
            if candidate.exists():
                return candidate
        except OSError:
            continue
    return Path.cwd()


def _writable_folder(folder: Path, option: str, target: Path) -> None:
    import tempfile  # with shutil, bz2, lzma and random: only when an output folder is named

    from sim.errors import TrainsimError

    if not folder.is_dir():
        raise TrainsimError(f"{option} {target}: {folder} is not a folder")
    try:
        with tempfile.TemporaryFile(dir=folder):
            pass
    except OSError as err:
        raise TrainsimError(f"{option} {target}: cannot write in {folder} ({err.strerror or err})") from None


def is_file(path: str | Path) -> bool:
    """``Path.is_file`` that is False for names the system refuses (too long, a NUL byte) instead of raising."""
    try:
        return Path(path).is_file()
    except (OSError, ValueError):
        return False


def _same_file(a: Path, b: Path) -> bool:
    try:
        return a.exists() and b.exists() and a.samefile(b)
    except (OSError, ValueError):
        return False


def check_output_file(path: str | Path, option: str, inputs: tuple[str | Path, ...] = ()) -> None:
    """Exit 2 before any work if ``path`` cannot be written as a file (a folder, /proc, no permission) or is
    one of the command's ``inputs`` (``run s.yaml --trace s.yaml`` would overwrite the scenario)."""
    from sim.errors import TrainsimError

    target = Path(path)
    if str(path).strip() == "" or target.name in ("", ".", ".."):
        raise TrainsimError(f"{option} {str(path)!r}: not a file name")
    for source in inputs:
        if _same_file(target, Path(source)):
            raise TrainsimError(f"{option} {target}: is the input file {source}; name another file")
    found = _nearest_existing(target)
    if found == target:
        if target.is_dir():
            raise TrainsimError(f"{option} {target}: is a folder; name a file")
        if not target.is_file():
            raise TrainsimError(f"{option} {target}: not a regular file")
        try:
            with target.open("ab"):
                pass
        except OSError as err:
            raise TrainsimError(f"{option} {target}: cannot write ({err.strerror or err})") from None
        return
    _writable_folder(found, option, target)


def check_output_dir(path: str | Path, option: str) -> None:
    """Exit 2 before any work if ``path`` cannot be used as the folder files are written into."""
    from sim.errors import TrainsimError

    target = Path(path)
    if str(path).strip() == "":
        raise TrainsimError(f"{option} '': not a folder name")
    found = _nearest_existing(target)
    if found == target and not target.is_dir():
        raise TrainsimError(f"{option} {target}: is a file; name a folder")
    _writable_folder(found, option, target)
