"""The layout space of a scenario: every (TP, PP, virtual PP, CP, DP, EP, ETP, ZeRO, micro-batch, recompute,
TP overlap, schedule, pipeline split) whose degrees multiply to the GPU count, checked by the spec
validation.

The pipeline split is even (with or without the embedding and loss counted as layers), or, where PP x VP does
not divide the layers, one of the balanced uneven splits of Megatron's ``--decoder-first/last-pipeline-num-layers``
(:func:`uneven_splits`: the middle stages as light as any split can make the busiest stage, the first and last
stages lighter).

A layout is applied to a base scenario with ``dataclasses.replace`` on its validated specs, so the
scenario's own cross-field rules (``Scenario._issues``: heads, layer split, sequence, batch,
interleaving, nodes) accept or reject it, with their messages. The *free* axes (:data:`FREE_AXES`:
ZeRO stage, recompute, TP overlap) never change validity, so each *shape* (the other axes) is
validated once and expanded over them; the one exception, TP overlap with a TP group beyond one NVLink domain
(``tp_group_in_nvlink_domain``, a rule on the TP degree and the cluster alone), is applied to the expansion. A TP
overlap the space searches (``tp_comm_overlaps`` given) is taken as asked: where it cannot run, the overlapped
layouts are counted among the rejections with the spec's message. One inherited from the base (``None``, or a
framework that cannot overlap) is the base's option, not a choice: each shape takes it where it can run and runs
without it elsewhere (TP 1, a TP group beyond the domain), one layout per shape, nothing rejected. A new axis is a
:class:`Layout` field, a column, and either a shape axis (``shapes``) or a free axis (one entry of
:data:`FREE_AXES`).

MoE models add the expert mesh (Megatron's MoE parallel folding: ETP x EP x EDP over the GPUs of a pipeline
stage, as TP x CP x DP): EP and ETP multiply the shapes. The spec's expert rules (``Scenario`` validation,
``_expert_issues``) read only the pipeline degree, EP and ETP, so each (PP, EP, ETP) is validated once, on a
shape valid without experts, and its verdict spread to the shapes of that PP
(tests/explore/test_space.py checks this against validating every combination).

A layout's options that only mean something at some ZeRO stages (``reshard_after_forward`` and
``fp8_all_gather`` at 3, ``grad_sync`` at 2 and 3) keep the base's value where they apply and the framework
default elsewhere; so do an explicit uneven pipeline split (kept for the base's own PP, virtual PP and
embedding/loss split only), ``moe_a2a_overlap`` (kept with EP > 1) and ``recompute_modules`` (kept with
selective recompute). ZeRO stages the base's framework cannot run (torchtitan's 1 and 2) are left out of the
space.
"""

from __future__ import annotations

import dataclasses
import functools
import itertools
import operator
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from sim.errors import ScenarioError
from sim.specs._schema import replace as spec_replace
from sim.specs.enums import Recompute, Schedule
from sim.specs.scenario import (
    ClusterSpec,
    Scenario,
    tp_group_in_nvlink_domain,
    tp_inner_degree,
    tp_overlap_allowed,
    tp_overlap_domain_message,
    virtual_stage_layer_counts,
)

SCHEDULES: tuple[Schedule, ...] = tuple(Schedule)
RECOMPUTES: tuple[Recompute, ...] = tuple(Recompute)

#: Columns of a candidate table, in order (schedule and recompute as indices into the tuples above;
#: split = the embedding and the loss each take one layer slot of the pipeline split; first/last_stage_layers: an
#: uneven split's first and last stages, 0 when even).
COLUMNS = ("tensor", "pipeline", "virtual_pipeline", "context", "data", "expert", "expert_tensor", "zero_stage",
           "micro_batch_size", "activation_recompute", "schedule", "split", "first_stage_layers", "last_stage_layers",
           "tp_comm_overlap")

#: Validity-relevant columns of a shape, in the order :func:`shapes` yields them.
SHAPE_COLUMNS = ("tensor", "pipeline", "virtual_pipeline", "context", "data", "micro_batch_size", "schedule", "split",
                 "first_stage_layers", "last_stage_layers", "expert", "expert_tensor")


