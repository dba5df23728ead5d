"""TP communication overlap needs each TP group inside one NVLink domain (sim/specs/scenario.py
``tp_group_in_nvlink_domain``; catalog/frameworks.yaml tp_overlap source: TE userbuffers and PyTorch symmetric
memory map peer memory over NVLink only)."""

from __future__ import annotations

import pytest

from sim.errors import ScenarioError
from sim.specs.scenario import Scenario, scenario_from_mapping

#: 144 heads (query and KV, 64 wide): TP 8, 16, 24, 36, 72 and 144 all divide them.
WIDE_MODEL = {"num_layers": 4, "hidden_size": 9216, "ffn_hidden_size": 36864, "num_attention_heads": 144,
              "num_kv_heads": 144, "vocab_size": 32768, "seq_len": 4096}


def scenario(gpu: str, topology: str, num_gpus: int, tensor: int, overlap: bool = True,
             order: str = "tp,cp,dp,pp") -> Scenario:
    return scenario_from_mapping({
        "name": "tp-overlap-domain", "model": dict(WIDE_MODEL),
        "cluster": {"gpu": gpu, "num_gpus": num_gpus, "topology": topology},
        "parallelism": {"tensor": tensor, "data": num_gpus // tensor, "sequence_parallel": True,
                        "tp_comm_overlap": overlap, "placement_order": order},
        "training": {"global_batch_size": 4 * num_gpus // tensor, "tokens": 1e9}})


@pytest.mark.parametrize(("gpu", "topology", "num_gpus", "tensor"), [
    ("H100-SXM-80GB", "dgx-h100-superpod", 16, 8),   # TP inside one DGX node
    ("H100-SXM-80GB", "dgx-h100-superpod", 8, 8),
    ("A100-SXM-80GB", "dgx-a100-superpod", 32, 4),
    ("GB200", "gb200-nvl72", 144, 72),              # a whole NVL72 rack (multi-node NVLink, TE 2.2+)
    ("GB200", "gb200-nvl72", 144, 36),
    ("GB200", "gb200-nvl72", 64, 16),                # the whole job inside one rack
])
def test_overlap_accepted_inside_the_nvlink_domain(gpu, topology, num_gpus, tensor):
    assert scenario(gpu, topology, num_gpus, tensor).parallelism.tp_comm_overlap


@pytest.mark.parametrize(("gpu", "topology", "num_gpus", "tensor", "domain"), [
    ("H100-SXM-80GB", "dgx-h100-superpod", 16, 16, 8),   # TP across two DGX H100 nodes (over InfiniBand)
    ("H100-SXM-80GB", "dgx-h100-superpod", 48, 24, 8),
    ("GB200", "gb200-nvl72", 144, 16, 72),                # 72 / 16: the fifth TP group straddles two racks
    ("GB200", "gb200-nvl72", 288, 144, 72),
])
def test_overlap_rejected_beyond_the_nvlink_domain(gpu, topology, num_gpus, tensor, domain):
    with pytest.raises(ScenarioError) as err:
        scenario(gpu, topology, num_gpus, tensor)
    issues = [i for i in err.value.issues if i.path == "parallelism.tp_comm_overlap"]
    assert len(issues) == 1, err.value.issues
    text = str(issues[0])
    assert f"tensor {tensor} does not fit the topology's {domain}-GPU scale-up domain" in text
    assert "TransformerEngine issue #1071" in text and "\n" not in text
    # the same layout without the overlap is valid: the rule is about the overlap, not the TP degree
    assert not scenario(gpu, topology, num_gpus, tensor, overlap=False).parallelism.tp_comm_overlap


@pytest.mark.parametrize(("order", "accepted"), [
    ("dp,tp,cp,pp", False),  # DP 4 inside TP: a TP4 group takes every 4th GPU of 16, across two nodes
    ("cp,tp,dp,pp", True),   # CP 1 inside TP: TP still on consecutive GPUs
])
def test_placement_order_spreads_the_tp_group(order, accepted):
    """TP not innermost: each TP group strides over the GPUs of the axes laid inside it (here DP 4 x TP 4 = 16 GPUs
    for one group's span, two DGX H100 nodes)."""
    if accepted:
        assert scenario("H100-SXM-80GB", "dgx-h100-superpod", 16, 4, order=order).parallelism.tp_comm_overlap
        return
    with pytest.raises(ScenarioError) as err:
        scenario("H100-SXM-80GB", "dgx-h100-superpod", 16, 4, order=order)
    [issue] = [i for i in err.value.issues if i.path == "parallelism.tp_comm_overlap"]
    assert "tensor 4 laid every 4 GPUs (placement_order) does not fit the topology's 8-GPU" in str(issue)
