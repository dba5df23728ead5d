"""The one YAML loader of trainsim: scenarios, topologies, sweeps and the packaged catalog.

Input files come from users, so the loader is hardened, and it is fast (libyaml's C parser,
``yaml.CSafeLoader``, when PyYAML was built with it; the pure-Python ``SafeLoader`` otherwise):

- **bounded work**: a file is at most :data:`MAX_BYTES`; aliases (``*a``) are at most :data:`MAX_ALIASES`
  references and the document at most :data:`MAX_NODES` nodes once every alias is expanded, nested at
  most :data:`MAX_DEPTH` deep, with no alias inside its own anchor. The node graph is checked before any
  Python object is built, so a "billion laughs" file is refused in microseconds instead of being expanded
  (or printed) in gigabytes.
- **no silent overwrites**: a key given twice in one mapping is an error (PyYAML keeps the last one).
- **no YAML 1.1 surprises**: an unquoted ``yes``/``no``/``on``/``off`` (booleans in YAML 1.1, strings in
  YAML 1.2), a base-60 number (``1:30`` is 90 in YAML 1.1) and a leading-zero octal (``010`` is 8) are
  refused with the fix; dates stay strings. ``true``/``false``, ``null``/``~``, decimal and ``0x`` integers,
  floats, anchors and ``<<`` merges work as in PyYAML.
- **one-line errors** with the line and column, never a snippet of the file (which may not be a scenario).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode
from yaml.resolver import BaseResolver

from sim.errors import TrainsimError

#: A scenario, topology or sweep file is a few KiB; the largest packaged catalog file is 120 KiB.
MAX_BYTES = 2**20
#: Alias references (``*name``) per document: a scenario needs a handful.
MAX_ALIASES = 100
#: Nodes once every alias is expanded (a list of 10,000 numbers is 10,001 nodes; the largest packaged file,
#: validation/published_runs.yaml, has ~6,000).
MAX_NODES = 100_000
#: Nesting of mappings and lists (a scenario is 4 deep).
MAX_DEPTH = 64
#: Longest error message, in characters.
MAX_MESSAGE = 240

_AMBIGUOUS = "tag:trainsim:yaml-1.1-surprise"
_BASE: type = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


class YamlError(TrainsimError):
    """A file that is not acceptable YAML (syntax, budget, duplicate key, YAML 1.1 surprise): one line."""


class _Resolver(BaseResolver):
    """The implicit types of YAML 1.1 minus its surprises, which resolve to a tag the loader refuses (the table
    starts empty: ``add_implicit_resolver`` copies BaseResolver's, which has none)."""


for _tag, _pattern, _first in [
    ("tag:yaml.org,2002:bool", r"^(?:true|True|TRUE|false|False|FALSE)$", "tTfF"),
    (_AMBIGUOUS, r"^(?:yes|Yes|YES|no|No|NO|on|On|ON|off|Off|OFF)$", "yYnNoO"),
    (_AMBIGUOUS, r"^[-+]?[0-9][0-9_]*(?::[0-5]?[0-9])+(?:\.[0-9_]*)?$", "-+0123456789"),
    (_AMBIGUOUS, r"^[-+]?0[0-7_]+$", "-+0"),
    ("tag:yaml.org,2002:float", r"^(?:[-+]?(?:[0-9][0-9_]*)\.[0-9_]*(?:[eE][-+][0-9]+)?|\.[0-9_]+(?:[eE][-+][0-9]+)?"
     r"|[-+]?\.(?:inf|Inf|INF)|\.(?:nan|NaN|NAN))$", "-+0123456789."),
    ("tag:yaml.org,2002:int", r"^(?:[-+]?0b[0-1_]+|[-+]?0|[-+]?0x[0-9a-fA-F_]+|[-+]?[1-9][0-9_]*)$",
     "-+0123456789"),
    ("tag:yaml.org,2002:merge", r"^(?:<<)$", "<"),
    ("tag:yaml.org,2002:null", r"^(?:~|null|Null|NULL|)$", ["~", "n", "N", ""]),
]:
    _Resolver.add_implicit_resolver(_tag, re.compile(_pattern), list(_first))


class _Loader(_BASE):
    """libyaml's safe loader with the resolver above and the node-graph checks of :func:`_check_graph`."""

    yaml_implicit_resolvers = _Resolver.yaml_implicit_resolvers

    def construct_document(self, node: Node) -> Any:
        _check_graph(node)
        return super().construct_document(node)


def _where(node: Node) -> str:
    mark = node.start_mark
    return f"line {mark.line + 1}, column {mark.column + 1}"


def _surprise(node: ScalarNode) -> str:
    text = str(node.value)[:20]
    if text.lower() in ("yes", "no", "on", "off"):
        return (f"{_where(node)}: unquoted {text!r} is a boolean in YAML 1.1 but a string in YAML 1.2; "
                f"write true or false, or quote it")
    if ":" in text:
        return f"{_where(node)}: {text!r} is a base-60 number in YAML 1.1; write the number, or quote it"
    return f"{_where(node)}: {text!r} is octal in YAML 1.1; drop the leading zero, or quote it"


def _check_graph(root: Node) -> None:
    """Refuse, before construction: too many aliases or nodes, too deep, an alias inside its own anchor, a
    duplicate key, a YAML 1.1 surprise. Iterative (no recursion limit) and linear in the distinct nodes;
    scalars are checked where they are met, only collections go on the stack."""
    size: dict[int, int] = {}  # expanded node count of each finished node
    aliases = 0
    on_path: set[int] = set()
    stack: list[tuple[Node, int, bool]] = [(root, 1, False)]
    if isinstance(root, ScalarNode):
        if root.tag == _AMBIGUOUS:
            raise YamlError(_surprise(root))
        return
    while stack:
        node, depth, leaving = stack.pop()
        key = id(node)
        children = _children(node)
        if leaving:
            on_path.discard(key)
            total = 1
            for child in children:
                total += size[id(child)]
            if total > MAX_NODES:
                raise YamlError(f"{_where(node)}: more than {MAX_NODES:,} values once aliases are expanded")
            size[key] = total
            continue
        if key in size:  # seen before: an alias reference
            aliases += 1
            if aliases > MAX_ALIASES:
                raise YamlError(f"{_where(node)}: more than {MAX_ALIASES} alias references (*name)")
            continue
        if key in on_path:
            raise YamlError(f"{_where(node)}: an alias refers to a value that contains it (recursive)")
        if depth > MAX_DEPTH:
            raise YamlError(f"{_where(node)}: nested more than {MAX_DEPTH} levels deep")
        if isinstance(node, MappingNode):
            _check_duplicates(node)
        on_path.add(key)
        stack.append((node, depth, True))
        for child in reversed(children):
            if not isinstance(child, ScalarNode):
                stack.append((child, depth + 1, False))
                continue
            ident = id(child)
            if ident in size:
                aliases += 1
                if aliases > MAX_ALIASES:
                    raise YamlError(f"{_where(child)}: more than {MAX_ALIASES} alias references (*name)")
            else:
                if child.tag == _AMBIGUOUS:
                    raise YamlError(_surprise(child))
                size[ident] = 1


def _children(node: Node) -> list[Node]:
    if isinstance(node, SequenceNode):
        return list(node.value)
    if isinstance(node, MappingNode):
        return [n for pair in node.value for n in pair]
    return []


def _check_duplicates(node: MappingNode) -> None:
    seen: set[tuple[str, str]] = set()
    for key, _ in node.value:
        if not isinstance(key, ScalarNode) or key.tag == "tag:yaml.org,2002:merge":
            continue
        ident = (key.tag, key.value)
        if ident in seen:
            raise YamlError(f"{_where(key)}: key {_short(key.value)!r} is given twice in the same mapping")
        seen.add(ident)


def _short(text: str, limit: int = 40) -> str:
    return text if len(text) <= limit else text[:limit] + "..."


def _one_line(err: BaseException) -> str:
    """An error as one bounded line: the problem and its line/column, never the file's text."""
    if isinstance(err, yaml.MarkedYAMLError):
        mark = err.problem_mark or err.context_mark
        problem = err.problem or err.context or "invalid YAML"
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark is not None else ""
        text = f"{where}{problem}"
    else:
        text = str(err) or type(err).__name__
    text = " ".join(text.split())
    return text if len(text) <= MAX_MESSAGE else text[:MAX_MESSAGE] + "..."


def load_yaml(text: str) -> Any:
    """Parse one YAML document under the rules above; raises :class:`YamlError` (one line)."""
    if len(text) > MAX_BYTES:
        raise YamlError(f"{len(text):,} characters: larger than the {MAX_BYTES // 2**20} MiB a trainsim file may be")
    try:
        return yaml.load(text, Loader=_Loader)
    except YamlError:
        raise
    except RecursionError:
        raise YamlError(f"nested more than {MAX_DEPTH} levels deep") from None
    except Exception as err:  # PyYAML constructors also raise ValueError, TypeError, OverflowError ...
        raise YamlError(f"not valid YAML: {_one_line(err)}") from None


def read_text(path: Path, max_bytes: int = MAX_BYTES) -> str:
    """A small UTF-8 text file (at most ``max_bytes``); raises :class:`YamlError` saying why not."""
    try:
        if not path.is_file():  # a directory, a device (/dev/zero never ends), a FIFO (blocks), nothing
            reason = ("is a directory" if path.is_dir() else "no such file" if not path.exists()
                      else "not a regular file")
            raise YamlError(f"cannot read: {reason}")
        with path.open("rb") as handle:
            raw = handle.read(max_bytes + 1)
    except OSError as err:
        raise YamlError(f"cannot read: {err.strerror or err}") from None
    if len(raw) > max_bytes:
        raise YamlError(f"larger than the {max_bytes / 2**20:g} MiB a trainsim file may be")
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as err:
        raise YamlError(f"not UTF-8 text (byte {err.start})") from None


def read_yaml_file(path: Path) -> Any:
    """:func:`read_text` then :func:`load_yaml`."""
    return load_yaml(read_text(path))


def read_yaml_mapping(path: Path, what: str) -> dict[str, Any]:
    """:func:`read_yaml_file` of a file that must hold a mapping (of ``what``); anything else is refused without
    echoing it (a file given by mistake, /etc/passwd, is not shown)."""
    data = read_yaml_file(path)
    if not isinstance(data, dict):
        kind = "nothing" if data is None else f"a {type(data).__name__}"
        raise YamlError(f"holds {kind}, not a mapping of {what}")
    return data
