"""Full fidelity: every rank its own processes, every DP and PP transfer as flows on the fabric.

Where the symmetric engine (``sim.engine.step``) simulates one process per pipeline rank and costs each
collective alone on a path computed with all groups of its kind busy at once, this engine runs all
``pp x dp x cp x tp`` ranks of the placement (``sim.parallelism.placement``) with the same schedule
code (``step.PipelineRank``), and

* a DP collective (gradient bucket, parameter gather) starts when every member of its group has issued
  it, runs the group's algorithm (``sim.network.flows``: ring, or NVLS inside one NVSwitch domain where
  the symmetric path uses it too) as one batch of flows on :class:`~sim.engine.fabric.FabricFlows`
  after its latency, and ends for all members when the last flow is done; a group runs its collectives
  in issue order (one NCCL communicator stream);
* a pipeline send is one flow from the sending GPU to the receiving GPU after the route's latency;
* all of them share links max-min fairly with whatever else is on the fabric at that moment, so DP
  reductions of different stages, PP sends and other groups slow each other only when they overlap.

Intra-layer collectives (TP, CP ring, EP all-to-all) stay inside the block durations, costed per group
on that group's own placement (``sim.network.paths.group_paths``, all groups of the kind at once), so an
asymmetric placement gives ranks different layer times. Limited to ``MAX_GPUS``: the fabric re-solves
max-min over every active flow at every start and finish.

Ranks that run alike are simulated once (``sim.network.symmetry``): the step's graph (ranks by stage and
block durations, their pipeline routes, DP groups and their flows, links by capacity) is split into its
coarsest equitable partition, and one process per class of ranks runs the op list; its sends and its
group's collectives put the flows of every member on the fabric, as one flow per cell of alike flows
over one link per cell of alike links, counted as many times as the cell has flows on each such link
(``_LinkCells.batch``), so link sharing is what every rank would see, and each member's figures and
timeline are those of the one simulated (to the bit: the same arithmetic on the same numbers). 70B TP8
PP4 DP32 on the DGX H100 SuperPOD: 4 classes of 256 ranks.
``FullTransport(symmetry=False)`` runs every rank, the reference this must equal.

The step's shared state (block durations, per-rank slots, timeline, result) is ``step.StepSimulation``'s;
:class:`FullTransport` is injected into it (``StepSimulation(scenario, transport=FullTransport())``) and keeps
only what this fidelity adds: the placement, the fabric, the rank classes and the DP communicators.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import simpy

from sim.costs.collectives import Collective, GroupPath, bus_factor, collective_latency, size_efficiency
from sim.costs.layer import Paths, PhaseTime
from sim.engine.fabric import FabricFlows
from sim.engine.step import GATHER, REDUCE, Blocks, PipelineRank, RankIO, StepSimulation, Transport
from sim.engine.streams import Channel
from sim.errors import InfeasibleLayout
from sim.network.flows import Efficiency, flow_efficiency, ring_orders, route_latency
from sim.network.graph import Fabric, build_fabric
from sim.network.paths import group_paths
from sim.network.symmetry import equitable_cells
from sim.parallelism.mesh import Axis, ParallelMesh
from sim.parallelism.placement import expert_tensor_members, gpu_grid, group_members

#: Largest job full fidelity accepts (a few hundred GPUs is its purpose; symmetric covers the rest).
MAX_GPUS = 1024


@dataclass(frozen=True)
class _GroupRoutes:
    """A group's ring routes and per-flow efficiency, its NVLS routes (or None), its GroupPath."""

    ring_links: np.ndarray
    ring_eff: np.ndarray
    channels: int
    nvls_links: np.ndarray | None
    nvls_cap: float
    path: GroupPath

    @classmethod
    def of(cls, fabric: Fabric, eff: Efficiency, members: np.ndarray, path: GroupPath) -> _GroupRoutes:
        rings = ring_orders(fabric, members)
        links = fabric.path_links(rings.ravel(), np.roll(rings, -1, axis=1).ravel())
        nvls, n = None, len(members)
        if path.all_reduce_busbw > path.busbw:  # the symmetric path's rule: NVLS inside one domain
            nvls = np.concatenate([fabric.scale_up_link(members, True), fabric.scale_up_link(members, False)])
        cap = (eff.nvls_fraction or 0.0) * fabric.scale_up_byte_s * n / (2 * max(n - 1, 1))
        return cls(links, flow_efficiency(fabric, links, eff.up_ring, eff.out_ring), len(rings),
                   None if nvls is None else nvls[:, None], cap, path)



