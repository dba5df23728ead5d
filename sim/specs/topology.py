"""The fabric: one node type (scale-up domain, NICs) and the scale-out tiers (spec/topology.md)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from sim import catalog
from sim.catalog.yamlio import YamlError, read_yaml_mapping
from sim.errors import Issue, ScenarioError
from sim.specs._schema import Spec, build, spec_field
from sim.specs.enums import ScaleUpKind


@dataclass(frozen=True, slots=True, kw_only=True)
class ScaleUpSpec(Spec):
    """The NVLink/NVSwitch (or xGMI, PCIe) domain inside a node or rack."""

    kind: ScaleUpKind = spec_field(doc="nvswitch | nvlink-mesh | pcie")
    bandwidth_gbyte_s_per_gpu: float = spec_field(doc="per GPU, per direction, GB/s", gt=0, le=1e12)
    latency_us: float = spec_field(1.0, doc="per-hop latency, us", ge=0, le=1e6)
    domain_gpus: int = spec_field(doc="GPUs sharing one scale-up domain", ge=1)
    nvls: bool = spec_field(False, doc="NVSwitch in-network reduction (NVLS) available")


@dataclass(frozen=True, slots=True, kw_only=True)
class NodeSpec(Spec):
    """One server (or compute tray group) and its scale-out NICs."""

    gpus: int = spec_field(doc="GPUs per node", ge=1)
    scale_up: ScaleUpSpec = spec_field(doc="scale-up domain")
    nics: int = spec_field(doc="scale-out NICs per node", ge=0)
    nic_bandwidth_gbit_s: float = spec_field(doc="per NIC, per direction, Gb/s", ge=0, le=1e15)


@dataclass(frozen=True, slots=True, kw_only=True)
class TierSpec(Spec):
    """One switch tier of the scale-out fabric, leaf first."""

    name: str = spec_field(doc="tier name (leaf, spine, core...)")
    radix: int = spec_field(doc="switch ports", ge=2)
    oversubscription: float = spec_field(1.0, doc="down:up bandwidth ratio of this tier's uplinks", ge=1, le=1e4)
    latency_us: float = spec_field(0.5, doc="switch traversal latency, us", ge=0, le=1e6)
    span_gpus: int | None = spec_field(None, doc="GPUs under one switch group of this tier", ge=1)


@dataclass(frozen=True, slots=True, kw_only=True)
class ScaleOutSpec(Spec):
    """The network between scale-up domains."""

    kind: str = spec_field("fat-tree", doc="fat-tree | clos | torus ...")
    rail_optimized: bool = spec_field(True, doc="NIC i of every node on rail (leaf group) i")
    tiers: tuple[TierSpec, ...] = spec_field((), doc="leaf first")
    latency_us: float = spec_field(2.0, doc="end-to-end base latency of a transfer, us", ge=0, le=1e6)
    sharp: bool = spec_field(False, doc="in-network reduction (SHARP) in the switches")


@dataclass(frozen=True, slots=True, kw_only=True)
class TopologySpec(Spec):
    """A node type plus the fabric joining the nodes."""

    name: str = spec_field(doc="topology name")
    node: NodeSpec = spec_field(doc="the node type")
    scale_out: ScaleOutSpec = spec_field(doc="the scale-out fabric")
    source: str | None = spec_field(None, doc="where the figures come from")
    notes: str | None = spec_field(None, doc="free text")

    @property
    def domain_gpus(self) -> int:
        return self.node.scale_up.domain_gpus

    def _issues(self) -> list[Issue]:
        up = self.node.scale_up.domain_gpus
        if up % self.node.gpus and self.node.gpus % up:
            return [Issue("node.scale_up.domain_gpus",
                          f"{up} must be a multiple or a divisor of node.gpus ({self.node.gpus})")]
        # a tier's switch group holds whole units of the level below it: nodes, then the previous tier's
        # groups (not NVLink domains: an NVL72 rack's trays reach the fabric through their own NICs)
        issues, below = [], self.node.gpus
        for k, tier in enumerate(self.scale_out.tiers):
            if tier.span_gpus is None:
                continue
            if tier.span_gpus % below:
                issues.append(Issue(f"scale_out.tiers[{k}].span_gpus", f"{tier.span_gpus} must be a multiple of "
                                    f"the {below} GPUs of the level below (a node, or the previous tier's group)"))
            else:
                below = tier.span_gpus
        return issues


def load_topology(ref: str, base: Path | None = None) -> TopologySpec:
    """A bundled topology by name, or a topology file by path; every problem in one ScenarioError."""
    path = catalog.resolve_topology(ref, base)
    try:
        data = read_yaml_mapping(path, "topology fields")
    except YamlError as err:
        raise ScenarioError([Issue("topology", f"{path}: {err}")]) from None
    return build(TopologySpec, data, "topology")
