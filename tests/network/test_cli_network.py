"""``trainsim collectives`` and ``trainsim placement``: output and exit codes."""

from __future__ import annotations

from pathlib import Path

from sim.cli import main

SCENARIO = Path(__file__).resolve().parents[2] / "scenarios" / "llama3-405b-16k-h100-tp8-pp16-dp128.yaml"


def test_collectives_prints_every_size_and_the_published_comparison(capsys):
    assert main(["collectives", "--topology", "dgx-h100-superpod", "--gpus", "8", "--gpus", "32",
                 "--op", "all-reduce"]) == 0
    out = capsys.readouterr()
    lines = out.out.splitlines()
    sizes = [line.split()[0] for line in lines if line.strip() and line.split()[0][-1] in "KMG"
             and line.split()[0][:-1].replace(".", "").isdigit()]
    assert sizes[0] == "1K" and sizes[-1] == "8G" and len(sizes) == 24
    assert "published nccl-tests figures" in out.out and "8x H100 NVLink4 ring" in out.out
    assert "dgx-a100" not in out.out  # only the requested topology's published rows
    assert "] 2/2" in out.err  # progress on stderr


def test_collectives_rejects_bad_input(capsys):
    assert main(["collectives", "--gpus", "512", "--op", "all-to-all"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "all-to-all is limited to 256 GPUs" in err


def test_placement_reports_the_tiers_each_group_crosses(capsys):
    assert main(["placement", str(SCENARIO)]) == 0
    out = capsys.readouterr().out
    rows = {line.split()[0]: line for line in out.splitlines()[2:]}
    assert "stays in its scale-up domain" in rows["tp"]
    # Llama 3's order [TP, CP, PP, DP]: the pipeline stays inside a pod, data parallelism spans the pods
    assert rows["dp"].endswith("NIC, rack uplink, pod uplink")
    assert "pod uplink" not in rows["pp"]


def test_cli_names_match_the_enums_without_importing_them():
    from sim.cli import network
    from sim.costs.collectives import Collective
    from sim.network.flows import Algorithm

    assert tuple(a.value for a in Algorithm) == network.ALGORITHMS
    assert {c.value for c in Collective} == set(network.OPS.values())
