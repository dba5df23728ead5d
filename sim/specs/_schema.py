"""The one generic validator: YAML mappings -> frozen spec dataclasses, every problem collected.

Specs declare their fields with :func:`spec_field` (unit, range, doc); this module checks types,
ranges and unknown keys for any such dataclass, and each spec adds its own cross-field rules in
``_issues``. Construction (including ``dataclasses.replace``) re-runs the checks, so an invalid spec
cannot exist.
"""

from __future__ import annotations

import dataclasses
import difflib
import enum
import functools
import operator
import re
import reprlib
import types
import typing
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

from sim.errors import Issue, ScenarioError

T = TypeVar("T")

#: Every spec class, so that an unknown key can be found in the block where it belongs.
_SPECS: list[type] = []
#: Suggest a field of the same block only when this close (difflib ratio): "num_experts" is not "num_layers".
_CLOSE = 0.75

_REPR = reprlib.Repr()
_REPR.maxstring = _REPR.maxother = 60
_REPR.maxlist = _REPR.maxtuple = _REPR.maxdict = _REPR.maxset = 4
_REPR.maxlevel = 2


def short_repr(value: Any) -> str:
    """``repr`` bounded in length and in work (a huge or deeply nested value is never rendered whole)."""
    return _REPR.repr(value)

#: A number written as a string (YAML 1.1 reads 15.6e12 as one); also the pattern of the JSON Schema.
NUMBER_PATTERN = r"^\s*[+-]?(\d[\d_]*\.?[\d_]*|\.\d[\d_]*)([eE][+-]?\d+)?\s*$"
_NUMBER = re.compile(NUMBER_PATTERN)


def spec_field(default: Any = dataclasses.MISSING, *, doc: str, ge: float | None = None,
               gt: float | None = None, le: float | None = None, key: str | None = None) -> Any:
    """A dataclass field with its documentation and numeric range, checked at construction.

    ``key`` is the YAML spelling where it cannot be the attribute name (``async``).
    """
    meta = {"doc": doc, "ge": ge, "gt": gt, "le": le, "key": key}
    if isinstance(default, (list, dict, set)):
        raise TypeError("mutable default")
    return dataclasses.field(default=default, metadata=meta)


class Spec:
    """Mixin for spec dataclasses: range checks from field metadata plus ``_issues`` hooks."""

    __slots__ = ()

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        _SPECS.append(cls)

    def __post_init__(self) -> None:
        # cross-field rules may divide by a field its range forbids to be 0: only on in-range values
        issues = _range_issues(self) or self._issues()
        if issues:
            raise ScenarioError(issues)

    def _issues(self) -> list[Issue]:
        """Cross-field rules of this spec; paths relative to the spec."""
        return []


def _range_issues(spec: Any) -> list[Issue]:
    issues = []
    for attr, name, ge, gt, le in _bounded_fields(type(spec)):
        value = getattr(spec, attr)
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            continue
        if ge is not None and value < ge:
            issues.append(Issue(name, f"{value!r} must be >= {ge}"))
        if gt is not None and value <= gt:
            issues.append(Issue(name, f"{value!r} must be > {gt}"))
        if le is not None and value > le:
            issues.append(Issue(name, f"{value!r} must be <= {le}"))
    return issues


#: Per-class caches of field facts (a plain dict: functools.cache types its key as Hashable, which mypy
#: does not grant a class object).
_BOUNDED: dict[type, tuple[tuple[str, str, Any, Any, Any], ...]] = {}
_NAMES: dict[type, tuple[tuple[str, ...], Callable[[Any], tuple[Any, ...]]]] = {}


def _bounded_fields(cls: type) -> tuple[tuple[str, str, Any, Any, Any], ...]:
    """(attribute, YAML key, ge, gt, le) of the fields of ``cls`` with a range, in field order: read once per class
    (a layout search builds tens of thousands of specs)."""
    found = _BOUNDED.get(cls)
    if found is None:
        found = _BOUNDED[cls] = tuple(
            (f.name, yaml_key(f), f.metadata.get("ge"), f.metadata.get("gt"), f.metadata.get("le"))
            for f in dataclasses.fields(cls) if any(f.metadata.get(k) is not None for k in ("ge", "gt", "le")))
    return found


def replace(spec: T, **changes: Any) -> T:
    """``dataclasses.replace`` for a spec (every field an init field), without its per-call walk of the fields'
    metadata: a layout search builds ~10^5 of them. Construction validates as usual."""
    names, get = _field_getter(type(spec))
    values = dict(zip(names, get(spec), strict=True))
    values.update(changes)
    return type(spec)(**values)


