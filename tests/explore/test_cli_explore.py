"""``trainsim search / size / sweep``: tables on stdout, clear errors with exit status 2."""

from __future__ import annotations

import csv

import pytest
import yaml

from sim.analysis.explore.search import OBJECTIVES
from sim.analysis.explore.sweep import run_sweep
from sim.cli import main
from sim.cli.explore import OBJECTIVE_CHOICES
from sim.errors import TrainsimError
from sim.report.tables import sweep_results
from sim.specs.sweep import load_sweep


def test_objective_choices_are_the_searchs():
    assert tuple(OBJECTIVES) == OBJECTIVE_CHOICES


def test_search_prints_counts_and_the_ranked_table(tiny_file, tmp_path, capsys):
    out = tmp_path / "all.csv"
    code = main(["search", str(tiny_file()), "--micro-batches", "1,2", "--zero", "0,1", "--recompute", "none,full",
                 "--schedules", "1f1b,interleaved-1f1b", "--max-virtual", "2", "--simulate", "4", "--top", "3",
                 "--tp-overlap", "off", "--workers", "1", "-q", "-o", str(out)])
    text = capsys.readouterr().out
    assert code == 0
    assert "layouts enumerated         224" in text and "; TP overlap off;" in text
    assert "rejected by the rules      104" in text
    # the 4 best estimates and the scenario's own layout (pure DP 4), which the space holds
    assert "simulated                    5  the best pre-screen estimates and the scenario's own layout" in text
    assert "Spearman rank correlation" in text
    ranked = [line for line in text.splitlines() if line[:4].strip().isdigit()]
    own = [line for line in ranked if line[4] == "*"]
    assert len(own) == 1 and "TP1 PP1 CP1 DP4" in own[0]
    assert len(ranked) == 3 + (int(own[0][:4]) > 3)
    with out.open() as fh:
        assert len(list(csv.DictReader(fh))) == 120


def test_search_fix_pins_dimensions(tiny_file, tmp_path, capsys):
    out = tmp_path / "all.csv"
    code = main(["search", str(tiny_file()), "--fix", "tp=2,zero=1,recompute=full", "--pp", "1,2",
                 "--simulate", "3", "--workers", "1", "-q", "-o", str(out)])
    assert code == 0
    with out.open() as fh:
        rows = list(csv.DictReader(fh))
    assert rows and {(r["tensor"], r["zero_stage"], r["recompute"]) for r in rows} == {("2", "1", "full")}
    assert {r["pipeline"] for r in rows} <= {"1", "2"}
    assert {r["tp_comm_overlap"] for r in rows} == {"False", "True"}  # TP 2: overlap tried both ways
    text = capsys.readouterr().out
    assert "* the scenario's own layout" in text  # pure DP: outside the pinned space, simulated anyway


def test_search_varies_and_pins_ep_and_etp_on_moe_models(tiny_file, tmp_path, capsys):
    moe = {"num_experts": 8, "top_k": 2, "expert_ffn_hidden_size": 128}
    path = tiny_file(num_gpus=8, global_batch=16)
    mapping = yaml.safe_load(path.read_text())
    mapping["model"]["moe"] = moe
    path.write_text(yaml.safe_dump(mapping))
    out = tmp_path / "all.csv"
    assert main(["search", str(path), "--fix", "zero=1,recompute=none,mb=1", "--simulate", "4", "--workers", "1",
                 "-q", "-o", str(out)]) == 0
    with out.open() as fh:
        rows = list(csv.DictReader(fh))
    assert {r["expert"] for r in rows} == {"1", "2", "4", "8"} and {r["expert_tensor"] for r in rows} >= {"1", "2"}
    text = capsys.readouterr().out
    assert "expert mesh ETP x EP x EDP" in text and " EP" in text and "ETP" in text
    assert main(["search", str(path), "--fix", "ep=4,etp=1", "--tp", "2", "--simulate", "2", "--workers", "1", "-q",
                 "-o", str(out)]) == 0
    with out.open() as fh:
        rows = list(csv.DictReader(fh))
    assert rows and {(r["tensor"], r["expert"], r["expert_tensor"]) for r in rows} == {("2", "4", "1")}
    capsys.readouterr()
    assert main(["search", str(tiny_file()), "--ep", "2", "-q"]) == 2  # dense model
    assert "--ep: the model is dense" in capsys.readouterr().err


