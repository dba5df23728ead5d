"""The step simulation: one optimizer step of every distinct pipeline rank, as SimPy processes.

Ranks that do identical work (the TP ranks of a group, the DP and CP replicas) are simulated once:
one process per pipeline rank runs its schedule's op list; activations and gradients travel between
stages on point-to-point channels; DP gradient buckets are reduced on a DP channel while backward is
still running; ZeRO-1/2 parameter all-gathers and ZeRO-3 per-layer gathers run ahead of the compute
that needs them. Communication that runs beside compute slows it by the SM-contention factor of its
path. Every duration comes from ``sim.costs``; this module only sequences them.
"""

from __future__ import annotations

import functools
import math
from abc import ABC, abstractmethod
from collections import defaultdict
from collections.abc import Generator, Iterable
from dataclasses import dataclass, field
from typing import Any, NamedTuple

import simpy

from sim.costs import flops, kernels, layer, zero
from sim.costs.collectives import Collective, GroupPath, collective_bandwidth_time, collective_latency
from sim.costs.layer import LayerTime, Paths, PhaseTime
from sim.costs.memory import (
    MemoryBreakdown,
    chunk_expert_params_per_gpu,
    chunk_params_per_gpu,
    dp_plan,
    embedding_params_per_gpu,
    expert_layer_params_per_gpu,
    head_params_per_gpu,
    layer_params_per_gpu,
    peak_memory,
    stage_expert_params_per_gpu,
    stage_params_per_gpu,
)
from sim.costs.shapes import pipeline_activation_bytes
from sim.engine.streams import DpLink, DpTransfer, FifoChannel, Mailbox, Timeline
from sim.network.paths import hsdp_paths, scenario_paths
from sim.parallelism.schedules import Phase, PipeOp, forward_order, one_forward_one_backward, warmup_forwards
from sim.parallelism.sharding import chunk_layers
from sim.specs.enums import Schedule
from sim.specs.scenario import Scenario

CATEGORIES = (
    "compute", "tp_comm", "cp_comm", "ep_comm", "pp_comm", "dp_comm", "contention", "optimizer", "bubble")


@dataclass
class StepResult:
    """What one simulated optimizer step produced."""

    scenario: Scenario
    step_time_s: float
    model_flops_per_step: float
    hardware_flops_per_step: float
    breakdown_s: dict[str, float]
    stage_compute_s: list[float]
    memory: MemoryBreakdown
    bottleneck_stage: int  # the pipeline stage with the largest compute-busy time; breakdown_s is taken on it
    timeline: Timeline = field(repr=False)

    @property
    def num_gpus(self) -> int:
        return self.scenario.cluster.num_gpus

    @property
    def peak_flops(self) -> float:
        return self.scenario.gpu.peak_flops(self.scenario.training.precision.value)

    @property
    def mfu(self) -> float:
        return self.model_flops_per_step / (self.step_time_s * self.num_gpus * self.peak_flops)

    @property
    def hfu(self) -> float:
        return self.hardware_flops_per_step / (self.step_time_s * self.num_gpus * self.peak_flops)

    @property
    def tokens_per_step(self) -> int:
        return self.scenario.tokens_per_step

    @property
    def tokens_per_s_per_gpu(self) -> float:
        return self.tokens_per_step / self.step_time_s / self.num_gpus

    @property
    def model_tflops_per_gpu(self) -> float:
        """Model FLOPs per second per GPU, in TFLOP/s (spec/result.md)."""
        return self.model_flops_per_step / self.step_time_s / self.num_gpus / 1e12

    @property
    def bubble_fraction(self) -> float:
        return self.breakdown_s["bubble"] / self.step_time_s

    @property
    def exposed_comm_fraction(self) -> float:
        comm = sum(self.breakdown_s[k] for k in ("tp_comm", "cp_comm", "ep_comm", "pp_comm", "dp_comm"))
        return comm / self.step_time_s


class Blocks:
    """Pure durations of the blocks one GPU runs, for the communication paths of its groups."""

    def __init__(self, s: Scenario, paths: Paths) -> None:
        self.s, self.gpu, self.paths = s, s.gpu, paths
        self.n_virtual = s.parallelism.pipeline * s.parallelism.virtual_pipeline
        self.chunks = chunk_layers(s)
        self._layer_cache: dict[bool, LayerTime] = {}
        self._pieces: dict[tuple[int, Phase], list[tuple[str, PhaseTime, int | None]]] = {}
        self._totals: dict[tuple[int, Phase], PhaseTime] = {}
        self._params: dict[tuple[int, Phase], list[float]] = {}
        self._expert_params: dict[tuple[int, Phase], list[float]] = {}

    def layer(self, index: int) -> LayerTime:
        moe = flops.is_moe_layer(self.s.model, index)
        if moe not in self._layer_cache:
            self._layer_cache[moe] = layer.layer_time(self.s, self.gpu, self.paths, moe)
        return self._layer_cache[moe]

    def pieces(self, vs: int, phase: Phase) -> list[tuple[str, PhaseTime, int | None]]:
        """The blocks of virtual stage ``vs`` in execution order: (name, time, layer index)."""
        key = (vs, phase)
        if key not in self._pieces:
            self._pieces[key] = self._build_pieces(vs, phase)
        return self._pieces[key]

    def piece_params(self, vs: int, phase: Phase) -> list[float]:
        """Parameters per GPU of each block of :meth:`pieces` (a layer, the embedding, or final norm + LM head)."""
        key = (vs, phase)
        if key not in self._params:
            s = self.s
            self._params[key] = [
                layer_params_per_gpu(s, index) if index is not None
                else embedding_params_per_gpu(s) if name == "embedding" else head_params_per_gpu(s)
                for name, _t, index in self.pieces(vs, phase)]
        return self._params[key]

    def piece_expert_params(self, vs: int, phase: Phase) -> list[float]:
        """The routed-expert part of :meth:`piece_params` (the MTP modules' experts with the head)."""
        key = (vs, phase)
        if key not in self._expert_params:
            s = self.s
            mtp = s.model.mtp_layers * expert_layer_params_per_gpu(s, s.model.num_layers - 1)
            self._expert_params[key] = [
                expert_layer_params_per_gpu(s, index) if index is not None else 0.0 if name == "embedding" else mtp
                for name, _t, index in self.pieces(vs, phase)]
        return self._expert_params[key]

    def block_time(self, vs: int, phase: Phase) -> PhaseTime:
        """Summed time of all blocks of virtual stage ``vs`` for one pass."""
        key = (vs, phase)
        if key not in self._totals:
            self._totals[key] = _sum(t for _, t, _ in self.pieces(vs, phase))
        return self._totals[key]

    def _build_pieces(self, vs: int, phase: Phase) -> list[tuple[str, PhaseTime, int | None]]:
        out: list[tuple[str, PhaseTime, int | None]] = []
        if vs == 0:
            out.append(("embedding", _phase(layer.embedding_time(self.s, self.gpu), phase), None))
        out += [(f"layer{i}", _phase(self.layer(i), phase), i) for i in self.chunks[vs]]
        if vs == self.n_virtual - 1:
            out.append(("lm_head", _phase(layer.head_time(self.s, self.gpu, self.paths), phase), None))
            if self.s.model.mtp_layers:
                block = self.layer(self.s.model.num_layers - 1)  # MTP blocks are of the last layer's kind
                out.append(("mtp", _phase(layer.mtp_time(self.s, self.gpu, self.paths, block), phase), None))
        return out if phase is Phase.FORWARD else out[::-1]