def _field_getter(cls: type) -> tuple[tuple[str, ...], Callable[[Any], tuple[Any, ...]]]:
    """The field names of ``cls`` and one C-level getter of all their values (``operator.attrgetter``)."""
    found = _NAMES.get(cls)
    if found is None:
        names = tuple(f.name for f in dataclasses.fields(cls))
        many = operator.attrgetter(*names) if len(names) > 1 else None  # one name: attrgetter returns no tuple
        found = _NAMES[cls] = (names, many or (lambda spec: tuple(getattr(spec, n) for n in names)))
    return found


def join(prefix: str, path: str) -> str:
    """Join field paths (``a.b`` + ``c`` -> ``a.b.c``)."""
    if not prefix:
        return path
    return f"{prefix}.{path}" if path else prefix


def build(cls: type[T], data: Any, path: str = "") -> T:
    """Build spec ``cls`` from a YAML mapping; raise one ScenarioError listing every problem."""
    issues: list[Issue] = []
    result = _build(cls, data, path, issues)
    if issues or result is None:
        raise ScenarioError(issues or [Issue(path, "invalid")])
    return result


def _build(cls: type[T], data: Any, path: str, issues: list[Issue]) -> T | None:
    if not isinstance(data, Mapping):
        issues.append(Issue(path, f"expected a mapping of {_describe(cls)} fields, got {_kind(data)}"))
        return None
    hints = typing.get_type_hints(cls)
    fields = {yaml_key(f): f for f in dataclasses.fields(typing.cast(Any, cls)) if f.init}
    kwargs: dict[str, Any] = {}
    ok = True
    for key in data:
        if key not in fields:
            ok = False
            issues.append(Issue(join(path, _short(key)), _unknown_key_message(key, fields, cls)))
    for name, f in fields.items():
        if name not in data:
            if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
                ok = False
                issues.append(Issue(join(path, name), f"required field is missing ({f.metadata.get('doc', '')})"))
            continue
        before = len(issues)
        value = convert(hints[f.name], data[name], join(path, name), issues)
        if len(issues) > before:
            ok = False
        else:
            kwargs[f.name] = value
    if not ok:
        return None
    try:
        return cls(**kwargs)
    except ScenarioError as err:
        issues.extend(Issue(join(path, i.path), i.message) for i in err.issues)
        return None


def yaml_key(f: dataclasses.Field) -> str:
    """The YAML key of a spec field."""
    return f.metadata.get("key") or f.name


def _short(key: Any) -> str:
    text = str(key) if isinstance(key, (str, int, float, bool)) or key is None else short_repr(key)
    return text if len(text) <= 60 else text[:60] + "..."


def _unknown_key_message(key: Any, fields: Mapping[str, Any], cls: type) -> str:
    """Where the key belongs if it is another block's field; else a close field of this block; else all."""
    tree = _blocks().get(cls, {})
    elsewhere = [name or "the top level" for other, name in tree.items()
                 if other is not cls and str(key) in _yaml_fields(other)]
    if elsewhere:
        return f"unknown field here; '{key}' is a field of {' or '.join(elsewhere)}: move it there"
    close = difflib.get_close_matches(str(key), list(fields), n=1, cutoff=_CLOSE)
    hint = f"; did you mean '{close[0]}'?" if close else f"; known fields: {', '.join(sorted(fields))}"
    return f"unknown field{hint}"


def _yaml_fields(cls: type) -> set[str]:
    return {yaml_key(f) for f in dataclasses.fields(cls) if f.init}


@functools.cache
def _blocks() -> dict[type, dict[type, str]]:
    """For each spec class, the blocks of the file it appears in: spec class -> dotted path (``model.moe``).

    A file's top is a spec no other spec contains (a scenario; the GPU catalog); a block is named by the
    first path that reaches it."""
    children: dict[type, list[tuple[str, type]]] = {}
    for cls in _SPECS:
        hints = typing.get_type_hints(cls)
        children[cls] = [(yaml_key(f), sub) for f in dataclasses.fields(cls) for sub in _spec_types(hints[f.name])]
    contained = {sub for subs in children.values() for _, sub in subs}
    out: dict[type, dict[type, str]] = {}
    for root in (cls for cls in _SPECS if cls not in contained):
        names: dict[type, str] = {}
        queue = [(root, "")]
        while queue:
            cls, name = queue.pop(0)
            if cls not in names:
                names[cls] = name
                queue += [(sub, join(name, key)) for key, sub in children.get(cls, [])]
        for cls in names:
            out.setdefault(cls, {}).update(names)
    return out


