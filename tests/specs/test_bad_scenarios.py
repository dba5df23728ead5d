"""Invalid scenarios through the CLI: exit status 2, the field path named on stderr, nothing on stdout,
never a traceback (spec/scenario.md: "an unknown field, a wrong type or an inconsistent layout is an error
that names the field path ... and exits with status 2 — never a traceback").

Every case is a small mutation of the valid base scenario of ``conftest.BASE`` (Llama 3 8B on 16 H100,
TP2 PP2 DP4, global batch 32, micro-batch 1).
"""

from __future__ import annotations

import json
import signal
from collections.abc import Callable
from contextlib import contextmanager
from typing import Any

import pytest
import yaml

from sim import catalog
from sim.errors import ScenarioError
from sim.specs.scenario import scenario_from_mapping

Mutation = Callable[[dict[str, Any]], None]


def _set(path: str, value: Any) -> Mutation:
    """Set the value at a dotted path (creating intermediate mappings)."""

    def mutate(d: dict[str, Any]) -> None:
        *parents, leaf = path.split(".")
        for key in parents:
            d = d.setdefault(key, {})
        d[leaf] = value

    return mutate


def _del(path: str) -> Mutation:
    def mutate(d: dict[str, Any]) -> None:
        *parents, leaf = path.split(".")
        for key in parents:
            d = d[key]
        del d[leaf]

    return mutate


def _rename(path: str, new_leaf: str) -> Mutation:
    def mutate(d: dict[str, Any]) -> None:
        *parents, leaf = path.split(".")
        for key in parents:
            d = d[key]
        d[new_leaf] = d.pop(leaf)

    return mutate


def _all(*mutations: Mutation) -> Mutation:
    def mutate(d: dict[str, Any]) -> None:
        for m in mutations:
            m(d)

    return mutate


def _inline_topology(*mutations: Mutation) -> Mutation:
    """Replace the topology name by the bundled file's mapping, then mutate that mapping."""

    def mutate(d: dict[str, Any]) -> None:
        topo = yaml.safe_load(catalog.resolve_topology("dgx-h100-superpod", None).read_text(encoding="utf-8"))
        for m in mutations:
            m(topo)
        d["cluster"]["topology"] = topo

    return mutate


# Explicit model fields of a Llama-3-8B-like model without a preset.
_EXPLICIT_MODEL = {
    "num_layers": 32, "hidden_size": 4096, "ffn_hidden_size": 14336, "num_attention_heads": 32,
    "num_kv_heads": 8, "vocab_size": 128256, "seq_len": 8192,
}

