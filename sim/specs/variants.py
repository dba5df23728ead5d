"""Scenario variants by dotted field path (``checkpoint.interval_minutes``), built with
``dataclasses.replace`` on the validated specs, so every variant passes the same validation as a
loaded scenario (and an invalid one is rejected with its field path and rule)."""

from __future__ import annotations

import dataclasses
import difflib
import types
import typing
from typing import Any

from sim.errors import Issue, ScenarioError
from sim.specs._schema import build, convert, yaml_key
from sim.specs.scenario import Scenario


def _fields(cls: type) -> dict[str, dataclasses.Field]:
    return {yaml_key(f): f for f in dataclasses.fields(cls) if f.init}


def _spec_type(tp: Any) -> type | None:
    """The spec dataclass inside an annotation (``CheckpointSpec | None`` -> CheckpointSpec)."""
    if isinstance(tp, type) and dataclasses.is_dataclass(tp):
        return tp
    if typing.get_origin(tp) in (typing.Union, types.UnionType):
        inner = [a for a in typing.get_args(tp) if isinstance(a, type) and dataclasses.is_dataclass(a)]
        return inner[0] if len(inner) == 1 else None
    return None


def check_path(path: str) -> list[Issue]:
    """Problems with a dotted field path of a Scenario (unknown field, not a leaf); [] if fine."""
    cls: type | None = Scenario
    parts = path.split(".")
    for depth, part in enumerate(parts):
        assert cls is not None
        fields = _fields(cls)
        where = ".".join(parts[:depth])
        if part not in fields:
            close = difflib.get_close_matches(part, list(fields), n=1)
            hint = f"did you mean '{close[0]}'?" if close else f"known: {', '.join(sorted(fields))}"
            return [Issue(path, f"unknown field {part!r}{' under ' + where if where else ''}; {hint}")]
        cls = _spec_type(typing.get_type_hints(cls)[fields[part].name])
        if depth < len(parts) - 1 and cls is None:
            return [Issue(path, f"{'.'.join(parts[:depth + 1])} has no sub-fields")]
    if cls is not None:
        return [Issue(path, f"is a section; name one of its fields ({', '.join(sorted(_fields(cls)))})")]
    return []


class _Leaf:
    __slots__ = ("value",)

    def __init__(self, value: Any) -> None:
        self.value = value


def apply_assignments(base: Scenario, assignments: dict[str, Any]) -> Scenario:
    """``base`` with each dotted path set to its value (converted as the loader would)."""
    tree: dict[str, Any] = {}
    for path, value in assignments.items():
        node = tree
        *parents, leaf = path.split(".")
        for part in parents:
            node = node.setdefault(part, {})
        node[leaf] = _Leaf(value)
    return _replace(base, tree, "")


def _replace(spec: Any, tree: dict[str, Any], prefix: str) -> Any:
    cls = type(spec)
    fields, hints = _fields(cls), typing.get_type_hints(cls)
    changes: dict[str, Any] = {}
    issues: list[Issue] = []
    for key, sub in tree.items():
        f = fields[key]
        path = f"{prefix}.{key}" if prefix else key
        if isinstance(sub, _Leaf):
            before = len(issues)
            value = convert(hints[f.name], sub.value, path, issues)
            if len(issues) == before:
                changes[f.name] = value
            continue
        current = getattr(spec, f.name)
        if current is None:  # an absent optional section: start from its defaults
            section = _spec_type(hints[f.name])
            assert section is not None  # _check_path only descends into spec sections
            current = build(section, {}, path)
        try:
            changes[f.name] = _replace(current, sub, path)
        except ScenarioError as err:
            issues += err.issues
    if issues:
        raise ScenarioError(issues)
    try:
        return dataclasses.replace(spec, **changes)
    except ScenarioError as err:
        raise ScenarioError([dataclasses.replace(i, path=f"{prefix}.{i.path}" if prefix else i.path)
                             for i in err.issues]) from None