@dataclass(frozen=True, slots=True)
class SearchSpace:
    """Values tried on each axis. The four degrees take every factorization of the GPUs unless given
    (``tensor=(8,)`` pins TP to 8; ``pipeline=(8, 16)`` tries two)."""

    micro_batch_sizes: tuple[int, ...] = (1, 2, 4, 8)
    zero_stages: tuple[int, ...] = (0, 1, 2, 3)
    recomputes: tuple[Recompute, ...] = RECOMPUTES
    schedules: tuple[Schedule, ...] = SCHEDULES
    max_virtual: int = 8
    """interleaved-1f1b is tried with 2..max_virtual model chunks per pipeline rank."""
    tp_comm_overlaps: tuple[bool, ...] | None = (False, True)
    """TP collectives overlapped with the GEMMs or not (on only with TP > 1; with a TP group beyond one NVLink
    domain the overlapped layouts are rejected); None: the base scenario's, off where it cannot run (TP 1, a TP group
    beyond the domain)."""
    tensor: tuple[int, ...] | None = None
    pipeline: tuple[int, ...] | None = None
    context: tuple[int, ...] | None = None
    data: tuple[int, ...] | None = None
    virtual_pipelines: tuple[int, ...] | None = None
    """interleaved-1f1b chunk counts tried (default 2..max_virtual)."""
    expert: tuple[int, ...] | None = None
    """EP degrees tried on MoE models (default: every divisor of the routed experts)."""
    expert_tensor: tuple[int, ...] | None = None
    """ETP degrees tried on MoE models (default: every divisor of the layout's TP degree, Megatron's default
    ETP = TP among them)."""
    uneven_pipelines: bool = True
    """Where PP x VP does not divide the layers, try the balanced uneven splits (:func:`uneven_splits`)."""

    def allows(self, tensor: int, pipeline: int, context: int, data: int) -> bool:
        return all(values is None or n in values for values, n in ((self.tensor, tensor), (self.pipeline, pipeline),
                                                                   (self.context, context), (self.data, data)))


@dataclass(frozen=True, slots=True)
class FreeAxis:
    """An axis that never changes a layout's validity: its column (a :class:`Layout` field), its values in
    a space (as integers), and where a value is meaningful."""

    column: str
    values: Callable[[SearchSpace], tuple[int, ...]]
    applies: Callable[[np.ndarray, np.ndarray], np.ndarray] | None = None
    """``applies(tensor, value)`` (broadcast arrays): where the value means something (default: all)."""


FREE_AXES: tuple[FreeAxis, ...] = (
    FreeAxis("zero_stage", lambda sp: tuple(sp.zero_stages)),
    FreeAxis("activation_recompute", lambda sp: tuple(RECOMPUTES.index(r) for r in sp.recomputes)),
    FreeAxis("tp_comm_overlap", lambda sp: tuple(int(b) for b in sp.tp_comm_overlaps or ()),
             lambda tensor, value: (tensor > 1) | (value == 0)),
)
FREE_COLUMNS: tuple[str, ...] = tuple(axis.column for axis in FREE_AXES)