# (id, mutation, field path that stderr must name, further substrings stderr must contain)
CASES: list[tuple[str, Mutation, str, tuple[str, ...]]] = [
    # unknown keys, with did-you-mean
    ("unknown-top-level-key", _set("simulaton", {"seed": 1}), "simulaton", ("did you mean 'simulation'",)),
    ("unknown-nested-key", _rename("parallelism.tensor", "tensr"), "parallelism.tensr",
     ("did you mean 'tensor'",)),
    ("unknown-model-key-beside-preset", _set("model.num_layer", 16), "model.num_layer",
     ("did you mean 'num_layers'",)),
    ("unknown-key-no-close-match", _set("costs.zzzz", 1), "costs.zzzz", ("known fields",)),
    # wrong types
    ("string-for-int", _set("parallelism.tensor", "two"), "parallelism.tensor", ("whole number",)),
    ("fraction-for-int", _set("parallelism.data", 4.5), "parallelism.data", ("whole number",)),
    ("list-for-mapping", _set("parallelism", [2, 2, 4]), "parallelism", ("expected a mapping",)),
    ("string-for-mapping", _set("model", "llama3-8b"), "model", ("expected a mapping",)),
    ("null-section", _set("training", None), "training", ("expected a mapping",)),
    ("bool-for-number", _set("costs.pue", True), "costs.pue", ("number",)),
    ("bool-for-int", _set("cluster.num_gpus", True), "cluster.num_gpus", ("whole number",)),
    ("string-for-bool", _set("parallelism.sequence_parallel", "yes"), "parallelism.sequence_parallel",
     ("true or false",)),
    ("mapping-for-string", _set("cluster.gpu", {"name": "H100"}), "cluster.gpu", ("string",)),
    ("null-for-required-int", _set("training.global_batch_size", None), "training.global_batch_size", ()),
    ("nan-for-float", _set("costs.pue", float("nan")), "costs.pue", ("number",)),
    ("inf-for-float", _set("checkpoint.storage_write_gbyte_s", float("inf")), "checkpoint.storage_write_gbyte_s",
     ("number",)),
    ("list-for-rates", _set("failures.rates", [1, 2]), "failures.rates", ("expected a mapping",)),
    # ranges
    ("zero-tensor", _set("parallelism.tensor", 0), "parallelism.tensor", (">= 1",)),
    ("negative-data", _set("parallelism.data", -4), "parallelism.data", (">= 1",)),
    ("zero-global-batch", _set("training.global_batch_size", 0), "training.global_batch_size", (">= 1",)),
    ("negative-tokens", _set("training.tokens", -1.0e12), "training.tokens", ("> 0",)),
    ("negative-price", _set("costs.usd_per_gpu_hour", -2), "costs.usd_per_gpu_hour", (">= 0",)),
    ("pue-below-one", _set("costs.pue", 0.9), "costs.pue", (">= 1",)),
    ("zero-storage-bandwidth", _set("checkpoint.storage_write_gbyte_s", 0), "checkpoint.storage_write_gbyte_s",
     ("> 0",)),
    ("negative-hot-spares", _set("failures.hot_spares", -1), "failures.hot_spares", (">= 0",)),
    ("negative-failure-rate", _set("failures.rates", {"gpu": -1.0}), "failures.rates.gpu", (">= 0",)),
    ("unknown-failure-component", _set("failures.rates", {"gpus": 1e-6}), "failures.rates.gpus",
     ("unknown component", "gpu")),
    ("weibull-shape-without-weibull", _set("failures.weibull_shape", 0.7), "failures.weibull_shape",
     ("weibull",)),
    ("failure-distribution-typo", _set("failures.distribution", "weibul"), "failures.distribution",
     ("weibull",)),
    ("spares-policy-typo", _set("failures.on_spares_exhausted", "shrinkk"), "failures.on_spares_exhausted",
     ("shrink",)),
    ("negative-injected-failure", _set("failures.inject_hours", [3, -1]), "failures.inject_hours", (">= 0",)),
    ("straggler-fraction-above-one", _set("stragglers.fraction_of_nodes", 1.5), "stragglers.fraction_of_nodes",
     ("<= 1",)),
    ("negative-rate-scale", _set("failures.rate_scale", -2), "failures.rate_scale", (">= 0",)),
    ("burst-fraction-above-one", _set("failures.burst_fraction", 1.2), "failures.burst_fraction", ("<= 1",)),
    ("negative-lemon-fraction", _set("failures.lemon_fraction", -0.1), "failures.lemon_fraction", (">= 0",)),
    ("lemon-multiplier-below-one", _set("failures.lemon_rate_multiplier", 0.5), "failures.lemon_rate_multiplier",
     (">= 1",)),
    ("lemon-multiplier-without-lemons", _set("failures.lemon_rate_multiplier", 3), "failures.lemon_rate_multiplier",
     ("lemon_fraction > 0",)),
    ("lemons-above-the-fleet-mean", lambda d: (_set("failures.lemon_fraction", 0.3)(d),
                                               _set("failures.lemon_rate_multiplier", 4)(d)),
     "failures.lemon_rate_multiplier", ("must be < 1",)),
    ("lemon-fraction-too-high-for-default", _set("failures.lemon_fraction", 0.5), "failures.lemon_fraction",
     ("must be <",)),
    ("negative-sdc-detection", _set("failures.sdc_detection_hours", -1), "failures.sdc_detection_hours", (">= 0",)),
    ("sdc-detection-without-sdc-population", lambda d: (_set("failures.model", "meta-rsc")(d),
                                                        _set("failures.sdc_detection_hours", 12)(d)),
     "failures.sdc_detection_hours", ("silent-data-corruption", "sdc")),
    ("negative-episode-rate", _set("stragglers.episodes_per_day", -1), "stragglers.episodes_per_day", (">= 0",)),
    ("episode-slowdown-without-episodes", _set("stragglers.episode_slowdown", 0.2), "stragglers.episode_slowdown",
     ("episodes_per_day > 0",)),
    ("zero-episode-median", lambda d: (_set("stragglers.episodes_per_day", 2)(d),
                                       _set("stragglers.episode_median_minutes", 0)(d)),
     "stragglers.episode_median_minutes", ("> 0",)),
    ("zero-monte-carlo", _set("simulation.monte_carlo", 0), "simulation.monte_carlo", (">= 1",)),
    ("negative-seed", _set("simulation.seed", -1), "simulation.seed", (">= 0",)),
    ("zero-stage-4", _set("parallelism.zero_stage", 4), "parallelism.zero_stage", ("<= 3",)),
    ("reshard-after-forward-at-zero-1", _set("parallelism.reshard_after_forward", False),
     "parallelism.reshard_after_forward", ("zero_stage 3",)),
    ("reshard-after-forward-on-deepspeed",
     _all(_set("parallelism.zero_stage", 3), _set("parallelism.framework", "deepspeed"),
          _set("parallelism.reshard_after_forward", False)),
     "parallelism.reshard_after_forward", ("FSDP option",)),
    ("fp8-all-gather-on-megatron", _set("parallelism.fp8_all_gather", True), "parallelism.fp8_all_gather",
     ("torchtitan", "megatron-core")),
    ("fp8-all-gather-without-fsdp", _all(_set("parallelism.framework", "torchtitan"),
                                         _set("parallelism.fp8_all_gather", True)),
     "parallelism.fp8_all_gather", ("zero_stage 3",)),
    ("fp8-all-gather-in-bf16", _all(_set("parallelism.framework", "torchtitan"), _set("parallelism.zero_stage", 3),
                                    _set("parallelism.fp8_all_gather", True)),
     "parallelism.fp8_all_gather", ("tensorwise", "precision bf16")),
    ("fp8-all-gather-rowwise", _all(_set("parallelism.framework", "torchtitan"), _set("parallelism.zero_stage", 3),
                                    _set("parallelism.fp8_all_gather", True), _set("training.precision", "fp8"),
                                    _set("training.fp8_recipe", "rowwise")),
     "parallelism.fp8_all_gather", ("tensorwise-only", "not rowwise")),
    ("torchtitan-zero-2", _all(_set("parallelism.framework", "torchtitan"), _set("parallelism.zero_stage", 2)),
     "parallelism.zero_stage", ("FSDP2",)),
    ("framework-typo", _set("parallelism.framework", "megatron"), "parallelism.framework",
     ("megatron-core",)),
    ("grad-sync-at-zero-1", _set("parallelism.grad_sync", "every-microbatch"), "parallelism.grad_sync",
     ("zero_stage 2 and 3",)),
    ("grad-sync-unsharded-on-deepspeed",
     _all(_set("parallelism.zero_stage", 2), _set("parallelism.framework", "deepspeed"),
          _set("parallelism.grad_sync", "last-microbatch")),
     "parallelism.grad_sync", ("no_sync",)),
    ("shard-group-not-dividing-dp", _set("parallelism.shard_group_size", 3), "parallelism.shard_group_size",
     ("does not divide data*context (4)",)),
    ("shard-group-at-zero-0", _all(_set("parallelism.zero_stage", 0), _set("parallelism.shard_group_size", 2)),
     "parallelism.shard_group_size", ("zero_stage >= 1",)),
    ("shard-group-on-deepspeed-zero-1",
     _all(_set("parallelism.framework", "deepspeed"), _set("parallelism.shard_group_size", 2)),
     "parallelism.shard_group_size", ("MiCS",)),
    ("overlap-grad-reduce-on-deepspeed-zero-1",
     _all(_set("parallelism.framework", "deepspeed"), _set("parallelism.overlap_grad_reduce", True)),
     "parallelism.overlap_grad_reduce", ("after backward", "PR 1246")),
    # older framework releases (issue 11: DeepSpeed 0.3's ZeRO-3)
    ("framework-version-unknown",
     _all(_set("parallelism.zero_stage", 3), _set("parallelism.framework", "deepspeed"),
          _set("parallelism.framework_version", "0.2")),
     "parallelism.framework_version", ("not a modelled release of deepspeed", "'0.3'")),
    ("framework-version-on-megatron", _set("parallelism.framework_version", "0.3"),
     "parallelism.framework_version", ("megatron-core (modelled: none)",)),
    ("deepspeed-0.3-at-zero-1",
     _all(_set("parallelism.framework", "deepspeed"), _set("parallelism.framework_version", "0.3")),
     "parallelism.framework_version", ("zero_stage 3 only, not 1",)),
    ("deepspeed-0.3-with-moe",
     _all(_set("model.moe", {"num_experts": 8, "top_k": 2, "expert_ffn_hidden_size": 1024}),
          _set("parallelism.zero_stage", 3), _set("parallelism.framework", "deepspeed"),
          _set("parallelism.framework_version", "0.3")),
     "parallelism.framework_version", ("predates MoE",)),
    # fp8 recipes, torch.compile, async TP (issue 11)
    ("fp8-recipe-without-fp8", _set("training.fp8_recipe", "tensorwise"), "training.fp8_recipe",
     ("precision fp8 only",)),
    ("fp8-recipe-typo", _all(_set("training.precision", "fp8"), _set("training.fp8_recipe", "row-wise")),
     "training.fp8_recipe", ("rowwise",)),
    ("mxfp8-on-hopper", _all(_set("training.precision", "fp8"), _set("training.fp8_recipe", "mxfp8")),
     "training.fp8_recipe", ("blackwell", "H100-SXM-80GB is hopper")),
    ("mxfp8-on-h20", _all(_set("cluster.gpu", "H20"), _set("training.precision", "fp8"),
                          _set("training.fp8_recipe", "mxfp8")),
     "training.fp8_recipe", ("H20 is hopper",)),
    ("blockwise-on-mi300x", _all(_set("cluster.gpu", "MI300X"), _set("training.precision", "fp8"),
                                 _set("training.fp8_recipe", "blockwise")),
     "training.fp8_recipe", ("MI300X is cdna3",)),
    ("rowwise-on-megatron-core", _all(_set("training.precision", "fp8"), _set("training.fp8_recipe", "rowwise")),
     "training.fp8_recipe", ("not a recipe of megatron-core",)),
    ("compile-on-megatron-core", _set("training.compile", True), "training.compile", ("torchtitan or deepspeed",)),
    ("async-tp-without-compile",
     _all(_set("parallelism.framework", "torchtitan"), _set("parallelism.zero_stage", 3),
          _set("parallelism.tp_comm_overlap", True)),
     "parallelism.tp_comm_overlap", ("requires training.compile",)),
    ("tp-overlap-across-nodes",
     _all(_set("model.num_kv_heads", 16), _set("parallelism.tensor", 16), _set("parallelism.pipeline", 1),
          _set("parallelism.data", 1), _set("parallelism.sequence_parallel", True),
          _set("parallelism.tp_comm_overlap", True)),
     "parallelism.tp_comm_overlap", ("tensor 16 does not fit the topology's 8-GPU scale-up domain", "#1071")),
    ("shard-group-at-full-fidelity",
     _all(_set("parallelism.shard_group_size", 2), _set("simulation.fidelity", "full")),
     "parallelism.shard_group_size", ("symmetric",)),
    ("zero-num-layers", _set("model.num_layers", 0), "model.num_layers", (">= 1",)),
    # layout rules
    ("degrees-product-not-num-gpus", _set("cluster.num_gpus", 32), "parallelism",
     ("= 16 must equal cluster.num_gpus (32)",)),
    ("tensor-not-dividing-heads",
     _all(_set("model.num_attention_heads", 40), _set("model.hidden_size", 5120),
          _set("parallelism.tensor", 16), _set("parallelism.pipeline", 1), _set("parallelism.data", 1)),
     "parallelism.tensor", ("does not divide model.num_attention_heads (40)",)),
    ("tensor-not-dividing-kv-heads",
     _all(_set("model.num_kv_heads", 2), _set("parallelism.tensor", 4), _set("parallelism.pipeline", 1)),
     "parallelism.tensor", ("does not divide model.num_kv_heads (2)",)),
    ("pipeline-not-dividing-layers", _set("model.num_layers", 33), "parallelism.pipeline",
     ("does not divide", "33")),
    ("pipeline-times-virtual-not-dividing-layers",
     _all(_set("parallelism.schedule", "interleaved-1f1b"), _set("parallelism.virtual_pipeline", 3)),
     "parallelism.pipeline", ("pipeline*virtual_pipeline = 6 does not divide",)),
    ("context-not-dividing-seq-len",
     _all(_set("parallelism.context", 2), _set("parallelism.data", 2), _set("model.seq_len", 8191)),
     "parallelism.context", ("does not divide model.seq_len (8191)",)),
    ("global-batch-not-multiple", _set("training.global_batch_size", 30), "training.global_batch_size",
     ("not a multiple",)),
    ("global-batch-not-multiple-of-micro-batch", _set("parallelism.micro_batch_size", 3),
     "training.global_batch_size", ("not a multiple",)),
    ("interleaved-microbatches-not-multiple-of-pipeline",
     _all(_set("parallelism.schedule", "interleaved-1f1b"), _set("parallelism.virtual_pipeline", 2),
          _set("parallelism.pipeline", 4), _set("parallelism.data", 2), _set("training.global_batch_size", 6)),
     "training.global_batch_size", ("multiple of parallelism.pipeline",)),
    ("interleaved-without-virtual", _set("parallelism.schedule", "interleaved-1f1b"),
     "parallelism.virtual_pipeline", (">= 2",)),
    ("virtual-with-1f1b", _set("parallelism.virtual_pipeline", 2), "parallelism.schedule",
     ("interleaved-1f1b",)),
    ("interleaved-without-pipeline",
     _all(_set("parallelism.schedule", "interleaved-1f1b"), _set("parallelism.virtual_pipeline", 2),
          _set("parallelism.pipeline", 1), _set("parallelism.data", 8)),
     "parallelism.schedule", ("pipeline >= 2",)),
    # MoE layouts (issue 10): the expert mesh ETP x EP x EDP folds over the 8 GPUs of a base pipeline stage
    ("expert-on-dense-model", _set("parallelism.expert", 2), "parallelism.expert", ("needs model.moe",)),
    ("expert-tensor-on-dense-model", _set("parallelism.expert_tensor", 1), "parallelism.expert_tensor",
     ("needs model.moe",)),
    ("expert-mesh-not-dividing-stage",
     _all(_set("model.moe", {"num_experts": 16, "top_k": 2, "expert_ffn_hidden_size": 1024}),
          _set("parallelism.expert", 16)),
     "parallelism.expert", ("expert_tensor*expert = 2*16 = 32 does not divide the 8 GPUs",)),
    ("expert-tensor-times-expert-not-dividing-stage",
     _all(_set("model.moe", {"num_experts": 8, "top_k": 2, "expert_ffn_hidden_size": 1024}),
          _set("parallelism.expert", 4), _set("parallelism.expert_tensor", 4)),
     "parallelism.expert", ("= 16 does not divide the 8 GPUs",)),
    ("expert-tensor-not-dividing-expert-ffn",
     _set("model.moe", {"num_experts": 8, "top_k": 2, "expert_ffn_hidden_size": 1001}),
     "parallelism.expert_tensor", ("does not divide model.moe.expert_ffn_hidden_size (1001)",)),
    ("zero-expert-tensor",
     _all(_set("model.moe", {"num_experts": 8, "top_k": 2, "expert_ffn_hidden_size": 1024}),
          _set("parallelism.expert_tensor", 0)),
     "parallelism.expert_tensor", (">= 1",)),
    ("unknown-moe-dispatcher", _set("parallelism.moe_dispatcher", "deepepp"), "parallelism.moe_dispatcher",
     ("alltoall",)),
    ("a2a-overlap-without-expert-parallelism",
     _all(_set("model.moe", {"num_experts": 8, "top_k": 2, "expert_ffn_hidden_size": 1024}),
          _set("parallelism.moe_a2a_overlap", True)),
     "parallelism.moe_a2a_overlap", ("expert >= 2",)),
    ("a2a-overlap-with-allgather-dispatcher",
     _all(_set("model.moe", {"num_experts": 8, "top_k": 2, "expert_ffn_hidden_size": 1024}),
          _set("parallelism.expert", 2), _set("parallelism.moe_dispatcher", "allgather"),
          _set("parallelism.moe_a2a_overlap", True)),
     "parallelism.moe_a2a_overlap", ("alltoall or deepep",)),
    ("expert-not-dividing-num-experts",
     _all(_set("model.moe", {"num_experts": 6, "top_k": 2, "expert_ffn_hidden_size": 1024}),
          _set("parallelism.expert", 4)),
     "parallelism.expert", ("model.moe.num_experts (6)",)),
    ("num-gpus-not-whole-nodes",
     _all(_set("cluster.num_gpus", 12), _set("parallelism.data", 3), _set("training.global_batch_size", 36)),
     "cluster.num_gpus", ("whole number of 8-GPU nodes",)),
    # model rules
    ("hidden-not-divisible-by-heads", _set("model.hidden_size", 4097), "model.hidden_size", ("divisible",)),
    ("kv-heads-not-dividing-heads", _set("model.num_kv_heads", 5), "model.num_kv_heads", ("does not divide",)),
    ("moe-top-k-above-experts",
     _set("model.moe", {"num_experts": 4, "top_k": 8, "expert_ffn_hidden_size": 1024}),
     "model.moe.top_k", ("exceeds num_experts",)),
    ("missing-model-field-without-preset",
     _set("model", {k: v for k, v in _EXPLICIT_MODEL.items() if k != "num_layers"}),
     "model.num_layers", ("required field is missing",)),
    # enums
    ("schedule-1f2b", _set("parallelism.schedule", "1f2b"), "parallelism.schedule", ("did you mean '1f1b'",)),
    ("precision-bf17", _set("training.precision", "bf17"), "training.precision", ("did you mean 'bf16'",)),
    ("recompute-partial", _set("parallelism.activation_recompute", "partial"),
     "parallelism.activation_recompute", ("none, selective, full",)),
    ("activation-relu", _set("model.activation", "relu"), "model.activation", ("swiglu",)),
    ("fidelity-fast", _set("simulation.fidelity", "fast"), "simulation.fidelity", ("symmetric",)),
    ("optimizer-adam", _set("training.optimizer", "adam"), "training.optimizer", ("adamw",)),
    # catalog names
    ("unknown-preset", _set("model.preset", "llama3-8c"), "model.preset", ("did you mean 'llama3-8b'",)),
    ("unknown-gpu", _set("cluster.gpu", "H100-SXM-90GB"), "cluster.gpu", ("not in the GPU catalog",)),
    ("unknown-topology", _set("cluster.topology", "dgx-h100-superpd"), "cluster.topology",
     ("dgx-h100-superpod",)),
    ("bf16-on-v100", _set("cluster.gpu", "V100-SXM-32GB"), "training.precision",
     ("not supported", "use fp16")),
    ("fp8-on-a100", _all(_set("cluster.gpu", "A100-SXM-80GB"), _set("training.precision", "fp8")),
     "training.precision", ("not supported",)),
    # sections
    ("missing-training", _del("training"), "training", ("required field is missing",)),
    ("missing-cluster-gpu", _del("cluster.gpu"), "cluster.gpu", ("required field is missing",)),
    ("empty-name", _set("name", ""), "name", ("non-empty string",)),
    # failures
    ("unknown-failure-rate-set", _set("failures.model", "llama4"), "failures.model", ("llama3",)),
    # checkpoint
    ("checkpoint-weekly", _set("checkpoint.interval_minutes", "weekly"), "checkpoint.interval_minutes",
     ("young-daly",)),
    ("checkpoint-zero-minutes", _set("checkpoint.interval_minutes", 0), "checkpoint.interval_minutes", ("> 0",)),
    ("checkpoint-null-minutes", _set("checkpoint.interval_minutes", None), "checkpoint.interval_minutes",
     ("None is not one of",)),
    ("checkpoint-null-in-memory", _set("checkpoint.in_memory", None), "checkpoint.in_memory", ("None is not one of",)),
    ("checkpoint-async-string", _set("checkpoint.async", "sometimes"), "checkpoint.async", ("true or false",)),
    ("checkpoint-async-attribute-name", _set("checkpoint.async_", True), "checkpoint.async_",
     ("did you mean 'async'",)),
    # inline topology
    ("inline-topology-zero-node-gpus", _inline_topology(_set("node.gpus", 0)), "cluster.topology.node.gpus",
     (">= 1",)),
    ("inline-topology-unknown-key", _inline_topology(_rename("node.nics", "nic")), "cluster.topology.node.nic",
     ("did you mean 'nics'",)),
    ("inline-topology-bad-domain", _inline_topology(_set("node.scale_up.domain_gpus", 3)),
     "cluster.topology.node.scale_up.domain_gpus", ("multiple or a divisor",)),
    ("inline-topology-bad-scale-up-kind", _inline_topology(_set("node.scale_up.kind", "nvswich")),
     "cluster.topology.node.scale_up.kind", ("did you mean 'nvswitch'",)),
    ("inline-topology-tier-radix-1", _inline_topology(_set("scale_out.tiers", [{"name": "leaf", "radix": 1}])),
     "cluster.topology.scale_out.tiers[0].radix", (">= 2",)),
    ("inline-topology-tiers-not-list", _inline_topology(_set("scale_out.tiers", "leaf")),
     "cluster.topology.scale_out.tiers", ("expected a list",)),
    # found by the fuzz test: a leaf group smaller than a node divided by zero in the step
    ("inline-topology-span-below-a-node",
     _inline_topology(_set("scale_out.tiers", [{"name": "leaf", "radix": 64, "span_gpus": 1}])),
     "cluster.topology.scale_out.tiers[0].span_gpus", ("multiple of the 8 GPUs",)),
]


