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
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from typing import Any

import numpy as np
import simpy

from sim.costs.collectives import Collective, GroupPath, bus_factor, collective_latency, size_efficiency
from sim.costs.layer import Paths, PhaseTime
from sim.engine.fabric import FabricFlows
from sim.engine.step import GATHER, REDUCE, Blocks, PipelineRank, RankIO, StepResult, StepSimulation
from sim.engine.streams import Channel
from sim.errors import InfeasibleLayout
from sim.network.flows import Efficiency, flow_efficiency, ring_orders, route_latency
from sim.network.graph import Fabric, build_fabric
from sim.network.paths import group_paths
from sim.parallelism.mesh import Axis, ParallelMesh
from sim.parallelism.placement import expert_tensor_members, gpu_grid, group_members
from sim.specs.scenario import Scenario

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


class _GroupComm:
    """One DP group's communicator: rendezvous of its members, collectives in issue order on the fabric."""

    def __init__(self, sim: FullStepSimulation, routes: _GroupRoutes, channels: list[Channel]) -> None:
        self.sim, self.env, self.routes, self.channels = sim, sim.env, routes, channels
        self.stream = simpy.Resource(sim.env, capacity=1)
        self.arrived: dict[tuple[str, int], int] = defaultdict(int)
        self.done: dict[tuple[str, int], simpy.Event] = {}

    def issue(self, key: tuple[str, int], op: Collective, nbytes: float) -> simpy.Event:
        """A member issues collective ``key``; the returned event fires when it is done everywhere."""
        if key not in self.done:
            self.done[key] = self.env.event()
        self.arrived[key] += 1
        if self.arrived[key] == len(self.channels):
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
            if op is Collective.ALL_REDUCE and r.nvls_links is not None:
                per_flow = bus * r.path.n / (2 * (r.path.n - 1))  # NVLS: S up and S down per GPU
                caps = np.full(len(r.nvls_links), r.nvls_cap)
                yield self.sim.fabric_flows.transfer(r.nvls_links, np.full(len(r.nvls_links), per_flow), caps)
            else:
                yield self.sim.fabric_flows.transfer(r.ring_links, bus / r.channels / r.ring_eff)
            for ch in self.channels:
                ch.busy.stop(self.env.now)
                ch.timeline.add(ch.rank, ch.name, key[0], start, self.env.now, bytes=nbytes)
        self.done[key].succeed((start, self.env.now))


class FullIO(RankIO):
    """The transport of one global rank: compute on the simulated clock, slowed by whatever its channels
    carry meanwhile; pipeline sends as flows to the peer GPU; DP collectives through its group's
    communicator (``_GroupComm``)."""

    def __init__(self, sim: FullStepSimulation, coords: tuple[int, int, int, int]) -> None:
        pp, dp, cp, tp = coords
        self.fs = sim
        self.stage = pp
        self.replica = (dp, cp, tp)
        self.gpu = int(sim.grid[coords])
        super().__init__(sim, self.gpu)
        make = lambda name: Channel(sim.env, self.gpu, name, sim.timeline)  # noqa: E731
        self.pp = {"act": make("pp_send_fwd"), "grad": make("pp_send_bwd")}
        self.dp = (make("dp_reduce"), make("dp_gather"))
        dp_c, pp_c = sim.dp_path.sm_contention, sim.pp_path.sm_contention
        self.contention = [(self.dp[GATHER], dp_c), (self.dp[REDUCE], dp_c), (self.pp["act"], pp_c),
                           (self.pp["grad"], pp_c)]
        self.issued: dict[str, int] = defaultdict(int)
        self.routes: dict[str, tuple[np.ndarray, np.ndarray, float]] = {}

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

    def _message(self, kind: str, key: tuple[int, int]) -> simpy.Event:
        full_key = (kind, self.replica, key)
        if full_key not in self.fs.messages:
            self.fs.messages[full_key] = self.env.event()
        return self.fs.messages[full_key]

    def recv_pp(self, kind: str, key: tuple[int, int], category: str):
        yield from self._wait(self._message(kind, key), category)

    def send_pp(self, kind: str, key: tuple[int, int], name: str, nbytes: float) -> None:
        """A pipeline send: one flow to the peer GPU in the next (or previous) stage."""
        links, eff, latency = self._route(kind)
        flows = self.fs.fabric_flows
        self.pp[kind].submit(name, latency, lambda: flows.transfer(links, nbytes / eff), self._message(kind, key),
                             bytes=nbytes)

    def _route(self, kind: str) -> tuple[np.ndarray, np.ndarray, float]:
        """The route to the peer GPU in the next (``act``) or previous (``grad``) stage: its links, point-to-point
        efficiency and latency (the same for every send of a kind: computed once)."""
        if kind not in self.routes:
            step = 1 if kind == "act" else -1
            fs = self.fs
            peer = int(fs.grid[((self.stage + step) % fs.p, *self.replica)])
            links = fs.fabric.path_links(np.asarray([self.gpu]), np.asarray([peer]))
            eff = flow_efficiency(fs.fabric, links, fs.eff.up_p2p, fs.eff.out_p2p)
            self.routes[kind] = (links, eff, float(route_latency(fs.fabric, links)[0]))
        return self.routes[kind]

    def send_dp(self, channel: int, name: str, nbytes: float, op: Collective,
                path: GroupPath | None = None) -> simpy.Event:
        """``path`` is ignored: full fidelity reduces over its DP communicator (HSDP is symmetric only)."""
        ch = self.dp[channel]
        group = self.fs.comms[ch.name, (self.stage, self.replica[2])]
        count = self.issued[f"{ch.name}.{name}"]
        self.issued[f"{ch.name}.{name}"] += 1
        return group.issue((name, count), op, nbytes)

    def wait_dp(self, event: simpy.Event, category: str):
        yield from self._wait(event, category)


