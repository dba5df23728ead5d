"""Sweeps: variants by field path, one table, resumable after an interrupt, complete after a worker dies."""

from __future__ import annotations

import csv
import os
import signal
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from sim.analysis.explore.sweep import run_sweep
from sim.errors import ScenarioError, TrainsimError
from sim.report.tables import ResultsFile, sweep_results
from sim.specs.sweep import Sweep, load_sweep, point_key
from sim.specs.variants import apply_assignments
from tests.explore.conftest import TINY_MODEL, tiny

#: 2 x 2 x 2 x 2 = 16 points of ~50 ms each (the run level has failures to draw).
GRID = {"checkpoint.interval_minutes": [30, 120], "failures.rate_scale": [1, 2],
        "cluster.num_gpus, parallelism.data": [[8, 4], [16, 8]], "parallelism.zero_stage": [0, 1]}


def _write(tmp_path: Path, grid=None, points=None) -> Path:
    base = {"name": "tiny-sweep-base", "model": TINY_MODEL,
            "cluster": {"gpu": "H100-SXM-80GB", "num_gpus": 8, "topology": "dgx-h100-superpod"},
            "parallelism": {"pipeline": 2, "data": 4}, "training": {"global_batch_size": 256, "tokens": 3e11},
            "failures": {"model": "llama3"}, "checkpoint": {"interval_minutes": 30}}
    (tmp_path / "base.yaml").write_text(yaml.safe_dump(base))
    sweep = {"base": "base.yaml"}
    if grid is not None:
        sweep["grid"] = grid
    if points is not None:
        sweep["points"] = points
    path = tmp_path / "sweep.yaml"
    path.write_text(yaml.safe_dump(sweep, sort_keys=False))
    return path


def _rows(path: Path) -> list[dict]:
    with path.open() as fh:
        return list(csv.DictReader(fh))


def test_grid_with_linked_fields_and_points(tmp_path):
    sweep = load_sweep(_write(tmp_path, GRID, points=[{"training.precision": "bf16"}]))
    assert len(sweep.points) == 16
    assert sweep.fields == ("checkpoint.interval_minutes", "failures.rate_scale", "cluster.num_gpus",
                            "parallelism.data", "parallelism.zero_stage", "training.precision")
    first = sweep.points[0].assignments
    assert first["cluster.num_gpus"] == 8 and first["parallelism.data"] == 4
    assert point_key({"a": 1, "b": 2}) == point_key({"b": 2, "a": 1})


def test_bad_sweep_names_every_problem(tmp_path):
    path = _write(tmp_path, {"checkpoint.intervl": [1], "cluster": [1], "parallelism.tensor, parallelism.data": [1]})
    with pytest.raises(ScenarioError) as err:
        load_sweep(path)
    text = [str(i) for i in err.value.issues]
    assert any("did you mean 'interval_minutes'" in t for t in text)
    assert any(t.startswith("grid.cluster: is a section") for t in text)
    assert any("linked fields" in t for t in text)


def test_variants_convert_like_the_loader_and_invalid_points_are_results(tmp_path):
    base = tiny(num_gpus=4)
    v = apply_assignments(base, {"parallelism.schedule": "gpipe", "checkpoint.interval_minutes": "45"})
    assert v.parallelism.schedule.value == "gpipe" and v.checkpoint.interval_minutes == 45.0
    sweep = load_sweep(_write(tmp_path, {"cluster.num_gpus": [8, 12]}))
    out = tmp_path / "r.csv"
    outcome = run_sweep(sweep, sweep_results(sweep, out), workers=1)
    status = {r["cluster.num_gpus"]: (r["status"], r["reason"]) for r in outcome.rows}
    assert status["8"] == ("ok", "")
    assert status["12"][0] == "invalid" and "must equal cluster.num_gpus (12)" in status["12"][1]