@dataclass(frozen=True, slots=True)
class Layout:
    """One point of the space."""

    tensor: int
    pipeline: int
    virtual_pipeline: int
    context: int
    data: int
    zero_stage: int
    micro_batch_size: int
    activation_recompute: Recompute
    schedule: Schedule
    split: bool
    tp_comm_overlap: bool = False
    expert: int = 1
    expert_tensor: int = 0
    """ETP; 0 on dense models (no expert mesh: ``expert_tensor`` unset)."""
    first_stage_layers: int = 0
    """Transformer layers of the first pipeline stage of an uneven split (:func:`uneven_splits`); 0 with
    ``last_stage_layers`` 0: the even split, or the base's own explicit split on its own pipeline shape."""
    last_stage_layers: int = 0

    @classmethod
    def of(cls, s: Scenario) -> Layout:
        """The layout of scenario ``s`` (``split``: its embedding split flag; ETP explicit on MoE models)."""
        p = s.parallelism
        return cls(tensor=p.tensor, pipeline=p.pipeline, virtual_pipeline=p.virtual_pipeline, context=p.context,
                   data=p.data, zero_stage=p.zero_stage, micro_batch_size=p.micro_batch_size,
                   activation_recompute=p.activation_recompute, schedule=p.schedule,
                   split=p.account_for_embedding_in_pipeline_split, tp_comm_overlap=p.tp_comm_overlap,
                   expert=p.expert, expert_tensor=p.expert_tensor_degree if s.model.moe is not None else 0)

    def apply(self, base: Scenario, cluster: ClusterSpec | None = None) -> Scenario:
        """``base`` with this layout (and ``cluster``); raises ScenarioError if the result is invalid. The base's
        stage-specific options apply where they mean something (the module docstring)."""
        fields = dict(zip(_PARALLELISM_FIELDS, _parallelism_values(self), strict=True))
        b = base.parallelism
        uneven = bool(self.first_stage_layers or self.last_stage_layers)
        same_pipeline = not uneven and ((self.pipeline, self.virtual_pipeline, self.split)
                                        == (b.pipeline, b.virtual_pipeline, b.account_for_embedding_in_pipeline_split))
        try:
            par = spec_replace(
                b, **fields, expert_tensor=self.expert_tensor or None,
                account_for_embedding_in_pipeline_split=self.split, account_for_loss_in_pipeline_split=self.split,
                reshard_after_forward=b.reshard_after_forward if self.zero_stage == 3 else None,
                grad_sync=b.grad_sync if self.zero_stage >= 2 else None,
                fp8_all_gather=b.fp8_all_gather and self.zero_stage == 3,
                recompute_modules=b.recompute_modules if self.activation_recompute is Recompute.SELECTIVE else None,
                moe_a2a_overlap=b.moe_a2a_overlap and self.expert > 1,
                pipeline_layout=b.pipeline_layout if same_pipeline else None,
                first_stage_layers=b.first_stage_layers if same_pipeline else self.first_stage_layers or None,
                last_stage_layers=b.last_stage_layers if same_pipeline else self.last_stage_layers or None)
        except ScenarioError as err:
            raise ScenarioError([dataclasses.replace(i, path=f"parallelism.{i.path}") for i in err.issues]) from None
        return spec_replace(base, parallelism=par, cluster=cluster or base.cluster)

    def label(self) -> str:
        """Short text: ``TP8 PP16x4 CP1 DP128 Z1 mb1 full interleaved-1f1b +emb/loss`` (MoE: ``EP8 ETP1`` after
        DP; an uneven split's first and last stage layers after PP: ``PP16 first4/last1``)."""
        vp = f"x{self.virtual_pipeline}" if self.virtual_pipeline > 1 else ""
        if self.first_stage_layers or self.last_stage_layers:
            vp += f" first{self.first_stage_layers}/last{self.last_stage_layers}"
        split = " +emb/loss" if self.split else ""
        overlap = " tp-overlap" if self.tp_comm_overlap else ""
        experts = f" EP{self.expert} ETP{self.expert_tensor}" if self.expert_tensor else ""
        return (f"TP{self.tensor} PP{self.pipeline}{vp} CP{self.context} DP{self.data}{experts} Z{self.zero_stage} "
                f"mb{self.micro_batch_size} {self.activation_recompute.value} {self.schedule.value}{split}{overlap}")

    def row(self) -> dict[str, object]:
        """The layout as table columns (enums by value)."""
        return {"tensor": self.tensor, "pipeline": self.pipeline, "virtual_pipeline": self.virtual_pipeline,
                "context": self.context, "data": self.data, "expert": self.expert,
                "expert_tensor": self.expert_tensor, "zero_stage": self.zero_stage,
                "micro_batch_size": self.micro_batch_size, "recompute": self.activation_recompute.value,
                "schedule": self.schedule.value, "split": self.split, "first_stage_layers": self.first_stage_layers,
                "last_stage_layers": self.last_stage_layers, "tp_comm_overlap": self.tp_comm_overlap}


