"""A pool's workers die with their parent: killed (SIGKILL), terminated (SIGTERM: exit 130, partial results
kept) or interrupted; a sweep then resumes from what it had written."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from .conftest import REPO, base_mapping

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="needs /proc and prctl")


def _children(pid: int) -> set[int]:
    """Direct children of ``pid`` (from /proc)."""
    out = set()
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[1]) == pid:
                out.add(int(entry.name))
    return out


def _alive(pid: int) -> bool:
    try:
        state = (Path("/proc") / str(pid) / "stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def _start_sweep(tmp_path: Path) -> tuple[subprocess.Popen, Path, set[int]]:
    """A sweep of 1,000 small points on 2 workers (enough that it is still running when signalled: 40 points
    finished within the poll on an idle machine); returns once its workers exist."""
    (tmp_path / "base.yaml").write_text(yaml.safe_dump(base_mapping()), encoding="utf-8")
    sweep = tmp_path / "sweep.yaml"
    sweep.write_text(yaml.safe_dump({"base": "base.yaml", "grid": {"simulation.seed": list(range(1000))}}),
                     encoding="utf-8")
    out = tmp_path / "r.csv"
    proc = subprocess.Popen([sys.executable, "-m", "sim.cli", "sweep", str(sweep), "-o", str(out), "--workers", "2",
                             "-q"], cwd=REPO, env={**os.environ, "PYTHONPATH": str(REPO)},
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 60
    workers: set[int] = set()
    while time.monotonic() < deadline and len(workers) < 2:
        time.sleep(0.2)
        workers = {c for c in _children(proc.pid) if _alive(c)}
        assert proc.poll() is None, proc.communicate()
    assert len(workers) >= 2, "the sweep did not start its workers"
    return proc, out, workers


def _wait_gone(pids: set[int], timeout: float = 20) -> set[int]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        left = {p for p in pids if _alive(p)}
        if not left:
            return set()
        time.sleep(0.1)
    return {p for p in pids if _alive(p)}


def test_sigkill_of_the_parent_kills_its_workers(tmp_path):
    proc, _, workers = _start_sweep(tmp_path)
    proc.kill()
    proc.wait(timeout=20)
    assert _wait_gone(workers) == set(), "workers outlived a SIGKILLed parent"


def test_sigterm_exits_130_keeps_partial_results_and_kills_workers(tmp_path):
    proc, out, workers = _start_sweep(tmp_path)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and not (out.exists() and len(out.read_text().splitlines()) >= 2):
        time.sleep(0.2)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == 130, err
    assert "Traceback" not in err, err
    assert "resume" in err
    assert _wait_gone(workers) == set(), "workers outlived a terminated parent"
    rows = out.read_text().splitlines()
    assert len(rows) >= 2  # the header and at least one finished point, kept for the resume


@pytest.mark.skipif(not Path("/dev/full").exists(), reason="needs /dev/full")
@pytest.mark.parametrize("command", [["presets"], ["gpus"], ["run", "scenarios/llama3-70b-1k-h100.yaml", "--json"]])
def test_a_full_disk_on_stdout_is_a_clean_error(command):
    with open("/dev/full", "w") as full:
        done = subprocess.run([sys.executable, "-m", "sim.cli", *command], stdout=full, stderr=subprocess.PIPE,
                              text=True, cwd=REPO, env={**os.environ, "PYTHONPATH": str(REPO)}, timeout=120,
                              check=False)
    assert done.returncode == 2, done.stderr
    assert "Traceback" not in done.stderr and "No space left" in done.stderr


def test_a_closed_pipe_on_stdout_is_not_an_error():
    proc = subprocess.Popen([sys.executable, "-m", "sim.cli", "run", "scenarios/llama3-70b-1k-h100.yaml"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=REPO,
                            env={**os.environ, "PYTHONPATH": str(REPO)})
    assert proc.stdout is not None and proc.stdout.readline()
    proc.stdout.close()  # `trainsim run ... | head -1`
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err
    assert b"Traceback" not in err and b"Exception ignored" not in err