def test_interrupted_local_sweep_resumes_without_redoing_or_losing_points(tmp_path):
    sweep = load_sweep(_write(tmp_path, GRID))
    out = tmp_path / "results.csv"

    def stop_after_5(done: int, total: int) -> None:
        if done == 5:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        run_sweep(sweep, sweep_results(sweep, out), workers=2, progress=stop_after_5)
    first = _rows(out)
    assert len(first) == 5
    outcome = run_sweep(sweep, sweep_results(sweep, out), workers=2)
    assert (outcome.already_done, outcome.computed) == (5, 11)
    rows = _rows(out)
    keys = [r["key"] for r in rows]
    assert len(keys) == len(set(keys)) == 16 and set(keys) == {p.key for p in sweep.points}
    assert rows[:5] == first  # finished points untouched
    assert all(r["status"] == "ok" and float(r["days"]) > 0 for r in rows)


def test_a_row_cut_short_by_a_kill_is_dropped_and_rerun(tmp_path):
    sweep = load_sweep(_write(tmp_path, {"parallelism.zero_stage": [0, 1]}))
    out = tmp_path / "r.csv"
    run_sweep(sweep, sweep_results(sweep, out), workers=1)
    full = out.read_text()
    lines = full.splitlines(keepends=True)
    out.write_text("".join(lines[:2]) + lines[2][:15])  # header, one row, half a row
    outcome = run_sweep(sweep, sweep_results(sweep, out), workers=1)
    assert (outcome.already_done, outcome.computed) == (1, 1)
    assert len(_rows(out)) == 2


def test_results_of_another_sweep_are_not_mixed(tmp_path):
    out = tmp_path / "r.csv"
    ResultsFile(out, ["key", "a", "status"])
    with pytest.raises(TrainsimError, match="another sweep"):
        ResultsFile(out, ["key", "b", "status"])


#: Longest wait for a state of the Dask cluster the kill tests set up (a guard against hanging, not a
#: timing assumption: each wait polls a condition that holds within a second on an idle machine).
CLUSTER_WAIT_S = 120.0


def _wait_for(condition: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + CLUSTER_WAIT_S
    while not condition():
        assert time.monotonic() < deadline, f"the Dask cluster never reached: {what}"
        time.sleep(0.02)


def _dask_sweep_with_a_victim(tmp_path: Path, patch: Callable[[str], None],
                              ready: Callable[[Any, str], bool]) -> tuple[Any, Sweep, Path, dict]:
    """A sweep of ``GRID`` on a local Dask cluster of two one-thread workers (allowed-failures 0, no work stealing:
    a task stays on the worker it was sent to): ``patch(marker_dir)`` runs on the victim worker first; after the
    first row the sweep waits for ``ready(client, victim_address)`` and SIGKILLs the victim (its nanny restarts
    a fresh process, without the patch)."""
    distributed = pytest.importorskip("distributed")
    import dask

    sweep = load_sweep(_write(tmp_path, GRID))
    out = tmp_path / "dask.csv"
    killed: dict[str, tuple[int, int]] = {}
    config = {"distributed.scheduler.allowed-failures": 0, "distributed.scheduler.work-stealing": False}
    with dask.config.set(config), \
            distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1",
                                     dashboard_address=None) as cluster, distributed.Client(cluster) as client:
        address, victim = sorted(client.run(os.getpid).items())[0]
        client.run(patch, str(tmp_path), workers=[address])

        def kill_one(done: int, total: int) -> None:
            if done == 1:
                _wait_for(lambda: ready(client, address), "the victim's state to kill it in")
                os.kill(victim, signal.SIGKILL)
                killed["at"] = (done, total)

        outcome = run_sweep(sweep, sweep_results(sweep, out), dask=cluster.scheduler_address, progress=kill_one)
    return outcome, sweep, out, killed