def _assert_rejected(res, path: str, *substrings: str) -> None:
    assert "Traceback" not in res.err, res.err
    assert res.rc == 2, f"exit {res.rc}; stderr:\n{res.err}\nstdout:\n{res.out[:2000]}"
    assert res.out == "", res.out
    assert res.err.startswith("trainsim: error: "), res.err
    lines = [line.strip() for line in res.err.splitlines()[1:]]
    assert any(line.startswith(f"{path}: ") for line in lines), f"no issue for {path!r} in:\n{res.err}"
    for text in substrings:
        assert text in res.err, f"{text!r} not in:\n{res.err}"


@pytest.mark.parametrize(("mutate", "path", "expected"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_invalid_scenario_exits_2_naming_the_field(base, write_scenario, run_cli, mutate, path, expected):
    mutate(base)
    scenario = write_scenario(base)
    res = run_cli("run", scenario, "--json")
    _assert_rejected(res, path, *expected)
    assert str(scenario) in res.err  # the file is named too


def test_case_ids_are_distinct():
    ids = [c[0] for c in CASES]
    assert len(ids) == len(set(ids)) >= 25


def test_base_scenario_is_valid(base, write_scenario, run_cli):
    res = run_cli("run", write_scenario(base), "--json")
    assert res.rc == 0, res.err
    assert res.err == ""
    assert json.loads(res.out)["scenario"] == base["name"]


def test_base_scenario_summary_text(base, write_scenario, run_cli):
    res = run_cli("run", write_scenario(base))
    assert res.rc == 0, res.err
    assert res.out.strip()


# ---- numbers written as users write them -------------------------------------------------------------------

_TEXT = """\
name: numbers-as-written
model:
  preset: llama3-8b
cluster:
  gpu: H100-SXM-80GB
  num_gpus: {num_gpus}
  topology: dgx-h100-superpod
parallelism:
  tensor: 2
  pipeline: 2
  data: 4
  micro_batch_size: 1
training:
  global_batch_size: {gbs}
  tokens: {tokens}
costs:
  usd_per_gpu_hour: {price}
"""


@pytest.mark.parametrize(
    ("tokens", "num_gpus", "gbs", "price"),
    [
        ("15.6e12", "16", "32", "2.0"),                      # PyYAML reads 15.6e12 as the string '15.6e12'
        ("15_600_000_000_000", "16", "32", "2"),             # YAML 1.1 int with underscores
        ('"15_600_000_000_000"', '"16"', '"32"', '"2.0"'),   # quoted: strings the loader must parse
        ('"15.6e12"', "1.6e1", "3.2e+1", "2e0"),              # exponent forms for int fields too
        ("1.56e+13", "16.0", "32.0", ".2e1"),
        ("+15.6E12", "+16", "3_2", "2."),
    ],
    ids=["exp-no-sign", "underscores", "quoted", "exp-ints", "exp-sign", "plus-and-caps"],
)
def test_numbers_written_as_strings_are_accepted(write_scenario, run_cli, tokens, num_gpus, gbs, price):
    text = _TEXT.format(tokens=tokens, num_gpus=num_gpus, gbs=gbs, price=price)
    path = write_scenario(text)
    s = scenario_from_mapping(yaml.safe_load(text), path.parent, str(path))
    assert s.training.tokens == pytest.approx(15.6e12)
    assert isinstance(s.training.tokens, float)
    assert s.cluster.num_gpus == 16 and isinstance(s.cluster.num_gpus, int)
    assert s.training.global_batch_size == 32 and isinstance(s.training.global_batch_size, int)
    assert s.costs is not None and s.costs.usd_per_gpu_hour == 2.0
    res = run_cli("run", path, "--json")
    assert res.rc == 0, res.err
    assert res.err == ""
    result = json.loads(res.out)
    assert result["scenario"] == "numbers-as-written"


@pytest.mark.parametrize("text", ["15.6e12.0", "1e", "12 GB", "0x1g", "1__e5e5", "", "   "])
def test_non_numbers_in_number_fields_are_rejected(base, write_scenario, run_cli, text):
    base["training"]["tokens"] = text
    res = run_cli("run", write_scenario(base), "--json")
    _assert_rejected(res, "training.tokens")


# ---- file-level problems -------------------------------------------------------------------------------------


def _assert_file_error(res, path, *substrings: str) -> None:
    assert "Traceback" not in res.err, res.err
    assert res.rc == 2, f"exit {res.rc}; stderr:\n{res.err}"
    assert res.out == ""
    assert res.err.startswith("trainsim: error: ")
    assert str(path) in res.err, res.err
    for text in substrings:
        assert text in res.err, f"{text!r} not in:\n{res.err}"


def test_yaml_syntax_error(write_scenario, run_cli):
    path = write_scenario("name: x\nmodel: {preset: llama3-8b\nparallelism: [1, 2\n")
    _assert_file_error(run_cli("run", path), path, "not valid YAML", "line")


def test_yaml_tab_indentation_error(write_scenario, run_cli):
    path = write_scenario("model:\n\tpreset: llama3-8b\n")
    _assert_file_error(run_cli("run", path), path, "not valid YAML")


def test_file_not_found(tmp_path, run_cli):
    path = tmp_path / "no-such-scenario.yaml"
    _assert_file_error(run_cli("run", path, "--json"), path, "cannot read")


def test_directory_instead_of_file(tmp_path, run_cli):
    _assert_file_error(run_cli("run", tmp_path, "--json"), tmp_path, "cannot read")


@pytest.mark.parametrize("text", ["", "\n\n", "# only a comment\n", "---\n"], ids=["empty", "blank", "comment", "doc"])
def test_empty_file(write_scenario, run_cli, text):
    path = write_scenario(text)
    _assert_file_error(run_cli("run", path, "--json"), path, "mapping")


@pytest.mark.parametrize(
    ("text", "kind"),
    [("- model\n- cluster\n", "list"), ("just a sentence\n", "str"), ("42\n", "int")],
    ids=["list", "string", "number"],
)
def test_top_level_not_a_mapping(write_scenario, run_cli, text, kind):
    path = write_scenario(text)
    _assert_file_error(run_cli("run", path, "--json"), path, "mapping", kind)


def test_non_utf8_file(write_scenario, run_cli):
    """Latin-1 bytes in a scenario: a readable error, not UnicodeDecodeError (sim/specs/scenario.py)."""
    path = write_scenario("name: caf\xe9\nmodel: {preset: llama3-8b}\n".encode("latin-1"))
    _assert_file_error(run_cli("run", path, "--json"), path)


def test_integer_literal_too_long(base, write_scenario, run_cli):
    """A 5,000-digit integer literal: PyYAML's int() raises ValueError (not YAMLError) at load."""
    text = yaml.safe_dump(base, sort_keys=False).replace("tensor: 2", "tensor: " + "1" * 5000)
    path = write_scenario(text)
    _assert_file_error(run_cli("run", path, "--json"), path)


@pytest.mark.parametrize(
    ("old", "new"),
    [("name: spec-test-llama3-8b-16xh100", "name: !!timestamp 2024-02-30"),  # unquoted dates are strings
     ("name: spec-test-llama3-8b-16xh100", "name: !!timestamp 2024-13-45"),
     ("tokens: 1000000000000.0", "tokens: !!float many"),
     ("seed: 0", "seed: !!int x"),
     ("seed: 0", "seed: !!int"),
     ("seed: 0", "seed: !!timestamp x"),
     ("async: true", "async: !!bool maybe")],
    ids=["feb-30-ValueError", "month-13-ValueError", "float-tag-ValueError", "int-tag-ValueError",
         "empty-int-IndexError", "timestamp-AttributeError", "bool-tag-KeyError"],
)
def test_yaml_constructor_value_errors(base, write_scenario, run_cli, old, new):
    """PyYAML's constructors raise ValueError, IndexError, AttributeError or KeyError (not YAMLError) here."""
    text = yaml.safe_dump(base, sort_keys=False)
    assert old in text
    path = write_scenario(text.replace(old, new))
    _assert_file_error(run_cli("run", path, "--json"), path)


def test_unsafe_yaml_tag_is_rejected(write_scenario, run_cli):
    path = write_scenario("name: !!python/object/apply:os.system ['true']\n")
    _assert_file_error(run_cli("run", path), path, "not valid YAML")


# ---- all problems at once ----------------------------------------------------------------------------------


def test_all_problems_reported_at_once(base, write_scenario, run_cli):
    base["parallelism"]["tensor"] = "two"                 # wrong type
    base["costs"]["pue"] = 0.5                            # out of range
    base["simulation"]["fidelity"] = "fast"               # bad enum
    base["cluster"]["gpu"] = "H100-SXM-90GB"              # unknown GPU
    base["extra"] = 1                                     # unknown top-level key
    res = run_cli("run", write_scenario(base), "--json")
    for path in ("parallelism.tensor", "costs.pue", "simulation.fidelity", "cluster.gpu", "extra"):
        _assert_rejected(res, path)
    assert "(5 problem(s))" in res.err


def test_all_layout_problems_reported_at_once(base, write_scenario, run_cli):
    base["cluster"]["num_gpus"] = 20                      # not whole nodes, and != product
    base["model"]["seq_len"] = 8191                       # context 2 does not divide it
    base["parallelism"]["context"] = 2
    base["training"]["global_batch_size"] = 30            # not a multiple of data
    res = run_cli("run", write_scenario(base), "--json")
    for path in ("parallelism", "parallelism.context", "training.global_batch_size", "cluster.num_gpus"):
        _assert_rejected(res, path)


@pytest.mark.parametrize(
    ("path", "value"),
    [("model.preset", "llama3-8c"), ("cluster.topology", "dgx-h100-superpd")],
    ids=["unknown-preset", "unknown-topology"],
)
def test_catalog_name_errors_do_not_hide_other_problems(base, write_scenario, run_cli, path, value):
    """An unknown preset or topology name is reported together with the other sections' problems."""
    _set(path, value)(base)
    base["parallelism"]["schedule"] = "1f2b"
    base["costs"]["pue"] = 0.5
    res = run_cli("run", write_scenario(base), "--json")
    for p in (path, "parallelism.schedule", "costs.pue"):
        _assert_rejected(res, p)


# ---- crashes and hangs on odd but well-formed input -------------------------------------------------------


@pytest.mark.parametrize("preset", [["llama3-8b"], {"name": "llama3-8b"}], ids=["list", "mapping"])
def test_unhashable_preset(base, write_scenario, run_cli, preset):
    """``model.preset: [llama3-8b]`` must not raise TypeError: unhashable type (sim/specs/scenario.py)."""
    base["model"]["preset"] = preset
    _assert_rejected(run_cli("run", write_scenario(base), "--json"), "model.preset")


def test_overlong_topology_name(base, write_scenario, run_cli):
    """A 300-character topology name must not raise OSError ENAMETOOLONG (sim/catalog/__init__.py)."""
    base["cluster"]["topology"] = "x" * 300
    _assert_rejected(run_cli("run", write_scenario(base), "--json"), "cluster.topology")


def test_topology_file_not_utf8(base, write_scenario, run_cli, tmp_path):
    (tmp_path / "topo.yaml").write_bytes("name: r\xe9seau\n".encode("latin-1"))
    base["cluster"]["topology"] = "topo.yaml"
    _assert_rejected(run_cli("run", write_scenario(base), "--json"), "cluster.topology")


def test_topology_file_invalid_yaml(base, write_scenario, run_cli, tmp_path):
    (tmp_path / "topo.yaml").write_text("node: {gpus: 8\n", encoding="utf-8")
    base["cluster"]["topology"] = "topo.yaml"
    _assert_rejected(run_cli("run", write_scenario(base), "--json"), "cluster.topology", "not valid YAML")


def test_topology_path_is_a_directory(base, write_scenario, run_cli, tmp_path):
    (tmp_path / "topo").mkdir()
    base["cluster"]["topology"] = "topo"
    _assert_rejected(run_cli("run", write_scenario(base), "--json"), "cluster.topology")


def test_huge_integer_is_rejected_not_overflow(base, write_scenario, run_cli):
    """A 400-digit vocab_size: _convert_number's float(number) raises OverflowError (sim/specs/_schema.py)."""
    base["model"]["vocab_size"] = 10**400
    _assert_rejected(run_cli("run", write_scenario(base), "--json"), "model.vocab_size")


def test_absurd_num_layers_is_rejected_or_runs(base, write_scenario, run_cli):
    """2**70 layers passes validation, then chunk_layers' range() overflows (OverflowError)."""
    base["model"]["num_layers"] = 2**70
    res = run_cli("run", write_scenario(base), "--json")
    assert "Traceback" not in res.err
    assert res.rc in (0, 2), res.err
    if res.rc == 2:
        _assert_rejected(res, "model.num_layers")


@pytest.mark.parametrize(("field", "value"), [("nics", 0), ("nic_bandwidth_gbit_s", 0)])
def test_multi_node_job_without_scale_out_bandwidth(base, write_scenario, run_cli, field, value):
    """16 GPUs on 8-GPU nodes with no NIC bandwidth: a validation error, not ZeroDivisionError in the sim."""
    _inline_topology(_set(f"node.{field}", value))(base)
    _assert_rejected(run_cli("run", write_scenario(base), "--json"), f"cluster.topology.node.{field}")


def test_single_node_job_without_nics_runs(base, write_scenario, run_cli):
    """No scale-out NICs are fine when the job fits in one node."""
    _inline_topology(_set("node.nics", 0))(base)
    base["cluster"]["num_gpus"] = 8
    base["parallelism"]["data"] = 2
    res = run_cli("run", write_scenario(base), "--json")
    assert res.rc == 0, res.err


def test_fidelity_full_beyond_its_limit_is_a_clean_error(base, write_scenario, run_cli):
    base["simulation"]["fidelity"] = "full"
    base["cluster"]["num_gpus"] = 2048
    base["parallelism"]["data"] = 512
    base["training"]["global_batch_size"] = 2048
    res = run_cli("run", write_scenario(base), "--json")
    assert res.rc == 2 and res.out == "" and "simulation.fidelity" in res.err


class _TimedOut(BaseException):
    pass


@contextmanager
def _time_limit(seconds: int):
    def handler(signum, frame):
        raise _TimedOut(f"took longer than {seconds} s")

    old = signal.signal(signal.SIGALRM, handler)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, old)


def test_tensor_error_message_is_fast_for_huge_head_counts(base):
    """_divisors(n) loops over range(1, n+1): 10**10 heads make the error message take hours."""
    n = 10**10
    base["model"].update(num_attention_heads=n, num_kv_heads=n, hidden_size=n)
    base["parallelism"].update(tensor=3, pipeline=1, data=1)
    base["cluster"]["num_gpus"] = 3
    try:
        with _time_limit(3), pytest.raises(ScenarioError) as info:
            scenario_from_mapping(base)
    except _TimedOut:
        pytest.fail("validation of a tensor/heads mismatch did not finish in 3 s (sim/specs/scenario.py _divisors)")
    assert any(i.path == "parallelism.tensor" for i in info.value.issues)


def test_tiny_gradient_bucket_is_rejected_or_fast(base, write_scenario, run_cli):
    """grad_bucket_mparams: 1e-9 means ~10**15 buckets: reject it at load or cap the buckets; never hang."""
    base["parallelism"]["grad_bucket_mparams"] = 1e-9
    path = write_scenario(base)
    try:
        with _time_limit(5):
            res = run_cli("run", path, "--json")
    except _TimedOut:
        pytest.fail("grad_bucket_mparams 1e-9 did not finish in 5 s (sim/engine/step.py _buckets)")
    assert res.rc in (0, 2), res.err
    if res.rc == 2:
        _assert_rejected(res, "parallelism.grad_bucket_mparams")
