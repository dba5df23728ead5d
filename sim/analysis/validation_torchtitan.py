"""torchtitan rows of ``trainsim validate`` (source ``torchtitan``).

catalog/validation/torchtitan_runs.yaml: PyTorch's torchtitan benchmark of 2024-12 (Llama 3.1 8B/70B/405B on
Meta's Grand Teton H100s: 96 GB HBM2e at 500 W, 400 Gb/s RDMA per GPU) with FSDP2, TP / async TP, PP, CP,
torch.compile and torchao float8. The published tokens/s per GPU becomes a step time:
``global batch tokens / (TPS/GPU x GPUs)``. The rows' open choices follow torchtitan's code at that time, the same
for every row:

- FSDP2 shards parameters, gradients and optimizer state over DP x CP (zero_stage 3); it reshards after
  forward unless pipeline parallelism is on (parallelize_llama.apply_fsdp: ``reshard_after_forward=not
  pp_enabled``);
- no gradient accumulation: the local batch is one micro-batch, except under PP, where the local batch is split
  into as many micro-batches as there are stages (pipeline.build_pipeline_schedule: ``n_microbatches =
  num_total_stages``), and looped (interleaved) schedules run 2 stages per rank;
- where the pipeline stages cannot split the layers evenly, the embedding and the output layer take a layer
  slot each (126 + 2 = 128 for 405B);
- TP runs with sequence parallelism (torchtitan's TP plan shards norms and sequence); async TP is
  ``tp_comm_overlap`` under framework torchtitan; float8 is torchao's dynamic tensorwise recipe
  (``fp8_recipe: tensorwise``); torch.compile where the row or its table says so;
- cluster: H100-SXM-96GB on the meta-llama3-24k fabric (Grand Teton nodes, 400 Gb/s RoCE per GPU).

Every row here is a check row: no constant was set from them (the rowwise GEMM rate of frameworks.yaml is fitted
on another torchtitan benchmark, which is not in this set).
"""

from __future__ import annotations

from typing import Any

from sim import catalog
from sim.analysis.validation import Row

SOURCE = "torchtitan"
GPU = "H100-SXM-96GB"
TOPOLOGY = "meta-llama3-24k"
#: Stages per pipeline rank of torchtitan's looped schedules (interleaved 1F1B).
LOOPED_STAGES_PER_RANK = 2


def _recompute(text: str) -> str:
    text = text.lower()
    return "full" if text.startswith("full") else "selective" if text.startswith("selective") else "none"


def _row(r: dict[str, Any]) -> Row:
    m, par, hw, res = r["model"], r["parallel"], r["hardware"], r["result"]
    text = f"{par['framework']} {r['source']['table']}".lower()
    tp, pp, cp, dp = par["tp"], par["pp"], par["cp"] or 1, par["dp"]
    vpp = LOOPED_STAGES_PER_RANK if par["vpp"] else 1
    local = par["global_batch_size"] // dp
    microbatches = pp * vpp if pp > 1 else 1
    uneven = m["num_layers"] % (pp * vpp) != 0
    layout = {
        "tensor": tp, "pipeline": pp, "context": cp, "data": dp, "zero_stage": 3, "framework": "torchtitan",
        "reshard_after_forward": pp == 1, "sequence_parallel": tp > 1, "virtual_pipeline": vpp,
        "schedule": "interleaved-1f1b" if vpp > 1 else "1f1b", "tp_comm_overlap": "asynctp" in text,
        "micro_batch_size": local // microbatches, "activation_recompute": _recompute(par["activation_recompute"]),
        "account_for_embedding_in_pipeline_split": uneven, "account_for_loss_in_pipeline_split": uneven,
    }
    fp8 = "float8" in par["precision"].lower()
    training: dict[str, Any] = {"global_batch_size": par["global_batch_size"], "precision": "fp8" if fp8 else "bf16",
                                "attention": "flash", "compile": "compile" in text}
    if fp8:
        training["fp8_recipe"] = "tensorwise"
    mapping = {
        "name": r["id"],
        "model": {"num_layers": m["num_layers"], "hidden_size": m["hidden_size"],
                  "ffn_hidden_size": m["ffn_hidden_size"], "num_attention_heads": m["num_attention_heads"],
                  "num_kv_heads": m["num_kv_heads"], "vocab_size": m["vocab_size"], "seq_len": m["seq_len"],
                  "activation": "swiglu", "tied_embeddings": False, "dropout": False},
        "cluster": {"gpu": GPU, "num_gpus": hw["num_gpus"], "topology": TOPOLOGY},
        "parallelism": layout,
        "training": training,
    }
    step = par["global_batch_tokens"] / (res["tokens_per_sec_per_gpu"] * hw["num_gpus"])
    return Row(r["id"], SOURCE, mapping, step, "global batch tokens / (published TPS/GPU x GPUs)", tag="check")


ASYNC_TP_SOURCE = "torchtitan-asynctp"


def _async_tp_row(r: dict[str, Any], data: dict[str, Any]) -> Row:
    """A row of the June 2025 async-TP benchmark: FSDP x TP 8 with SP and torch.compile, no gradient
    accumulation (the local batch is the micro-batch), bf16 or a torchao float8 recipe."""
    lay = data["layouts"][r["layout"]]
    model = {**data["models"][lay["model"]], "activation": "swiglu", "tied_embeddings": False, "dropout": False}
    gbs = lay["local_batch"] * lay["dp"]
    training: dict[str, Any] = {"global_batch_size": gbs, "attention": "flash", "compile": True,
                                "precision": "bf16" if r["quantization"] == "bf16" else "fp8"}
    if r["quantization"] != "bf16":
        training["fp8_recipe"] = r["quantization"]
    name = f"asynctp2025-{r['layout']}-{r['quantization']}-{'async' if r['async_tp'] else 'vanilla'}"
    mapping = {
        "name": name, "model": model,
        "cluster": {"gpu": GPU, "num_gpus": lay["num_gpus"], "topology": TOPOLOGY},
        "parallelism": {"tensor": lay["tp"], "pipeline": 1, "context": 1, "data": lay["dp"], "zero_stage": 3,
                        "framework": "torchtitan", "sequence_parallel": True, "tp_comm_overlap": r["async_tp"],
                        "micro_batch_size": lay["local_batch"], "activation_recompute": lay["recompute"]},
        "training": training,
    }
    step = gbs * model["seq_len"] / (r["tps_per_gpu"] * lay["num_gpus"])
    return Row(name, ASYNC_TP_SOURCE, mapping, step, "global batch tokens / (published TPS/GPU x GPUs)",
               tag=r["tag"])


def rows() -> list[Row]:
    """Every row of torchtitan_runs.yaml (source torchtitan) and of the 2025 async-TP benchmark (source
    torchtitan-asynctp, not in the shared reference set: a further framework check)."""
    async_tp = catalog.read_yaml("validation/torchtitan_asynctp_2025.yaml")
    return ([_row(r) for r in catalog.read_yaml("validation/torchtitan_runs.yaml")]
            + [_async_tp_row(r, async_tp) for r in async_tp["rows"]])
