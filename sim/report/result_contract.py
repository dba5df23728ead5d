"""What every field of ``trainsim run --json`` means: the source of docs/result.md.

``result_dict`` (sim/report/result.py) builds the object; this table documents it. A test compares the
two both ways (tests/test_docs.py), so a field added to the JSON without a line here, or a line here for a
field the JSON does not have, fails. ``planned`` marks a field the contract names but this version does
not produce yet: documented, so tools can prepare for it, and said to be absent.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Out:
    """One field of the result: its dotted path, JSON type, meaning, and whether it is produced yet."""

    path: str
    kind: str
    doc: str
    planned: bool = False


#: Every field of the result, in the order the JSON prints them. ``kind`` "map" = an object whose keys are
#: listed in its own table below (they depend on the model: categories, causes).
RESULT_FIELDS: tuple[Out, ...] = (
    Out("scenario", "string", "the scenario's `name`"),
    Out("trainsim_version", "string", "the version that produced the result"),
    Out("step", "object", "one optimizer step (the step fields are null when the layout does not fit)"),
    Out("step.step_time_s", "number | null", "simulated wall time of one optimizer step, s"),
    Out("step.tokens_per_step", "integer", "global_batch_size x seq_len"),
    Out("step.tokens_per_s_per_gpu", "number | null", "tokens_per_step / step_time_s / num_gpus"),
    Out("step.model_tflops_per_gpu", "number | null",
        "model FLOPs per step / (step_time_s x num_gpus) / 1e12 (definition below)"),
    Out("step.mfu", "number | null", "model_tflops_per_gpu / the GPU's dense peak for `training.precision`"),
    Out("step.hfu", "number | null", "the same with recompute FLOPs counted"),
    Out("step.bubble_fraction", "number | null", "pipeline bubble / step time, on the bottleneck stage"),
    Out("step.exposed_comm_fraction", "number | null",
        "communication not hidden under compute / step time, on the bottleneck stage"),
    Out("step.breakdown_s", "map | null", "where the bottleneck stage's step went, s per category (table below); "
        "the categories sum to step_time_s"),
    Out("step.num_microbatches", "integer", "micro-batches per pipeline per step: global_batch_size / "
        "(data x micro_batch_size)"),
    Out("step.bottleneck_stage", "integer | null", "the pipeline stage with the largest compute-busy time "
        "(uneven stages: the one that sets the pace); breakdown_s is taken on it"),
    Out("memory", "object", "peak memory per GPU (the stage that needs most)"),
    Out("memory.fits", "boolean", "peak_gib_per_gpu <= capacity_gib_per_gpu; false: the step is not simulated"),
    Out("memory.peak_gib_per_gpu", "number", "peak memory of the fullest pipeline stage, GiB"),
    Out("memory.capacity_gib_per_gpu", "number", "the GPU's memory usable by the framework, GiB"),
    Out("memory.breakdown_gib", "map", "the peak by kind, GiB (table below)"),
    Out("memory.peak_stage", "integer", "the pipeline stage with the peak"),
    Out("run", "object | null", "the whole training run over `simulation.monte_carlo` replicas; null without "
        "`training.tokens`"),
    Out("run.days_p50", "number", "median wall-clock days to train `training.tokens`"),
    Out("run.days_p90", "number", "90th percentile of the days"),
    Out("run.gpu_hours", "number", "(num_gpus + standby_gpus) x mean days x 24"),
    Out("run.cost_usd", "number", "gpu_hours x `costs.usd_per_gpu_hour`"),
    Out("run.energy_mwh", "number", "(GPU draw + host share) x gpu_hours x PUE, with the idle draw while down"),
    Out("run.co2_tonnes", "number", "energy_mwh x `costs.grid_kgco2_per_kwh`"),
    Out("run.interruptions_mean", "number", "interruptions per run, mean over replicas"),
    Out("run.goodput", "number", "effective training time ratio: failure-free time / wall time, mean over replicas"),
    Out("run.training_pace", "number", "share of training time at full speed: failure-free compute / time "
        "training, with stragglers, shrunk replicas and fail-slow episodes (restarts and saves excluded), mean "
        "over replicas"),
    Out("run.mfu_effective", "number | null", "step.mfu x training_pace: the MFU while training, counting "
        "stragglers and fail-slow episodes; null without a step"),
    Out("run.days_mean", "number", "mean days over replicas"),
    Out("run.failure_free_days", "number", "steps x step_time_s: the days with nothing going wrong"),
    Out("run.steps", "integer", "optimizer steps: ceil(tokens / tokens_per_step)"),
    Out("run.replicas", "integer", "Monte Carlo replicas simulated"),
    Out("run.unfinished_replicas", "integer", "replicas cut at the wall-time cap (a multiple of the "
        "failure-free time) or the failure cap; their days are lower bounds"),
    Out("run.days_are_lower_bounds", "boolean", "true when a replica was cut at a cap: its days are its wall "
        "time plus the work it had left, so days, GPU-hours, cost, energy and CO2 are lower bounds"),
    Out("run.failures_modelled", "boolean", "false: the scenario has no `failures` block (a failure-free run)"),
    Out("run.interruptions_by_category", "map", "mean interruptions per run by failure category (the rate "
        "set's categories: planned, gpu, network, host...)"),
    Out("run.loss_days", "map", "mean days lost per run by cause (table below)"),
    Out("run.dominant_loss", "string | null", "the loss_days key that lost most; null when nothing was lost"),
    Out("run.mtbi_hours", "number | null", "simulated hours between interruptions (wall hours / interruptions "
        "over every replica); null without interruptions"),
    Out("run.mtbi_hours_expected", "number | null", "hours between interruptions the rates imply; null without "
        "failures"),
    Out("run.nodes_down_mean", "number", "nodes out of service (evicted, in repair), time average over replicas"),
    Out("run.nodes_down_max", "integer", "most nodes out of service at once, over replicas"),
    Out("run.share_time_nodes_down_at_least", "map", "share of wall time with at least k nodes out of "
        "service, by k (\"1\", \"2\", ...)"),
    Out("run.suggested_spare_nodes", "integer", "spare nodes covering the nodes in repair 95 % of the time"),
    Out("run.spare_wait_days", "number", "mean days waiting for a replacement node (loss_days.spare_wait)"),
    Out("run.recoveries_from_memory_mean", "number | null", "recoveries from peers' host memory per run; null "
        "without `checkpoint.in_memory`"),
    Out("run.storage_fallbacks_mean", "number | null", "recoveries from storage per run with an in-memory tier "
        "(every holder of a lost snapshot failed, or a late silent corruption); null without it"),
    Out("run.standby_gpus", "integer", "GPUs of warm standby nodes (`failures.warm_standby`), counted in "
        "gpu_hours, cost and energy (idle draw)"),
    Out("run.standby_switch_overs_mean", "number | null", "recoveries by switching to a warm standby per run; "
        "null without standbys"),
    Out("run.failure_trace", "object | null", "the failure trace driving the node faults, null without one: `file` "
        "(as written; null inline), `mode` (replay | resample), `faults` (rows), `events` (distinct times; a burst is "
        "one), `fleet_nodes`, `trace_hours_per_job_hour` (job nodes / fleet nodes x rate_scale)"),
    Out("run.checkpoint", "object | null", "the checkpoint plan; null without a `checkpoint` block"),
    Out("run.checkpoint.size_tb", "number", "bytes written per checkpoint (weights + optimizer), TB"),
    Out("run.checkpoint.interval_rule", "string", "fixed | young-daly | none"),
    Out("run.checkpoint.interval_minutes", "number | null", "minutes of training between checkpoints"),
    Out("run.checkpoint.stall_s", "number", "training blocked per checkpoint, s"),
    Out("run.checkpoint.persist_s", "number", "until the checkpoint is durable, s"),
    Out("run.checkpoint.load_s", "number", "loading it after a failure, s"),
    Out("run.checkpoint.shard_gb_per_gpu", "number", "the heaviest GPU's state (weights + optimizer shard), GB: "
        "what its snapshot copies to host memory"),
    Out("run.checkpoint.host_copy_gbyte_s", "number", "device-to-host bandwidth per GPU used for the snapshot, "
        "GB/s"),
    Out("run.checkpoint.in_memory_replicas", "integer", "nodes holding each in-memory snapshot (0: storage only)"),
    Out("run.checkpoint.memory_load_s", "number | null", "reloading from a peer's host memory, s; null without "
        "an in-memory tier"),
    Out("run.gpu_power_w", "number", "the average GPU draw used for energy, W"),
    Out("run.host_power_w_per_gpu", "number", "the host share per GPU used for energy, W"),
    Out("run.costs_assumed", "boolean", "true: the scenario has no `costs` block and the defaults were used"),
    Out("run.notes", "list of strings", "caveats of the run model for this scenario"),
    Out("estimate_6nd", "object", "the naive estimate beside the simulation"),
    Out("estimate_6nd.days_at_assumed_mfu", "number | null",
        "6 N D / (num_gpus x peak x assumed_mfu), days; null without `training.tokens`"),
    Out("estimate_6nd.assumed_mfu", "number", "the MFU the naive estimate assumes"),
    Out("estimate_6nd.gpu_hours", "number", "GPU-hours of the naive estimate (with a run only)"),
    Out("estimate_6nd.cost_usd", "number", "its cost (with a run only)"),
    Out("estimate_6nd.energy_mwh", "number", "its energy (with a run only)"),
    Out("estimate_6nd.co2_tonnes", "number", "its CO2 (with a run only)"),
    Out("model", "object", "the model's size"),
    Out("model.params", "integer", "total parameters (all experts)"),
    Out("model.active_params", "integer", "parameters one token uses: top_k routed + shared experts, embedding "
        "and LM head, no MTP modules (= params for a dense model without MTP)"),
    Out("model.model_flops_per_token", "number", "forward + backward model FLOPs per token (definition below)"),
)

#: ``step.breakdown_s``: what each category of the bottleneck stage's time is. A category the engine does not
#: produce yet is shown as planned in the docs.
BREAKDOWN_DOC = {
    "compute": "kernels on the compute stream (GEMMs, attention, element-wise), including recompute",
    "tp_comm": "tensor-parallel collectives on the layer's critical path (not hidden by tp_comm_overlap)",
    "cp_comm": "context-parallel K/V ring exchange not hidden under attention",
    "ep_comm": "expert-parallel all-to-all (token dispatch and combine) on the critical path",
    "pp_comm": "waiting for activations or gradients from a neighbouring pipeline stage",
    "dp_comm": "data-parallel gradient reduction and parameter gathers not hidden under compute",
    "contention": "compute slowed by communication kernels sharing the GPU",
    "optimizer": "the optimizer step",
    "bubble": "pipeline bubble: the rest of the step, idle waiting for the schedule",
}

#: ``memory.breakdown_gib``.
MEMORY_DOC = {
    "parameters": "weights held by the GPU (after TP, PP, EP and ZeRO-3 sharding)",
    "gradients": "gradients (sharded from ZeRO-2)",
    "optimizer": "optimizer states and fp32 master weights (sharded from ZeRO-1: dense parameters over DP x CP, "
                 "routed experts over EDP)",
    "activations": "activations of the in-flight micro-batches of the schedule",
    "buffers": "communication and workspace buffers",
    "reserve": "runtime reserve (CUDA context, NCCL) plus a fragmentation share of the rest",
}