#: The :class:`Layout` fields that are ParallelismSpec fields of the same name (the others are mapped in
#: ``Layout.apply``), read with one C-level getter: a search applies tens of thousands of layouts.
_PARALLELISM_FIELDS = tuple(f.name for f in dataclasses.fields(Layout)
                            if f.name not in ("split", "expert_tensor", "first_stage_layers", "last_stage_layers"))
_parallelism_values = operator.attrgetter(*_PARALLELISM_FIELDS)


@dataclass
class Candidates:
    """A table of layouts as integer columns (see :data:`COLUMNS`)."""

    cols: dict[str, np.ndarray]

    def __len__(self) -> int:
        return len(self.cols["tensor"])

    def __getitem__(self, name: str) -> np.ndarray:
        return self.cols[name]

    def take(self, index: np.ndarray) -> Candidates:
        return Candidates({k: v[index] for k, v in self.cols.items()})

    def layout(self, i: int) -> Layout:
        c = {k: int(v[i]) for k, v in self.cols.items()}
        return Layout(tensor=c["tensor"], pipeline=c["pipeline"], virtual_pipeline=c["virtual_pipeline"],
                      context=c["context"], data=c["data"], zero_stage=c["zero_stage"],
                      micro_batch_size=c["micro_batch_size"],
                      activation_recompute=RECOMPUTES[c["activation_recompute"]],
                      schedule=SCHEDULES[c["schedule"]], split=bool(c["split"]),
                      tp_comm_overlap=bool(c["tp_comm_overlap"]), expert=c["expert"],
                      expert_tensor=c["expert_tensor"], first_stage_layers=c["first_stage_layers"],
                      last_stage_layers=c["last_stage_layers"])

    def find(self, layout: Layout) -> int | None:
        """Index of ``layout`` in the table, if it is there."""
        row = layout.row()
        want: dict[str, Any] = {**row, "activation_recompute": RECOMPUTES.index(layout.activation_recompute),
                "schedule": SCHEDULES.index(layout.schedule)}
        match = np.ones(len(self), dtype=bool)
        for k in COLUMNS:
            match &= self.cols[k] == int(want[k])
        hits = np.flatnonzero(match)
        return int(hits[0]) if len(hits) else None


@dataclass
class Rejected:
    """Layouts rejected for one reason (grouped by the first problem the validation names)."""

    count: int = 0
    example: str = ""


@dataclass
class Enumeration:
    """The whole space of one scenario and cluster: valid candidates and rejected counts by reason."""

    base: Scenario
    cluster: ClusterSpec
    total: int
    valid: Candidates
    rejected: dict[str, Rejected] = field(default_factory=dict)
    zero_left_out: dict[int, str] = field(default_factory=dict)
    """ZeRO stages of the space the base cannot run, with the reason (see :func:`runnable_zero_stages`)."""
    tp_overlaps: tuple[bool, ...] | None = None
    """TP overlap values searched; None: the base's, where it can run (the module docstring)."""

    @property
    def num_rejected(self) -> int:
        return sum(r.count for r in self.rejected.values())


