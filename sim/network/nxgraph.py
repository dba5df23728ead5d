"""The fabric as a networkx graph, for inspection (``trainsim placement``) and as the test oracle of
``Fabric.path_links``. Kept out of ``sim.network.graph`` so that no run imports networkx."""

from __future__ import annotations

import itertools
import math

import networkx as nx
import numpy as np

from sim.network.graph import Fabric


def build_graph(fabric: Fabric) -> nx.DiGraph:
    """The fabric as a directed networkx graph; every edge carries ``link`` (its id in the arrays),
    ``capacity_byte_s``, ``latency_s`` and ``level``. Nodes: ``("gpu", g)``, ``("domain", d)``,
    ``("nic", i)`` (only where GPUs share a NIC), ``("tier", t, unit)``."""
    g = nx.DiGraph()
    gpus = np.arange(fabric.num_gpus)
    cap, lat, lvl = fabric.capacity, fabric.latency, fabric.level

    def edge(a, b, link: int) -> None:
        g.add_edge(a, b, link=link, capacity_byte_s=float(cap[link]), latency_s=float(lat[link]),
                   level=int(lvl[link]))

    top = len(fabric.tiers) - 1
    for gpu in gpus.tolist():
        dom = ("domain", gpu // fabric.domain_gpus)
        edge(("gpu", gpu), dom, int(fabric.scale_up_link(gpu, True)))
        edge(dom, ("gpu", gpu), int(fabric.scale_up_link(gpu, False)))
        end = ("gpu", gpu)
        if fabric.gpus_per_nic > 1:
            end = ("nic", int(fabric.nic(gpu)))
            g.add_edge(("gpu", gpu), end, link=-1, capacity_byte_s=math.inf, latency_s=0.0, level=1)
            g.add_edge(end, ("gpu", gpu), link=-1, capacity_byte_s=math.inf, latency_s=0.0, level=1)
        leaf = ("tier", 0, int(fabric.unit(0, gpu)))
        edge(end, leaf, int(fabric.nic_link(gpu, True)))
        edge(leaf, end, int(fabric.nic_link(gpu, False)))
        for t in range(top):
            a, b = ("tier", t, int(fabric.unit(t, gpu))), ("tier", t + 1, int(fabric.unit(t + 1, gpu)))
            if not g.has_edge(a, b):
                edge(a, b, int(fabric.tier_link(t, gpu, True)))
                edge(b, a, int(fabric.tier_link(t, gpu, False)))
    return g


def graph_path_links(graph: nx.DiGraph, src: int, dst: int) -> list[int]:
    """Link ids of the networkx shortest path between two GPUs (no GPU forwards traffic; a domain's
    scale-up is preferred where both ends are in it). Equal to ``Fabric.path_links`` (tested)."""
    source = ("gpu", src)

    def weight(a, _b, data) -> float | None:
        if a[0] == "gpu" and a != source:
            return None
        return 1.0 if data["level"] == 0 else 1.001

    path = nx.shortest_path(graph, source, ("gpu", dst), weight=weight)
    return [graph.edges[a, b]["link"] for a, b in itertools.pairwise(path)
            if graph.edges[a, b]["link"] >= 0]
