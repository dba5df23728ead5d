"""JSON Schema (draft 2020-12) of the scenario and topology files, generated from the spec dataclasses.

Editors (the YAML language server, VS Code, JetBrains) validate a file against it as it is typed. The
schema says what the loader's field-by-field checks say (types, ranges, enum values, unknown keys); the
cross-field rules (``tensor`` divides the heads, degrees multiply to ``num_gpus``...) stay with the loader.
It accepts everything the loader accepts: numbers written as strings (``15.6e12``, which YAML 1.1 reads as
a string), a model given by ``preset`` alone, a topology given by name or path, a failure trace by a CSV path.
"""

from __future__ import annotations

import dataclasses
import enum
import types
import typing
from typing import Any

from sim.specs._schema import NUMBER_PATTERN, yaml_key
from sim.specs.reliability import FailureSpec
from sim.specs.scenario import ClusterSpec, ModelSpec, Scenario
from sim.specs.topology import TopologySpec

DIALECT = "https://json-schema.org/draft/2020-12/schema"

#: Fields the loader resolves before validating them (scenario.py ``_merge_preset`` / ``_resolve_topology``).
_PRESET_CLASS = ModelSpec
_TOPOLOGY_FIELD = (ClusterSpec, "topology")
_TRACE_FIELD = (FailureSpec, "trace")


def scenario_schema() -> dict[str, Any]:
    """The JSON Schema of a scenario file."""
    return _document(Scenario, "trainsim scenario", "A trainsim scenario file (docs/scenario.md).")


def topology_schema() -> dict[str, Any]:
    """The JSON Schema of a topology file (``topologies/*.yaml``)."""
    return _document(TopologySpec, "trainsim topology", "A trainsim topology file (docs/topology.md).")


def _document(cls: type, title: str, description: str) -> dict[str, Any]:
    defs: dict[str, Any] = {}
    root = _object(cls, defs)
    return {"$schema": DIALECT, "title": title, "description": description, **root, "$defs": defs}


def _object(cls: type, defs: dict[str, Any]) -> dict[str, Any]:
    """The schema of one spec dataclass: its fields, which are required, nothing else allowed."""
    hints = typing.get_type_hints(cls)
    properties: dict[str, Any] = {}
    required: list[str] = []
    for f in dataclasses.fields(cls):
        if not f.init:
            continue
        name = yaml_key(f)
        prop = _type(hints[f.name], defs, f.metadata)
        if (cls, f.name) == _TOPOLOGY_FIELD:
            prop = {"anyOf": [{"type": "string", "minLength": 1, "description": "a bundled topology name or "
                               "a path relative to the scenario file"}, prop]}
        if (cls, f.name) == _TRACE_FIELD:
            prop = {"anyOf": [{"type": "string", "minLength": 1, "description": "a CSV path relative to the "
                               "scenario file (columns time_hours,node,category,repair_hours)"}, prop]}
        prop = {**prop, "description": f.metadata.get("doc", "")}
        default = _default(f)
        if default is not dataclasses.MISSING:
            prop["default"] = default
        properties[name] = prop
        if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
            required.append(name)
    out: dict[str, Any] = {"type": "object", "description": (cls.__doc__ or "").strip(),
                           "properties": properties, "additionalProperties": False}
    if cls is _PRESET_CLASS:
        # a preset fills every shape field; without one they are all required
        out["anyOf"] = [{"required": ["preset"]}, {"required": required}]
    elif required:
        out["required"] = required
    return out


def _default(f: dataclasses.Field) -> Any:
    value = f.default
    if value is dataclasses.MISSING or dataclasses.is_dataclass(value):
        return dataclasses.MISSING
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, tuple):
        return list(value)
    return value


def _number(integer: bool, meta: typing.Mapping[str, Any]) -> dict[str, Any]:
    number: dict[str, Any] = {"type": "integer" if integer else "number"}
    for key, word in (("ge", "minimum"), ("gt", "exclusiveMinimum"), ("le", "maximum")):
        if meta.get(key) is not None:
            number[word] = meta[key]
    # YAML 1.1 reads 15.6e12 as a string; the loader accepts it (and 15_600) as a number
    return {"anyOf": [number, {"type": "string", "pattern": NUMBER_PATTERN}]}


def _type(tp: Any, defs: dict[str, Any], meta: typing.Mapping[str, Any]) -> dict[str, Any]:
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        args = typing.get_args(tp)
        options = [_type(a, defs, meta) for a in args if a is not type(None)]
        if type(None) in args:
            options.append({"type": "null"})
        return options[0] if len(options) == 1 else {"anyOf": options}
    if origin is dict:
        _, value_t = typing.get_args(tp)
        return {"type": "object", "additionalProperties": _type(value_t, defs, {})}
    if origin is tuple:
        item_t, _ = typing.get_args(tp)
        return {"type": "array", "items": _type(item_t, defs, meta)}
    if isinstance(tp, type) and dataclasses.is_dataclass(tp):
        name = tp.__name__
        if name not in defs:
            defs[name] = {}  # reserve first: a spec may (indirectly) contain itself
            defs[name] = _object(tp, defs)
        return {"$ref": f"#/$defs/{name}"}
    if isinstance(tp, type) and issubclass(tp, enum.Enum):
        return {"enum": [m.value for m in tp]}
    if tp is bool:
        return {"type": "boolean"}
    if tp in (int, float):
        return _number(tp is int, meta)
    if tp is str:
        return {"type": "string", "pattern": r"\S"}
    if tp is Any:
        return {}
    raise TypeError(f"no JSON Schema for spec type {tp!r}")