@dataclass(frozen=True)
class _Batch:
    """Flows of one send or collective as the fabric gets them: one row per cell of alike flows, its links as
    link cells, per entry the flows of the cell on each link of that link cell (``weight``), per row the
    flows' efficiency."""

    links: np.ndarray
    weight: np.ndarray
    eff: np.ndarray


@dataclass(frozen=True)
class _LinkCells:
    """The links' cells of the step's equitable partition (each link its own without symmetry): the cell of
    every link, the links per cell and the capacity of each (alike links have the same)."""

    cell: np.ndarray
    size: np.ndarray
    capacity: np.ndarray

    @classmethod
    def of(cls, cell: np.ndarray, capacity: np.ndarray) -> _LinkCells:
        first, compact = np.unique(cell, return_index=True, return_inverse=True)[1:]
        return cls(compact, np.bincount(compact), capacity[first])

    def batch(self, links: np.ndarray, eff: np.ndarray) -> _Batch:
        """Flows (routes ``links``, efficiency ``eff``) of whole cells, one row per cell: flows with the same
        efficiency and link cells (alike: the partition is the coarsest equitable one), each link cell once
        with the flows of the row's cell on each of its links (the cell's crossings over the link cell's size)."""
        valid = links >= 0
        cells = np.sort(np.where(valid, self.cell[np.where(valid, links, 0)], -1), axis=1)
        rows, first, row_of = np.unique(np.column_stack([eff, cells]), axis=0, return_index=True,
                                        return_inverse=True)
        row_of = row_of.ravel()
        flow, hop = np.nonzero(cells >= 0)
        pairs, crossings = np.unique(np.column_stack([row_of[flow], cells[flow, hop]]), axis=0, return_counts=True)
        flows_per_link, rest = np.divmod(crossings, self.size[pairs[:, 1]])
        assert not rest.any(), "a cell of flows spreads unevenly over a link cell: the partition is not equitable"
        width = max(1, int(np.bincount(pairs[:, 0], minlength=len(rows)).max())) if len(pairs) else 1
        out = np.full((len(rows), width), -1, dtype=np.int64)
        weight = np.zeros((len(rows), width))
        slot = np.arange(len(pairs)) - np.searchsorted(pairs[:, 0], pairs[:, 0])  # k-th link cell of its row
        out[pairs[:, 0], slot] = pairs[:, 1]
        weight[pairs[:, 0], slot] = flows_per_link
        return _Batch(out, weight, eff[first])


