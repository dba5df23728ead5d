"""`trainsim run`: the JSON contract of spec/result.md and the out-of-memory report."""

from __future__ import annotations

import json
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
