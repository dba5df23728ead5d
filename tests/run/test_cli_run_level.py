"""`trainsim run` at the run level: the `run` block, determinism, and the readable summary."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from sim.cli import main

ROOT = Path(__file__).resolve().parents[2]
BUNDLED = ROOT / "scenarios" / "llama3-405b-16k-h100-tp8-pp16-dp128.yaml"


def _json(args: list[str]) -> str:
    res = subprocess.run([sys.executable, "-m", "sim.cli", "run", *args, "--json", "-q"], capture_output=True,
                         text=True, cwd=ROOT, check=True)
    return res.stdout


def _small(tmp_path: Path, **failures) -> Path:
    """The bundled 405B layout cut to 1,024 GPUs (DP 8, so 256 micro-batches: full recompute to fit) and
    1T tokens: quick to simulate."""
    data = yaml.safe_load(BUNDLED.read_text())
    data["cluster"].update(num_gpus=1024, topology=str(ROOT / "topologies" / "meta-llama3-24k.yaml"))
    data["parallelism"].update(data=8, activation_recompute="full")
    data["training"]["tokens"] = 1e12
    data["failures"].update(failures)
    data["simulation"]["monte_carlo"] = 5
    path = tmp_path / "small.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def test_same_seed_byte_identical_json(tmp_path):
    path = str(_small(tmp_path))
    assert _json([path]) == _json([path])


def test_other_seed_changes_the_run_level_never_the_step_level(tmp_path):
    path = str(_small(tmp_path))
    a, b = json.loads(_json([path, "--seed", "1"])), json.loads(_json([path, "--seed", "2"]))
    assert a["step"] == b["step"] and a["memory"] == b["memory"]
    # the whole run block (P50 days alone can coincide at 2 decimals over 5 replicas)
    assert a["run"] != b["run"]


def test_run_block_contract_and_consistency(tmp_path, capsys):
    assert main(["run", str(_small(tmp_path)), "--json", "-q"]) == 0
    out = json.loads(capsys.readouterr().out)
    run = out["run"]
    for key in ("days_p50", "days_p90", "gpu_hours", "cost_usd", "energy_mwh", "co2_tonnes",
                "interruptions_mean", "goodput"):
        assert isinstance(run[key], (int, float)), key
    assert run["replicas"] == 5 and run["unfinished_replicas"] == 0
    assert run["days_p90"] >= run["days_p50"] >= run["failure_free_days"]
    assert 0 < run["goodput"] < 1
    assert run["gpu_hours"] == pytest.approx(run["days_mean"] * 24 * 1024, rel=1e-5)
    # energy = GPU-hours x (700 W + the DGX H100 host's 575 W per GPU) x PUE 1.1; CO2 = MWh x 0.385
    assert run["host_power_w_per_gpu"] == 575
    assert run["energy_mwh"] == pytest.approx(run["gpu_hours"] * (700 + 575) * 1.1 / 1e6, rel=1e-5)
    assert run["co2_tonnes"] == pytest.approx(run["energy_mwh"] * 0.385, rel=1e-5)
    assert run["cost_usd"] == pytest.approx(run["gpu_hours"] * 2.0, rel=1e-5)
    lost = sum(run["loss_days"].values())
    assert run["days_mean"] == pytest.approx(run["failure_free_days"] + lost, rel=1e-4)
    assert out["estimate_6nd"]["gpu_hours"] > 0


def test_no_tokens_means_no_run_block(tmp_path, capsys):
    data = yaml.safe_load(_small(tmp_path).read_text())
    del data["training"]["tokens"]
    path = tmp_path / "no-tokens.yaml"
    path.write_text(yaml.safe_dump(data))
    assert main(["run", str(path), "--json", "-q"]) == 0
    assert json.loads(capsys.readouterr().out)["run"] is None


def test_no_failures_block_runs_failure_free(tmp_path, capsys):
    data = yaml.safe_load(_small(tmp_path).read_text())
    del data["failures"]
    path = tmp_path / "no-failures.yaml"
    path.write_text(yaml.safe_dump(data))
    assert main(["run", str(path), "--json", "-q"]) == 0
    run = json.loads(capsys.readouterr().out)["run"]
    assert run["interruptions_mean"] == 0 and run["days_p50"] == run["days_p90"]
    assert run["failures_modelled"] is False
    assert main(["run", str(path), "-q"]) == 0
    assert "no failures modelled" in capsys.readouterr().out


def test_doubling_the_failure_rate_costs_days(tmp_path, capsys):
    days = []
    for scale in (1, 2):
        assert main(["run", str(_small(tmp_path, rate_scale=scale)), "--json", "-q"]) == 0
        days.append(json.loads(capsys.readouterr().out)["run"]["days_mean"])
    assert days[1] > days[0]


def test_bundled_summary_names_the_run_figures_and_the_dominant_loss(capsys):
    assert main(["run", str(BUNDLED), "-q", "--replicas", "3"]) == 0
    out = capsys.readouterr().out
    for text in ("P50", "P90", "goodput", "interruptions", "GPU-hours", "cost", "MWh", "tCO2e", "6ND",
                 "dominated by"):
        assert text in out, text


def test_checkpoint_interval_command(tmp_path, capsys):
    path = _small(tmp_path)
    assert main(["checkpoint-interval", str(path), "-q", "--replicas", "2", "--points", "5"]) == 0
    out = capsys.readouterr().out
    assert "Daly's formula" in out and "<- best simulated" in out


def test_idle_power_lowers_energy_by_the_idle_hours(tmp_path, capsys):
    base = _small(tmp_path, rate_scale=4)
    data = yaml.safe_load(base.read_text())
    out = []
    for idle in (None, 100.0):
        if idle is not None:
            data["costs"]["idle_gpu_power_w"] = idle
        path = tmp_path / f"idle-{idle}.yaml"
        path.write_text(yaml.safe_dump(data))
        assert main(["run", str(path), "--json", "-q"]) == 0
        out.append(json.loads(capsys.readouterr().out)["run"])
    idle_gpu_h = (out[0]["loss_days"]["restart"] + out[0]["loss_days"]["spare_wait"]) * 24 * 1024
    expected = out[0]["energy_mwh"] - idle_gpu_h * (700 - 100) * 1.1 / 1e6
    assert out[1]["energy_mwh"] == pytest.approx(expected, rel=1e-4)