class StepSimulation:
    """One optimizer step of a validated scenario: the state every fidelity shares (paths, block durations,
    per simulated rank its time by category, compute-busy time and end, the collective-cost cache, the
    timeline) and the injected ``transport`` that decides which ranks run as processes and how their transfers
    become time: :class:`SymmetricTransport` (the default, whatever ``simulation.fidelity`` says: one process
    per pipeline rank) or ``sim.engine.full.FullTransport`` (every rank, flows on the fabric);
    ``simulate_step`` picks by fidelity.

    ``record`` keeps the timeline of every interval (``--trace``, ``--plot``); off, only the figures."""

    def __init__(self, scenario: Scenario, record: bool = True, transport: Transport | None = None,
                 memory: MemoryBreakdown | None = None) -> None:
        self.s = s = scenario
        #: the scenario's peak memory when the caller already has it (evaluate checks the fit first, ~3 ms on 405B)
        self.memory = memory
        self.gpu = s.gpu
        self.p = s.parallelism.pipeline
        self.v = s.parallelism.virtual_pipeline
        self.m = s.num_microbatches
        self.n_virtual = self.p * self.v
        paths = scenario_paths(s.cluster.topology, self.gpu, s.parallelism)
        self.paths = Paths(tp=paths.tp, cp=paths.cp, ep=paths.ep, etp=paths.etp)
        self.dp_path: GroupPath = paths.dp
        self.edp_path: GroupPath = paths.edp  # routed-expert gradients and parameters (MoE parallel folding)
        self.pp_path: GroupPath = paths.pp
        self.dp = dp_plan(s)
        # ZeRO collectives run over the shard group; with HSDP, gradient shards are all-reduced across replicas
        self.shard_path, self.replica_path = (hsdp_paths(s.cluster.topology, self.gpu, s.parallelism)
                                              if self.dp.replicas > 1 else (paths.dp, paths.dp))
        self.blocks = Blocks(s, self.paths)
        #: (latency, bandwidth time) per (id of the collective, bytes, id of its path): sizes repeat across ranks
        self.collective_costs: dict[tuple[int, float, int], tuple[float, float]] = {}
        self.env = simpy.Environment()
        self.timeline = Timeline(record)
        self.transport = SymmetricTransport() if transport is None else transport

    # ---- running -------------------------------------------------------------------------
    def run(self) -> StepResult:
        stage_of = self.transport.stages(self)
        self._slots(len(stage_of))
        self.transport.start(self)
        self.env.run()
        self.transport.finish(self)
        return self._result(stage_of)

    def _slots(self, n: int) -> None:
        """Per simulated rank: time spent by category, compute-stream busy time, end time."""
        self.spent: list[defaultdict[str, float]] = [defaultdict(float) for _ in range(n)]
        self.compute_busy = [0.0] * n
        self.end = [0.0] * n

    def _result(self, stage_of: list[int]) -> StepResult:
        """The step of the simulated ranks (``stage_of[slot]``: the pipeline rank of each). The breakdown is
        taken on the busiest rank of the bottleneck stage (largest compute-busy time, issue 10: with uneven
        stages the rank that ends last is not the one that sets the pace); its bubble is the rest of the step."""
        s = self.s
        step = max(self.end)
        stage_compute = [0.0] * self.p
        for slot, stage in enumerate(stage_of):
            stage_compute[stage] = max(stage_compute[stage], self.compute_busy[slot])
        bottleneck = max(range(self.p), key=lambda r: stage_compute[r])
        busiest = max((slot for slot, stage in enumerate(stage_of) if stage == bottleneck),
                      key=lambda slot: self.compute_busy[slot])
        spent = dict(self.spent[busiest])
        accounted = sum(v for k, v in spent.items() if k != "bubble")
        breakdown = {k: spent.get(k, 0.0) for k in CATEGORIES}
        breakdown["bubble"] = max(0.0, step - accounted)
        model_flops = flops.model_flops_per_token(s.model) * s.tokens_per_step
        p = s.parallelism
        extra = flops.recompute_flops_per_token(s.model, p.activation_recompute.value, p.recompute_modules)
        return StepResult(
            scenario=s, step_time_s=step, model_flops_per_step=model_flops,
            hardware_flops_per_step=model_flops + extra * s.tokens_per_step, breakdown_s=breakdown,
            stage_compute_s=stage_compute, memory=self.memory if self.memory is not None else peak_memory(s),
            timeline=self.timeline,
            bottleneck_stage=bottleneck)


class Transport(ABC):
    """How the ranks of a step become SimPy processes and their transfers time, given to :class:`StepSimulation`
    (which owns the state they book into): it names the ranks it simulates, starts their op lists
    (``PipelineRank``) through its rank transports (:class:`RankIO`), and books what is left once they ran."""

    @abstractmethod
    def stages(self, sim: StepSimulation) -> list[int]:
        """The pipeline stage of each rank it simulates, in slot order (``sim`` then makes one slot per rank)."""

    @abstractmethod
    def start(self, sim: StepSimulation) -> None:
        """Start the processes of the simulated ranks on ``sim.env``."""

    @abstractmethod
    def finish(self, sim: StepSimulation) -> None:
        """After the step ran: book what is still to be booked."""


class SymmetricTransport(Transport):
    """Symmetric fidelity: one process per pipeline rank, standing for its TP, CP and DP peers, through
    :class:`SymmetricIO` (analytic channels; the stages' messages in one mailbox per direction)."""

    def stages(self, sim: StepSimulation) -> list[int]:
        return list(range(sim.p))

    def start(self, sim: StepSimulation) -> None:
        mail = {"act": Mailbox(sim.env), "grad": Mailbox(sim.env)}
        self.ios = [SymmetricIO(sim, r, mail) for r in range(sim.p)]
        for r, io in enumerate(self.ios):
            sim.env.process(PipelineRank(sim, r, io).run())

    def finish(self, sim: StepSimulation) -> None:
        """Each rank books the blocks it ran (:meth:`SymmetricIO.book_blocks`)."""
        for io in self.ios:
            io.book_blocks()


def _phase(t: LayerTime, phase: Phase) -> PhaseTime:
    return t.forward if phase is Phase.FORWARD else t.backward


#: What a rank's transport yields to SimPy (nothing when its clock just moves on).
Steps = Iterable[simpy.Event]
#: A pass with no DP collective of its own: (index of its lane, micro-batch).
PlainPass = tuple[int, int]


class Lane(NamedTuple):
    """:meth:`RankIO.lane` as it was asked (the transports that run its passes one call at a time)."""

    recv: str | None
    recv_base: int
    time: PhaseTime
    send: str | None
    send_base: int
    phase: Phase
    vs: int
    nbytes: float