class FullStepSimulation(StepSimulation):
    """Every rank of the placement simulated (see the module docstring)."""

    def __init__(self, scenario: Scenario, record: bool = True) -> None:
        super().__init__(scenario, record)
        n = scenario.cluster.num_gpus
        if n > MAX_GPUS:
            raise InfeasibleLayout(f"simulation.fidelity: full simulates every rank and flow; {n} GPUs is more "
                                   f"than its limit of {MAX_GPUS}; use fidelity: symmetric")
        s = scenario
        self.mesh = mesh = ParallelMesh.from_layout(s.parallelism)
        self.grid = gpu_grid(mesh)  # [pp, dp, cp, tp] -> GPU
        self.fabric = build_fabric(s.cluster.topology, n)
        self.eff = Efficiency.of(self.fabric, self.gpu.arch)
        self.fabric_flows = FabricFlows(self.env, self.fabric.capacity)
        self.rank_blocks = self._blocks_per_gpu()

    def _blocks_per_gpu(self) -> dict[int, Blocks]:
        """Each GPU's block durations, from the paths of its own TP, CP and expert-TP groups."""
        mesh, arch, par = self.mesh, self.gpu.arch, self.s.parallelism
        per_gpu: dict[str, dict[int, GroupPath]] = {}
        for kind, groups in (("tp", group_members(mesh, Axis.TP)), ("cp", group_members(mesh, Axis.CP)),
                             ("etp", expert_tensor_members(mesh, par.expert, par.expert_tensor_degree))):
            paths = group_paths(self.fabric, arch, groups)
            per_gpu[kind] = {int(g): path for row, path in zip(groups, paths, strict=True) for g in row}
        cache: dict[Paths, Blocks] = {}
        out = {}
        for gpu in range(mesh.num_ranks):
            # EP all-to-all: the symmetric path's figures (all groups' flows at once) for every group
            own = Paths(tp=per_gpu["tp"][gpu], cp=per_gpu["cp"][gpu], ep=self.paths.ep, etp=per_gpu["etp"][gpu])
            out[gpu] = cache.setdefault(own, Blocks(self.s, own))
        return out

    def run(self) -> StepResult:
        env = self.env
        shape = self.grid.shape  # (pp, dp, cp, tp)
        replicas = [(d, c, t) for d in range(shape[1]) for c in range(shape[2]) for t in range(shape[3])]
        self.messages: dict[tuple, simpy.Event] = {}
        self._slots(self.mesh.num_ranks)
        ios = {(pp, rep): FullIO(self, (pp, *rep)) for pp in range(shape[0]) for rep in replicas}
        self._dp_comms(ios)
        stage_of = [0] * self.mesh.num_ranks
        for (pp, _rep), io in ios.items():
            env.process(PipelineRank(self, pp, io, self.rank_blocks[io.gpu]).run())
            stage_of[io.gpu] = pp
        env.run()
        return self._result(stage_of)

    def _dp_comms(self, ios: dict[tuple[int, tuple[int, int, int]], FullIO]) -> None:
        """One communicator per DP group (CP x DP ranks of a pipeline stage and TP rank) and channel."""
        shape = self.grid.shape
        self.comms: dict[tuple[str, tuple[int, int]], _GroupComm] = {}
        for pp in range(shape[0]):
            for tp in range(shape[3]):
                members = np.sort(self.grid[pp, :, :, tp].ravel())
                [path] = group_paths(self.fabric, self.gpu.arch, members[None, :])
                routes = _GroupRoutes.of(self.fabric, self.eff, members, path)
                group = [ios[pp, (d, c, tp)] for d in range(shape[1]) for c in range(shape[2])]
                for channel in (REDUCE, GATHER):
                    chans = [io.dp[channel] for io in group]
                    self.comms[chans[0].name, (pp, tp)] = _GroupComm(self, routes, chans)