def _spec_types(tp: Any) -> list[type]:
    """The spec dataclasses an annotation holds (``MoESpec | None``, ``tuple[TierSpec, ...]``)."""
    if isinstance(tp, type) and dataclasses.is_dataclass(tp):
        return [tp]
    return [s for arg in typing.get_args(tp) for s in _spec_types(arg)]


def convert(tp: Any, value: Any, path: str, issues: list[Issue]) -> Any:
    """Convert one YAML value to the annotated type, appending an Issue on failure."""
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        if value is None and len(args) < len(typing.get_args(tp)):  # null only where the field is optional
            return None
        if len(args) == 1:
            return convert(args[0], value, path, issues)
        trial: list[Issue] = []
        for arg in args:
            trial.clear()
            out = convert(arg, value, path, trial)
            if not trial:
                return out
        issues.append(Issue(path, f"{short_repr(value)} is not one of: {', '.join(_describe(a) for a in args)}"))
        return None
    if origin is dict:
        key_t, val_t = typing.get_args(tp)
        if not isinstance(value, Mapping):
            issues.append(Issue(path, f"expected a mapping, got {_kind(value)}"))
            return None
        return {convert(key_t, k, join(path, _short(k)), issues): convert(val_t, v, join(path, _short(k)), issues)
                for k, v in value.items()}
    if origin is tuple:
        (item_t, _) = typing.get_args(tp)
        if not isinstance(value, (list, tuple)):
            issues.append(Issue(path, f"expected a list, got {_kind(value)}"))
            return None
        return tuple(convert(item_t, v, f"{path}[{i}]", issues) for i, v in enumerate(value))
    if isinstance(tp, type) and dataclasses.is_dataclass(tp):
        return _build(tp, value, path, issues)
    if isinstance(tp, type) and issubclass(tp, enum.Enum):
        return _convert_enum(tp, value, path, issues)
    if tp is bool:
        if isinstance(value, bool):
            return value
        issues.append(Issue(path, f"expected true or false, got {short_repr(value)}"))
        return None
    if tp in (int, float):
        return _convert_number(tp, value, path, issues)
    if tp is str:
        if isinstance(value, str) and value.strip():
            return value
        issues.append(Issue(path, f"expected a non-empty string, got {short_repr(value)}"))
        return None
    if tp is Any:
        return value
    raise TypeError(f"unsupported spec type {tp!r} at {path}")


def _convert_enum(tp: type[enum.Enum], value: Any, path: str, issues: list[Issue]) -> Any:
    try:
        return tp(value)
    except ValueError:
        choices = [str(m.value) for m in tp]
        close = difflib.get_close_matches(short_repr(value), choices, n=1)
        hint = f"; did you mean '{close[0]}'?" if close else ""
        issues.append(Issue(path, f"{short_repr(value)} is not one of {', '.join(choices)}{hint}"))
        return None


def parse_number(value: Any) -> float | int | None:
    """A YAML scalar as a number; accepts '15.6e12' (a string to YAML 1.1) and '15_600'."""
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        return value
    if isinstance(value, str) and _NUMBER.match(value.strip()):
        text = value.strip().replace("_", "")
        try:
            return int(text)
        except ValueError:
            return float(text)
    return None


def _convert_number(tp: type, value: Any, path: str, issues: list[Issue]) -> Any:
    number = parse_number(value)
    if number is None or number != number or number in (float("inf"), float("-inf")):
        issues.append(Issue(path, f"expected a {'whole ' if tp is int else ''}number, got {short_repr(value)}"))
        return None
    if isinstance(number, int) and abs(number) > 2**63:
        issues.append(Issue(path, f"{len(str(number))}-digit number is too large (more than 2**63)"))
        return None
    if tp is int:
        if isinstance(number, int) or float(number).is_integer():
            return int(number)
        issues.append(Issue(path, f"expected a whole number, got {short_repr(value)}"))
        return None
    return float(number)


def _kind(value: Any) -> str:
    if value is None:
        return "nothing (null)"
    return f"{type(value).__name__} {short_repr(value)}"


def _describe(tp: Any) -> str:
    return getattr(tp, "__name__", str(tp))
