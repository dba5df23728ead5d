"""Exceptions the CLI turns into readable messages and exit status 2."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Issue:
    """One problem found in an input: where, what was given, which rule, how to fix it."""

    path: str
    message: str

    def __str__(self) -> str:
        return f"{self.path}: {self.message}" if self.path else self.message


class TrainsimError(Exception):
    """Base class for every error trainsim reports to a user (never a traceback)."""


class ScenarioError(TrainsimError):
    """A scenario, topology or catalog file is invalid; carries *all* issues found at once."""

    def __init__(self, issues: list[Issue], source: str = "") -> None:
        self.issues = list(issues)
        self.source = source
        head = f"{source}: " if source else ""
        super().__init__(head + f"{len(self.issues)} problem(s):\n" + "\n".join(f"  {i}" for i in self.issues))


class InfeasibleLayout(TrainsimError):
    """A layout that is valid on paper but cannot be simulated (e.g. no micro-batch fits)."""