class RankIO:
    """How one rank's work meets time and the other ranks: its clock, its compute stream, its channels.

    The op list (``PipelineRank``) is the same for every fidelity; a transport decides how its
    blocks, waits and transfers become time: :class:`SymmetricIO` (analytic channels, a rank clock that
    runs ahead between messages) or ``sim.engine.full.FullIO`` (every transfer a process on the shared
    fabric). Both book the same categories (``spent``) the same way."""

    def __init__(self, sim: StepSimulation, slot: int) -> None:
        self.sim, self.slot, self.env = sim, slot, sim.env
        self.spent = sim.spent[slot]

    @property
    def now(self) -> float:
        raise NotImplementedError

    def _book_compute(self, name: str, t: PhaseTime, start: float, end: float, extra: float,
                      args: dict[str, Any]) -> None:
        spent = self.spent
        spent["compute"] += t.compute
        spent["tp_comm"] += t.tp_comm
        spent["cp_comm"] += t.cp_comm
        spent["ep_comm"] += t.ep_comm
        spent["contention"] += t.overlapped_comm * t.contention + extra
        self.sim.compute_busy[self.slot] += end - start
        if self.sim.timeline.enabled:
            self.sim.timeline.add(self.slot, "compute", name, start, end, compute_s=t.compute,
                                  tp_comm_s=t.tp_comm, cp_comm_s=t.cp_comm, ep_comm_s=t.ep_comm, **args)

    def compute(self, name: str, t: PhaseTime, **args: Any) -> Steps:
        raise NotImplementedError

    def recv_pp(self, kind: str, key: int, category: str) -> Steps:
        raise NotImplementedError

    def send_pp(self, kind: str, key: int, name: str, nbytes: float) -> None:
        raise NotImplementedError

    def lane(self, recv: str | None, recv_base: int, t: PhaseTime, send: str | None, send_base: int,
             phase: Phase, vs: int, nbytes: float) -> Any:
        """The passes of one (phase, chunk) of the rank's op list that have no DP collective of their own: receive
        message ``recv_base + mb`` of channel ``recv`` (if any), compute ``t``, send ``send_base + mb`` on channel
        ``send`` (if any); what :meth:`passes` takes, in the transport's own form."""
        return Lane(recv, recv_base, t, send, send_base, phase, vs, nbytes)

    def passes(self, lanes: list[Any], passes: tuple[PlainPass, ...]) -> Steps:
        """Run ``passes`` (lane index, micro-batch) of :meth:`lane`'s ``lanes`` in order; a transport may fuse
        their receive, compute and send."""
        rec = self.sim.timeline.enabled
        for index, mb in passes:
            recv, recv_base, t, send, send_base, phase, vs, nbytes = lanes[index]
            name = f"{phase}{mb}.vs{vs}" if rec else ""
            if recv is not None:
                yield from self.recv_pp(recv, recv_base + mb, "pp_comm")
            yield from self.compute(name, t, **({"microbatch": mb, "vs": vs} if rec else {}))
            if send is not None:
                self.send_pp(send, send_base + mb, name, nbytes)

    def dp_plan(self, plan: DpPass) -> Any:
        """``plan`` in the form :meth:`dp_pass` takes (resolved once: the rank keeps it)."""
        return plan

    def dp_pass(self, lane: Any, mb: int, plan: Any, pending: list[Any]) -> Steps:
        """A pass of :meth:`lane` ``lane`` with DP collectives of its own (:class:`DpPass`): receive its input,
        then per block submit its gathers, wait for its own (``plan.wait``), compute it, submit its reductions
        (added to ``pending``); then send its output."""
        recv, recv_base, _t, send, send_base, phase, vs, nbytes = lane
        rec = self.sim.timeline.enabled
        label = f"{phase}{mb}.vs{vs}" if rec else ""
        if recv is not None:
            yield from self.recv_pp(recv, recv_base + mb, "pp_comm")
        gathers: list[list[Any]] = []  # the gathers of each block, submitted as it comes into the prefetch window
        args = {"microbatch": mb, "vs": vs} if plan.with_vs else {"microbatch": mb}
        for j, (name, t, submit, reduces) in enumerate(plan.blocks):
            for specs in submit:
                gathers.append([self.send_dp(*spec) for spec in specs])
            if plan.wait:
                for event in gathers[j]:
                    yield from self.wait_dp(event, "dp_comm")
            yield from self.compute(f"{label}.{name}" if rec else "", t, **args)
            pending += [self.send_dp(*spec) for spec in reduces]
        if send is not None:
            self.send_pp(send, send_base + mb, label, nbytes)

    def send_dp(self, channel: int, name: str, nbytes: float, op: Collective, path: GroupPath | None = None) -> Any:
        raise NotImplementedError

    def wait_dp(self, tr: Any, category: str) -> Steps:
        raise NotImplementedError

    def wait_all(self, transfers: list[Any], category: str) -> Steps:
        """:meth:`wait_dp` for each of ``transfers`` in turn."""
        for tr in transfers:
            yield from self.wait_dp(tr, category)

    def _book_wait(self, start: float, now: float, value: tuple[float, float] | None, category: str) -> None:
        """Time waited from ``start`` to ``now`` for a transfer of (start, end) ``value``: its part after
        the transfer started counts as ``category``, waiting before it started as bubble."""
        waited = now - start
        if waited <= 0:
            return
        if value is None:
            comm = waited
        else:  # max(0.0, value[1] - max(start, value[0])), without the calls
            comm = value[1] - (start if start > value[0] else value[0])
            if comm < 0.0:
                comm = 0.0
        self.spent[category] += comm
        self.spent["bubble"] += waited - comm


#: :meth:`SymmetricIO.lane`: the inbox (its mailbox's messages and waiting events), the receive key base, the
#: block's run record, the outbox (send channel, its mailbox's messages and waiting events, a transfer's seconds),
#: the send key base, phase, virtual stage, bytes sent.
_Messages = dict[int, tuple[float, float]]
_Waiting = dict[int, simpy.Event]
_FastLane = tuple[tuple[_Messages, _Waiting] | None, int, "_BlockRuns",
                  tuple[FifoChannel, _Messages, _Waiting, float] | None, int, Phase, int, float]


#: A DP collective of :meth:`SymmetricIO.dp_plan`: channel, name, latency, bandwidth time, bytes.
_FastDp = tuple[int, str, float, float, float]
#: :meth:`SymmetricIO.dp_plan`: per block its name, run record, gathers to submit and reductions; whether each block
#: waits for its gathers, whether its timeline args name the virtual stage, the time of every block when each pass
#: books them as a run record of its own.
_FastDpPass = tuple[list[tuple[str, "_BlockRuns", list[list[_FastDp]], list[_FastDp]]], bool, bool,
                    PhaseTime | None]


class _BlockRuns:
    """A block time a rank ran, its total, and how many times."""

    __slots__ = ("runs", "time", "total")

    def __init__(self, t: PhaseTime) -> None:
        self.time, self.total, self.runs = t, t.total, 0


