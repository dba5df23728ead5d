"""Full fidelity (sim/engine/full.py) against the symmetric reduction (sim/engine/step.py): on layouts up to
256 GPUs, where every group of a kind is placed alike, the step times agree within 3 %."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import simpy

from sim.engine.fabric import FabricFlows
from sim.engine.full import FullTransport
from sim.engine.simulate import simulate_step
from sim.engine.step import StepSimulation
from sim.engine.streams import Channel, Timeline
from sim.errors import InfeasibleLayout
from sim.specs.enums import Fidelity
from sim.specs.scenario import Scenario, scenario_from_mapping

MODEL = {"num_layers": 8, "hidden_size": 2048, "ffn_hidden_size": 8192, "num_attention_heads": 16,
         "num_kv_heads": 8, "vocab_size": 32000, "seq_len": 2048}
#: Two 2-GPU nodes share one NIC: the DP rings of both TP ranks meet on it.
ONE_NIC = {"name": "one-nic", "node": {"gpus": 2, "nics": 1, "nic_bandwidth_gbit_s": 200,
                                      "scale_up": {"kind": "nvswitch", "bandwidth_gbyte_s_per_gpu": 300,
                                                   "latency_us": 1.9, "domain_gpus": 2}},
           "scale_out": {"rail_optimized": False, "latency_us": 4.0,
                         "tiers": [{"name": "leaf", "radix": 64, "span_gpus": 64}]}}

LAYOUTS = {
    "h100-tp8-pp2-dp4": ("dgx-h100-superpod", "H100-SXM-80GB", {"tensor": 8, "pipeline": 2, "data": 4}),
    "h100-tp4-pp2-dp8-zero0": ("dgx-h100-superpod", "H100-SXM-80GB",
                               {"tensor": 4, "pipeline": 2, "data": 8, "zero_stage": 0}),
    "h100-tp2-pp4-dp8-interleaved": ("dgx-h100-superpod", "H100-SXM-80GB",
                                     {"tensor": 2, "pipeline": 4, "data": 8, "virtual_pipeline": 2,
                                      "schedule": "interleaved-1f1b"}),
    "h100-tp8-dp8-zero3": ("dgx-h100-superpod", "H100-SXM-80GB", {"tensor": 8, "data": 8, "zero_stage": 3}),
    "h100-tp8-pp4-dp8": ("dgx-h100-superpod", "H100-SXM-80GB", {"tensor": 8, "pipeline": 4, "data": 8}),
    "h100-tp4-cp2-dp8": ("dgx-h100-superpod", "H100-SXM-80GB", {"tensor": 4, "context": 2, "data": 8}),
    "h100-tp8-pp2-dp4-dp-outermost": ("dgx-h100-superpod", "H100-SXM-80GB",
                                      {"tensor": 8, "pipeline": 2, "data": 4, "placement_order": "tp,cp,pp,dp"}),
    "a100-tp8-pp2-dp8-gpipe": ("dgx-a100-superpod", "A100-SXM-80GB",
                               {"tensor": 8, "pipeline": 2, "data": 8, "schedule": "gpipe"}),
    "meta-tp8-pp2-dp16": ("meta-llama3-24k", "H100-SXM-80GB", {"tensor": 8, "pipeline": 2, "data": 16}),
    "gb200-tp4-pp2-dp18": ("gb200-nvl72", "GB200", {"tensor": 4, "pipeline": 2, "data": 18}),
    "pcie-tp2-pp2-dp8": ("pcie-h100", "H100-PCIe-80GB", {"tensor": 2, "pipeline": 2, "data": 8}),
    "shared-nic-tp2-dp8": (ONE_NIC, "A100-SXM-80GB", {"tensor": 2, "data": 8, "zero_stage": 0}),
}


def make(topology, gpu: str, par: dict, fidelity: Fidelity = Fidelity.SYMMETRIC) -> Scenario:
    par = {"tensor": 1, "pipeline": 1, "context": 1, "data": 1, **par}
    n = par["tensor"] * par["pipeline"] * par["context"] * par["data"]
    return scenario_from_mapping({
        "model": MODEL, "cluster": {"gpu": gpu, "num_gpus": n, "topology": topology},
        "parallelism": par, "training": {"global_batch_size": 4 * par["data"] * par["pipeline"]},
        "simulation": {"fidelity": fidelity.value}})


@pytest.mark.parametrize("name", list(LAYOUTS))
def test_symmetric_and_full_agree_within_3_percent(name):
    topology, gpu, par = LAYOUTS[name]
    full = simulate_step(make(topology, gpu, par, Fidelity.FULL), record=True)
    symmetric = simulate_step(make(topology, gpu, par))
    assert full.step_time_s == pytest.approx(symmetric.step_time_s, rel=0.03)
    n = full.scenario.cluster.num_gpus
    assert {i.rank for i in full.timeline.intervals} == set(range(n))  # every rank simulated


def test_full_fidelity_sees_an_asymmetric_placement():
    # 128 GPUs in 72-GPU NVLink domains: stage 0 (GPUs 0-63) sits in domain 0, but stage 1 (GPUs 64-127)
    # straddles both, so its DP rings leave the domain over the NICs. The symmetric reduction gives every
    # stage the slowest group's path; full fidelity gives stage 0 its own NVLink rings and is faster.
    par = {"tensor": 4, "pipeline": 2, "data": 16}
    full = FullTransport()
    result = StepSimulation(make("gb200-nvl72", "GB200", par, Fidelity.FULL), transport=full).run()
    symmetric = StepSimulation(make("gb200-nvl72", "GB200", par)).run()
    assert full.fabric_flows.solves > 0
    stage0 = [i for i in result.timeline.intervals if i.stream == "dp_reduce" and i.rank < 64]
    stage1 = [i for i in result.timeline.intervals if i.stream == "dp_reduce" and i.rank >= 64]
    assert max(i.end - i.start for i in stage0) < 0.5 * max(i.end - i.start for i in stage1)
    assert result.step_time_s < symmetric.step_time_s


def _figures(s: Scenario, transport: FullTransport) -> tuple:
    r = StepSimulation(s, transport=transport).run()
    timeline = sorted((i.rank, i.stream, i.name, i.start, i.end) for i in r.timeline.intervals)
    return r.step_time_s, r.breakdown_s, r.stage_compute_s, r.bottleneck_stage, timeline


@pytest.mark.parametrize(("name", "classes"), [
    ("h100-tp8-pp2-dp4", 2), ("h100-tp2-pp4-dp8-interleaved", 4), ("h100-tp8-dp8-zero3", 1),
    ("gb200-tp4-pp2-dp18", None), ("shared-nic-tp2-dp8", 1), ("meta-tp8-pp2-dp16", None)])
def test_alike_ranks_simulated_once_give_every_rank_its_exact_figures(name, classes):
    # one process per class of alike ranks against every rank its own: the same figures and timeline to the
    # bit; on the symmetric placements one class per pipeline stage
    s = make(*LAYOUTS[name], Fidelity.FULL)
    reduced = FullTransport()
    assert _figures(s, reduced) == _figures(s, FullTransport(symmetry=False))
    if classes is not None:
        assert len(reduced.classes) == classes


def test_an_asymmetric_placement_keeps_its_ranks_apart():
    # 128 GPUs in 72-GPU NVLink domains (see above): stage 1's DP groups straddle two domains, so its ranks
    # split into classes, and the reduced run still equals the reference
    s = make("gb200-nvl72", "GB200", {"tensor": 4, "pipeline": 2, "data": 16}, Fidelity.FULL)
    reduced = FullTransport()
    assert _figures(s, reduced) == _figures(s, FullTransport(symmetry=False))
    assert 2 < len(reduced.classes) < 128


def test_full_fidelity_refuses_huge_clusters():
    s = make("dgx-h100-superpod", "H100-SXM-80GB", {"tensor": 8, "data": 256}, Fidelity.FULL)
    with pytest.raises(InfeasibleLayout, match="fidelity: symmetric"):
        simulate_step(s)


def test_full_fidelity_is_deterministic():
    topology, gpu, par = LAYOUTS["h100-tp8-pp2-dp4"]
    s = make(topology, gpu, par, Fidelity.FULL)
    a, b = simulate_step(s), simulate_step(dataclasses.replace(s))
    assert a.step_time_s == b.step_time_s and a.breakdown_s == b.breakdown_s


def _finish_times(env, events) -> list[float]:
    times = [None] * len(events)

    def watch(i, event):
        yield event
        times[i] = env.now

    for i, event in enumerate(events):
        env.process(watch(i, event))
    env.run()
    return times


def test_fabric_resolves_when_flows_start_and_finish():
    # one 10 B/s link. Flow a (30 B) starts at 0; flow b (10 B) at t=1: a has 20 B left, both at 5 B/s;
    # b ends at t=3 (a has 10 B left), then a alone at 10 B/s ends at t=4
    env = simpy.Environment()
    fabric = FabricFlows(env, np.array([10.0]))
    done = {}

    def start(name, delay, nbytes):
        yield env.timeout(delay)
        yield fabric.transfer(np.array([[0]]), np.array([nbytes]))
        done[name] = env.now

    env.process(start("a", 0.0, 30.0))
    env.process(start("b", 1.0, 10.0))
    env.run()
    assert done == pytest.approx({"a": 4.0, "b": 3.0})
    assert fabric.solves == 3  # a starts, b starts, b ends


def test_channel_runs_its_transfers_in_order_latency_then_flows():
    # one 10 B/s link; two 10 B sends queued at t=0 with 1 s latency each: the first holds the channel
    # 0..2 (latency, then 1 s of flow), the second 2..4
    env = simpy.Environment()
    fabric = FabricFlows(env, np.array([10.0]))
    channel = Channel(env, 0, "pp_send_fwd", Timeline(False))
    done = [env.event(), env.event()]
    for event in done:
        channel.submit("send", 1.0, lambda: fabric.transfer(np.array([[0]]), np.array([10.0])), event)
    assert _finish_times(env, done) == pytest.approx([2.0, 4.0])
    assert [event.value for event in done] == [pytest.approx((0.0, 2.0)), pytest.approx((2.0, 4.0))]
    assert channel.busy_until(4.0) == pytest.approx(4.0)
