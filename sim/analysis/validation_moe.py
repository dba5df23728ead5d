"""Mixture-of-experts rows of ``trainsim validate`` (source ``moe``), and dense Megatron-Bridge rows (source
``mbridge-dense``) mapped by the same rules.

catalog/validation/moe_runs.yaml: published MoE training runs (NVIDIA Megatron-Bridge performance tables,
the Megatron-MoE-ModelZoo benchmarks, the Megatron-Core DeepSeek-V3 GB200 report; each row keeps its source).
catalog/validation/mbridge_dense_runs.yaml: dense models in the same schema (``moe: null``), for Megatron-Core's
own ZeRO-3 (Megatron-FSDP), which no other row measures on a dense model.
Every row with a layout (tp, pp, dp and a global batch) and a measured throughput is simulated. The published
figure becomes a step time: the iteration time where the row gives one (or derives it from the measured
tokens/s), else Megatron-Core's model FLOPs per step / (published TFLOP/s x GPUs). Megatron-Core's
``num_floating_point_operations`` (megatron/training/training.py) is trainsim's count with the causal attention
scores halved and without the router GEMM (:func:`megatron_core_flops_per_token`).

Rules for what a row leaves open or writes as text, the same for every row:

- model: the packaged preset of the row's model, at the row's sequence length; DeepSeek-V3 rows without MTP
  (the GB200 report's layout has no MTP stage);
- routing: ``natural`` where the row's router notes say natural routing, else ``balanced`` (the NVIDIA
  benchmarks force-balance the router: moe_runs.yaml header); token-drop rows drop at capacity factor 1.0
  (the Mixtral rows' notes: "Token-drop variant (capacity factor 1.0, padded)");
- pipeline: the row's ``pipeline_layout`` (Megatron's layout string: ``E`` embedding, ``t`` a layer, ``L`` loss,
  ``|`` between virtual stages, ``(...)*n`` repeats); else, where pipeline x virtual stages do not divide the
  layers but divide the layers + 2, the embedding and the loss each take a layer slot (Megatron's
  ``--account-for-embedding/loss-in-pipeline-split``, as the Qwen3-235B recipes run 94 layers on 32 stages);
- dispatcher: ``deepep`` for DeepEP / flex / HybridEP rows, ``alltoall`` for AlltoAll rows; ``moe_a2a_overlap``
  where the row says A2A_OVERLAP=1 or 1F1B overlap;
- precision: fp8 with the row's recipe (blockwise, mxfp8); "fp8 (inferred ...)" rows (no precision column) run
  per-tensor current scaling (``tensorwise``), as the row's inferred note assumes;
- distributed optimizer = ZeRO-1, "Megatron FSDP" = ZeRO-3; gradients reduced in the row's ``grad_reduce_dtype``
  where it states one (else fp32, Megatron's default); recompute: full as stated; a selective list runs as
  ``selective`` with those Megatron ``recompute_modules`` (the rows' "norm, act" = layernorm, moe_act:
  :data:`MODULE_NAMES`); an unstated one is chosen like the other sources' (none if it fits, else selective,
  else full), its selective rung with the ModelZoo Qwen3 recipes' modules (:data:`UNSTATED_SELECTIVE`);
- expert tensor parallelism: the row's ``etp``, 1 where not stated (Megatron-Bridge's MoE recipes);
- software state: the row's ``cuda_graph_scope`` (Megatron ``--cuda-graph-scope``), ``moe_router_fusion`` and
  ``mxfp8_zeroed_scales`` where it states them (the DeepSeek-V3 GB200 rows), else none (eager), the fused router
  and Transformer Engine's current MXFP8 quantizer;
- cluster: DGX H100 rows on dgx-h100-superpod, GB200 rows on gb200-nvl72 with 64 GPUs used per rack (each 32-GPU
  EP group inside one NVLink domain, as the rows' reproduce guide places them: NVL72_GPUS_USED).

Rows are tagged ``fit`` (a constant was set from them; see FIT_ROWS) or ``check``.
"""

