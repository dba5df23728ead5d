"""Topologies and small fabrics for the network tests."""

from __future__ import annotations

from sim.specs._schema import build
from sim.specs.topology import TopologySpec, load_topology

SUPERPOD = load_topology("dgx-h100-superpod")
A100_POD = load_topology("dgx-a100-superpod")
META = load_topology("meta-llama3-24k")
NVL72 = load_topology("gb200-nvl72")
PCIE = load_topology("pcie-h100")


def one_nic_topology(gpus_per_node: int = 2, nic_gbit: float = 400, leaf_span: int = 64) -> TopologySpec:
    """Nodes whose GPUs share ONE NIC, under a single non-blocking leaf (contention tests)."""
    return build(TopologySpec, {
        "name": "one-nic", "node": {"gpus": gpus_per_node, "nics": 1, "nic_bandwidth_gbit_s": nic_gbit,
                                    "scale_up": {"kind": "nvswitch", "bandwidth_gbyte_s_per_gpu": 450,
                                                 "latency_us": 1.9, "domain_gpus": gpus_per_node}},
        "scale_out": {"rail_optimized": False, "latency_us": 4.0,
                      "tiers": [{"name": "leaf", "radix": 64, "span_gpus": leaf_span}]}}, "topology")
