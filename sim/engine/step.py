"""The step simulation: one optimizer step of every distinct pipeline rank, as SimPy processes.

Ranks that do identical work (the TP ranks of a group, the DP and CP replicas) are simulated once:
one process per pipeline rank runs its schedule's op list; activations and gradients travel between
stages on point-to-point channels; DP gradient buckets are reduced on a DP channel while backward is
still running; ZeRO-1/2 parameter all-gathers and ZeRO-3 per-layer gathers run ahead of the compute
that needs them. Communication that runs beside compute slows it by the SM-contention factor of its
path. Every duration comes from ``sim.costs``; this module only sequences them.
"""

from __future__ import annotations

import math
from collections import defaultdict
from dataclasses import dataclass, field

import simpy

from sim.costs import flops, layer
from sim.costs.collectives import Collective, GroupPath, collective_bandwidth_time, collective_latency, collective_time
from sim.costs.layer import LayerTime, Paths, PhaseTime
from sim.costs.memory import (
    MemoryBreakdown,
    chunk_params_per_gpu,
    embedding_params_per_gpu,
    head_params_per_gpu,
    layer_params_per_gpu,
    peak_memory,
    stage_params_per_gpu,
)
from sim.engine.fabric import SharedLink, after
from sim.engine.streams import Channel, Timeline
from sim.network.paths import scenario_paths
from sim.parallelism.schedules import Phase, PipeOp, stage_ops
from sim.parallelism.sharding import chunk_layers
from sim.specs.enums import Fidelity, GradDtype
from sim.specs.scenario import Scenario

CATEGORIES = ("compute", "tp_comm", "cp_comm", "pp_comm", "dp_comm", "contention", "optimizer", "bubble")


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
        comm = sum(self.breakdown_s[k] for k in ("tp_comm", "cp_comm", "pp_comm", "dp_comm"))
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
        return out if phase is Phase.FORWARD else out[::-1]


class StepSimulation:
    """Builds the processes of one optimizer step for a validated scenario and runs them (symmetric:
    one process per pipeline rank, whatever ``simulation.fidelity`` says; ``simulate_step`` picks)."""

    def __init__(self, scenario: Scenario) -> None:
        self.s = s = scenario
        self.gpu = s.gpu
        self.p = s.parallelism.pipeline
        self.v = s.parallelism.virtual_pipeline
        self.m = s.num_microbatches
        self.n_virtual = self.p * self.v
        paths = scenario_paths(s.cluster.topology, self.gpu, s.parallelism)
        self.paths = Paths(tp=paths.tp, cp=paths.cp, ep=paths.ep)
        self.dp_path: GroupPath = paths.dp
        self.pp_path: GroupPath = paths.pp
        self.blocks = Blocks(s, self.paths)
        self.env = simpy.Environment()
        self.timeline = Timeline()

    # ---- pure per-op durations -------------------------------------------------------------
    def layer(self, index: int) -> LayerTime:
        return self.blocks.layer(index)

    def pieces(self, vs: int, phase: Phase) -> list[tuple[str, PhaseTime, int | None]]:
        return self.blocks.pieces(vs, phase)

    def block_time(self, vs: int, phase: Phase) -> PhaseTime:
        return self.blocks.block_time(vs, phase)

    # ---- running -------------------------------------------------------------------------
    def run(self) -> StepResult:
        env = self.env
        self.act = {(vs, mb): env.event() for vs in range(1, self.n_virtual) for mb in range(self.m)}
        self.grad = {(vs, mb): env.event() for vs in range(self.n_virtual - 1) for mb in range(self.m)}
        self._slots(self.p)
        for r in range(self.p):
            env.process(PipelineRank(self, r).run())
        env.run()
        return self._result(list(range(self.p)))

    def _slots(self, n: int) -> None:
        """Per simulated rank: time spent by category, compute-stream busy time, end time."""
        self.spent = [defaultdict(float) for _ in range(n)]
        self.compute_busy = [0.0] * n
        self.end = [0.0] * n

    def _result(self, stage_of: list[int]) -> StepResult:
        """The step of the simulated ranks (``stage_of[slot]``: the pipeline rank of each)."""
        s = self.s
        step = max(self.end)
        critical = max(range(len(self.end)), key=lambda r: self.end[r])
        spent = dict(self.spent[critical])
        accounted = sum(v for k, v in spent.items() if k != "bubble")
        breakdown = {k: spent.get(k, 0.0) for k in CATEGORIES}
        breakdown["bubble"] = max(0.0, step - accounted)
        stage_compute = [0.0] * self.p
        for slot, stage in enumerate(stage_of):
            stage_compute[stage] = max(stage_compute[stage], self.compute_busy[slot])
        model_flops = flops.model_flops_per_token(s.model) * s.tokens_per_step
        extra = flops.recompute_flops_per_token(s.model, s.parallelism.activation_recompute.value)
        return StepResult(
            scenario=s, step_time_s=step, model_flops_per_step=model_flops,
            hardware_flops_per_step=model_flops + extra * s.tokens_per_step, breakdown_s=breakdown,
            stage_compute_s=stage_compute, memory=peak_memory(s), timeline=self.timeline)


