"""catalog.preset: one preset read from its own file is the table's entry; other names are not looked up as files."""

from __future__ import annotations

from sim import catalog


def test_preset_from_its_file_is_the_tables():
    table = catalog.preset_table()
    for name in table:
        assert catalog.preset(name) == table[name]


def test_unknown_names_are_none_without_touching_the_file_system():
    for name in ("nope", "../gpus", "x" * 300, "a\x00b", "", "models/llama3-8b"):
        assert catalog.preset(name) is None