from __future__ import annotations

import re
from typing import Any

from sim import catalog
from sim.analysis.validation import Row, Tag
from sim.costs import flops
from sim.specs._schema import build
from sim.specs.model import ModelSpec

SOURCE = "moe"
FILE = "validation/moe_runs.yaml"
DENSE_SOURCE = "mbridge-dense"
DENSE_FILE = "validation/mbridge_dense_runs.yaml"

#: Row model names -> packaged presets.
PRESETS = {"Qwen3-30B-A3B": "qwen3-30b-a3b", "Qwen3-235B-A22B": "qwen3-235b-a22b", "Mixtral 8x22B": "mixtral-8x22b",
           "DeepSeek-V3": "deepseek-v3", "Llama 3 8B": "llama3-8b"}

#: Row GPU types -> (catalog GPU, bundled topology).
CLUSTERS = {"H100-SXM5-80GB": ("H100-SXM-80GB", "dgx-h100-superpod"), "GB200": ("GB200", "gb200-nvl72")}

#: GPUs a GB200 job uses per NVL72 rack: the DeepSeek-V3 GB200 rows keep every 32-GPU EP group inside one NVLink
#: domain (moe_runs.yaml, inferred: "EP32 = one 32-GPU segment of an NVL72 rack (reproduce guide: every 32 GPUs /
#: 8 nodes in the same NVL domain)"), i.e. 64 of a rack's 72 GPUs in two segments.
NVL72_GPUS_USED = 64


def _topology(name: str) -> str | dict[str, Any]:
    if name != "gb200-nvl72":
        return name
    topo = catalog.topology_mapping(name)
    topo["name"] = f"gb200-nvl72-{NVL72_GPUS_USED}-per-rack"
    topo["node"]["scale_up"]["domain_gpus"] = NVL72_GPUS_USED
    return topo

#: Rows a calibration constant was set from (each constant's `source:` names its row); all others are checks.
#: The Mixtral natural-routing row set moe.yaml routing.natural_max_over_mean (with its force-balanced twin).
FIT_ROWS: frozenset[str] = frozenset({"modelzoo-mixtral-8x22b-h100-128gpu-bf16-dropless"})

#: Capacity factor of the token-drop rows (moe_runs.yaml Mixtral notes: "capacity factor 1.0, padded").
TOKEN_DROP_CAPACITY = 1.0


def megatron_core_flops_per_token(m: ModelSpec) -> float:
    """Megatron-Core's model FLOPs per token: trainsim's count with the causal attention scores halved and no
    router GEMM (its MLA "+1" norm terms and MTP norm terms are < 0.01% and left out)."""
    halved = 3.0 * (m.num_layers + m.mtp_layers) * flops.attention_score_flops_per_token(m) / 2
    router = 0.0
    if m.moe is not None:
        moe_layers = flops.num_moe_layers(m) + m.mtp_layers * flops.is_moe_layer(m, m.num_layers - 1)
        router = 3.0 * 2 * m.hidden_size * m.moe.num_experts * moe_layers
    return flops.model_flops_per_token(m) - halved - router


def parse_pipeline_layout(text: str) -> list[int]:
    """Transformer layers per virtual stage of a Megatron ``--pipeline-model-parallel-layout`` string."""
    spec = text.split()[0]  # the row may add a comment after the layout
    repeat = re.compile(r"\(([^()]*)\)\*(\d+)")
    while (match := repeat.search(spec)) is not None:
        spec = spec[:match.start()] + match.group(1) * int(match.group(2)) + spec[match.end():]
    plain = re.compile(r"([EtLm])\*(\d+)")
    spec = plain.sub(lambda mt: mt.group(1) * int(mt.group(2)), spec)
    return [stage.count("t") for stage in spec.split("|")]