def test_search_bad_arguments_exit_2(tiny_file, capsys):
    assert main(["search", str(tiny_file()), "--fix", "tp=2/4", "-q"]) == 2
    assert "--fix" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exit_:  # an argparse error: usage line, exit 2
        main(["search", str(tiny_file()), "--fix", "tp=1,2", "-q"])
    assert exit_.value.code == 2
    assert "KEY=VALUE" in capsys.readouterr().err
    assert main(["search", str(tiny_file()), "--zero", "5", "-q"]) == 2
    assert "stages are 0, 1, 2, 3" in capsys.readouterr().err


def test_size_with_a_preset_needs_batch_and_gpu(capsys):
    assert main(["size", "llama3-8b", "--tokens", "1e12", "--deadline-days", "10"]) == 2
    assert "--global-batch" in capsys.readouterr().err
    assert main(["size", "no-such-model", "--tokens", "1e12", "--deadline-days", "10"]) == 2
    assert "neither a scenario file nor a model preset" in capsys.readouterr().err


def test_size_prints_the_curve_and_the_choice(tiny_file, capsys):
    code = main(["size", str(tiny_file(num_gpus=8, global_batch=64)), "--tokens", "1e12", "--deadline-days", "20",
                 "--counts", "8,16,32,64", "--workers", "1", "-q"])
    text = capsys.readouterr().out
    assert code == 0
    assert "chosen: 32 x H100-SXM-80GB" in text
    assert "next smaller count searched: 16 GPUs" in text and "misses the goal" in text


def test_sweep_unknown_field_is_one_line_per_problem(tiny_file, tmp_path, capsys):
    tiny_file("base.yaml")
    path = tmp_path / "s.yaml"
    path.write_text(yaml.safe_dump({"base": "base.yaml", "grid": {"checkpoint.intervl": [1], "cluster.gpus": [8]}}))
    assert main(["sweep", str(path), "-q"]) == 2
    err = capsys.readouterr().err.splitlines()
    assert err[1].strip().startswith("grid.checkpoint.intervl: unknown field 'intervl'")
    assert err[2].strip().startswith("grid.cluster.gpus: unknown field 'gpus' under cluster")


def test_sweep_prints_the_table_and_resumes(tiny_file, tmp_path, capsys):
    tiny_file("base.yaml")
    path = tmp_path / "s.yaml"
    path.write_text(yaml.safe_dump({"base": "base.yaml", "grid": {"parallelism.zero_stage": [0, 1, 2]}}))
    out = tmp_path / "r.csv"
    assert main(["sweep", str(path), "-o", str(out), "--workers", "1", "-q"]) == 0
    assert "3 points: 0 already in" in capsys.readouterr().out
    assert main(["sweep", str(path), "-o", str(out), "--workers", "1", "-q"]) == 0
    assert "3 points: 3 already in" in capsys.readouterr().out


def test_sweep_dask_address_unreachable_is_a_clear_error(tiny_file, tmp_path):
    tiny_file("base.yaml")
    path = tmp_path / "s.yaml"
    path.write_text(yaml.safe_dump({"base": "base.yaml", "grid": {"parallelism.zero_stage": [0]}}))
    with pytest.raises(TrainsimError, match="cannot reach the Dask scheduler"):
        sweep = load_sweep(path)
        run_sweep(sweep, sweep_results(sweep, tmp_path / "r.csv"), dask="tcp://127.0.0.1:1", connect_timeout_s=0.5)


def test_size_from_a_preset_builds_the_job_from_the_options(capsys):
    code = main(["size", "llama3-8b", "--tokens", "1e11", "--deadline-days", "1e9", "--global-batch", "64",
                 "--gpu", "H100-SXM-80GB", "--counts", "16", "--simulate", "2", "--workers", "1", "-q"])
    text = capsys.readouterr().out
    assert code == 0
    assert text.startswith("llama3-8b: 1e+11 tokens, global batch 64 x 8,192") and "no failures" in text
    assert "chosen: 16 x H100-SXM-80GB" in text


def test_size_gpu_without_a_default_fabric_names_the_fix(capsys):
    code = main(["size", "llama3-8b", "--tokens", "1e11", "--deadline-days", "10", "--global-batch", "64",
                 "--gpu", "MI300X"])
    assert code == 2
    assert "--gpu MI300X:TOPOLOGY" in capsys.readouterr().err