def _complete_without_duplicates(outcome, sweep: Sweep, out: Path, killed: dict) -> None:
    assert killed["at"] == (1, 16)
    rows = _rows(out)
    keys = [r["key"] for r in rows]
    assert len(keys) == len(set(keys)) == 16 and set(keys) == {p.key for p in sweep.points}
    assert outcome.computed == 16 and all(r["status"] == "ok" for r in rows)


def test_dask_sweep_completes_without_duplicates_after_a_worker_is_killed(tmp_path):
    """A point running on the killed worker fails at once (allowed-failures 0) and is resubmitted: the victim is
    killed while it runs a point (one that would never end), so the sweep completes only through the resubmit."""
    running = tmp_path / "victim-running"

    def block_forever(marker_dir: str) -> None:  # on the victim (nested: sent by value, not imported there)
        import threading

        import sim.analysis.explore.sweep as module

        def evaluate_point(base, assignments):
            (Path(marker_dir) / "victim-running").touch()
            threading.Event().wait()  # until the worker is killed

        module.evaluate_point = evaluate_point  # tasks name the function by module and name: this one runs

    outcome, sweep, out, killed = _dask_sweep_with_a_victim(tmp_path, block_forever,
                                                            lambda client, address: running.exists())
    _complete_without_duplicates(outcome, sweep, out, killed)


def test_a_result_lost_with_its_worker_before_it_was_collected_is_recomputed(tmp_path):
    """A point done on the victim but not collected yet when it is killed: the scheduler recomputes it and the
    sweep takes that result (its future is ``lost`` meanwhile, not failed)."""
    def hold_until_told(marker_dir: str) -> None:  # on the victim: each point waits for the go-ahead, then runs
        import sim.analysis.explore.sweep as module

        evaluate, go = module.evaluate_point, Path(marker_dir) / "go"

        def evaluate_point(base, assignments):
            while not go.exists():
                time.sleep(0.02)
            return evaluate(base, assignments)

        module.evaluate_point = evaluate_point

    def held_only_by(address: str, dask_scheduler=None) -> int:  # on the scheduler
        worker = dask_scheduler.workers[address]
        return sum(1 for ts in worker.has_what if ts.who_has == {worker})

    def victim_holds_a_result(client, address: str) -> bool:
        (tmp_path / "go").touch()  # the first row came from the other worker: the victim had not started
        return bool(client.run_on_scheduler(held_only_by, address))

    outcome, sweep, out, killed = _dask_sweep_with_a_victim(tmp_path, hold_until_told, victim_holds_a_result)
    _complete_without_duplicates(outcome, sweep, out, killed)


def test_a_lost_dask_future_is_waited_for_not_reported_as_failed(tmp_path, monkeypatch):
    """The race above without a cluster, so that it is met every time: a future is "lost" (neither finished nor
    failed) while the scheduler recomputes a result that died with its worker; the sweep waits for it instead of
    stopping with "failed on Dask: None"."""
    distributed = pytest.importorskip("distributed")

    class LostFuture:  # lost until waited on (``exception`` waits for the future to be done)
        def __init__(self, fn, *args):
            self.status, self.value = "lost", fn(*args)

        def exception(self):
            self.status = "finished"

        def cancelled(self) -> bool:
            return self.status == "cancelled"

        def result(self):
            assert self.status == "finished"
            return self.value

    class Client:
        def __init__(self, address: str, timeout: float) -> None: ...

        def __enter__(self):
            return self

        def __exit__(self, *exc) -> None: ...

        def submit(self, fn, *args, pure: bool) -> LostFuture:
            return LostFuture(fn, *args)

    monkeypatch.setattr(distributed, "Client", Client)
    monkeypatch.setattr(distributed, "as_completed", iter)
    sweep = load_sweep(_write(tmp_path, {"parallelism.zero_stage": [0, 1]}))
    out = tmp_path / "r.csv"
    outcome = run_sweep(sweep, sweep_results(sweep, out), dask="tcp://127.0.0.1:8786")
    assert outcome.computed == 2 and [r["status"] for r in _rows(out)] == ["ok", "ok"]
