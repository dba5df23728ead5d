"""The hostile-input suite's harness: the CLI run in-process with a hang guard, or in a subprocess with a memory
cap (``resource.setrlimit`` in ``preexec_fn``) for the cases that would exhaust memory if a guard failed.

Every case asserts the contract of the issue: exit 2 with a one-line ``trainsim: error:`` head (or a clean
result), no traceback, bounded stderr (lines <= 300 characters, at most ~25 lines), and an end in bounded
time (SIGALRM fails a case that hangs instead of hanging the suite).
"""

from __future__ import annotations

import contextlib
import copy
import io
import os
import resource
import signal
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from sim.cli import main

REPO = Path(__file__).resolve().parents[2]
#: A case that has not ended by then is a hang (the slowest legitimate case takes ~2 s alone).
HANG_S = 60
#: Address space of a subprocess case: numpy + matplotlib imports take ~1 GiB of it.
MEMORY_LIMIT = 3 * 2**30

#: A small valid scenario (Llama 3 8B on 16 H100: TP2 PP2 DP4), with a run level of 2 replicas.
BASE: dict[str, Any] = {
    "name": "hostile-base",
    "model": {"preset": "llama3-8b"},
    "cluster": {"gpu": "H100-SXM-80GB", "num_gpus": 16, "topology": "dgx-h100-superpod"},
    "parallelism": {"tensor": 2, "pipeline": 2, "data": 4, "micro_batch_size": 1},
    "training": {"global_batch_size": 32, "tokens": 1.0e9},
    "failures": {"model": "llama3", "restart_minutes": 15},
    "checkpoint": {"interval_minutes": 60},
    "simulation": {"monte_carlo": 2},
}


def base_mapping(**edits: Any) -> dict[str, Any]:
    """A fresh copy of :data:`BASE` with dotted-path edits (``{"cluster.num_gpus": 8}``); None deletes."""
    data = copy.deepcopy(BASE)
    for path, value in edits.items():
        node = data
        *parents, leaf = path.split(".")
        for part in parents:
            node = node.setdefault(part, {})
        if value is None:
            node.pop(leaf, None)
        else:
            node[leaf] = value
    return data


def topology_mapping() -> dict[str, Any]:
    return yaml.safe_load((REPO / "topologies" / "dgx-h100-superpod.yaml").read_text(encoding="utf-8"))


@dataclass
class Outcome:
    rc: int
    out: str
    err: str


class _Hang(Exception):
    pass


def _alarm(signum: int, frame: object) -> None:
    raise _Hang


def run_in_process(*args: object) -> Outcome:
    """``trainsim ARGS`` in this process; argparse's exit is an exit status; any exception is a traceback."""
    out, err = io.StringIO(), io.StringIO()
    previous = signal.signal(signal.SIGALRM, _alarm)
    signal.alarm(HANG_S)
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            try:
                rc = main([str(a) for a in args])
            except SystemExit as exit_:  # argparse: usage errors exit 2, --help exits 0
                rc = exit_.code if isinstance(exit_.code, int) else 2
    except _Hang:
        pytest.fail(f"trainsim {' '.join(map(str, args))} did not end within {HANG_S} s", pytrace=False)
    except Exception as exc:  # what a user would see as a traceback
        pytest.fail(f"trainsim {' '.join(map(str, args))} raised {type(exc).__name__}: {str(exc)[:500]}\n"
                    f"stderr: {err.getvalue()[:500]}", pytrace=False)
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)
    return Outcome(rc, out.getvalue(), err.getvalue())


def _limit_memory() -> None:
    resource.setrlimit(resource.RLIMIT_AS, (MEMORY_LIMIT, MEMORY_LIMIT))


def run_subprocess(*args: object, timeout: float = HANG_S) -> Outcome:
    """``trainsim ARGS`` in a child process capped at :data:`MEMORY_LIMIT` of address space."""
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    try:
        done = subprocess.run([sys.executable, "-m", "sim.cli", *map(str, args)], capture_output=True, text=True,
                              timeout=timeout, preexec_fn=_limit_memory, env=env, cwd=REPO, check=False)
    except subprocess.TimeoutExpired:
        pytest.fail(f"trainsim {' '.join(map(str, args))} did not end within {timeout} s", pytrace=False)
    return Outcome(done.returncode, done.stdout, done.stderr)


def assert_refused(res: Outcome, *needles: str) -> None:
    """Exit 2, a ``trainsim`` error head, no traceback, bounded lines; ``needles`` appear in stderr."""
    assert "Traceback" not in res.err, res.err[:2000]
    assert res.rc == 2, f"exit {res.rc}\nstdout: {res.out[:500]}\nstderr: {res.err[:1000]}"
    assert "error:" in res.err, res.err[:500]  # trainsim's own head, or argparse's after its usage line
    assert_bounded(res)
    for needle in needles:
        assert needle in res.err, f"{needle!r} not in stderr:\n{res.err[:1500]}"


def assert_bounded(res: Outcome) -> None:
    lines = res.err.splitlines()
    assert len(lines) <= 25, f"{len(lines)} lines of stderr"
    long = [line for line in lines if len(line) > 300 and not line.startswith("usage:")]
    assert not long, f"a stderr line of {len(long[0])} characters"


def assert_clean(res: Outcome) -> None:
    """Exit 0 and no traceback."""
    assert "Traceback" not in res.err, res.err[:2000]
    assert res.rc == 0, f"exit {res.rc}\nstderr: {res.err[:1000]}"
    assert_bounded(res)


@pytest.fixture
def write(tmp_path: Path):
    """Write a mapping (as YAML), a str or bytes to a file in tmp_path; return its path."""
    counter = iter(range(10**6))

    def _write(content: Any, name: str | None = None) -> Path:
        path = tmp_path / (name or f"input-{next(counter)}.yaml")
        if isinstance(content, bytes):
            path.write_bytes(content)
        elif isinstance(content, str):
            path.write_text(content, encoding="utf-8")
        else:
            dumper = getattr(yaml, "CSafeDumper", yaml.SafeDumper)  # libyaml: the large cases dump fast
            path.write_text(yaml.dump(content, Dumper=dumper, sort_keys=False), encoding="utf-8")
        return path

    return _write