class SymmetricIO(RankIO):
    """A pipeline rank standing for its TP, CP and DP peers: its channels are analytic (no process per
    transfer), its clock runs ahead on its own work and only a message not yet sent by a neighbour
    makes it wait (a SimPy event). Exact: a rank's channels carry only its own transfers, submitted in
    its own time order, and every message carries its arrival time."""

    def __init__(self, sim: StepSimulation, rank: int, mail: dict[str, Mailbox]) -> None:
        super().__init__(sim, rank)
        self.t = 0.0
        self.mail = mail
        timeline = sim.timeline
        self.pp = {"act": FifoChannel(rank, "pp_send_fwd", timeline),
                   "grad": FifoChannel(rank, "pp_send_bwd", timeline)}
        self.pp_channels = (self.pp["act"], self.pp["grad"])
        self.dp = DpLink(rank, ("dp_reduce", "dp_gather"), timeline)
        self.dp_contention = sim.dp_path.sm_contention
        self.pp_contention = sim.pp_path.sm_contention
        self._costs = sim.collective_costs
        self.recording = timeline.enabled
        self._records: dict[int, _BlockRuns] = {}  # by the id of the block time (each kept alive by its record)
        self._blocks: list[_BlockRuns] = []  # the records run, in the order they first ran (the order booked)
        self.extra = 0.0  # contention of communication beside blocks, seconds
        self.compute_busy = 0.0

    @property
    def now(self) -> float:
        return self.t

    def compute(self, name: str, t: PhaseTime, **args: Any) -> Steps:
        self._compute(name, t, args)
        return NO_STEPS

    def hold(self, seconds: float) -> Steps:
        self.t = self.t + seconds
        return NO_STEPS

    def dp_plan(self, plan: DpPass) -> _FastDpPass:
        """Everything :meth:`dp_pass` looks up, resolved once per rank: each block's run record, each collective's
        (channel, name, latency, bandwidth time, bytes)."""
        def resolved(specs: list[DpSpec]) -> list[_FastDp]:
            return [(channel, name, *self._cost(op, nbytes, path or self.sim.dp_path), nbytes)
                    for channel, name, nbytes, op, path in specs]

        blocks = [(name, self._block_runs(t), [resolved(specs) for specs in submit], resolved(reduces))
                  for name, t, submit, reduces in plan.blocks]
        return blocks, plan.wait, plan.with_vs, plan.blocks[0][1] if plan.fresh else None

    def dp_pass(self, lane: _FastLane, mb: int, plan: _FastDpPass,
                pending: list[Any]) -> Generator[simpy.Event, tuple[float, float], None]:
        """The receive, the blocks with their DP collectives (``send_dp``, ``wait_dp``, :meth:`_compute`) and the
        send of one pass written out in one call (ZeRO-3 and sharded-gradient passes: the innermost loop of their
        steps). A wait for a DP transfer never needs another rank (:meth:`DpLink.finish` is analytic): only a
        message not sent yet suspends it, as in :meth:`passes`; the rank's clock and counters in locals."""
        inbox, recv_base, _block, outbox, send_base, phase, vs, nbytes = lane
        blocks, wait, with_vs, fresh = plan
        t, busy, extra_total = self.t, self.compute_busy, self.extra
        spent, rec, timeline, slot = self.spent, self.recording, self.sim.timeline, self.slot
        dp, act, grad = self.dp, *self.pp_channels
        q0, q1 = dp.queues
        dp_c, pp_c, seen = self.dp_contention, self.pp_contention, self._blocks
        submit_dp, finish = dp.submit, dp.finish
        label = f"{phase}{mb}.vs{vs}" if rec else ""
        if inbox is not None:
            received, waiting = inbox
            key = recv_base + mb
            value = received.pop(key, None)  # Mailbox.get, written out
            if value is None:  # not sent yet: wait for it
                waiting[key] = event = self.env.event()
                value = yield event
            sent_at, arrival = value
            if arrival > t:  # as in passes (_book_wait)
                comm = arrival - (t if t > sent_at else sent_at)
                if comm < 0.0:
                    comm = 0.0
                spent["pp_comm"] += comm
                spent["bubble"] += arrival - t - comm
                t = arrival
        # the pieces of a bucketed backward are booked as one run record per pass (so they were before, a new
        # piece time each pass): the sums of the booked parts keep their order
        own = _BlockRuns(fresh) if fresh is not None else None
        gathers: list[list[DpTransfer]] = []
        for j, (name, block, submit, reduces) in enumerate(blocks):
            for specs in submit:  # send_dp, written out (a loop: a comprehension is a call of its own)
                group = []
                for channel, spec_name, latency, work, nb in specs:
                    group.append(submit_dp(t, channel, spec_name, latency, work, nb))
                gathers.append(group)
            if wait:
                for tr in gathers[j]:  # wait_dp, written out
                    end = tr.end
                    if end is None:
                        end = finish(tr)
                    if end > t:  # the wait after the transfer started is dp_comm, before it bubble (_book_wait)
                        started = tr.start
                        comm = end - (t if t > started else started)  # type: ignore[operator]
                        if comm < 0.0:
                            comm = 0.0
                        spent["dp_comm"] += comm
                        spent["bubble"] += end - t - comm
                        t = end
            if own is not None:
                block = own
            start = t  # _compute, written out
            end = start + block.total
            extra = 0.0
            if q0 or q1:
                gather, reduce = dp.busy_between(start, end)
                extra += gather * dp_c
                extra += reduce * dp_c
            busy_until = act.free_at
            if busy_until > start:
                extra += ((end if end < busy_until else busy_until) - start) * pp_c
            busy_until = grad.free_at
            if busy_until > start:
                extra += ((end if end < busy_until else busy_until) - start) * pp_c
            if extra > 0:
                end = end + extra
                extra_total += extra
            t = end
            if not block.runs:
                seen.append(block)
            block.runs += 1
            busy += end - start
            if rec:
                tm = block.time
                args = {"microbatch": mb, "vs": vs} if with_vs else {"microbatch": mb}
                timeline.add(slot, "compute", f"{label}.{name}", start, end, compute_s=tm.compute,
                             tp_comm_s=tm.tp_comm, cp_comm_s=tm.cp_comm, ep_comm_s=tm.ep_comm, **args)
            for channel, spec_name, latency, work, nb in reduces:
                pending.append(submit_dp(t, channel, spec_name, latency, work, nb))
        if outbox is not None:  # as in passes (Mailbox.put)
            out, sent, woken, seconds = outbox
            begin = out.free_at
            if t > begin:
                begin = t
            done = begin + seconds
            out.free_at = done
            if rec:
                timeline.add(slot, out.name, label, begin, done, bytes=nbytes)
            key = send_base + mb
            if key in woken:
                woken.pop(key).succeed((begin, done))
            else:
                sent[key] = (begin, done)
        self.t, self.compute_busy, self.extra = t, busy, extra_total

    def lane(self, recv: str | None, recv_base: int, t: PhaseTime, send: str | None, send_base: int,
             phase: Phase, vs: int, nbytes: float) -> _FastLane:
        """Everything :meth:`passes` looks up, resolved once per rank: the mailboxes' dictionaries, the block's run
        record, the send channel and a transfer's seconds."""
        inbox = outbox = None
        if recv is not None:
            inbox = (self.mail[recv].values, self.mail[recv].waiting)
        if send is not None:
            latency, work = self._cost(Collective.SEND_RECV, nbytes, self.sim.pp_path)
            outbox = (self.pp[send], self.mail[send].values, self.mail[send].waiting, latency + work)
        return inbox, recv_base, self._block_runs(t), outbox, send_base, phase, vs, nbytes

    def passes(self, lanes: list[_FastLane],
               passes: tuple[PlainPass, ...]) -> Generator[simpy.Event, tuple[float, float], None]:
        """``recv_pp``, ``compute`` (:meth:`_compute`) and ``send_pp`` of each pass written out in one loop, the
        rank's state in locals (most passes of a step are these: the innermost loop). Only a message not sent
        yet suspends it (a SimPy event, as ``Mailbox.get``); nothing else reads this rank's clock or counters
        meanwhile, so they are written back when it returns."""
        t, busy, extra_total = self.t, self.compute_busy, self.extra
        spent, rec, timeline, slot, env = self.spent, self.recording, self.sim.timeline, self.slot, self.env
        dp, act, grad = self.dp, *self.pp_channels
        q0, q1 = dp.queues
        dp_c, pp_c, seen = self.dp_contention, self.pp_contention, self._blocks
        for index, mb in passes:
            inbox, recv_base, block, outbox, send_base, phase, vs, nbytes = lanes[index]
            if inbox is not None:
                received, waiting = inbox
                key = recv_base + mb
                value = received.pop(key, None)  # Mailbox.get, written out
                if value is None:  # not sent yet: wait for it
                    waiting[key] = event = env.event()
                    value = yield event
                sent_at, arrival = value
                if arrival > t:  # the clock moves to its arrival: the wait after the transfer started is
                    # pp_comm, before it bubble (_book_wait)
                    comm = arrival - (t if t > sent_at else sent_at)
                    if comm < 0.0:
                        comm = 0.0
                    spent["pp_comm"] += comm
                    spent["bubble"] += arrival - t - comm
                    t = arrival
            start = t
            end = start + block.total
            extra = 0.0
            if q0 or q1:
                gather, reduce = dp.busy_between(start, end)
                extra += gather * dp_c
                extra += reduce * dp_c
            busy_until = act.free_at
            if busy_until > start:
                extra += ((end if end < busy_until else busy_until) - start) * pp_c
            busy_until = grad.free_at
            if busy_until > start:
                extra += ((end if end < busy_until else busy_until) - start) * pp_c
            if extra > 0:
                end = end + extra
                extra_total += extra
            t = end
            if not block.runs:
                seen.append(block)
            block.runs += 1
            busy += end - start
            if rec:
                name = f"{phase}{mb}.vs{vs}"
                tm = block.time
                timeline.add(slot, "compute", name, start, end, compute_s=tm.compute, tp_comm_s=tm.tp_comm,
                             cp_comm_s=tm.cp_comm, ep_comm_s=tm.ep_comm, microbatch=mb, vs=vs)
            if outbox is not None:
                channel, sent, woken, seconds = outbox
                begin = channel.free_at
                if end > begin:
                    begin = end
                done = begin + seconds
                channel.free_at = done
                if rec:
                    timeline.add(slot, channel.name, name, begin, done, bytes=nbytes)
                key = send_base + mb
                if key in woken:  # Mailbox.put, written out
                    woken.pop(key).succeed((begin, done))
                else:
                    sent[key] = (begin, done)
        self.t, self.compute_busy, self.extra = t, busy, extra_total

    def _block_runs(self, t: PhaseTime) -> _BlockRuns:
        """The run record of block time ``t`` (by identity: each is kept alive by its record)."""
        block = self._records.get(id(t))
        if block is None:
            block = self._records[id(t)] = _BlockRuns(t)
        return block

    def _compute(self, name: str, t: PhaseTime, args: dict[str, Any] | None) -> float:
        """Run a block on the compute stream from the clock: communication beside it slows it (contention order:
        DP gather, DP reduce, PP forward, PP backward; a channel idle from its start on adds nothing, its busy
        time does not change). Counts it (booked by :meth:`book_blocks`) and returns its end."""
        start = self.t
        block = self._block_runs(t)
        end = start + block.total
        extra = 0.0
        dp = self.dp
        q0, q1 = dp.queues
        if q0 or q1:
            gather, reduce = dp.busy_between(start, end)
            extra += gather * self.dp_contention
            extra += reduce * self.dp_contention
        act, grad = self.pp_channels  # busy from start until free_at (FifoChannel.busy_between, written out)
        if act.free_at > start:
            extra += ((end if end < act.free_at else act.free_at) - start) * self.pp_contention
        if grad.free_at > start:
            extra += ((end if end < grad.free_at else grad.free_at) - start) * self.pp_contention
        if extra > 0:
            end = end + extra
            self.extra += extra
        self.t = end
        if not block.runs:
            self._blocks.append(block)
        block.runs += 1
        self.compute_busy += end - start
        if self.recording:
            self.sim.timeline.add(self.slot, "compute", name, start, end, compute_s=t.compute, tp_comm_s=t.tp_comm,
                                  cp_comm_s=t.cp_comm, ep_comm_s=t.ep_comm, **(args or _NO_ARGS))
        return end

    def book_blocks(self) -> None:
        """Book the blocks run (each distinct block time's parts times its runs: one multiplication instead of
        five dictionary updates per block) and the contention and compute-stream time they took."""
        spent = self.spent
        for block in self._blocks:
            t, runs = block.time, block.runs
            spent["compute"] += t.compute * runs
            spent["tp_comm"] += t.tp_comm * runs
            spent["cp_comm"] += t.cp_comm * runs
            spent["ep_comm"] += t.ep_comm * runs
            spent["contention"] += t.overlapped_comm * t.contention * runs
        spent["contention"] += self.extra
        self.sim.compute_busy[self.slot] += self.compute_busy

    def _cost(self, op: Collective, nbytes: float, path: GroupPath) -> tuple[float, float]:
        """(latency, bandwidth time) of one collective, cached per (op, size, path)."""
        key = (id(op), nbytes, id(path))  # the paths live as long as the simulation; an enum's hash is slow
        if key not in self._costs:
            self._costs[key] = (collective_latency(op, nbytes, path), collective_bandwidth_time(op, nbytes, path))
        return self._costs[key]

    def send_pp(self, kind: str, key: int, name: str, nbytes: float) -> None:
        latency, work = self._cost(Collective.SEND_RECV, nbytes, self.sim.pp_path)
        self.mail[kind].put(key, self.pp[kind].submit(self.t, name, latency + work, bytes=nbytes))

    def recv_pp(self, kind: str, key: int, category: str) -> Steps:
        value = self.mail[kind].values.pop(key, None)  # Mailbox.get: received once
        if value is None:  # not sent yet: wait for it as a SimPy event
            return self._recv_later(kind, key, category)
        self._arrived(value, category)
        return NO_STEPS

    def _recv_later(self, kind: str, key: int, category: str) -> Steps:
        value = yield from self.mail[kind].get(key)
        self._arrived(value, category)

    def _arrived(self, value: tuple[float, float], category: str) -> None:
        """A message of transfer (start, end) is here: the clock moves to its end if that is later."""
        start = self.t
        self.t = max(start, value[1])
        self._book_wait(start, self.t, value, category)

    def send_dp(self, channel: int, name: str, nbytes: float, op: Collective,
                path: GroupPath | None = None) -> DpTransfer:
        """Submit a DP collective on ``path`` (default: the whole DP x CP group; HSDP passes its groups)."""
        latency, work = self._cost(op, nbytes, path or self.sim.dp_path)
        return self.dp.submit(self.t, channel, name, latency, work, nbytes)

    def wait_all(self, transfers: list[DpTransfer], category: str) -> Steps:
        """:meth:`wait_dp` for each of ``transfers`` in turn, the link moved first (:meth:`DpLink.finish_all`: only
        this rank submits to it and it submits nothing meanwhile), the clock in a local (a step ends waiting for
        every reduction of its last backwards: ~400 per rank with sharded gradients on 405B)."""
        self.dp.finish_all(transfers)
        t, spent = self.t, self.spent
        for tr in transfers:
            end: float = tr.end  # type: ignore[assignment]
            if end > t:  # the wait after the transfer started is category, before it bubble (_book_wait)
                started: float = tr.start  # type: ignore[assignment]
                comm = end - (t if t > started else started)
                if comm < 0.0:
                    comm = 0.0
                spent[category] += comm
                spent["bubble"] += end - t - comm
                t = end
        self.t = t
        return NO_STEPS

    def wait_dp(self, tr: DpTransfer, category: str) -> Steps:
        start = self.t
        end = self.dp.finish(tr)
        assert tr.start is not None
        if end > start:  # nothing to book when it ended before the clock
            self.t = end
            self._book_wait(start, end, (tr.start, end), category)
        return NO_STEPS