def factorizations(n: int) -> list[tuple[int, int, int, int]]:
    """Every ordered (tensor, pipeline, context, data) with product ``n``."""
    divisors = [d for d in range(1, n + 1) if n % d == 0]
    out = []
    for t in divisors:
        for p in (d for d in divisors if (n // t) % d == 0):
            rest = n // (t * p)
            out += [(t, p, c, rest // c) for c in divisors if rest % c == 0]
    return out


def _schedule_options(pipeline: int, space: SearchSpace) -> Iterator[tuple[Schedule, int]]:
    for schedule in space.schedules:
        if pipeline == 1 and schedule is Schedule.GPIPE and Schedule.ONE_F_ONE_B in space.schedules:
            continue  # one stage: GPipe runs 1F1B's ops in another order, same time, more memory
        if schedule is Schedule.INTERLEAVED:
            chunks = space.virtual_pipelines or range(2, space.max_virtual + 1)
            yield from ((schedule, v) for v in chunks if v >= 2)
        else:
            yield schedule, 1


def shapes(num_gpus: int, space: SearchSpace) -> Iterator[tuple[int, ...]]:
    """Validity-relevant axes: (tensor, pipeline, virtual, context, data, micro-batch, schedule index, split).

    The embedding/loss split only differs from the plain split when there is more than one stage.
    """
    for t, p, c, d in factorizations(num_gpus):
        if not space.allows(t, p, c, d):
            continue
        for schedule, v in _schedule_options(p, space):
            for mb in space.micro_batch_sizes:
                for split in ((False, True) if p > 1 else (False,)):
                    yield t, p, v, c, d, mb, SCHEDULES.index(schedule), int(split)


def uneven_splits(num_layers: int, pipeline: int, virtual: int) -> tuple[tuple[int, int], ...]:
    """(first, last) stage layers of the balanced uneven splits of ``num_layers`` over ``pipeline`` stages of
    ``virtual`` chunks each, as Megatron's ``--decoder-first/last-pipeline-num-layers`` allow; none where PP x VP
    divides the layers (the even split is balanced) or with one stage.

    Megatron gives the ``pipeline - 2`` middle stages the same layers, ``k`` each, and every stage a multiple of
    ``virtual`` (its chunks split it evenly; ``sim.specs.scenario._uneven_issues``). The busiest stage holds at
    least ``num_layers / pipeline`` layers, so ``k`` is the least multiple of ``virtual`` not below it; the first and
    last stages share the rest, each at least one layer per chunk and at most ``k``. Of those shares three are tried:
    the first stage lightest (it holds the most micro-batches in flight), the last lightest (it also runs the LM
    head and the loss; DeepSeek-V3's 61 layers on PP16 as 4 + 14 x 4 + 1), and the most even (first lighter on a
    tie). Megatron's design note for uneven stages (MR 2795, flexible asymmetric VPP) names the same trade.
    """
    if pipeline < 2 or num_layers % (pipeline * virtual) == 0:
        return ()
    k = virtual * -(-num_layers // (pipeline * virtual))
    rest = num_layers - (pipeline - 2) * k
    lo, hi = max(virtual, rest - k), min(k, rest - virtual)
    if rest % virtual or lo > hi:
        return ()
    even = max(lo, min(hi, rest // 2 // virtual * virtual))
    return tuple((f, rest - f) for f in sorted({lo, even, hi}))


@functools.lru_cache(maxsize=4096)
def reason_key(message: str) -> str:
    """The rule of an issue message: numbers blanked, the fix dropped (``parallelism.tensor: # does not...``)."""
    return re.sub(r"\b\d+\b", "#", message.split("; ")[0])


def divisors(n: int) -> tuple[int, ...]:
    return tuple(d for d in range(1, n + 1) if n % d == 0)


def expert_options(base: Scenario, tensor: int, space: SearchSpace) -> list[tuple[int, int]]:
    """(EP, ETP) pairs tried with TP ``tensor``: one (1, 0) on a dense model (no expert mesh)."""
    moe = base.model.moe
    if moe is None:
        return [(1, 0)]
    return [(e, x) for e in space.expert or divisors(moe.num_experts)
            for x in space.expert_tensor or divisors(tensor)]


def runnable_zero_stages(base: Scenario, space: SearchSpace) -> tuple[tuple[int, ...], dict[int, str]]:
    """The space's ZeRO stages the base's framework and options can run (checked on the base's own layout), and
    the first problem of each left out."""
    kept, dropped = [], {}
    for z in space.zero_stages:
        try:
            dataclasses.replace(Layout.of(base), zero_stage=z).apply(base)
        except ScenarioError as err:
            dropped[z] = str(err.issues[0])
            continue
        kept.append(z)
    return tuple(kept), dropped


def enumerate_space(base: Scenario, space: SearchSpace, cluster: ClusterSpec | None = None) -> Enumeration:
    """Enumerate and validate every layout of ``base`` on ``cluster`` (default: the base's own)."""
    cluster = cluster or base.cluster
    # TP overlap is a free axis only where asked and the framework can run it (torchtitan's async TP needs compile);
    # else the base's, dropped where it cannot run (the module docstring)
    searched = space.tp_comm_overlaps is not None and tp_overlap_allowed(base)
    inherited = not searched and base.parallelism.tp_comm_overlap
    if not searched:
        space = dataclasses.replace(space, tp_comm_overlaps=(False, True) if inherited else (False,))
    stages, dropped = runnable_zero_stages(base, space)
    space = dataclasses.replace(space, zero_stages=stages)
    ok: list[tuple[int, ...]] = []
    rejected: dict[str, Rejected] = {}

    def reject(message: str, count: int) -> None:
        if not count:
            return
        group = rejected.setdefault(reason_key(message), Rejected(example=message))
        group.count += count

    # The failure-rate rules read only the job's size (``Scenario`` validation, ``_failure_issues``): layouts are
    # validated without them, and the rules checked once below.
    checked = dataclasses.replace(base, failures=None)
    shape_rows = list(_with_splits(base, shapes(cluster.num_gpus, space), space)) if stages else []
    free = _free_values(space)
    tensors = np.array([r[0] for r in shape_rows], dtype=np.int64)
    # TP overlap needs each TP group inside one NVLink domain: the expansions it leaves, per shape (an inherited
    # overlap has no overlapped twin to reject: each shape holds one overlap value, the one that runs)
    runnable = _expansions(tensors, free, _in_domain(shape_rows, base.parallelism.placement_axes, cluster), inherited)
    per_shape = runnable if inherited else _expansions(tensors, free)
    total = 0
    expert_verdicts: dict[tuple[int, int, int], str] = {}  # (PP, EP, ETP) -> first issue ("" when valid)
    for shape, expand, keep in zip(shape_rows, per_shape.tolist(), runnable.tolist(), strict=True):
        t, p, v, c, d, mb, sched, split, first, last = shape
        combos = expert_options(base, t, space)
        total += expand * len(combos)
        layout = Layout(tensor=t, pipeline=p, virtual_pipeline=v, context=c, data=d,
                        zero_stage=space.zero_stages[0], micro_batch_size=mb,
                        activation_recompute=space.recomputes[0], schedule=SCHEDULES[sched], split=bool(split),
                        expert=1, expert_tensor=int(base.model.moe is not None), first_stage_layers=first,
                        last_stage_layers=last)
        try:
            layout.apply(checked, cluster)
        except ScenarioError as err:
            reject(str(err.issues[0]), expand * len(combos))
            continue
        for e, x in combos:
            key = (p, e, x)
            if key not in expert_verdicts:
                try:
                    dataclasses.replace(layout, expert=e, expert_tensor=x).apply(checked, cluster)
                    expert_verdicts[key] = ""
                except ScenarioError as err:
                    expert_verdicts[key] = str(err.issues[0])
            if expert_verdicts[key]:
                reject(expert_verdicts[key], expand)
                continue
            ok.append((*shape, e, x))
            if keep < expand:
                inner = _inner(shape, base.parallelism.placement_axes)
                reject(f"parallelism.tp_comm_overlap: {tp_overlap_domain_message(t, cluster, inner)}", expand - keep)
    valid = _expand(ok, free, cluster, base.parallelism.placement_axes, inherited)
    if len(valid):
        try:
            valid.layout(0).apply(base, cluster)
        except ScenarioError as err:  # the job's size breaks a failure-rate rule: every layout does
            reject(str(err.issues[0]), len(valid))
            valid = valid.take(np.zeros(0, dtype=np.int64))
    return Enumeration(base, cluster, total, valid, rejected, dropped, space.tp_comm_overlaps if searched else None)


def _with_splits(base: Scenario, rows: Iterator[tuple[int, ...]], space: SearchSpace) -> Iterator[tuple[int, ...]]:
    """Each shape of :func:`shapes` with (0, 0) first/last stage layers, and the unsplit ones also with each
    balanced uneven split (:func:`uneven_splits`) unless it repeats the base's own explicit split on the base's
    own shape (which ``Layout.apply`` keeps there)."""
    n, b = base.model.num_layers, base.parallelism
    own = virtual_stage_layer_counts(n, b) if b.pipeline_layout or b.first_stage_layers is not None \
        or b.last_stage_layers is not None else None
    for row in rows:
        yield (*row, 0, 0)
        p, v, split = row[1], row[2], row[7]
        if split or not space.uneven_pipelines:
            continue
        for first, last in uneven_splits(n, p, v):
            if own is not None and (p, v) == (b.pipeline, b.virtual_pipeline) and own == virtual_stage_layer_counts(
                    n, dataclasses.replace(b, pipeline_layout=None, first_stage_layers=first, last_stage_layers=last)):
                continue
            yield (*row, first, last)


def _free_values(space: SearchSpace) -> np.ndarray:
    """Every combination of the free axes' values: shape (combinations, len(FREE_AXES)), first axis outermost."""
    return np.array(list(itertools.product(*(axis.values(space) for axis in FREE_AXES))),
                    dtype=np.int64).reshape(-1, len(FREE_AXES))


def _applies(tensor: np.ndarray, free: np.ndarray, in_domain: np.ndarray | None = None,
             inherited: bool = False) -> np.ndarray:
    """(shapes, combinations): whether each combination of free values is meaningful for each shape, and, given
    ``in_domain`` (per shape: its TP groups fit one NVLink domain), runnable (no TP overlap outside the domain);
    ``inherited`` (the base's TP overlap, given ``in_domain``): overlap on exactly where it can run, off elsewhere."""
    ok = np.ones((len(tensor), len(free)), dtype=bool)
    for k, axis in enumerate(FREE_AXES):
        if axis.applies is not None:
            ok &= axis.applies(tensor[:, None], free[None, :, k])
    if in_domain is not None:
        overlap = free[None, :, FREE_COLUMNS.index("tp_comm_overlap")] == 1
        ok &= (overlap == ((tensor > 1) & in_domain)[:, None]) if inherited else (in_domain[:, None] | ~overlap)
    return ok


def _expansions(tensor: np.ndarray, free: np.ndarray, in_domain: np.ndarray | None = None,
                inherited: bool = False) -> np.ndarray:
    """How many layouts each shape expands to (runnable ones only, given ``in_domain``: see :func:`_applies`)."""
    return _applies(tensor, free, in_domain, inherited).sum(axis=1)


def _inner(shape: tuple[int, ...], axes: tuple[str, ...]) -> int:
    """GPUs laid inside each TP step of a shape (:data:`SHAPE_COLUMNS` order)."""
    return tp_inner_degree(axes, context=shape[3], data=shape[4], pipeline=shape[1])


def _in_domain(shape_rows: list[tuple[int, ...]], axes: tuple[str, ...], cluster: ClusterSpec) -> np.ndarray:
    """Per shape: whether its TP groups lie inside one NVLink domain (``tp_group_in_nvlink_domain``)."""
    return np.array([tp_group_in_nvlink_domain(int(r[0]), cluster, _inner(r, axes)) for r in shape_rows], dtype=bool)


def _expand(shape_rows: list[tuple[int, ...]], free: np.ndarray, cluster: ClusterSpec,
            axes: tuple[str, ...], inherited: bool = False) -> Candidates:
    """Valid shapes (:data:`SHAPE_COLUMNS`) x the runnable combinations of the free axes on ``cluster`` (mesh laid
    in ``axes`` order; ``inherited``: see :func:`_applies`), as integer columns."""
    arr = np.array(shape_rows, dtype=np.int64).reshape(-1, len(SHAPE_COLUMNS))
    tensors = arr[:, 0]
    keep = _applies(tensors, free, _in_domain(shape_rows, axes, cluster), inherited).ravel()
    rows = np.repeat(arr, len(free), axis=0)[keep]
    values = np.tile(free, (len(arr), 1))[keep]
    cols = dict(zip(SHAPE_COLUMNS, rows.T, strict=True))
    cols.update({axis.column: values[:, k] for k, axis in enumerate(FREE_AXES)})
    return Candidates({k: cols[k] for k in COLUMNS})
