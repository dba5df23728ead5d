"""What every command shares: the progress bar on stderr and integer argument types."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable

Progress = Callable[[int, int], None]


def progress_bar(label: str) -> Progress:
    """A progress bar on stderr: ``callback(done, total)``; redrawn at most every 1 % of the work."""

    def show(done: int, total: int) -> None:
        if done == total or done % max(1, total // 100) == 0:
            width = 30
            filled = width * done // total
            end = "\n" if done == total else ""
            print(f"\r{label} [{'#' * filled}{'.' * (width - filled)}] {done}/{total}", end=end,
                  file=sys.stderr, flush=True)

    return show


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
