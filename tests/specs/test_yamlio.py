"""The hardened YAML loader (sim/catalog/yamlio.py): what it accepts as PyYAML would, and what it refuses."""

from __future__ import annotations

import pytest
import yaml

from sim.catalog import yamlio
from sim.catalog.yamlio import YamlError, load_yaml
from sim.specs._schema import short_repr


@pytest.mark.parametrize("text", [
    "a: 1\nb: -2\nc: 0x10\nd: 1_000\ne: 0\n",
    "a: 1.5\nb: .5\nc: 1.0e+3\nd: .inf\ne: -.inf\n",
    "a: true\nb: False\nc: ~\nd: null\ne:\n",
    "base: &b {x: 1, y: 2}\nother: {<<: *b, y: 3}\n",
    "a: [1, 2, {b: c}]\n",
])
def test_ordinary_yaml_loads_as_pyyaml_loads_it(text):
    assert load_yaml(text) == yaml.safe_load(text)


@pytest.mark.parametrize(("text", "value"), [
    ("a: 2024-01-01", "2024-01-01"),   # YAML 1.1: a datetime.date
    ("a: 15.6e12", "15.6e12"),         # YAML 1.1: a string (the schema parses it as a number)
    ("a: y", "y"),
    ("a: 08", "08"),                   # not octal: a string, as in PyYAML
])
def test_values_that_stay_strings(text, value):
    assert load_yaml(text) == {"a": value}


@pytest.mark.parametrize(("text", "needle"), [
    ("a: no", "write true or false"), ("a: Yes", "write true or false"), ("off: 1", "write true or false"),
    ("a: 1:30", "base-60"), ("a: 190:20:30.15", "base-60"), ("a: 010", "octal"), ("a: -017", "octal"),
    ("a: 1\na: 2", "given twice"), ("a: {b: 1, b: 1}", "given twice"),
    ("a: &a [*a]", "recursive"), ("a: &a {b: *a}", "recursive"),
    ("x: &x 1\ny: [" + ", ".join(["*x"] * (yamlio.MAX_ALIASES + 1)) + "]", "alias references"),
    ("a: " + "[" * (yamlio.MAX_DEPTH + 1) + "]" * (yamlio.MAX_DEPTH + 1), "levels deep"),
    ("a: [" + ", ".join(["1"] * yamlio.MAX_NODES) + "]", "values once aliases are expanded"),
    ("a: !!python/tuple [1]", "constructor"),
    ("a: [", "line 2"),
])
def test_refused_with_a_one_line_reason(text, needle):
    with pytest.raises(YamlError) as err:
        load_yaml(text)
    message = str(err.value)
    assert needle in message and "\n" not in message and len(message) <= yamlio.MAX_MESSAGE + 40


def test_a_syntax_error_gives_the_line_not_the_text():
    with pytest.raises(YamlError) as err:
        load_yaml("secret: value\nroot:x:0:0:root:/root:/bin/bash\n  more: [")
    assert "root:/root" not in str(err.value) and "line" in str(err.value)


def test_the_c_parser_is_used_when_pyyaml_has_it():
    if hasattr(yaml, "CSafeLoader"):
        assert issubclass(yamlio._Loader, yaml.CSafeLoader)


def test_short_repr_is_bounded_in_length_for_huge_values():
    assert len(short_repr(list(range(10**6)))) < 100
    assert len(short_repr("x" * 10**6)) < 100
    assert len(short_repr({i: [i] * 1000 for i in range(1000)})) < 200