class _GroupComm:
    """One DP group's communicator: rendezvous of its members, collectives in issue order on the fabric.

    Standing for a cell of alike groups (``FullTransport``'s rank classes): ``routes`` are its own
    (path, channels, NVLS cap), ``ring`` and ``nvls`` the flows of all of them, ``channels`` those of the
    simulated ranks among its members (one per rank class), and a simulated rank's issue counts for as
    many members as its class has in the group."""

    def __init__(self, env: simpy.Environment, flows: FabricFlows, routes: _GroupRoutes, ring: _Batch,
                 nvls: _Batch | None, channels: list[Channel], members: int) -> None:
        self.env, self.flows, self.routes, self.channels, self.members = env, flows, routes, channels, members
        self.ring, self.nvls = ring, nvls
        self.stream = simpy.Resource(env, capacity=1)
        self.arrived: dict[tuple[str, int], int] = defaultdict(int)
        self.done: dict[tuple[str, int], simpy.Event] = {}

    def issue(self, key: tuple[str, int], op: Collective, nbytes: float, weight: int) -> simpy.Event:
        """``weight`` members issue collective ``key``; the returned event fires when it is done everywhere."""
        if key not in self.done:
            self.done[key] = self.env.event()
        self.arrived[key] += weight
        if self.arrived[key] == self.members:
            self.env.process(self._run(key, op, nbytes))
        return self.done[key]

    def _run(self, key: tuple[str, int], op: Collective, nbytes: float):
        r = self.routes
        with self.stream.request() as req:
            yield req
            start = self.env.now
            for ch in self.channels:
                ch.busy.start(start)
            yield self.env.timeout(collective_latency(op, nbytes, r.path))
            bus = bus_factor(op, r.path.n) * nbytes / size_efficiency(nbytes)
            if op is Collective.ALL_REDUCE and self.nvls is not None:
                per_flow = bus * r.path.n / (2 * (r.path.n - 1))  # NVLS: S up and S down per GPU
                nvls, rows = self.nvls, len(self.nvls.links)
                yield self.flows.transfer(nvls.links, np.full(rows, per_flow), np.full(rows, r.nvls_cap),
                                                     nvls.weight)
            else:
                ring = self.ring
                yield self.flows.transfer(ring.links, bus / r.channels / ring.eff, weight=ring.weight)
            for ch in self.channels:
                ch.busy.stop(self.env.now)
                ch.timeline.add(ch.rank, ch.name, key[0], start, self.env.now, bytes=nbytes)
        self.done[key].succeed((start, self.env.now))


@dataclass(frozen=True)
class _RankClass:
    """Ranks that run alike (one cell of ``sim.network.symmetry.equitable_cells``), simulated as one:
    ``members`` their GPUs (the first stands for all), ``routes`` per send kind the flows of all of them
    (:class:`_Batch`), the latency and the class that receives; ``group`` the cell of their DP groups and
    ``weight`` how many of them the cell's simulated group holds."""

    cell: int
    stage: int
    members: np.ndarray
    routes: dict[str, tuple[_Batch, float, int]]
    group: int
    weight: int

    @property
    def gpu(self) -> int:
        return int(self.members[0])


class FullIO(RankIO):
    """The transport of one rank class (see :class:`_RankClass`): compute on the simulated clock, slowed by
    whatever its channels carry meanwhile; pipeline sends as flows to the peer GPUs; DP collectives through
    its group's communicator (``_GroupComm``)."""

    def __init__(self, sim: StepSimulation, transport: FullTransport, slot: int, rank_class: _RankClass) -> None:
        super().__init__(sim, slot)
        self.transport, self.rank_class, self.stage = transport, rank_class, rank_class.stage
        make = lambda name: Channel(sim.env, slot, name, sim.timeline)  # noqa: E731
        self.pp = {"act": make("pp_send_fwd"), "grad": make("pp_send_bwd")}
        self.dp = (make("dp_reduce"), make("dp_gather"))
        dp_c, pp_c = sim.dp_path.sm_contention, sim.pp_path.sm_contention
        self.contention = [(self.dp[GATHER], dp_c), (self.dp[REDUCE], dp_c), (self.pp["act"], pp_c),
                           (self.pp["grad"], pp_c)]
        self.issued: dict[str, int] = defaultdict(int)

    @property
    def now(self) -> float:
        return self.env.now

    def compute(self, name: str, t: PhaseTime, **args: Any):
        """Process step: run ``t`` on the compute stream, slowed by communication beside it."""
        env = self.env
        start = env.now
        # written out for the four channels (once per block of every rank): the sum's order, gather, reduce,
        # PP forward, PP backward, as in ``contention``
        (gather, gc), (reduce, rc), (act, ac), (grad, bc) = self.contention
        g0, r0 = gather.busy.busy_until(start), reduce.busy.busy_until(start)
        a0, b0 = act.busy.busy_until(start), grad.busy.busy_until(start)
        yield env.timeout(t.total)
        now = env.now
        extra = ((gather.busy.busy_until(now) - g0) * gc + (reduce.busy.busy_until(now) - r0) * rc
                 + (act.busy.busy_until(now) - a0) * ac + (grad.busy.busy_until(now) - b0) * bc)
        if extra > 0:
            yield env.timeout(extra)
        self._book_compute(name, t, start, env.now, extra, args)

    def hold(self, seconds: float):
        yield self.env.timeout(seconds)

    def _wait(self, event: simpy.Event, category: str):
        start = self.env.now
        value = yield event
        self._book_wait(start, self.env.now, value, category)

    def _message(self, kind: str, cell: int, key: int) -> simpy.Event:
        """The message ``key`` of ``kind`` to the ranks of class ``cell``."""
        full_key = (kind, cell, key)
        messages = self.transport.messages
        if full_key not in messages:
            messages[full_key] = self.env.event()
        return messages[full_key]

    def recv_pp(self, kind: str, key: int, category: str):
        yield from self._wait(self._message(kind, self.rank_class.cell, key), category)

    def send_pp(self, kind: str, key: int, name: str, nbytes: float) -> None:
        """A pipeline send: one flow from each GPU of the class to its peer in the next (or previous) stage."""
        batch, latency, to = self.rank_class.routes[kind]
        flows = self.transport.fabric_flows
        self.pp[kind].submit(name, latency,
                             lambda: flows.transfer(batch.links, nbytes / batch.eff, weight=batch.weight),
                             self._message(kind, to, key), bytes=nbytes)

    def send_dp(self, channel: int, name: str, nbytes: float, op: Collective,
                path: GroupPath | None = None) -> simpy.Event:
        """``path`` is ignored: full fidelity reduces over its DP communicator (HSDP is symmetric only)."""
        group = self.transport.comms[channel, self.rank_class.group]
        label = f"{channel}.{name}"
        count = self.issued[label]
        self.issued[label] += 1
        return group.issue((name, count), op, nbytes, self.rank_class.weight)

    def wait_dp(self, event: simpy.Event, category: str):
        yield from self._wait(event, category)


