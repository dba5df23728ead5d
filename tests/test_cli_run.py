"""`trainsim run`: the JSON contract of spec/result.md and the out-of-memory report."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import yaml

from sim.cli import main

SCENARIO = Path(__file__).resolve().parents[1] / "scenarios" / "llama3-405b-16k-h100-tp8-pp16-dp128.yaml"


def test_json_contract_fields(capsys):
    assert main(["run", str(SCENARIO), "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    step = out["step"]
    for key in ("step_time_s", "tokens_per_step", "tokens_per_s_per_gpu", "model_tflops_per_gpu", "mfu", "hfu",
                "bubble_fraction", "exposed_comm_fraction"):
        assert step[key] is not None, key
    assert step["tokens_per_step"] == 2048 * 8192
    # model_tflops_per_gpu = model FLOPs per step / (step time x GPUs) and mfu = that / 989.4 (spec/result.md)
    assert abs(step["mfu"] - step["model_tflops_per_gpu"] / 989.4) < 1e-4
    assert out["memory"]["fits"] is True
    assert set(out["memory"]["breakdown_gib"]) == {"parameters", "gradients", "optimizer", "activations",
                                                   "buffers", "reserve"}
    assert out["estimate_6nd"]["assumed_mfu"] == 0.4


def test_out_of_memory_reports_breakdown_and_null_step(tmp_path, capsys):
    data = yaml.safe_load(SCENARIO.read_text())
    data["parallelism"].update(activation_recompute="none", micro_batch_size=4)
    data["training"]["global_batch_size"] = 4 * 128 * 16  # 16 micro-batches of 4 sequences per pipeline
    data["cluster"]["topology"] = str(SCENARIO.parents[1] / "topologies" / "meta-llama3-24k.yaml")
    path = tmp_path / "oom.yaml"
    path.write_text(yaml.safe_dump(data))
    assert main(["run", str(path), "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["memory"]["fits"] is False
    assert out["memory"]["peak_gib_per_gpu"] > out["memory"]["capacity_gib_per_gpu"]
    assert out["step"]["step_time_s"] is None and out["step"]["mfu"] is None
    assert main(["run", str(path)]) == 0
    assert "OUT OF MEMORY" in capsys.readouterr().out


def test_summary_says_which_fabric_levels_each_group_crosses(capsys):
    assert main(["run", str(SCENARIO), "-q", "--replicas", "1"]) == 0
    out = capsys.readouterr().out
    lines = {line.split()[0]: line for line in out.splitlines() if line.startswith("        ") and line.split()}
    assert "network placement tp,cp,pp,dp" in out
    assert "stays in its scale-up domain" in lines["TP"]
    assert "pod uplink" in lines["DP"] and "pod uplink" not in lines["PP"]


def test_step_only_run_imports_only_the_step_path(tmp_path):
    """A scenario without training.tokens simulates one step: the process must not import the run level (its
    engine and numpy draws), full fidelity, the layout search, networkx or matplotlib. Checked in a fresh
    interpreter (this test process has imported everything already)."""
    data = yaml.safe_load(SCENARIO.read_text())
    data["training"].pop("tokens", None)
    path = tmp_path / "step.yaml"
    path.write_text(yaml.safe_dump(data))
    code = ("import contextlib, io, sys\nfrom sim.cli import main\n"
            f"with contextlib.redirect_stdout(io.StringIO()):\n    assert main(['run', {str(path)!r}, '--json']) == 0\n"
            "print('\\n'.join(sorted(sys.modules)))")
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    modules = set(res.stdout.split())
    assert "sim.engine.step" in modules and "sim.report.result" in modules  # the step did run
    for name in ("sim.engine.run", "sim.analysis.runlevel", "sim.engine.full", "sim.analysis.explore",
                 "sim.network.nxgraph", "networkx", "matplotlib", "scipy", "pandas"):
        assert not any(m == name or m.startswith(name + ".") for m in modules), name