#: The rows' spellings of Megatron-Core's recompute modules (the ModelZoo rows shorten "layernorm" and "moe_act").
MODULE_NAMES = {"norm": "layernorm", "layernorm": "layernorm", "act": "moe_act", "moe_act": "moe_act", "moe": "moe",
                "mlp": "mlp", "mla up_proj": "mla_up_proj", "mla_up_proj": "mla_up_proj", "core_attn": "core_attn",
                "core attention": "core_attn", "shared_experts": "shared_experts"}


#: The selective rung tried for a row that states no recompute: the modules the Megatron-MoE-ModelZoo Qwen3 recipes
#: list (rows modelzoo-qwen3-235b-*: "selective: norm, act" / "moe_act, layernorm").
UNSTATED_SELECTIVE = ("layernorm", "moe_act")


def _recompute(text: str | None) -> dict[str, Any]:
    """The row's recompute as layout fields: ``full`` as stated; a ``selective: a, b`` list as Megatron-Core's
    selective granularity with those ``recompute_modules``; "none" as none; unstated: chosen (none if it fits,
    else selective with :data:`UNSTATED_SELECTIVE`, else full)."""
    if text is None:
        return {"recompute_modules": list(UNSTATED_SELECTIVE)}
    text = text.lower().strip()
    if text.startswith("full"):
        return {"activation_recompute": "full"}
    if not text.startswith("selective:"):
        return {"activation_recompute": "none"}
    names = [n.strip() for n in text.removeprefix("selective:").split(",")]
    return {"activation_recompute": "selective", "recompute_modules": [MODULE_NAMES[n] for n in names]}


def _precision(text: str) -> dict[str, Any]:
    text = text.lower()
    if "fp8" not in text:
        return {"precision": "bf16"}
    recipe = "mxfp8" if "mxfp8" in text else "blockwise" if "blockwise" in text else "tensorwise"
    return {"precision": "fp8", "fp8_recipe": recipe}


def _dispatcher(text: str | None) -> str | None:
    text = (text or "").lower()
    if any(k in text for k in ("deepep", "flex", "hybridep")):
        return "deepep"
    if "alltoall" in text:
        return "alltoall"
    return None


def _model(r: dict[str, Any]) -> dict[str, Any]:
    m, moe = r["model"], r["moe"]
    model: dict[str, Any] = {"preset": PRESETS[m["name"]], "seq_len": m["seq_len"]}
    if moe is None:
        return model  # a dense row
    if m["name"] == "DeepSeek-V3":
        model["mtp_layers"] = 0
    routing = "natural" if "natural routing" in (moe.get("router_notes") or "") else "balanced"
    base = {k: v for k, v in catalog.preset_table()[model["preset"]]["moe"].items()}
    model["moe"] = {**base, "routing": routing}
    if moe.get("dropless") is False:
        model["moe"]["capacity_factor"] = TOKEN_DROP_CAPACITY
    return model


def _layers(model: dict[str, Any]) -> int:
    return int(catalog.preset_table()[model["preset"]]["num_layers"])


