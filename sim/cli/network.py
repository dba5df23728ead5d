"""``trainsim collectives`` (nccl-tests on the model) and ``trainsim placement`` (groups vs fabric tiers)."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING, Any

from sim.cli._common import int_at_least, progress_bar

if TYPE_CHECKING:  # the cost model is imported by the commands that use it, not when the parser is built
    from sim.costs.collectives import Collective

#: Without --topology / --gpus: the issue's reproduction set (DGX A100 and DGX H100, 8 to 1,024 GPUs).
DEFAULT_TOPOLOGIES = ("dgx-a100-superpod", "dgx-h100-superpod")
DEFAULT_GPUS = (8, 32, 64, 128, 256, 512, 1024)
#: --op names and the Collective value of each.
OPS = {"all-reduce": "all_reduce", "all-gather": "all_gather", "reduce-scatter": "reduce_scatter",
       "all-to-all": "all_to_all", "send-recv": "send_recv"}
#: --algorithm choices besides nccl: the values of sim.network.flows.Algorithm (not imported to build the parser:
#: it brings numpy into every command's start-up; tests/network/test_cli_network.py checks they agree).
ALGORITHMS = ("ring", "tree", "hierarchical", "nvls", "nvls_tree", "direct")
ABBREV = {"ring": "R", "tree": "T", "hierarchical": "H", "nvls": "N", "nvls_tree": "S", "direct": "D"}


def _size(n: float) -> str:
    for unit, scale in (("G", 2**30), ("M", 2**20), ("K", 2**10)):
        if n >= scale:
            return f"{n / scale:g}{unit}"
    return f"{n:g}"


def _cmd_collectives(args: argparse.Namespace) -> int:
    from sim.costs.collectives import Collective
    from sim.network import nccl_tests
    from sim.network.flows import Algorithm
    from sim.specs.scenario import gpu_spec
    from sim.specs.topology import load_topology

    algorithm = Algorithm(args.algorithm) if args.algorithm != "nccl" else None
    topologies = args.topology or list(DEFAULT_TOPOLOGIES)
    gpus = args.gpus or list(DEFAULT_GPUS)
    ops = [Collective(OPS[o]) for o in (args.op or ["all-reduce", "all-gather", "reduce-scatter"])]
    _check(gpus, ops)
    for name in topologies:
        topo = load_topology(name)
        gpu = gpu_spec(args.gpu) if args.gpu else nccl_tests.default_gpu(topo.name)
        for op in ops:
            columns = {}
            show = progress_bar(f"{topo.name} {op.value}")
            for i, n in enumerate(gpus):
                columns[n] = nccl_tests.sweep(topo, gpu, n, op, algorithm=algorithm)
                show(i + 1, len(gpus))
            _print_sweep(topo.name, gpu.name, op, args.algorithm, columns)
    _print_published(topologies if args.topology else None)
    return 0


#: All-to-all puts n(n-1) flows on the fabric; beyond this the max-min solve takes minutes.
MAX_ALL_TO_ALL_GPUS = 256


def _check(gpus: list[int], ops: list[Collective]) -> None:
    from sim.costs.collectives import Collective
    from sim.errors import TrainsimError
    from sim.specs import budget

    for n in gpus:
        budget.check("--gpus", n, budget.LIMITS.collective_gpus)

    big = [n for n in gpus if n > MAX_ALL_TO_ALL_GPUS]
    if Collective.ALL_TO_ALL in ops and big:
        raise TrainsimError(f"--gpus {big[0]}: all-to-all is limited to {MAX_ALL_TO_ALL_GPUS} GPUs (it puts "
                            "n(n-1) flows on the fabric); use fewer GPUs or leave out --op all-to-all")


def _print_sweep(topo: str, gpu: str, op: Collective, algorithm: str, columns: dict) -> None:
    print(f"\n{topo} ({gpu}) {op.value}: bus bandwidth GB/s, algorithm "
          f"{'NCCL would pick' if algorithm == 'nccl' else algorithm} "
          "(R ring, T tree, N nvls, S nvls+sharp, D direct)")
    shown = {n: pts for n, pts in columns.items() if pts}
    print(f"{'size':>6} " + " ".join(f"{f'{n} GPUs':>11}" for n in shown))
    sizes: list[Any] = next(iter(shown.values()), [])
    for i, point in enumerate(sizes):
        cells = [f"{pts[i].busbw / 1e9:9.1f} {ABBREV[pts[i].algorithm.value]}" for pts in shown.values()]
        print(f"{_size(point.size_bytes):>6} " + " ".join(cells))
    if not shown:
        print("  (the algorithm does not apply here)")


def _print_published(topologies: list[str] | None) -> None:
    from sim.network.nccl_tests import published

    print("\npublished nccl-tests figures vs the model (sim/catalog/nccl_measured.yaml)")
    print("tag: fit = an efficiency constant was set from the row (the model reproduces it by construction); "
          "check = it was not")
    print(f"{'topology':<18} {'GPUs':>4} {'op':<14} {'algorithm':<9} {'size':>5} {'published':>10} "
          f"{'model':>8} {'model/pub':>9} {'tag':<5}  system")
    for c in published(topologies):
        r = c.row
        alg = r.get("algorithm", "nccl")
        unit, scale = ("GB/s", 1e9) if c.kind == "busbw" else ("us", 1e-6)
        print(f"{r['topology']:<18} {r['gpus']:>4} {r['op']:<14} {alg:<9} {_size(r['size_bytes']):>5} "
              f"{c.published / scale:>7.1f} {unit:<2} {c.simulated / scale:>8.1f} {c.ratio:>9.2f} {c.tag:<5}  "
              f"{r['system']}")


def _cmd_placement(args: argparse.Namespace) -> int:
    from sim.cli._common import load_checked
    from sim.network.crossings import crossings
    from sim.network.graph import build_fabric
    from sim.network.nxgraph import build_graph

    s = load_checked(args.scenario)
    p = s.parallelism
    print(f"{s.name}: {s.cluster.num_gpus} x {s.gpu.name} on {s.cluster.topology.name}, placement "
          f"{p.placement_order} (innermost first)")
    fabric = build_fabric(s.cluster.topology, s.cluster.num_gpus)
    graph = build_graph(fabric)
    tiers = ", ".join(f"{t.name} ({fabric.units(i)} groups of {t.span_gpus // t.rails} GPUs"
                      + (f", uplink {t.uplink_byte_s / 1e9 / (t.span_gpus // t.rails):.1f} GB/s per GPU)"
                         if t.uplink_byte_s < float("inf") else ", top)")
                      for i, t in enumerate(fabric.tiers))
    print(f"fabric graph: {graph.number_of_nodes():,} nodes, {graph.number_of_edges():,} directed links; "
          f"tiers: {tiers}")
    print(f"{'group':<5} {'size':>5} {'groups':>7} {'domains':>7} {'busbw GB/s':>10} {'p2p GB/s':>9}  crosses")
    for g in crossings(s.cluster.topology, s.gpu, p):
        if g.size == 1:
            continue
        busbw = "-" if g.kind == "pp" else f"{g.path.busbw / 1e9:.1f}"
        print(f"{g.kind:<5} {g.size:>5} {g.groups:>7} {g.domains:>7} {busbw:>10} "
              f"{g.path.p2p_bw / 1e9:>9.1f}  {', '.join(g.crosses) or 'stays in its scale-up domain'}")
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    """Add ``collectives`` and ``placement`` to the ``trainsim`` subcommands."""
    col = sub.add_parser("collectives", help="simulated nccl-tests: bus bandwidth vs message size, vs published")
    col.add_argument("--topology", action="append", help="bundled name or file (repeatable; default DGX A100 "
                     "and DGX H100 SuperPODs)")
    col.add_argument("--gpus", action="append", type=int_at_least(2),
                     help="GPUs in the test (repeatable; default 8..1024)")
    col.add_argument("--op", action="append", choices=list(OPS), help="collective (repeatable; default all-reduce, "
                     "all-gather, reduce-scatter)")
    col.add_argument("--algorithm", default="nccl", choices=["nccl", *ALGORITHMS],
                     help="force an algorithm (default: the one NCCL's tuner would pick)")
    col.add_argument("--gpu", help="GPU catalog name (default: the topology's)")
    col.set_defaults(func=_cmd_collectives)
    plc = sub.add_parser("placement", help="which groups of a scenario's layout cross which fabric tier")
    plc.add_argument("scenario", help="scenario YAML file")
    plc.set_defaults(func=_cmd_placement)
