"""Which features of a layout validation covers: rows within :data:`TOLERANCE` of their published step time
that exercise the same feature at a comparable scale.

A layout's *features* (:func:`features`) are the choices a search varies whose cost the model could get wrong: the
TP overlap mode, the ZeRO stage on its data-parallel code path, CP at the sequence length, the recompute mode, the
pipeline schedule and its interleaved chunk count on their code path, TP beyond one node, EP across NVLink domains.
The catalog (``sim/catalog/validation/coverage.yaml``) is computed offline from the validation rows' own layouts and
errors by ``python scripts/build_coverage.py``; for each feature it holds how many rows exercise it, how many of
those are within the tolerance, and the largest GPU count among those. A feature is covered for a layout on ``n``
GPUs when a row within the tolerance, fit or check, exercises it on at least ``n / SCALE_RATIO`` GPUs; the catalog
also holds the within-tolerance count and largest GPU count of the check rows alone (``within_check``,
``max_gpus_within_check``), which coverage does not use.

The ZeRO and pipeline features name the framework code path they run on, ``zero=<stage>@<path>``,
``schedule=<schedule>@<path>`` and ``virtual_pipeline=<N>@<path>`` (:func:`code_path`): the framework, and the
release where ``parallelism.framework_version`` names one, because one implementation's rows do not vouch for
another's.

ZeRO: every stage's plan reads that framework's entry of ``catalog/frameworks.yaml`` (``sim.costs.zero.plan``) and
a release's entry overrides it. The same rule holds at every stage, since the stages differ by framework too:
ZeRO-0/1 under megatron-core are Megatron's DDP and distributed optimizer (reduction overlapped with backward),
under deepspeed they reduce after backward on the compute stream; ZeRO-2/3 under megatron-core are
Megatron-FSDP (zero-copy buffers), under torchtitan FSDP2 (copy-in/out passes, no resharding with PP), under
deepspeed 0.3 blocking per-tensor collectives. So DeepSpeed 0.3's or FSDP2's ZeRO-3 rows do not vouch for
Megatron-FSDP's (``zero=3@deepspeed-0.3``, ``zero=3@torchtitan``, ``zero=3@megatron-core``).

Pipeline: the engine runs one schedule for every framework (sends that do not block the sender), but the
frameworks' schedules are different code. Megatron-Core's interleaved schedule overlaps its point-to-point
transfers with compute (``overlap_p2p_comm``) and waits only for the transfer it needs next; torchtitan's looped
schedules (torch.distributed.pipelining ``PipelineScheduleMulti``, Interleaved1F1B) run in lockstep over time
steps: after each action a rank posts its sends and the receives for what its neighbours compute in that same
time step and blocks on all of them (``_batch_p2p(ops).wait()`` in ``_step_microbatches``, pytorch
torch/distributed/pipelining/schedules.py); DeepSpeed's pipeline engine is a third. Where the model misses such a
cost, one framework's rows show it and the others' cannot: torchtitan's one interleaved row (405B on 512 H100)
is 24.5 % fast against 11.5 % for its 1F1B twin, while Megatron's dense interleaved rows (Narayanan et al. 2021,
Korthikanti et al. 2022) are within 6 %. The path is the scenario's framework: the Megatron-DeepSpeed rows
(BLOOM, MT-NLG), simulated under megatron-core, count as megatron-core's (all outside the tolerance today).
"""

from __future__ import annotations

import functools
from typing import Any

from sim import catalog
from sim.parallelism.mesh import ParallelMesh
from sim.parallelism.placement import expert_members
from sim.specs.layout import ParallelismSpec
from sim.specs.scenario import Scenario

#: Largest |simulated - published| / published for a row to count as validating its features.
TOLERANCE = 0.15

#: "At that scale": a row validates a feature for layouts on up to this many times its GPU count.
SCALE_RATIO = 4

CATALOG = "validation/coverage.yaml"


def code_path(p: ParallelismSpec) -> str:
    """The framework code path ``p``'s data parallelism and pipeline run on: the framework, with ``-<release>``
    where ``framework_version`` picks an older release (``megatron-core``, ``torchtitan``, ``deepspeed-0.3``)."""
    return p.framework.value + (f"-{p.framework_version}" if p.framework_version is not None else "")


def features(s: Scenario) -> list[str]:
    """The features of ``s``'s layout that validation must cover (names as in the catalog)."""
    p, node = s.parallelism, s.cluster.topology.node.gpus
    out = [f"recompute={p.activation_recompute.value}"]
    if p.tensor > 1:
        out.append(f"tp_overlap={'on' if p.tp_comm_overlap else 'off'}")
    if p.tensor > node:
        out.append("tp=across nodes")
    if p.data * p.context > 1:
        out.append(f"zero={p.zero_stage}@{code_path(p)}")
    if p.context > 1:
        out.append(f"cp@seq={s.model.seq_len}")
    if p.pipeline > 1:
        out.append(f"schedule={p.schedule.value}@{code_path(p)}")
    if p.virtual_pipeline > 1:
        # the chunk count, not only the schedule: the bubble shrinks with it while point-to-point messages grow with
        # it, and validation measures the gain at 2-4 chunks only (Narayanan 2021 Table 1 and Figure 12)
        out.append(f"virtual_pipeline={p.virtual_pipeline}@{code_path(p)}")
    if p.expert > 1:
        # the EP groups of Megatron's folded expert mesh (ETP ranks apart), within one NVLink domain or not
        domain = s.cluster.topology.domain_gpus
        members = expert_members(ParallelMesh.from_layout(p), p.expert, p.expert_tensor_degree)
        across = bool((members.max(axis=1) // domain != members.min(axis=1) // domain).any())
        out.append(f"ep={'across nvlink domains' if across else 'in nvlink domain'}")
    return out


@functools.cache
def coverage_table() -> dict[str, Any]:
    """The catalog: ``features: {name: {rows, within, max_gpus_within, examples, within_check,
    max_gpus_within_check}}``."""
    return catalog.read_yaml(CATALOG)


def uncovered(s: Scenario, table: dict[str, Any] | None = None) -> list[str]:
    """Features of ``s`` that no row within the tolerance exercises at its scale."""
    entries = (table or coverage_table())["features"]
    n = s.cluster.num_gpus
    return [f for f in features(s)
            if not entries.get(f, {}).get("max_gpus_within") or entries[f]["max_gpus_within"] * SCALE_RATIO < n]
