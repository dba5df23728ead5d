"""A scenario: model + cluster + layout + job (+ failures, checkpoint, costs); the loader.

``load_scenario`` reads YAML, fills model presets, resolves the GPU and topology, and validates
everything, reporting *all* problems at once with their field paths.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sim import catalog
from sim.catalog.yamlio import YamlError, read_yaml_file, read_yaml_mapping
from sim.errors import Issue, ScenarioError
from sim.specs._schema import Spec, build, short_repr, spec_field
from sim.specs.enums import (
    Attention,
    CudaGraphScope,
    Fidelity,
    Fp8Recipe,
    Framework,
    Precision,
    RecomputeModule,
    Schedule,
)
from sim.specs.failure_trace import read_trace_csv
from sim.specs.hardware import GpuSpec
from sim.specs.layout import ParallelismSpec
from sim.specs.model import ModelSpec
from sim.specs.pricing import CostsSpec
from sim.specs.reliability import CheckpointSpec, FailureSpec, StragglerSpec
from sim.specs.topology import TopologySpec
from sim.specs.training import TrainingSpec


@dataclass(frozen=True, slots=True, kw_only=True)
class ClusterSpec(Spec):
    """The GPUs and the fabric."""

    gpu: str = spec_field(doc="GPU catalog name (trainsim gpus)")
    num_gpus: int = spec_field(doc="GPUs in the job", ge=1)
    topology: TopologySpec = spec_field(doc="bundled name, path, or inline mapping")

    def _issues(self) -> list[Issue]:
        if catalog.canonical_gpu(self.gpu) is None:
            return [Issue("gpu", f"{self.gpu!r} is not in the GPU catalog; known: "
                          f"{', '.join(catalog.gpu_table())}")]
        return []


@dataclass(frozen=True, slots=True, kw_only=True)
class SimulationSpec(Spec):
    """How to simulate."""

    seed: int = spec_field(0, doc="root seed of every random draw", ge=0)
    fidelity: Fidelity = spec_field(Fidelity.SYMMETRIC, doc="symmetric | full")
    monte_carlo: int = spec_field(20, doc="run-level replicas", ge=1)


@dataclass(frozen=True, slots=True, kw_only=True)
class Scenario(Spec):
    """Everything one simulation needs; cross-field rules checked at construction."""

    name: str = spec_field("scenario", doc="free text")
    model: ModelSpec = spec_field(doc="what is trained")
    cluster: ClusterSpec = spec_field(doc="on what")
    parallelism: ParallelismSpec = spec_field(doc="how")
    training: TrainingSpec = spec_field(doc="the job")
    failures: FailureSpec | None = spec_field(None, doc="failure model (optional)")
    checkpoint: CheckpointSpec | None = spec_field(None, doc="checkpointing (optional)")
    stragglers: StragglerSpec | None = spec_field(None, doc="fail-slow nodes (optional)")
    costs: CostsSpec | None = spec_field(None, doc="prices, PUE, carbon (optional)")
    simulation: SimulationSpec = spec_field(SimulationSpec(), doc="simulation options")

    @property
    def gpu(self) -> GpuSpec:
        return gpu_spec(self.cluster.gpu)

    @property
    def num_microbatches(self) -> int:
        """Micro-batches per optimizer step per pipeline (m)."""
        p = self.parallelism
        return self.training.global_batch_size // (p.data * p.micro_batch_size)

    @property
    def tokens_per_step(self) -> int:
        return self.training.global_batch_size * self.model.seq_len

    def _issues(self) -> list[Issue]:
        return _layout_issues(self) + _hardware_issues(self) + _fp8_framework_issues(self) + _failure_issues(self)


@functools.lru_cache(maxsize=256)
def _divisors(n: int) -> str:
    return ", ".join(str(d) for d in range(1, min(n, 1024) + 1) if n % d == 0)


def pipeline_layer_slots(s: Scenario) -> int:
    """Layers the pipeline split divides: transformer layers plus embedding/loss if counted."""
    p = s.parallelism
    return (s.model.num_layers + int(p.account_for_embedding_in_pipeline_split)
            + int(p.account_for_loss_in_pipeline_split))


def virtual_stage_layer_counts(n: int, p: ParallelismSpec) -> list[int]:
    """Transformer layers of every virtual stage in pipeline order (``p * v`` counts), as Megatron splits
    them: an explicit ``pipeline_layout``; else ``first/last_stage_layers`` with the rest even over the
    middle ranks (each rank's layers even over its ``v`` chunks); else an even split of the ``n`` layers and
    the embedding (loss) slot counted in the split, which takes one slot of the first (last) virtual stage."""
    stages, v = p.pipeline, p.virtual_pipeline
    if p.pipeline_layout is not None:
        return list(p.pipeline_layout)
    first, last = p.first_stage_layers, p.last_stage_layers
    if first is not None or last is not None:
        middle_ranks = stages - (first is not None) - (last is not None)
        rest = n - (first or 0) - (last or 0)
        per_rank = [rest // middle_ranks if middle_ranks else 0] * stages
        if first is not None:
            per_rank[0] = first
        if last is not None:
            per_rank[-1] = last
        return [per_rank[r] // v for _ in range(v) for r in range(stages)]
    slots = n + int(p.account_for_embedding_in_pipeline_split) + int(p.account_for_loss_in_pipeline_split)
    counts = [slots // (stages * v)] * (stages * v)
    counts[0] -= int(p.account_for_embedding_in_pipeline_split)
    counts[-1] -= int(p.account_for_loss_in_pipeline_split)
    return counts


def _pipeline_issues(s: Scenario) -> list[Issue]:
    """The pipeline split: an explicit layout, uneven first/last stages, or an even split of the layers."""
    p, m = s.parallelism, s.model
    chunks, n = p.pipeline * p.virtual_pipeline, m.num_layers
    accounted = p.account_for_embedding_in_pipeline_split or p.account_for_loss_in_pipeline_split
    uneven = p.first_stage_layers is not None or p.last_stage_layers is not None
    if p.pipeline_layout is not None:
        layout = list(p.pipeline_layout)
        if uneven or accounted:
            return [Issue("parallelism.pipeline_layout", "cannot be combined with first/last_stage_layers or "
                          "account_for_embedding/loss_in_pipeline_split; give one way of splitting")]
        if len(layout) != chunks:
            return [Issue("parallelism.pipeline_layout", f"{len(layout)} entries; needs one per virtual stage: "
                          f"pipeline*virtual_pipeline = {p.pipeline}*{p.virtual_pipeline} = {chunks}")]
        if sum(layout) != n:
            return [Issue("parallelism.pipeline_layout", f"sums to {sum(layout)}; must sum to model.num_layers "
                          f"({n})")]
        return []
    if uneven:
        return _uneven_issues(s)
    slots = pipeline_layer_slots(s)
    if slots % chunks:
        return [Issue("parallelism.pipeline", f"pipeline*virtual_pipeline = {chunks} does not divide "
                      f"the {slots} layers to split (model.num_layers {n}"
                      f"{' + embedding/loss' if slots != n else ''}); use a divisor of "
                      f"{slots}, account_for_embedding/loss_in_pipeline_split, first/last_stage_layers "
                      "or pipeline_layout")]
    return []


def _uneven_issues(s: Scenario) -> list[Issue]:
    p, n, v = s.parallelism, s.model.num_layers, s.parallelism.virtual_pipeline
    first, last = p.first_stage_layers, p.last_stage_layers
    field = "parallelism.first_stage_layers" if first is not None else "parallelism.last_stage_layers"
    if p.account_for_embedding_in_pipeline_split or p.account_for_loss_in_pipeline_split:
        return [Issue(field, "cannot be combined with account_for_embedding/loss_in_pipeline_split "
                      "(Megatron allows one or the other)")]
    if p.pipeline < 2:
        return [Issue(field, f"needs parallelism.pipeline >= 2 (got {p.pipeline})")]
    middle_ranks = p.pipeline - (first is not None) - (last is not None)
    rest = n - (first or 0) - (last or 0)
    if rest < 0 or (middle_ranks == 0 and rest):
        return [Issue(field, f"first + last stage layers ({(first or 0) + (last or 0)}) must "
                      f"{'equal' if middle_ranks == 0 else 'not exceed'} model.num_layers ({n})")]
    if middle_ranks and rest % middle_ranks:
        return [Issue(field, f"the {rest} remaining layers do not split evenly over the {middle_ranks} other "
                      "pipeline stages")]
    issues = []
    for name, count in (("first_stage_layers", first), ("last_stage_layers", last),
                        ("pipeline", rest // middle_ranks if middle_ranks else None)):
        if count is not None and count % v:
            issues.append(Issue(f"parallelism.{name}", f"a stage's {count} layers do not split over "
                                f"virtual_pipeline = {v} chunks"))
    return issues


def _layout_issues(s: Scenario) -> list[Issue]:
    p, m, issues = s.parallelism, s.model, []
    if p.num_gpus != s.cluster.num_gpus:
        issues.append(Issue("parallelism", f"tensor*pipeline*context*data = {p.tensor}*{p.pipeline}*"
                            f"{p.context}*{p.data} = {p.num_gpus} must equal cluster.num_gpus "
                            f"({s.cluster.num_gpus})"))
    for heads, name in ((m.num_attention_heads, "num_attention_heads"), (m.num_kv_heads, "num_kv_heads")):
        if heads % p.tensor:
            issues.append(Issue("parallelism.tensor", f"{p.tensor} does not divide model.{name} ({heads}); "
                                f"use one of {_divisors(heads)}"))
    issues += _pipeline_issues(s)
    if m.seq_len % p.context:
        issues.append(Issue("parallelism.context", f"{p.context} does not divide model.seq_len ({m.seq_len})"))
    step = p.data * p.micro_batch_size
    gbs = s.training.global_batch_size
    if gbs % step:
        issues.append(Issue("training.global_batch_size", f"{gbs} is not a multiple of parallelism.data * "
                            f"micro_batch_size = {step}; use e.g. {max(step, gbs // step * step)}"))
    elif p.schedule is Schedule.INTERLEAVED and (gbs // step) % p.pipeline:
        issues.append(Issue("training.global_batch_size", f"interleaved-1f1b needs the {gbs // step} "
                            f"micro-batches to be a multiple of parallelism.pipeline ({p.pipeline})"))
    if p.shard_size != p.data * p.context and s.simulation.fidelity is Fidelity.FULL:
        issues.append(Issue("parallelism.shard_group_size", "HSDP is simulated at fidelity symmetric only "
                            "(full fidelity reduces over the whole DP x CP group)"))
    return issues + _expert_issues(s) + _recompute_module_issues(s) + _cuda_graph_issues(s)


def _cuda_graph_issues(s: Scenario) -> list[Issue]:
    """Partial CUDA graphs are Megatron-Core's; each scope must exist in the model, and ``moe`` needs static
    shapes (token-drop MoE: Megatron's ``moe`` scope "only supports token-drop MoE")."""
    graphs, moe, field = s.training.cuda_graphs, s.model.moe, "training.cuda_graphs"
    if not graphs:
        return []
    if s.parallelism.framework is not Framework.MEGATRON_CORE:
        return [Issue(field, f"is Megatron-Core's --cuda-graph-scope; {s.parallelism.framework.value} is not "
                      "modelled with CUDA graphs")]
    needs = {CudaGraphScope.MOE_ROUTER: (moe is not None, "needs model.moe (the model is dense)"),
             CudaGraphScope.MOE_PREPROCESS: (moe is not None, "needs model.moe (the model is dense)"),
             CudaGraphScope.MOE: (moe is not None and moe.capacity_factor is not None,
                                  "needs a token-drop MoE (model.moe.capacity_factor set): a dropless MoE "
                                  "block has dynamic shapes"),
             CudaGraphScope.MLP: (moe is None or moe.first_dense_layers > 0 or moe.moe_layer_frequency > 1,
                                  "needs a dense layer (every layer is MoE; use moe_router or moe)")}
    return [Issue(field, f"{g.value} {needs[g][1]}") for g in graphs if g in needs and not needs[g][0]]


def _recompute_module_issues(s: Scenario) -> list[Issue]:
    """A recompute module must exist in the model: MoE modules need MoE layers, ``mlp`` a dense layer,
    ``mla_up_proj`` MLA, ``shared_experts`` shared experts."""
    mods, m = s.parallelism.recompute_modules or (), s.model
    moe, field = m.moe, "parallelism.recompute_modules"
    needs = {RecomputeModule.MOE: (moe is not None, "needs model.moe (the model is dense)"),
             RecomputeModule.MOE_ACT: (moe is not None, "needs model.moe (the model is dense)"),
             RecomputeModule.SHARED_EXPERTS: (moe is not None and moe.shared_experts > 0,
                                              "needs model.moe.shared_experts > 0"),
             RecomputeModule.MLA_UP_PROJ: (m.mla is not None, "needs model.attention: mla"),
             RecomputeModule.MLP: (moe is None or moe.first_dense_layers > 0 or moe.moe_layer_frequency > 1,
                                   "needs a dense layer (every layer is MoE; use moe or moe_act)")}
    issues = [Issue(field, f"{mod.value} {needs[mod][1]}") for mod in mods if mod in needs and not needs[mod][0]]
    if s.training.fp8_activation_cache and moe is None:
        issues.append(Issue("training.fp8_activation_cache", "needs model.moe (it stores the routed experts' "
                            "activation input; the model is dense)"))
    return issues


def _expert_issues(s: Scenario) -> list[Issue]:
    """Megatron's MoE parallel folding: the expert mesh ETP x EP x EDP lays over the GPUs of each pipeline
    stage (num_gpus / pipeline of them) as TP x CP x DP does, so ETP*EP must divide that count."""
    p, m, issues = s.parallelism, s.model, []
    etp, stage = p.expert_tensor_degree, p.num_gpus // p.pipeline
    if m.moe is None:
        if p.expert > 1:
            issues.append(Issue("parallelism.expert", f"{p.expert}: expert parallelism needs model.moe (the model "
                                "is dense); use expert: 1"))
        if p.expert_tensor is not None:
            issues.append(Issue("parallelism.expert_tensor", "needs model.moe (the model is dense); remove it"))
        if not p.moe_router_fusion:
            issues.append(Issue("parallelism.moe_router_fusion", "false needs model.moe (the model is dense)"))
        return issues
    if m.moe.num_experts % p.expert:
        issues.append(Issue("parallelism.expert", f"{p.expert} does not divide model.moe.num_experts "
                            f"({m.moe.num_experts}); use one of {_divisors(m.moe.num_experts)}"))
    if p.num_gpus == s.cluster.num_gpus and stage % (etp * p.expert):
        issues.append(Issue("parallelism.expert", f"expert_tensor*expert = {etp}*{p.expert} = {etp * p.expert} "
                            f"does not divide the {stage} GPUs of a pipeline stage (num_gpus / pipeline) that the "
                            "expert mesh folds over"))
    if m.moe.expert_ffn_hidden_size % etp:
        issues.append(Issue("parallelism.expert_tensor", f"{etp} does not divide model.moe.expert_ffn_hidden_size "
                            f"({m.moe.expert_ffn_hidden_size})"
                            f"{' (expert_tensor defaults to tensor)' if p.expert_tensor is None else ''}"))
    return issues


def _failure_issues(s: Scenario) -> list[Issue]:
    """Failure-rate rules that need the job's size (sim/specs/reliability.py)."""
    if s.failures is None:
        return []
    issues = s.failures.job_issues(s.cluster.num_gpus, s.cluster.topology.node.gpus)
    return [Issue(f"failures.{i.path}", i.message) for i in issues]


def _hardware_issues(s: Scenario) -> list[Issue]:
    name = catalog.canonical_gpu(s.cluster.gpu)
    if name is None:
        return []
    gpu, issues = gpu_spec(name), []
    precision = s.training.precision
    if not gpu.supports(precision.value):
        fix = "fp16" if gpu.supports("fp16") and precision is not Precision.FP16 else "another GPU"
        issues.append(Issue("training.precision", f"{precision.value} is not supported by {gpu.name}; "
                            f"use {fix}"))
    node = s.cluster.topology.node
    if s.cluster.num_gpus > node.gpus:
        for field in ("nics", "nic_bandwidth_gbit_s"):
            if getattr(node, field) <= 0:
                issues.append(Issue(f"cluster.topology.node.{field}", f"must be > 0 for a job spanning "
                                    f"several {node.gpus}-GPU nodes"))
        if s.cluster.num_gpus % node.gpus:
            issues.append(Issue("cluster.num_gpus", f"{s.cluster.num_gpus} is not a whole number of "
                                f"{node.gpus}-GPU nodes"))
    return issues


def _fp8_framework_issues(s: Scenario) -> list[Issue]:
    """fp8 recipes the GPU or the framework cannot run; torch.compile where the framework has none
    (catalog/frameworks.yaml)."""
    issues, table = [], catalog.frameworks_table()
    name, framework = catalog.canonical_gpu(s.cluster.gpu), s.parallelism.framework
    recipe = s.training.fp8_recipe
    if recipe is not None and name is not None:
        entry, arch = table["fp8_recipes"][recipe.value], gpu_spec(name).arch
        if arch not in entry["archs"]:
            issues.append(Issue("training.fp8_recipe", f"{recipe.value} needs {' or '.join(entry['archs'])} "
                                f"tensor cores; {name} is {arch}"))
        if framework.value not in entry["frameworks"]:
            issues.append(Issue("training.fp8_recipe", f"{recipe.value} is not a recipe of {framework.value} "
                                f"(it is {', '.join(entry['frameworks'])}'s)"))
    if s.parallelism.fp8_all_gather and s.training.fp8 is not Fp8Recipe.TENSORWISE:
        got = "precision " + s.training.precision.value if s.training.fp8 is None else s.training.fp8.value
        issues.append(Issue("parallelism.fp8_all_gather", f"true needs training.precision fp8 with fp8_recipe "
                            f"tensorwise (torchtitan docs/float8.md: fp8 all-gather is tensorwise-only), not {got}"))
    if s.training.compile and framework is Framework.MEGATRON_CORE:
        issues.append(Issue("training.compile", "megatron-core runs its own fused kernels (TE/Apex), not "
                            "torch.compile; use parallelism.framework torchtitan or deepspeed"))
    if s.parallelism.tp_comm_overlap and not tp_overlap_allowed(s):
        issues.append(Issue("parallelism.tp_comm_overlap", f"{framework.value}'s async TP requires "
                            "training.compile: true"))
    par = s.parallelism
    inner = tp_inner_degree(par.placement_axes, par.context, par.data, par.pipeline)
    if par.tp_comm_overlap and not tp_group_in_nvlink_domain(par.tensor, s.cluster, inner):
        issues.append(Issue("parallelism.tp_comm_overlap", tp_overlap_domain_message(par.tensor, s.cluster, inner)))
    return issues + _framework_version_issues(s)


def _framework_version_issues(s: Scenario) -> list[Issue]:
    """An older framework release must be one whose code path is modelled, at a ZeRO stage it models, for a
    model it could train (catalog/frameworks.yaml data_parallel versions)."""
    p, field = s.parallelism, "parallelism.framework_version"
    if p.framework_version is None:
        return []
    versions = catalog.frameworks_table()["data_parallel"][p.framework.value].get("versions", {})
    if p.framework_version not in versions:
        known = ", ".join(repr(v) for v in versions) or "none"
        return [Issue(field, f"{p.framework_version!r} is not a modelled release of {p.framework.value} "
                      f"(modelled: {known}); leave it unset for the current release")]
    entry = versions[p.framework_version]
    if p.zero_stage not in entry["zero_stages"]:
        return [Issue(field, f"{p.framework.value} {p.framework_version} is modelled at zero_stage "
                      f"{' or '.join(str(z) for z in entry['zero_stages'])} only, not {p.zero_stage}")]
    if s.model.moe is not None or s.model.attention is Attention.MLA:
        return [Issue(field, f"{p.framework.value} {p.framework_version} predates MoE and MLA support; "
                      "leave it unset for this model")]
    return []


def tp_overlap_allowed(s: Scenario) -> bool:
    """Whether the framework can overlap TP communication in this job (torchtitan's async TP needs
    torch.compile; catalog/frameworks.yaml ``tp_overlap``)."""
    overlap = catalog.frameworks_table()["tp_overlap"][s.parallelism.framework.value]
    return s.training.compile or not overlap.get("needs_compile", False)


def tp_inner_degree(axes: tuple[str, ...], context: int, data: int, pipeline: int) -> int:
    """GPUs laid inside each TP step: the product of the mesh degrees that the placement ``axes`` list before tp
    (1 when TP is innermost, the default)."""
    degree = {"cp": context, "dp": data, "pp": pipeline}
    return math.prod(degree[a] for a in axes[:axes.index("tp")]) if "tp" in axes else 1


def tp_group_in_nvlink_domain(tensor: int, cluster: ClusterSpec, inner: int = 1) -> bool:
    """Whether every TP group of degree ``tensor`` lies inside one scale-up (NVLink) domain. A TP group takes every
    ``inner``-th GPU (:func:`tp_inner_degree`) of an aligned block of ``inner x tensor`` consecutive GPUs, so no
    group straddles a domain when that block divides the domain's GPUs (or the whole job fits in one domain)."""
    domain = cluster.topology.domain_gpus
    return tensor == 1 or cluster.num_gpus <= domain or domain % (inner * tensor) == 0


def tp_overlap_domain_message(tensor: int, cluster: ClusterSpec, inner: int = 1) -> str:
    """Why ``tp_comm_overlap`` cannot run with TP ``tensor`` on ``cluster`` (see :func:`tp_group_in_nvlink_domain`)."""
    spread = f" laid every {inner} GPUs (placement_order)" if inner > 1 else ""
    return (f"needs each TP group inside one NVLink domain: tensor {tensor}{spread} does not fit the topology's "
            f"{cluster.topology.domain_gpus}-GPU scale-up domain (TE userbuffers and PyTorch symmetric memory map peer "
            "memory over NVLink only: TransformerEngine issue #1071, catalog/frameworks.yaml tp_overlap); set "
            "tp_comm_overlap: false")


@functools.cache
def gpu_spec(name: str) -> GpuSpec:
    """The catalog GPU for a name or alias (built once per name)."""
    canonical = catalog.canonical_gpu(name)
    if canonical is None:
        raise ScenarioError([Issue("cluster.gpu", f"{name!r} is not in the GPU catalog")])
    entry = dict(catalog.gpu_table()[canonical])
    return build(GpuSpec, {"name": canonical, **entry}, f"catalog gpus.{canonical}")


def _merge_preset(model: Any, issues: list[Issue]) -> Any:
    if not isinstance(model, dict) or "preset" not in model:
        return model
    name = model["preset"]
    found = catalog.preset(name) if isinstance(name, str) else None
    if found is None:
        import difflib

        presets = catalog.preset_table()
        close = difflib.get_close_matches(str(name), list(presets), n=1)
        hint = f"did you mean '{close[0]}'? " if close else ""
        issues.append(Issue("model.preset", f"{short_repr(name)} is not a packaged preset; {hint}"
                            f"known: {', '.join(presets)}"))
        return None
    base = {k: v for k, v in found.items() if k not in ("name", "source", "note")}
    return {**base, **model}


def _resolve_topology(cluster: Any, base: Path | None, issues: list[Issue]) -> Any:
    if not isinstance(cluster, dict) or not isinstance(cluster.get("topology"), str):
        return cluster
    try:
        path = catalog.resolve_topology(cluster["topology"], base)
    except ScenarioError as err:
        issues.extend(err.issues)
        return None
    try:
        data = read_yaml_mapping(path, "topology fields")
    except YamlError as err:
        issues.append(Issue("cluster.topology", f"{path}: {err}"))
        return None
    return {**cluster, "topology": data}


def _resolve_trace(failures: Any, base: Path | None, issues: list[Issue]) -> Any:
    """A ``failures.trace`` given as a CSV path, read (relative to the scenario's folder) into its columns."""
    if not isinstance(failures, dict) or not isinstance(failures.get("trace"), str):
        return failures
    columns, found = read_trace_csv(failures["trace"], base, "failures.trace")
    issues.extend(found)
    return None if found else {**failures, "trace": columns}


def scenario_from_mapping(data: Any, base: Path | None = None, source: str = "") -> Scenario:
    """Validate a parsed scenario mapping; ``base`` is the folder relative paths start from."""
    if not isinstance(data, dict):
        raise ScenarioError([Issue("", f"a scenario is a mapping of sections, got {type(data).__name__}")],
                            source)
    issues: list[Issue] = []
    data = dict(data)
    if "model" in data:
        data["model"] = _merge_preset(data["model"], issues)
    if "cluster" in data:
        data["cluster"] = _resolve_topology(data["cluster"], base, issues)
    if "failures" in data:
        data["failures"] = _resolve_trace(data["failures"], base, issues)
    failed = {i.path.split(".")[0] for i in issues}
    if issues:
        from sim.specs._schema import _build  # same package: collect the other sections' issues too
        for section in failed:
            data.pop(section, None)
        _build(Scenario, data, "", issues)
        issues = [i for i in issues if not (i.path in failed and "required field is missing" in i.message)]
        raise ScenarioError(issues, source)
    try:
        return build(Scenario, data)
    except ScenarioError as err:
        raise ScenarioError(err.issues, source) from None


def load_scenario(path: str | Path) -> Scenario:
    """Load and validate a scenario YAML file; raises ScenarioError listing every problem."""
    path = Path(path)
    try:
        data = read_yaml_file(path)
    except YamlError as err:
        raise ScenarioError([Issue("", str(err))], str(path)) from None
    return scenario_from_mapping(data, path.parent, str(path))