class FullTransport(Transport):
    """Every rank of the placement simulated (see the module docstring); ``symmetry`` runs one rank per class
    of alike ranks (:class:`_RankClass`), off: every rank its own process (the reference it must equal).
    Its placement, fabric and classes are built when the step starts (:meth:`stages`)."""

    def __init__(self, symmetry: bool = True) -> None:
        self.symmetry = symmetry

    def stages(self, sim: StepSimulation) -> list[int]:
        """Place the ranks on the fabric and split them into classes; the stage of each class."""
        s = sim.s
        n = s.cluster.num_gpus
        if n > MAX_GPUS:
            raise InfeasibleLayout(f"simulation.fidelity: full simulates every rank and flow; {n} GPUs is more "
                                   f"than its limit of {MAX_GPUS}; use fidelity: symmetric")
        self.mesh = mesh = ParallelMesh.from_layout(s.parallelism)
        self.grid = gpu_grid(mesh)  # [pp, dp, cp, tp] -> GPU
        self.fabric = build_fabric(s.cluster.topology, n)
        self.eff = Efficiency.of(self.fabric, sim.gpu.arch)
        self.rank_blocks = self._blocks_per_gpu(sim)
        #: the rank classes simulated (one process each) and the cells of DP groups
        self.classes, self.group_cells = self._classes(sim)
        return [c.stage for c in self.classes]

    def start(self, sim: StepSimulation) -> None:
        self.messages: dict[tuple, simpy.Event] = {}
        self.fabric_flows = FabricFlows(sim.env, self.link_cells.capacity)
        ios = [FullIO(sim, self, slot, c) for slot, c in enumerate(self.classes)]
        self._dp_comms(sim.env, ios)
        for io in ios:
            sim.env.process(PipelineRank(sim, io.stage, io, self.rank_blocks[io.rank_class.gpu]).run())

    def finish(self, sim: StepSimulation) -> None:
        """Every member of a class had the intervals of the one simulated (copied when first read)."""
        if sim.timeline.enabled:
            sim.timeline.stand_for([c.members.tolist() for c in self.classes], [c.stage for c in self.classes])

    def _blocks_per_gpu(self, sim: StepSimulation) -> dict[int, Blocks]:
        """Each GPU's block durations, from the paths of its own TP, CP and expert-TP groups."""
        mesh, arch, par = self.mesh, sim.gpu.arch, sim.s.parallelism
        per_gpu: dict[str, dict[int, GroupPath]] = {}
        for kind, groups in (("tp", group_members(mesh, Axis.TP)), ("cp", group_members(mesh, Axis.CP)),
                             ("etp", expert_tensor_members(mesh, par.expert, par.expert_tensor_degree))):
            paths = group_paths(self.fabric, arch, groups)
            per_gpu[kind] = {int(g): path for row, path in zip(groups, paths, strict=True) for g in row}
        cache: dict[Paths, Blocks] = {}
        out = {}
        for gpu in range(mesh.num_ranks):
            # EP all-to-all: the symmetric path's figures (all groups' flows at once) for every group
            own = Paths(tp=per_gpu["tp"][gpu], cp=per_gpu["cp"][gpu], ep=sim.paths.ep, etp=per_gpu["etp"][gpu])
            out[gpu] = cache.setdefault(own, Blocks(sim.s, own))
        return out

    def _classes(self, sim: StepSimulation) -> tuple[list[_RankClass], list[list[int]]]:
        """The rank classes in order of their first GPU, and the cells of DP groups (indices into
        ``self.groups``, the group simulated first)."""
        fabric, grid, p = self.fabric, self.grid, self.grid.shape[0]
        n = self.mesh.num_ranks
        stage = np.empty(n, dtype=np.int64)
        stage[grid] = np.arange(p)[:, None, None, None]
        gpus = np.arange(n)
        routes = {}
        for kind, shift in (("act", -1), ("grad", 1)):
            peer = np.empty(n, dtype=np.int64)
            peer[grid] = np.roll(grid, shift, axis=0)  # the same rank of the next (previous) stage
            links = fabric.path_links(gpus, peer)
            routes[kind] = (peer, links, flow_efficiency(fabric, links, self.eff.up_p2p, self.eff.out_p2p),
                            route_latency(fabric, links))
        # one communicator per DP group: the CP x DP ranks of a pipeline stage and TP rank
        self.groups: list[tuple[np.ndarray, _GroupRoutes]] = []
        group_of = np.empty(n, dtype=np.int64)
        for pp in range(p):
            for tp in range(grid.shape[3]):
                members = np.sort(grid[pp, :, :, tp].ravel())
                [path] = group_paths(fabric, sim.gpu.arch, members[None, :])
                group_of[members] = len(self.groups)
                self.groups.append((members, _GroupRoutes.of(fabric, self.eff, members, path)))
        cells = self._cells(stage, routes, group_of) if self.symmetry else None
        rank_cell = gpus if cells is None else cells[:n]
        g = len(self.groups)
        group_cell = np.arange(g) if cells is None else cells[n:n + g]
        link_cell = np.arange(fabric.num_links) if cells is None else cells[n + g:n + g + fabric.num_links]
        self.link_cells = _LinkCells.of(link_cell, fabric.capacity)
        # cells renumbered in order of their first rank (first group)
        firsts = np.unique(rank_cell, return_index=True)[1]
        order = np.full(int(rank_cell.max()) + 1, -1)
        order[rank_cell[np.sort(firsts)]] = np.arange(len(firsts))
        class_of = order[rank_cell]
        gfirsts = np.sort(np.unique(group_cell, return_index=True)[1])
        gorder = {int(group_cell[g]): k for k, g in enumerate(gfirsts)}
        group_cells: list[list[int]] = [[] for _ in gfirsts]
        for g, c in enumerate(group_cell):
            group_cells[gorder[int(c)]].append(g)
        members_of = np.split(np.argsort(class_of, kind="stable"), np.cumsum(np.bincount(class_of))[:-1])
        classes = []
        for k, members in enumerate(members_of):
            first = int(members[0])
            cell = gorder[int(group_cell[group_of[first]])]
            held = self.groups[group_cells[cell][0]][0]
            classes.append(_RankClass(
                cell=k, stage=int(stage[first]), members=members,
                routes={kind: (self.link_cells.batch(links[members], eff[members]), float(latency[first]),
                               int(class_of[peer[first]])) for kind, (peer, links, eff, latency) in routes.items()},
                group=cell, weight=int(np.count_nonzero(class_of[held] == k))))
        return classes, group_cells

    def _cells(self, stage: np.ndarray, routes: Mapping[str, tuple[np.ndarray, ...]],
               group_of: np.ndarray) -> np.ndarray:
        """Cells of the equitable partition of the step's graph (``sim.network.symmetry``): nodes are the ranks,
        then the DP groups, the links, the pipeline routes (two per rank) and the groups' flows."""
        n, fabric, groups = len(stage), self.fabric, self.groups
        blocks: dict[int, int] = {}
        colours: dict[tuple, int] = {}
        colour: list[int] = []

        def add(key: tuple) -> int:
            colour.append(colours.setdefault(key, len(colours)))
            return len(colour) - 1

        for gpu in range(n):
            add(("rank", int(stage[gpu]), blocks.setdefault(id(self.rank_blocks[gpu]), len(blocks))))
        for _members, r in groups:
            add(("group", r.path, r.channels, r.nvls_cap, r.nvls_links is None))
        link0 = len(colour)
        for capacity in fabric.capacity.tolist():
            add(("link", capacity))
        edges: list[tuple[np.ndarray, np.ndarray, int]] = []

        def connect(a: np.ndarray, b: np.ndarray, label: int) -> None:
            edges.append((a, b, label))
            edges.append((b, a, label + 1))

        def crossing(first: int, links: np.ndarray, label: int) -> None:
            flow, hop = np.nonzero(links >= 0)
            connect(first + flow, link0 + links[flow, hop], label)

        gpus = np.arange(n)
        for kind, (peer, links, eff, latency) in routes.items():
            first = len(colour)
            for e, lat in zip(eff.tolist(), latency.tolist(), strict=True):
                add(("route", kind, e, lat))
            connect(gpus, first + gpus, 0)  # sends on
            connect(first + gpus, peer, 2)  # arrives at
            crossing(first, links, 4)
        connect(gpus, n + group_of, 6)  # member of
        for g, (_members, r) in enumerate(groups):
            flows: list[tuple[np.ndarray, list[tuple[Any, ...]]]] = [
                (r.ring_links, [("ring", e) for e in r.ring_eff.tolist()])]
            if r.nvls_links is not None:
                flows.append((r.nvls_links, [("nvls",)] * len(r.nvls_links)))
            for links, flow_colours in flows:
                first = len(colour)
                for key in flow_colours:
                    add(key)
                connect(np.full(len(links), n + g), first + np.arange(len(links)), 8)  # carries
                crossing(first, links, 10)
        src = np.concatenate([a for a, _, _ in edges])
        dst = np.concatenate([b for _, b, _ in edges])
        label = np.concatenate([np.full(len(a), k) for a, _, k in edges])
        return equitable_cells(np.asarray(colour), src, dst, label)

    def _dp_comms(self, env: simpy.Environment, ios: list[FullIO]) -> None:
        """One communicator per cell of DP groups and channel: the flows of all the cell's groups, the channels of
        the classes its first group holds."""
        self.comms: dict[tuple[int, int], _GroupComm] = {}
        class_of = {int(g): io for io in ios for g in io.rank_class.members}
        for cell, groups in enumerate(self.group_cells):
            members, _routes = self.groups[groups[0]]
            held = list({id(class_of[int(g)]): class_of[int(g)] for g in members}.values())
            routes = [self.groups[g][1] for g in groups]
            ring = self.link_cells.batch(np.concatenate([r.ring_links for r in routes]),
                                         np.concatenate([r.ring_eff for r in routes]))
            nvls = None
            if routes[0].nvls_links is not None:
                links = np.concatenate([r.nvls_links for r in routes])
                nvls = self.link_cells.batch(links, np.ones(len(links)))
            for channel in (REDUCE, GATHER):
                self.comms[channel, cell] = _GroupComm(env, self.fabric_flows, routes[0], ring, nvls,
                                                       [io.dp[channel] for io in held], len(members))
