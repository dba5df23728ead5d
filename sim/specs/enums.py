"""String enums parsed once at load (YAML spelling = value)."""

from enum import StrEnum


class Activation(StrEnum):
    SWIGLU = "swiglu"
    GELU = "gelu"


class Schedule(StrEnum):
    GPIPE = "gpipe"
    ONE_F_ONE_B = "1f1b"
    INTERLEAVED = "interleaved-1f1b"


class Recompute(StrEnum):
    NONE = "none"
    SELECTIVE = "selective"
    FULL = "full"


class RecomputeModule(StrEnum):
    """Megatron-Core's ``--recompute-modules`` (``recompute_granularity: selective``), transformer_config.py."""

    CORE_ATTN = "core_attn"  # the core attention (scores, softmax, context)
    LAYERNORM = "layernorm"  # input_layernorm and pre_mlp_layernorm (output-discarding)
    MLA_UP_PROJ = "mla_up_proj"  # MLA up-projections and RoPE (output-discarding)
    MLP = "mlp"  # a dense layer's MLP
    MOE_ACT = "moe_act"  # the routed experts' activation function (output-discarding)
    SHARED_EXPERTS = "shared_experts"  # the MoE layer's shared experts
    MOE = "moe"  # the whole MoE layer: router, dispatch, experts, combine


class CudaGraphScope(StrEnum):
    """Megatron-Core's ``--cuda-graph-scope`` (partial CUDA graphs, ``--cuda-graph-impl transformer_engine``):
    the parts of every layer captured once and replayed by one graph launch per pass."""

    ATTN = "attn"  # the attention side: input norm, projections, rotary, core attention, bias-dropout-add
    MLP = "mlp"  # a dense layer's MLP side
    MOE_ROUTER = "moe_router"  # an MoE layer's pre-MLP norm, router and shared experts (unless they overlap)
    MOE_PREPROCESS = "moe_preprocess"  # the dispatcher's preprocess (with moe_router)
    MOE = "moe"  # the whole MoE block (token-drop MoE only: static shapes)


class Precision(StrEnum):
    BF16 = "bf16"
    FP16 = "fp16"
    FP8 = "fp8"


class Fp8Recipe(StrEnum):
    """How fp8 GEMM inputs are scaled (sim/catalog/frameworks.yaml fp8_recipes)."""

    DELAYED = "delayed"  # per-tensor scale from an amax history (Transformer Engine DelayedScaling)
    TENSORWISE = "tensorwise"  # per-tensor scale from the current amax (TE Float8CurrentScaling, torchao)
    ROWWISE = "rowwise"  # one scale per row of each operand (torchao)
    BLOCKWISE = "blockwise"  # 1x128 activation / 128x128 weight blocks (TE Float8BlockScaling, DeepSeek-V3)
    MXFP8 = "mxfp8"  # OCP microscaling: 1x32 blocks, E8M0 scales, in the Blackwell tensor cores


class GradDtype(StrEnum):
    FP32 = "fp32"
    BF16 = "bf16"


class Optimizer(StrEnum):
    ADAMW = "adamw"
    ADAMW_8BIT = "adamw-8bit"
    SGD_MOMENTUM = "sgd-momentum"


class Framework(StrEnum):
    """Whose training code paths are costed (data parallelism, overlap, kernels)."""

    MEGATRON_CORE = "megatron-core"
    TORCHTITAN = "torchtitan"
    DEEPSPEED = "deepspeed"


class GradSync(StrEnum):
    """When ZeRO-2/3 reduce-scatter gradients under gradient accumulation."""

    EVERY_MICROBATCH = "every-microbatch"  # sharded gradient memory, one reduce-scatter per micro-batch
    LAST_MICROBATCH = "last-microbatch"  # unsharded accumulation (no_sync), one reduce-scatter per step


class AttentionKernel(StrEnum):
    FLASH = "flash"
    UNFUSED = "unfused"


class Fidelity(StrEnum):
    SYMMETRIC = "symmetric"
    FULL = "full"


class ScaleUpKind(StrEnum):
    NVSWITCH = "nvswitch"
    NVLINK_MESH = "nvlink-mesh"
    PCIE = "pcie"


class FailureDistribution(StrEnum):
    EXPONENTIAL = "exponential"
    WEIBULL = "weibull"


class SparesExhausted(StrEnum):
    WAIT = "wait"
    SHRINK = "shrink"


class Attention(StrEnum):
    GQA = "gqa"  # multi-head, grouped-query or multi-query attention, by num_kv_heads
    MLA = "mla"  # multi-head latent attention (DeepSeek-V2/V3): low-rank Q and KV projections


class Routing(StrEnum):
    BALANCED = "balanced"  # every expert receives the mean load (forced balance, as benchmarks run)
    NATURAL = "natural"  # the router's own, uneven load


class TraceMode(StrEnum):
    """How a failure trace drives the run: its faults in order, or gaps and faults drawn from it."""

    REPLAY = "replay"
    RESAMPLE = "resample"


class RatesMode(StrEnum):
    ADD = "add"
    REPLACE = "replace"


class MoEDispatcher(StrEnum):
    """How routed tokens reach their experts (Megatron-Core ``--moe-token-dispatcher-type``)."""

    ALLTOALL = "alltoall"
    ALLGATHER = "allgather"
    DEEPEP = "deepep"  # Megatron's flex dispatcher with DeepEP's NVLink + RDMA kernels