@functools.lru_cache(maxsize=64)
def _lane_order(schedule: Schedule, p: int, v: int, m: int) -> tuple[list[PlainPass], list[PlainPass]]:
    """The forwards and the backwards of every rank in order as plain passes (``schedules.forward_order``; the
    lane of a chunk's forwards is the chunk, of its backwards v + chunk)."""
    order = forward_order(schedule, p, v, m)
    return [(chunk, mb) for mb, chunk in order], [(2 * v - 1 - chunk, mb) for mb, chunk in order]


@functools.lru_cache(maxsize=1024)
def _rank_plan(schedule: Schedule, p: int, v: int, rank: int, m: int, plain_forward: bool, plain_backward: bool,
               gathered: bool, reduce_last: bool) -> tuple[PlanStep, ...]:
    """A rank's op list (``stage_ops``) as runs of plain passes (:data:`PlainPass`: no DP collective of their own),
    each followed by the op that has one (or None at the end) and whether that op is its chunk's last backward.
    Not plain: forwards unless ``plain_forward``, each chunk's first forward when its parameters are ``gathered``
    ahead of it, backwards unless ``plain_backward``, each chunk's last backward when it ``reduce_last``s its
    gradients. Built by slicing the shared pass order (no loop per op when only those firsts and lasts are not
    plain); shared by every step with the same shape (a search's layouts repeat them)."""
    forwards, backwards = _lane_order(schedule, p, v, m)
    warmup = warmup_forwards(schedule, p, v, rank, m)
    passes = one_forward_one_backward(forwards, backwards, warmup)
    steady = len(forwards) - warmup
    # where the k-th forward and the k-th backward sit in the rank's op list
    forward_at = [*range(warmup), *range(warmup, warmup + 2 * steady, 2)]
    backward_at = [*range(warmup + 1, warmup + 2 * steady, 2), *range(warmup + 2 * steady, len(passes))]
    lasts: dict[int, int] = {}  # the position of each chunk's last backward
    for k in range(len(backwards) - 1, -1, -1):  # from the end: met early
        lasts.setdefault(backwards[k][0], backward_at[k])
        if len(lasts) == v:
            break
    special = set(forward_at if not plain_forward else ())
    if plain_forward and gathered:
        firsts: dict[int, int] = {}
        for k, (lane, _) in enumerate(forwards):
            firsts.setdefault(lane, forward_at[k])
            if len(firsts) == v:
                break
        special.update(firsts.values())
    special.update(backward_at if not plain_backward else lasts.values() if reduce_last else ())
    last_at = set(lasts.values())
    plan: list[PlanStep] = []
    begin = 0
    for i in sorted(special):
        lane, mb = passes[i]
        forward = lane < v
        op = PipeOp(Phase.FORWARD if forward else Phase.BACKWARD, mb, lane if forward else lane - v)
        plan.append((tuple(passes[begin:i]), op, i in last_at))
        begin = i + 1
    plan.append((tuple(passes[begin:]), None, False))
    return tuple(plan)


