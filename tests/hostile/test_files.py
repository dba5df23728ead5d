"""Hostile files, in each format that trainsim reads: a scenario (``run``, ``report``, ``placement``, ``search``,
``size``, ``checkpoint-interval``), a topology (``collectives --topology``, a scenario's ``cluster.topology``)
and a sweep (``sweep``). Each is refused with exit 2 in bounded time and memory (sim/catalog/yamlio.py)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import yaml

from .conftest import BASE, assert_refused, run_in_process, run_subprocess, topology_mapping

#: A "billion laughs": 9 levels of 9 aliases expand to 9^9 = 387 million strings.
BOMB = "a: &a ['lol','lol','lol','lol','lol','lol','lol','lol','lol']\n" + "".join(
    f"{chr(98 + i)}: &{chr(98 + i)} [{', '.join(['*' + chr(97 + i)] * 9)}]\n" for i in range(8))

#: Text of each kind, keyed by case name; each must be refused whatever the format.
BAD_TEXTS = {
    "alias-bomb": BOMB,
    "recursive-alias": "model: &m {preset: llama3-8b, moe: *m}\n",
    "too-many-aliases": "x: &x 1\ny: [" + ", ".join(["*x"] * 150) + "]\n",
    "duplicate-top-key": "name: a\nname: b\n",
    "duplicate-nested-key": "model: {preset: llama3-8b, preset: gpt3-175b}\n",
    "yaml11-no": "name: x\ncheckpoint: {async: no}\n",
    "yaml11-on-key": "on: 1\n",
    "yaml11-sexagesimal": "training: {tokens: 1:30}\n",
    "yaml11-octal": "cluster: {num_gpus: 010}\n",
    "deep-block-nesting": "".join(f"{'  ' * i}k{i}:\n" for i in range(200)) + f"{'  ' * 200}1\n",
    "deep-flow-nesting": "[" * 100_000,
    "python-tag": "name: !!python/object/apply:os.system ['true']\n",
    "two-documents": "name: a\n---\nname: b\n",
    "top-level-list": "- name: a\n",
    "top-level-scalar": "just text\n",
    "empty": "",
    "nul-bytes": "name: a\x00\n",
    "huge-int-literal": "seed: " + "9" * 5000 + "\n",
    "passwd-like": "root:x:0:0:root:/root:/bin/bash\ndaemon:x:1:1:daemon:/usr/sbin:/usr/sbin/nologin\n",
}


def _command(kind: str, path: Path) -> list[object]:
    return {"scenario": ["run", path, "--json"], "topology": ["collectives", "--topology", path, "--gpus", "8"],
            "sweep": ["sweep", path, "-o", path.with_suffix(".csv"), "--workers", "1", "-q"]}[kind]


@pytest.mark.parametrize("kind", ["scenario", "topology", "sweep"])
@pytest.mark.parametrize("case", sorted(BAD_TEXTS))
def test_bad_text_is_refused_in_every_format(write, kind, case):
    path = write(BAD_TEXTS[case], f"{case}.yaml")
    res = run_in_process(*_command(kind, path))
    assert_refused(res)
    assert "root:/root" not in res.err  # a file that is not a scenario is never echoed


def test_the_alias_bomb_is_refused_under_a_memory_cap(write):
    assert_refused(run_subprocess("run", write(BOMB)), "alias")


def test_an_alias_bomb_inside_a_valid_scenario_is_refused(write):
    text = yaml.safe_dump(BASE, sort_keys=False) + BOMB.replace("a:", "zz:", 1)
    assert_refused(run_in_process("run", write(text)), "values once aliases are expanded")


@pytest.mark.parametrize("target", ["/dev/zero", "/dev/null", "/", "/nonexistent/x.yaml", "/proc/self/mem"])
def test_special_paths_as_the_scenario(target):
    if not os.path.exists(target) and target != "/nonexistent/x.yaml":
        pytest.skip(f"{target} does not exist here")
    assert_refused(run_in_process("run", target))


def test_a_fifo_as_the_scenario_does_not_block(tmp_path):
    fifo = tmp_path / "pipe.yaml"
    os.mkfifo(fifo)
    assert_refused(run_in_process("run", fifo), "not a regular file")


def test_a_file_over_the_size_limit(write):
    assert_refused(run_in_process("run", write("# " + "x" * (5 * 2**20) + "\n")), "MiB")


def test_binary_bytes(write):
    assert_refused(run_in_process("run", write(bytes(range(256)) * 10)), "UTF-8")


def test_a_topology_file_that_is_a_scenario(write):
    assert_refused(run_in_process("collectives", "--topology", write(BASE), "--gpus", "8"), "unknown field")


def test_a_scenario_whose_topology_is_a_folder(write, tmp_path):
    data = {**BASE, "cluster": {**BASE["cluster"], "topology": str(tmp_path)}}
    assert_refused(run_in_process("run", write(data)), "cluster.topology")


def test_a_scenario_whose_topology_is_passwd_like(write):
    topo = write(BAD_TEXTS["passwd-like"], "topo.yaml")
    data = {**BASE, "cluster": {**BASE["cluster"], "topology": str(topo)}}
    res = run_in_process("run", write(data))
    assert_refused(res, "cluster.topology")
    assert "root:/root" not in res.err


def test_a_topology_with_duplicate_keys_inside_a_scenario(write):
    text = yaml.safe_dump(topology_mapping(), sort_keys=False).replace("name:", "name: a\nname:", 1)
    data = {**BASE, "cluster": {**BASE["cluster"], "topology": str(write(text, "topo.yaml"))}}
    assert_refused(run_in_process("run", write(data)), "given twice")


def test_a_sweep_whose_base_is_an_alias_bomb(write):
    base = write(BOMB, "base.yaml")
    sweep = write({"base": base.name, "grid": {"failures.rate_scale": [1, 2]}}, "sweep.yaml")
    assert_refused(run_in_process("sweep", sweep, "-o", sweep.with_suffix(".csv"), "--workers", "1", "-q"), "alias")
