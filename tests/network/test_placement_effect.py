"""Placement changes the simulated step where it should: a TP group spanning two nodes is slower than
one inside a node by what the link bandwidths give."""

from __future__ import annotations

import pytest

from sim.costs.collectives import Collective, GroupPath, collective_time
from sim.engine.simulate import simulate_step
from sim.specs.scenario import scenario_from_mapping

MODEL = {"num_layers": 4, "hidden_size": 4096, "ffn_hidden_size": 16384, "num_attention_heads": 32,
         "num_kv_heads": 32, "vocab_size": 32000, "seq_len": 2048}
NVLINK, NIC = 300e9, 25e9  # DGX A100: NVLink3 per direction, one 200 Gb/s NIC per GPU
RING_UP, RING_OUT = 0.78, 0.96  # efficiency.yaml collectives (ampere ring; ring flow leaving a node)


def a100(order: str):
    return scenario_from_mapping({
        "model": MODEL, "cluster": {"gpu": "A100-SXM-80GB", "num_gpus": 16, "topology": "dgx-a100-superpod"},
        "parallelism": {"tensor": 8, "pipeline": 2, "placement_order": order, "zero_stage": 0},
        "training": {"global_batch_size": 8}})


def tp_path(busbw: float, nodes: int) -> GroupPath:
    """A TP group's path from the link bandwidths alone (the figures the test expects)."""
    return GroupPath(n=8, busbw=busbw, all_reduce_busbw=busbw, p2p_bw=0.0, intra_latency_s=1.9e-6,
                     inter_latency_s=4.0e-6 if nodes > 1 else 1.9e-6, base_latency_s=14e-6, nodes=nodes,
                     scale_out=nodes > 1, sm_contention=0.0)


def test_tp_across_two_nodes_is_slower_by_the_link_bandwidths():
    inside = simulate_step(a100("tp,cp,dp,pp"))  # TP on one node's NVSwitch, PP across the two nodes
    across = simulate_step(a100("pp,tp,cp,dp"))  # PP pairs side by side, TP over 4 GPUs of each node
    # inside: ring on NVLink. across: 4 ring channels, each leaving each node once on its own NIC;
    # both TP groups do so at once, so each of a node's 8 NICs carries one flow: busbw = 4 x 25 x 0.96
    size = 2.0 * 2048 * 4096  # the layer's all-gather / reduce-scatter buffer (sequence parallel)

    def per_layer(path: GroupPath) -> float:
        return 2 * sum(collective_time(op, size, path) for op in (Collective.ALL_GATHER, Collective.REDUCE_SCATTER))

    expected = per_layer(tp_path(4 * NIC * RING_OUT, 2)) / per_layer(tp_path(NVLINK * RING_UP, 1))
    assert expected > 2
    ratio = across.breakdown_s["tp_comm"] / inside.breakdown_s["tp_comm"]
    assert ratio == pytest.approx(expected, rel=1e-6)
    assert across.step_time_s > inside.step_time_s + 0.9 * (across.breakdown_s["tp_comm"]
                                                            - inside.breakdown_s["tp_comm"])