def _phase(t: LayerTime, phase: Phase) -> PhaseTime:
    return t.forward if phase is Phase.FORWARD else t.backward


class PipelineRank:
    """The processes of one pipeline rank (in symmetric fidelity standing for its TP, CP and DP peers).

    ``slot`` indexes the simulation's per-rank records and names the rank in the timeline (the
    pipeline rank in symmetric fidelity, the global rank in full fidelity); ``blocks`` are the
    durations of its blocks (one set in symmetric fidelity, per group placement in full)."""

    def __init__(self, sim: StepSimulation, rank: int, slot: int | None = None,
                 blocks: Blocks | None = None) -> None:
        self.sim, self.r, self.env = sim, rank, sim.env
        self.slot = rank if slot is None else slot
        self.blocks = sim.blocks if blocks is None else blocks
        s = sim.s
        self.layout = s.parallelism
        self.zero = self.layout.zero_stage
        self.dp_n = sim.dp_path.n
        make = lambda name: Channel(sim.env, self.slot, name, sim.timeline)  # noqa: E731
        self.pp_fwd, self.pp_bwd = make("pp_send_fwd"), make("pp_send_bwd")
        self.dp_ag, self.dp_rs = make("dp_gather"), make("dp_reduce")
        self.dp_link = SharedLink(sim.env)  # the DP path
        self.spent = sim.spent[self.slot]
        self.pending: list[simpy.Event] = []
        self.ops = stage_ops(self.layout.schedule, sim.p, sim.v, rank, sim.m)
        self.local_params = stage_params_per_gpu(s, rank)
        self.grad_bytes = 4 if self.layout.grad_reduce_dtype is GradDtype.FP32 else 2

    def _contention_channels(self) -> list[tuple[Channel, float]]:
        dp, pp = self.sim.dp_path.sm_contention, self.sim.pp_path.sm_contention
        return [(self.dp_ag, dp), (self.dp_rs, dp), (self.pp_fwd, pp), (self.pp_bwd, pp)]

    def compute(self, name: str, t: PhaseTime, **args):
        """Process: run ``t`` on the compute stream, slowed by communication beside it."""
        env, channels = self.env, self._contention_channels()
        start = env.now
        before = [ch.busy_until(start) for ch, _ in channels]
        yield env.timeout(t.total)
        extra = sum((ch.busy_until(env.now) - b) * c for (ch, c), b in zip(channels, before, strict=True))
        if extra > 0:
            yield env.timeout(extra)
        for key, value in (("compute", t.compute), ("tp_comm", t.tp_comm), ("cp_comm", t.cp_comm),
                           ("contention", t.overlapped_comm * t.contention + extra)):
            self.spent[key] += value
        self.sim.compute_busy[self.slot] += env.now - start
        self.sim.timeline.add(self.slot, "compute", name, start, env.now, compute_s=t.compute,
                              tp_comm_s=t.tp_comm, cp_comm_s=t.cp_comm, **args)

    def wait(self, event: simpy.Event, category: str):
        """Process: wait for ``event``; time waiting on a transfer counts as ``category``."""
        start = self.env.now
        value = yield event
        waited = self.env.now - start
        if waited <= 0:
            return
        comm = waited
        if isinstance(value, tuple):  # (transfer start, end): waiting before it started is bubble
            comm = max(0.0, value[1] - max(start, value[0]))
        self.spent[category] += comm
        self.spent["bubble"] += waited - comm

    def send(self, channel: Channel, name: str, nbytes: float, path: GroupPath, op: Collective,
             done: simpy.Event | None = None) -> simpy.Event:
        """Start a transfer on ``channel``; returns the event that fires when it is done.

        The two DP channels (gradient reduction, parameter gather) run on one group path: when both
        are busy they share its bandwidth equally (``SharedLink``), as their flows share the
        links in full fidelity."""
        done = done if done is not None else self.env.event()
        if channel is self.dp_ag or channel is self.dp_rs:
            latency = collective_latency(op, nbytes, path)
            work = collective_bandwidth_time(op, nbytes, path)

            def run() -> simpy.Event:
                return self.env.process(after(self.env, latency, lambda: self.dp_link.transfer(work)))

            self.env.process(channel.run(name, run, done, bytes=nbytes))
        else:
            self.env.process(channel.transfer(name, collective_time(op, nbytes, path), done, bytes=nbytes))
        return done

    def _act(self, vs: int, mb: int) -> simpy.Event:
        """Fires when the activation of micro-batch ``mb`` has arrived at virtual stage ``vs``."""
        return self.sim.act[vs, mb]

    def _grad(self, vs: int, mb: int) -> simpy.Event:
        """Fires when the output gradient of micro-batch ``mb`` has arrived at virtual stage ``vs``."""
        return self.sim.grad[vs, mb]

    # ---- DP -----------------------------------------------------------------------------
    def _param_bytes(self, params: float) -> float:
        return params * 2.0

    def _reduce_grads(self, name: str, params: float) -> None:
        if self.dp_n <= 1:
            return
        op = Collective.ALL_REDUCE if self.zero == 0 else Collective.REDUCE_SCATTER
        self.pending.append(self.send(self.dp_rs, name, params * self.grad_bytes, self.sim.dp_path, op))

    def _buckets(self, params: float) -> int:
        return max(1, math.ceil(params / (self.layout.grad_bucket_mparams * 1e6)))

    def _chunk_params(self, vs: int) -> float:
        return chunk_params_per_gpu(self.sim.s, vs)

    # ---- the op list --------------------------------------------------------------------
    def run(self):
        sim, p = self.sim, self.sim.p
        last_b = {op.chunk: i for i, op in enumerate(self.ops) if op.phase is Phase.BACKWARD}
        gathers = self._start_param_gathers()
        for i, op in enumerate(self.ops):
            vs = op.chunk * p + self.r
            if op.phase is Phase.FORWARD:
                if vs > 0:
                    yield from self.wait(self._act(vs, op.microbatch), "pp_comm")
                if op.chunk in gathers:
                    yield from self.wait(gathers.pop(op.chunk), "dp_comm")
                yield from self._run_block(vs, op)
                if vs < sim.n_virtual - 1:
                    self._pp_send(self.pp_fwd, vs, op, self._act(vs + 1, op.microbatch))
            else:
                if vs < sim.n_virtual - 1:
                    yield from self.wait(self._grad(vs, op.microbatch), "pp_comm")
                yield from self._run_block(vs, op, reduce=(i == last_b[op.chunk]))
                if vs > 0:
                    self._pp_send(self.pp_bwd, vs, op, self._grad(vs - 1, op.microbatch))
        yield from self._finish()

    def _pp_send(self, channel: Channel, vs: int, op: PipeOp, done: simpy.Event) -> None:
        s = self.sim.s
        tokens = s.model.seq_len / self.layout.context * self.layout.micro_batch_size
        nbytes = 2.0 * tokens * s.model.hidden_size
        if self.layout.sequence_parallel and self.layout.tensor > 1:
            nbytes /= self.layout.tensor  # scatter/gather optimisation: each TP rank sends 1/t
        self.send(channel, f"{op.phase}{op.microbatch}.vs{vs}", nbytes, self.sim.pp_path,
                  Collective.SEND_RECV, done)

    def _run_block(self, vs: int, op: PipeOp, reduce: bool = False):
        label = f"{op.phase}{op.microbatch}.vs{vs}"
        if self.zero == 3 and self.dp_n > 1:
            yield from self._run_sharded(self.blocks.pieces(vs, op.phase), label, op)
            return
        total = self.blocks.block_time(vs, op.phase)
        if not (reduce and self.dp_n > 1):
            yield from self.compute(label, total, microbatch=op.microbatch, vs=vs)
            return
        params = self._chunk_params(vs)
        if not self.layout.overlap_grad_reduce:
            yield from self.compute(label, total, microbatch=op.microbatch, vs=vs)
            self._reduce_grads(f"grads.vs{vs}", params)
            return
        # The last backward of a chunk: buckets are reduced as their gradients become final.
        n = self._buckets(params)
        for k in range(n):
            yield from self.compute(f"{label}.bucket{k}", total.scaled(1 / n), microbatch=op.microbatch, vs=vs)
            self._reduce_grads(f"grads.vs{vs}.bucket{k}", params / n)

    def _run_sharded(self, pieces, label: str, op: PipeOp):
        """ZeRO-3/FSDP: gather each layer's parameters before use; reduce-scatter its gradients."""
        path = self.sim.dp_path
        params = [self._piece_params(name, index) for name, _t, index in pieces]
        gathered = [self.send(self.dp_ag, f"gather.{name}", self._param_bytes(n), path, Collective.ALL_GATHER)
                    for (name, _t, _i), n in zip(pieces, params, strict=True)]
        for (name, t, _index), event, n in zip(pieces, gathered, params, strict=True):
            yield from self.wait(event, "dp_comm")
            yield from self.compute(f"{label}.{name}", t, microbatch=op.microbatch)
            if op.phase is Phase.BACKWARD:
                self._reduce_grads(f"grads.{name}", n)

    def _piece_params(self, name: str, index: int | None) -> float:
        """Parameters of one block per GPU (a layer, the embedding, or final norm + LM head)."""
        s = self.sim.s
        if index is not None:
            return layer_params_per_gpu(s, index)
        return embedding_params_per_gpu(s) if name == "embedding" else head_params_per_gpu(s)

    def _start_param_gathers(self) -> dict[int, simpy.Event]:
        """ZeRO-1/2 with overlapped gather: the updated parameters of each chunk are gathered ahead
        of that chunk's first forward (Megatron's overlap_param_gather)."""
        if self.zero not in (1, 2) or self.dp_n <= 1 or not self.layout.overlap_param_gather:
            return {}
        out = {}
        for j in range(self.sim.v):
            params = self._chunk_params(j * self.sim.p + self.r)
            out[j] = self.send(self.dp_ag, f"params.chunk{j}", self._param_bytes(params), self.sim.dp_path,
                               Collective.ALL_GATHER)
        return out

    def _finish(self):
        env = self.env
        for event in self.pending:
            yield from self.wait(event, "dp_comm")
        shard = self.dp_n if self.zero >= 1 else 1
        start = env.now
        yield env.timeout(layer.optimizer_time(self.sim.s, self.sim.gpu, self.local_params / shard))
        self.spent["optimizer"] += env.now - start
        self.sim.timeline.add(self.slot, "compute", "optimizer", start, env.now)
        if self.zero in (1, 2) and self.dp_n > 1 and not self.layout.overlap_param_gather:
            done = self.send(self.dp_ag, "params", self._param_bytes(self.local_params), self.sim.dp_path,
                             Collective.ALL_GATHER)
            yield from self.wait(done, "dp_comm")
        self.sim.end[self.slot] = env.now


def _sum(times) -> PhaseTime:
    total = PhaseTime()
    for t in times:
        total = total + t
    return total


def simulate_step(scenario: Scenario) -> StepResult:
    """Simulate one optimizer step of ``scenario`` at its ``simulation.fidelity``."""
    if scenario.simulation.fidelity is Fidelity.FULL:
        from sim.engine.full import FullStepSimulation  # full.py builds on this module

        return FullStepSimulation(scenario).run()
    return StepSimulation(scenario).run()