#: Channels of the DP link.
REDUCE, GATHER = 0, 1
NO_STEPS: tuple[simpy.Event, ...] = ()
_NO_ARGS: dict[str, Any] = {}
#: A DP collective to submit: (channel, name, bytes, collective, group path).
DpSpec = tuple[int, str, float, Collective, GroupPath]
#: One block of a pass with DP collectives of its own: name, time, the gathers to submit before it (a list for
#: each block entering the prefetch window), its reductions.
DpBlock = tuple[str, PhaseTime, list[list[DpSpec]], list[DpSpec]]


class DpPass(NamedTuple):
    """A pass with DP collectives of its own, block by block (:meth:`RankIO.dp_pass`)."""

    blocks: list[DpBlock]
    wait: bool  # each block waits for its own gathers first (ZeRO-3 passes that gather)
    with_vs: bool  # its blocks' timeline args name the virtual stage (bucket pieces do, ZeRO-3 pieces not)
    fresh: bool  # every block has the same time, booked per pass (bucket pieces, :meth:`SymmetricIO.dp_pass`)
#: Plain passes, then the op that needs more (None: the end) and whether it is its chunk's last backward.
PlanStep = tuple[tuple[PlainPass, ...], PipeOp | None, bool]
#: One block of a ZeRO-3 pass: name, time, gathers to submit before it, its reductions, its layer index.
ShardedPiece = tuple[str, PhaseTime, list[list[DpSpec]], list[DpSpec], int | None]


_UNPLANNED = object()  # PipelineRank._dp_pass: not planned yet (None: no plan)


