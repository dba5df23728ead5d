"""`trainsim run --trace/--plot` and `trainsim report`."""

from __future__ import annotations

import json
from pathlib import Path

import yaml

from sim.cli import main

from .conftest import MODEL, assert_not_empty
from .test_trace import format_problems


def write_scenario(tmp_path, **training) -> str:
    data = {"name": "small-cli", "model": MODEL,
            "cluster": {"gpu": "H100-SXM-80GB", "num_gpus": 8, "topology": "dgx-h100-superpod"},
            "parallelism": {"tensor": 2, "pipeline": 2, "data": 2, "zero_stage": 1},
            "training": {"global_batch_size": 8, **training}}
    path = tmp_path / "small.yaml"
    path.write_text(yaml.safe_dump(data))
    return str(path)


def test_run_writes_trace_and_plots_and_keeps_stdout_json(tmp_path, capsys):
    scenario = write_scenario(tmp_path)
    trace, plots = tmp_path / "t" / "step.json", tmp_path / "plots"
    assert main(["run", scenario, "--json", "--trace", str(trace), "--plot", str(plots)]) == 0
    captured = capsys.readouterr()
    result = json.loads(captured.out)  # stdout is the JSON object only
    events = json.loads(trace.read_text())["traceEvents"]
    end = max(e["ts"] + e["dur"] for e in events if e["ph"] == "X") / 1e6
    assert abs(end - result["step"]["step_time_s"]) <= 1e-5 * end
    assert sorted(p.name for p in plots.iterdir()) == ["memory_breakdown.png", "pipeline_timeline.png",
                                                      "step_breakdown.png"]
    for png in plots.iterdir():
        assert_not_empty(png)
    assert f"wrote {trace}" in captured.err


def test_run_with_tokens_writes_the_run_trace_and_run_plots(tmp_path, capsys):
    scenario = write_scenario(tmp_path, tokens=2e9)
    data = yaml.safe_load(Path(scenario).read_text())
    data.update(failures={"restart_minutes": 10, "inject_hours": [1.0]}, checkpoint={"interval_minutes": 30},
                simulation={"monte_carlo": 3})
    Path(scenario).write_text(yaml.safe_dump(data))
    trace, plots = tmp_path / "step.json", tmp_path / "plots"
    assert main(["run", scenario, "--json", "--trace", str(trace), "--plot", str(plots)]) == 0
    result = json.loads(capsys.readouterr().out)
    run_trace = json.loads((tmp_path / "step.run.json").read_text())
    assert format_problems(run_trace) == []
    kinds = {e["name"] for e in run_trace["traceEvents"] if e["ph"] in ("X", "i")}
    assert {"train", "checkpoint", "failure", "restart"} <= kinds
    assert run_trace["otherData"]["replicas"] == result["run"]["replicas"] == 3
    assert {"goodput_over_time.png", "days_distribution.png"} <= {p.name for p in plots.iterdir()}
    for png in plots.iterdir():
        assert_not_empty(png)


def test_trace_of_an_out_of_memory_layout_is_a_note_not_a_file(tmp_path, capsys):
    scenario = write_scenario(tmp_path, global_batch_size=2048)
    data = yaml.safe_load(Path(scenario).read_text())
    data["parallelism"].update(micro_batch_size=512, activation_recompute="none")
    Path(scenario).write_text(yaml.safe_dump(data))
    trace = tmp_path / "step.json"
    assert main(["run", scenario, "--trace", str(trace)]) == 0
    assert "OUT OF MEMORY" in capsys.readouterr().out
    assert not trace.exists()


def test_report_command(tmp_path, capsys):
    out = tmp_path / "report.html"
    assert main(["report", write_scenario(tmp_path), "-o", str(out)]) == 0
    assert str(out) in capsys.readouterr().out
    page = out.read_text()
    assert "<h1>small-cli</h1>" in page and "<h2>Assumptions</h2>" in page
    assert "<h2>Training run</h2>" not in page  # no training.tokens: no run level


def test_report_command_with_a_run_level(tmp_path, capsys):
    out = tmp_path / "report.html"
    assert main(["report", write_scenario(tmp_path, tokens=1e9), "-o", str(out), "--replicas", "2"]) == 0
    page = out.read_text()
    assert "<h2>Training run</h2>" in page and "Goodput over time" in page and "days over the Monte Carlo" in page


def test_report_of_a_bad_scenario_exits_2(tmp_path, capsys):
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump({"model": MODEL, "cluster": {"gpu": "H100-SXM-80GB", "num_gpus": 8,
                                                                "topology": "dgx-h100-superpod"},
                                    "parallelism": {"tensor": 3, "pipeline": 1, "data": 8},
                                    "training": {"global_batch_size": 8}}))
    assert main(["report", str(path), "-o", str(tmp_path / "r.html")]) == 2
    assert "parallelism.tensor" in capsys.readouterr().err
    assert not (tmp_path / "r.html").exists()


#: A tiny model (4 layers, hidden 256) so that search and size simulate in milliseconds.
TINY = {"name": "tiny", "model": {"num_layers": 4, "hidden_size": 256, "ffn_hidden_size": 1024,
                                  "num_attention_heads": 4, "num_kv_heads": 2, "vocab_size": 1024, "seq_len": 256},
        "cluster": {"gpu": "H100-SXM-80GB", "num_gpus": 8, "topology": "dgx-h100-superpod"},
        "parallelism": {"data": 8}, "training": {"global_batch_size": 64, "tokens": 1e9}}


def test_search_plot_compares_the_ranked_layouts(tmp_path, capsys):
    path = tmp_path / "tiny.yaml"
    path.write_text(yaml.safe_dump(TINY))
    assert main(["search", str(path), "--micro-batches", "1", "--zero", "1", "--recompute", "none",
                 "--schedules", "1f1b", "--simulate", "3", "--top", "3", "--workers", "1", "-q",
                 "--plot", str(tmp_path / "plots")]) == 0
    assert f"wrote {tmp_path / 'plots' / 'layouts.png'}" in capsys.readouterr().out
    assert_not_empty(tmp_path / "plots" / "layouts.png")


def test_size_plot_draws_days_and_cost_vs_gpus(tmp_path, capsys):
    path = tmp_path / "tiny.yaml"
    path.write_text(yaml.safe_dump(TINY))
    assert main(["size", str(path), "--tokens", "1e12", "--deadline-days", "20", "--counts", "8,16,32",
                 "--simulate", "2", "--workers", "1", "-q", "--plot", str(tmp_path / "plots")]) == 0
    png = tmp_path / "plots" / "size_H100-SXM-80GB.png"
    assert f"wrote {png}" in capsys.readouterr().out
    assert_not_empty(png)