def _layout(r: dict[str, Any], layers: int) -> dict[str, Any]:
    par = r["parallel"]
    tp, pp, vpp = par["tp"], par["pp"], par["vpp"] or 1
    layout: dict[str, Any] = {
        "tensor": tp, "pipeline": pp, "context": par["cp"] or 1, "data": par["dp"], "expert": par["ep"] or 1,
        "virtual_pipeline": vpp, "schedule": "interleaved-1f1b" if vpp > 1 else "1f1b",
        "sequence_parallel": tp > 1, "micro_batch_size": par["micro_batch_size"],
        "zero_stage": 3 if "fsdp on" in (par["fsdp_zero"] or "").lower() else 1,
    }
    # Expert TP not stated: 1, as the Megatron-Bridge MoE recipes set it (and the only degree the stated
    # EP x TP 2 fits on the Qwen3-235B token-drop row's 32-GPU stages).
    if r["moe"] is not None:
        layout["expert_tensor"] = par["etp"] or 1
    if par.get("grad_reduce_dtype"):
        layout["grad_reduce_dtype"] = par["grad_reduce_dtype"]
    dispatcher = _dispatcher(par["moe_dispatcher"])
    if dispatcher is not None:
        layout["moe_dispatcher"] = dispatcher
    if "a2a_overlap=1" in (par["moe_dispatcher"] or "").lower() or r["id"].endswith("1f1b-overlap"):
        layout["moe_a2a_overlap"] = True
    if par.get("moe_router_fusion") is not None:
        layout["moe_router_fusion"] = par["moe_router_fusion"]
    layout.update(_recompute(par["activation_recompute"]))
    if par["pipeline_layout"]:
        layout["pipeline_layout"] = parse_pipeline_layout(par["pipeline_layout"])
    elif layers % (pp * vpp) and (layers + 2) % (pp * vpp) == 0:
        layout["account_for_embedding_in_pipeline_split"] = True
        layout["account_for_loss_in_pipeline_split"] = True
    return layout


def _published_step(r: dict[str, Any], model: dict[str, Any]) -> tuple[float, str] | None:
    res, derived = r["result"], r.get("derived") or {}
    if res.get("iteration_time_s"):
        return float(res["iteration_time_s"]), "iteration time as published"
    if derived.get("iteration_time_s"):
        return float(derived["iteration_time_s"]), "global batch tokens / published tokens/s"
    if not res.get("tflops_per_gpu"):
        return None
    preset = {k: v for k, v in catalog.preset_table()[model["preset"]].items() if k not in ("name", "source", "note")}
    spec = build(ModelSpec, {**preset, **model}, "model")
    tokens = r["parallel"]["global_batch_size"] * r["model"]["seq_len"]
    rate = res["tflops_per_gpu"] * 1e12 * r["hardware"]["num_gpus"]
    return megatron_core_flops_per_token(spec) * tokens / rate, "Megatron-Core model FLOPs / published TFLOP/s"


def _row(r: dict[str, Any], source: str = SOURCE) -> Row | None:
    par, hw = r["parallel"], r["hardware"]
    if r["model"].get("name") not in PRESETS or any(par[k] is None for k in ("tp", "pp", "dp", "global_batch_size")):
        return None  # no model shape or no layout to simulate (run-level rows)
    model = _model(r)
    step = _published_step(r, model)
    if step is None:
        return None
    gpu, topology = CLUSTERS[hw["gpu_type"]]
    mapping = {
        "name": r["id"], "model": model,
        "cluster": {"gpu": gpu, "num_gpus": hw["num_gpus"], "topology": _topology(topology)},
        "parallelism": _layout(r, _layers(model)),
        "training": {"global_batch_size": par["global_batch_size"], "attention": "flash",
                     "cuda_graphs": par.get("cuda_graph_scope") or [], **_precision(par["precision"]),
                     **({"mxfp8_zeroed_scales": True} if par.get("mxfp8_zeroed_scales") else {})},
    }
    tag: Tag = "fit" if r["id"] in FIT_ROWS else "check"
    return Row(r["id"], source, mapping, step[0], step[1], tag=tag)


def raw_rows() -> list[dict[str, Any]]:
    return list(catalog.read_yaml(FILE))


def dense_raw_rows() -> list[dict[str, Any]]:
    return list(catalog.read_yaml(DENSE_FILE))


def rows() -> list[Row]:
    """Every MoE row (source ``moe``) and dense Megatron-Bridge row (``mbridge-dense``) with a layout and a measured
    throughput, mapped to a scenario."""
    moe = [_row(r) for r in raw_rows()]
    dense = [_row(r, DENSE_SOURCE) for r in dense_raw_rows()]
    return [row for row in moe + dense if row is not None]