class PipelineRank:
    """The op list of one pipeline rank (in symmetric fidelity standing for its TP, CP and DP peers),
    run through its transport ``io``; ``blocks`` are the durations of its blocks (one set in symmetric
    fidelity, per group placement in full)."""

    def __init__(self, sim: StepSimulation, rank: int, io: Any, blocks: Blocks | None = None) -> None:
        self.sim, self.r, self.io = sim, rank, io
        self.blocks = sim.blocks if blocks is None else blocks
        s = sim.s
        self.layout = s.parallelism
        self.zero = self.layout.zero_stage
        self.dp_n = max(sim.dp_path.n, sim.edp_path.n)
        self.pending: list[Any] = []
        self.local_params = stage_params_per_gpu(s, rank)
        self.local_expert_params = stage_expert_params_per_gpu(s, rank)
        self.dp = sim.dp
        self.gathered_chunks: set[int] = set()  # ZeRO-3 chunks whose parameters were gathered this step
        self.pp_bytes = pipeline_activation_bytes(s)  # once per rank
        self.recording = sim.timeline.enabled
        self._times: dict[tuple[int, Phase, int, int], list[PhaseTime]] = {}
        self._plans: dict[tuple[int, bool, int, bool], list[ShardedPiece]] = {}
        self._dp_passes: dict[tuple[int, bool, bool, bool], Any] = {}  # _dp_pass's
        self._dp_plans: dict[tuple[int, bool, int, bool], Any] = {}  # RankIO.dp_plan's, by _sharded_plan's key
        self._params: dict[int, tuple[float, float]] = {}

    # ---- DP -----------------------------------------------------------------------------
    def _gather(self, name: str, params: float, expert: float = 0.0,
                param_bytes: float = zero.PARAM_BYTES) -> list[Any]:
        """All-gather ``params`` parameters per GPU (:meth:`_gather_specs`)."""
        return [self.io.send_dp(*spec) for spec in self._gather_specs(name, params, expert, param_bytes)]

    def _gather_specs(self, name: str, params: float, expert: float = 0.0,
                      param_bytes: float = zero.PARAM_BYTES) -> list[DpSpec]:
        """The all-gathers of ``params`` parameters per GPU, the dense ones over the shard group, the ``expert`` ones
        (routed experts) over the EDP group (Megatron's distributed optimizer shards them there), at
        ``param_bytes`` each."""
        out: list[DpSpec] = []
        if params > expert and self.sim.shard_path.n > 1:
            out.append((GATHER, name, (params - expert) * param_bytes, Collective.ALL_GATHER, self.sim.shard_path))
        if expert > 0 and self.sim.edp_path.n > 1:
            out.append((GATHER, f"{name}.experts", expert * param_bytes, Collective.ALL_GATHER, self.sim.edp_path))
        return out

    def _reduce_grads(self, name: str, params: float, expert: float = 0.0) -> None:
        """Reduce the gradients of ``params`` parameters (:meth:`_reduce_specs`)."""
        self.pending += [self.io.send_dp(*spec) for spec in self._reduce_specs(name, params, expert)]

    def _reduce_specs(self, name: str, params: float, expert: float = 0.0) -> list[DpSpec]:
        """The reductions of the gradients of ``params`` parameters: all-reduce (ZeRO-0) or reduce-scatter over the
        shard group, then (HSDP) the all-reduce of the shard across replicas, queued behind it on the channel. The
        ``expert`` ones among them (routed experts) are reduced over the EDP group instead (Megatron's
        expert-data-parallel group; with HSDP in one collective over the whole EDP group)."""
        out: list[DpSpec] = []
        dense = params - expert
        if dense > 0 and self.sim.dp_path.n > 1:
            nbytes = dense * self.dp.grad_bytes
            out.append((REDUCE, name, nbytes, self.dp.reduce_op, self.sim.shard_path))
            if self.dp.replicas > 1:
                out.append((REDUCE, f"{name}.replicas", nbytes / self.dp.shard, Collective.ALL_REDUCE,
                            self.sim.replica_path))
        if expert > 0 and self.sim.edp_path.n > 1:
            out.append((REDUCE, f"{name}.experts", expert * self.dp.grad_bytes, self.dp.reduce_op,
                        self.sim.edp_path))
        return out

    def _copy_time(self, params: float, bytes_per_param: float) -> PhaseTime:
        """Memory-bound copies around collectives (FSDP2 copy-out, chunk_cat): one read and one write of
        ``bytes_per_param`` (summed over the copy passes) per parameter, on the compute stream."""
        return PhaseTime(compute=kernels.hbm_time(self.sim.gpu, 2 * params * bytes_per_param))

    def _chunk_params(self, vs: int) -> tuple[float, float]:
        """Parameters per GPU of virtual stage ``vs``, and of them routed experts (kept: every sharded backward
        asks)."""
        found = self._params.get(vs)
        if found is None:
            s = self.sim.s
            found = self._params[vs] = (chunk_params_per_gpu(s, vs), chunk_expert_params_per_gpu(s, vs))
        return found

    # ---- the op list --------------------------------------------------------------------
    def run(self):
        sim, p, io, m = self.sim, self.sim.p, self.io, self.sim.m
        gathers = self._start_param_gathers()
        # a pass with no DP collective of its own (the DP link may still be busy beside it) is one
        # receive-compute-send the transport runs in its lane (RankIO.passes)
        plain_forward = not (self.zero == 3 and self.dp_n > 1)
        plain_backward = plain_forward and not (self.dp_n > 1 and self.dp.reduces_after(False))
        plan = _rank_plan(self.layout.schedule, p, sim.v, self.r, m, plain_forward, plain_backward, bool(gathers),
                          self.dp_n > 1)
        last_vs, pp_bytes = sim.n_virtual - 1, self.pp_bytes
        vss = [chunk * p + self.r for chunk in range(sim.v)]
        # the lanes of plain passes: each chunk's forwards (index chunk), then its backwards (index v + chunk)
        lanes = [io.lane("act" if vs > 0 else None, vs * m, self.blocks.block_time(vs, Phase.FORWARD),
                         "act" if vs < last_vs else None, (vs + 1) * m, Phase.FORWARD, vs, pp_bytes) for vs in vss]
        lanes += [io.lane("grad" if vs < last_vs else None, vs * m, self.blocks.block_time(vs, Phase.BACKWARD),
                          "grad" if vs > 0 else None, (vs - 1) * m, Phase.BACKWARD, vs, pp_bytes) for vs in vss]
        for passes, op, last in plan:
            if passes:
                yield from io.passes(lanes, passes)
            if op is None:
                break
            vs = op.chunk * p + self.r
            forward = op.phase is Phase.FORWARD
            dp_pass = self._dp_pass(vs, forward, last)
            if dp_pass is not None:  # its receive, blocks with their collectives and send in one transport call
                yield from io.dp_pass(lanes[op.chunk if forward else sim.v + op.chunk], op.microbatch, dp_pass,
                                      self.pending)
                continue
            if forward:
                if vs > 0:
                    yield from io.recv_pp("act", vs * m + op.microbatch, "pp_comm")
                for event in gathers.pop(op.chunk, ()):
                    yield from io.wait_dp(event, "dp_comm")
                yield from self._run_block(vs, op)
                if vs < last_vs:
                    self._pp_send("act", vs + 1, op)
            else:
                if vs < last_vs:
                    yield from io.recv_pp("grad", vs * m + op.microbatch, "pp_comm")
                yield from self._run_block(vs, op, last=last)
                if vs > 0:
                    self._pp_send("grad", vs - 1, op)
        yield from self._finish()

    def _pp_send(self, kind: str, to_vs: int, op: PipeOp) -> None:
        """Send the activation (``act``) or input gradient (``grad``) of ``op`` to virtual stage ``to_vs``."""
        vs = op.chunk * self.sim.p + self.r
        name = f"{op.phase}{op.microbatch}.vs{vs}" if self.recording else ""
        self.io.send_pp(kind, to_vs * self.sim.m + op.microbatch, name, self.pp_bytes)

    def _dp_pass(self, vs: int, forward: bool, last: bool) -> Any:
        """A pass of ``vs`` with DP collectives of its own as :meth:`RankIO.dp_pass` runs it (the transport's form),
        or None for the passes :meth:`_run_block` runs; kept by what decides it (a chunk's first forward, a backward
        that is its chunk's last)."""
        first = forward and vs not in self.gathered_chunks
        key = (vs, forward, first, last and not forward)
        found = self._dp_passes.get(key, _UNPLANNED)
        if found is _UNPLANNED:
            found = self._dp_passes[key] = self._plan_dp_pass(vs, forward, first, last)
        if first and found is not None:
            self.gathered_chunks.add(vs)
        return found

    def _plan_dp_pass(self, vs: int, forward: bool, first: bool, last: bool) -> Any:
        """:meth:`_dp_pass`'s plans: ZeRO-3 passes (:meth:`_run_sharded`) but the blocking ones, and backwards that
        reduce their gradients bucket by bucket as they become final."""
        if self.dp_n <= 1:
            return None
        if self.zero == 3:
            if self.dp.blocking:
                return None
            count = self.dp.gathers(forward, first_forward=first)
            reduce = not forward and self.dp.reduces_after(last)
            key = (vs, forward, count, reduce)  # most passes' first/last flags change neither: resolved once
            found = self._dp_plans.get(key)
            if found is None:
                blocks = [(name, t, submit, reduces)
                          for name, t, submit, reduces, _index in self._sharded_plan(vs, forward, count, reduce)]
                found = self._dp_plans[key] = self.io.dp_plan(DpPass(blocks, count > 0, False, False))
            return found
        if forward or not (self.dp.overlap_grad_reduce and self.dp.reduces_after(last)):
            return None
        key = (vs, False, 0, True)
        found = self._dp_plans.get(key)
        if found is None:
            reductions = self._bucket_reductions(vs, *self._chunk_params(vs))
            piece = self.blocks.block_time(vs, Phase.BACKWARD).scaled(1 / len(reductions))
            blocks = [(f"bucket{k}", piece, [], specs) for k, specs in enumerate(reductions)]
            found = self._dp_plans[key] = self.io.dp_plan(DpPass(blocks, False, True, True))
        return found

    def _run_block(self, vs: int, op: PipeOp, last: bool = False):
        """Run one pass of virtual stage ``vs`` that :meth:`_dp_pass` does not; a backward reduces its gradients when
        the plan says so (every micro-batch with sharded gradients, else the chunk's ``last`` backward)."""
        # names only matter to the timeline: not formatted when it is off
        label = f"{op.phase}{op.microbatch}.vs{vs}" if self.recording else ""
        if self.zero == 3 and self.dp_n > 1:
            yield from self._run_sharded(label, op, vs, last)
            return
        total = self.blocks.block_time(vs, op.phase)
        reduce = op.phase is Phase.BACKWARD and self.dp.reduces_after(last)
        if not (reduce and self.dp_n > 1):
            yield from self.io.compute(label, total, microbatch=op.microbatch, vs=vs)
            return
        params, expert = self._chunk_params(vs)
        yield from self.io.compute(label, total, microbatch=op.microbatch, vs=vs)
        self._reduce_grads(f"grads.vs{vs}", params, expert)
        if self.dp.reduce_blocks_compute:  # on the compute stream: nothing runs until it is done
            while self.pending:
                yield from self.io.wait_dp(self.pending.pop(0), "dp_comm")

    def _bucket_reductions(self, vs: int, params: float, expert: float) -> list[list[DpSpec]]:
        """The reductions of each gradient bucket of a backward of ``vs`` (:func:`grad_buckets`)."""
        rec = self.recording
        specs: dict[tuple[float, float], list[DpSpec]] = {}  # unnamed, the buckets' reductions repeat
        out = []
        for k, key in enumerate(grad_buckets(params - expert, expert, self.layout.grad_bucket_mparams * 1e6)):
            if rec or key not in specs:
                specs[key] = self._reduce_specs(f"grads.vs{vs}.bucket{k}" if rec else "", *key)
            out.append(specs[key])
        return out

    def _run_sharded(self, label: str, op: PipeOp, vs: int, last: bool):
        """ZeRO-3/FSDP with blocking collectives (the others run as :meth:`_dp_pass`'s plan says, the same way):
        all-gather each block's parameters as often as the plan says (before forward, again before backward and
        before a recompute unless held), ``prefetch_layers`` blocks ahead of the one computing; reduce-scatter its
        gradients after every backward, or the chunk's last only."""
        forward = op.phase is Phase.FORWARD
        count = self.dp.gathers(forward, first_forward=vs not in self.gathered_chunks)
        if forward:
            self.gathered_chunks.add(vs)
        reduce = not forward and self.dp.reduces_after(last)
        io, rec, blocking, mb, pending = self.io, self.recording, self.dp.blocking, op.microbatch, self.pending
        send_dp, wait_dp, compute = io.send_dp, io.wait_dp, io.compute
        gathers: list[list[Any]] = []  # the gathers of each block, submitted as it comes into the prefetch window
        for j, (name, t, submit, reduces, index) in enumerate(self._sharded_plan(vs, forward, count, reduce)):
            for specs in submit:
                gathers.append([send_dp(*spec) for spec in specs])
            if count:
                for event in gathers[j]:
                    yield from wait_dp(event, "dp_comm")
            if blocking:
                yield from self._blocking_overhead(count, index)
            yield from compute(f"{label}.{name}" if rec else "", t, microbatch=mb)
            if reduces:
                pending += [send_dp(*spec) for spec in reduces]
                if blocking:  # waited before anything else runs (DeepSpeed 0.3)
                    while pending:
                        yield from wait_dp(pending.pop(0), "dp_comm")
                    yield from self._blocking_overhead(1, index)

    def _sharded_plan(self, vs: int, forward: bool, count: int, reduce: bool) -> list[ShardedPiece]:
        """Per block of a ZeRO-3 pass of ``vs`` (cached; keyed by ``forward``, not the phase: an enum in a key
        hashes in Python): its name and time (with the copies around its collectives), the gathers to submit
        before it (of the blocks entering the prefetch window, each a list: ``count`` rounds of dense and expert
        gathers), its gradient reductions (``reduce``), its layer."""
        key = (vs, forward, count, reduce)
        plan = self._plans.get(key)
        if plan is None:
            phase = Phase.FORWARD if forward else Phase.BACKWARD
            pieces = self.blocks.pieces(vs, phase)
            params = self.blocks.piece_params(vs, phase)
            experts = self.blocks.piece_expert_params(vs, phase)
            times = self._piece_times(vs, phase, count * self.dp.gather_copy_passes,
                                      self.dp.reduce_copy_passes if reduce else 0)
            ahead, last_piece, submitted = self.dp.prefetch_layers, len(pieces) - 1, 0
            plan = []
            for j, n in enumerate(params):
                upto = j + ahead if j + ahead < last_piece else last_piece
                submit = []
                while count and submitted <= upto:
                    k = submitted
                    submit.append([spec for g in range(count)
                                   for spec in self._gather_specs(f"gather{g}.{pieces[k][0]}", params[k], experts[k],
                                                                  self._gather_bytes(pieces[k][2]))])
                    submitted += 1
                reduces = self._reduce_specs(f"grads.{pieces[j][0]}", n, experts[j]) if reduce else []
                plan.append((pieces[j][0], times[j], submit, reduces, pieces[j][2]))
            self._plans[key] = plan
        return plan

    def _blocking_overhead(self, collectives: int, index: int | None):
        """Blocking plans: the host time of ``collectives`` collective rounds over one block, the device idle
        (per-tensor calls: each pays its host cost and, past the block's first, its own latency)."""
        if not (self.dp.blocking and collectives):
            return
        tensors = zero.layer_param_tensors(self.sim.s.model) if index is not None else 1
        latency = collective_latency(Collective.ALL_GATHER, 1.0, self.sim.shard_path)
        start = self.io.now
        yield from self.io.hold(zero.blocking_overhead_s(self.dp, tensors, collectives, latency))
        self.io.spent["dp_comm"] += self.io.now - start

    def _gather_bytes(self, index: int | None) -> float:
        """Bytes per parameter a ZeRO-3 gather of a piece moves: transformer blocks at the plan's (fp8 under
        fp8 all-gather), embedding and LM head at bf16."""
        return self.dp.block_gather_bytes if index is not None else zero.PARAM_BYTES

    def _piece_times(self, vs: int, phase: Phase, gather_copies: int, reduce_copies: int) -> list[PhaseTime]:
        """Durations of the blocks of ``vs``, each with the memory-bound copies around its ``gather_copies``
        parameter gathers (at the gathered bytes) and ``reduce_copies`` gradient reductions (at bf16)."""
        key = (vs, phase, gather_copies, reduce_copies)
        if key not in self._times:
            pieces, params = self.blocks.pieces(vs, phase), self.blocks.piece_params(vs, phase)
            self._times[key] = [
                t + self._copy_time(n, gather_copies * self._gather_bytes(index) + reduce_copies * zero.PARAM_BYTES)
                if gather_copies or reduce_copies else t
                for (_name, t, index), n in zip(pieces, params, strict=True)]
        return self._times[key]

    def _start_param_gathers(self) -> dict[int, list[Any]]:
        """ZeRO-1/2 with overlapped gather: the updated parameters of each chunk are gathered ahead
        of that chunk's first forward (Megatron's overlap_param_gather)."""
        if self.zero not in (1, 2) or self.dp_n <= 1 or not self.layout.overlap_param_gather:
            return {}
        vss = [j * self.sim.p + self.r for j in range(self.sim.v)]
        return {j: self._gather(f"params.chunk{j}", *self._chunk_params(vs))
                for j, vs in enumerate(vss)}

    def _finish(self):
        io = self.io
        yield from io.wait_all(self.pending, "dp_comm")
        updated = zero.sharded_params(self.dp, self.local_params, self.local_expert_params, self.zero >= 1)
        start = io.now
        yield from io.hold(layer.optimizer_time(self.sim.s, self.sim.gpu, updated))
        io.spent["optimizer"] += io.now - start
        self.sim.timeline.add(io.slot, "compute", "optimizer", start, io.now)
        if self.zero in (1, 2) and self.dp_n > 1 and not self.layout.overlap_param_gather:
            for event in self._gather("params", self.local_params, self.local_expert_params):
                yield from io.wait_dp(event, "dp_comm")
        self.sim.end[io.slot] = io.now


def grad_buckets(dense: float, expert: float, size: float) -> list[tuple[float, float]]:
    """A chunk's gradient buckets in the order its backward fills them, each as (parameters, of them routed
    experts): dense and routed-expert gradients fill buckets of their own (Megatron's expert-parallel
    buffers, reduced over the EDP group), both at the backward's pace: the i-th of n is ready at (i+1)/n."""
    nd = math.ceil(dense / size) if dense > 0 else 0
    ne = math.ceil(expert / size) if expert > 0 else 0
    ready = [((i + 1) / nd, 0, dense / nd, 0.0) for i in range(nd)]
    ready += [((i + 1) / ne, 1, expert / ne, expert / ne) for i in range(ne)]
    return [(params, experts) for _, _, params, experts in sorted(ready)] or [(0.0, 0.0)]


def _sum(times) -> PhaseTime:
    total = PhaseTime()
    for t in times:
        total = total + t
    return total
