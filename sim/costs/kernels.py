"""Kernel time: a roofline with size-dependent efficiency (tables in catalog/efficiency.yaml).

``time = max(flops / (peak x eff_gemm), bytes / (hbm x eff_hbm))``. Efficiencies depend on the
kernel's size, not on one global "MFU" knob (DESIGN.md §3).
"""

from __future__ import annotations

import bisect
import functools
import math
from collections.abc import Sequence

from sim import catalog
from sim.specs.hardware import GpuSpec
from sim.units import BYTES_PER_DTYPE


def interp_log(points: Sequence[Sequence[float]], x: float) -> float:
    """Piecewise-linear interpolation in ``log(x)``, clamped to the end values."""
    xs = [p[0] for p in points]
    if x <= xs[0]:
        return points[0][1]
    if x >= xs[-1]:
        return points[-1][1]
    i = bisect.bisect_right(xs, x)
    (x0, y0), (x1, y1) = points[i - 1], points[i]
    w = (math.log(x) - math.log(x0)) / (math.log(x1) - math.log(x0))
    return y0 + w * (y1 - y0)


@functools.cache
def _table(*keys: str):
    node = catalog.efficiency_table()
    for k in keys:
        node = node[k]
    return node


def _arch_entry(section: str, table: str, arch: str):
    """A per-architecture table, falling back to the nearest measured architecture."""
    tables = _table(section, table)
    if arch not in tables:
        arch = _table(section, "arch_fallback").get(arch, "hopper")
    return tables[arch]


def gemm_efficiency(gpu: GpuSpec, dtype: str, flops: float) -> float:
    """Achieved fraction of ``dtype`` peak for a GEMM of ``flops`` FLOPs."""
    ideal_us = flops / gpu.peak_flops(dtype) * 1e6
    curve = interp_log(_arch_entry("gemm", "curve_by_ideal_us", gpu.arch)["points"], max(ideal_us, 1e-9))
    return gpu.gemm_fraction(dtype) * curve * sustained_fraction()


def sustained_fraction() -> float:
    """Calibrated in-training fraction of isolated tensor-core kernel rates (efficiency.yaml)."""
    return _table("calibration", "sustained_tensor_fraction", "value")


def host_overhead_s() -> float:
    """Calibrated host (CPU) dispatch time per kernel, seconds (efficiency.yaml)."""
    return _table("calibration", "host_overhead_us_per_kernel", "value") * 1e-6


def hbm_time(gpu: GpuSpec, nbytes: float) -> float:
    """Seconds to stream ``nbytes`` through HBM at the size-dependent achieved bandwidth."""
    if nbytes <= 0:
        return 0.0
    eff = gpu.hbm_efficiency * interp_log(_table("memory_bound", "curve_by_mbytes", "points"), nbytes / 1e6)
    return nbytes / (gpu.hbm_tbyte_s * 1e12 * eff)


def gemm_time(gpu: GpuSpec, dtype: str, m: float, n: float, k: float, batch: float = 1.0) -> float:
    """Seconds for ``batch`` GEMMs of (m x k) @ (k x n), inputs and output in ``dtype``.

    FP8 GEMMs run at the fp8 peak; outputs are written in bf16 as in Transformer Engine.
    """
    flops = 2.0 * m * n * k * batch
    if flops <= 0:
        return 0.0
    compute = flops / (gpu.peak_flops(dtype) * gemm_efficiency(gpu, dtype, flops))
    in_bytes = BYTES_PER_DTYPE[dtype]
    out_bytes = 2 if dtype == "fp8" else in_bytes
    nbytes = batch * ((m * k + k * n) * in_bytes + m * n * out_bytes)
    return max(compute, hbm_time(gpu, nbytes))


def flash_attention_fraction(gpu: GpuSpec, seq_len: float, head_dim: float, backward: bool) -> float:
    """Achieved fraction of 16-bit peak of causal flash attention, forward or backward."""
    t = _arch_entry("attention", "flash_causal_fraction", gpu.arch)
    dim = min((int(d) for d in t["head_dims"]), key=lambda d: abs(d - head_dim))
    points = list(zip(t["seq_lens"], t["head_dims"][dim]["bwd" if backward else "fwd"], strict=True))
    return interp_log(points, seq_len)


def flash_attention_time(gpu: GpuSpec, batch_heads: float, q_len: float, kv_len: float, head_dim: float,
                         causal: bool, backward: bool = False) -> float:
    """Seconds for flash attention over ``batch_heads`` (batch x local heads) sequences.

    FLOPs follow the FlashAttention benchmark convention: forward ``4 q kv d`` per head (halved when
    causal and q = kv), backward 2.5x forward. The kernel runs at 16-bit peak (fp8 attention is not
    assumed).
    """
    flops = 4.0 * batch_heads * q_len * kv_len * head_dim
    if causal:
        flops /= 2
    if backward:
        flops *= 2.5
    rate = gpu.peak_flops(half_dtype(gpu))
    return flops / (rate * flash_attention_fraction(gpu, kv_len, head_dim, backward) * sustained_fraction())


def half_dtype(gpu: GpuSpec) -> str:
    """The GPU's 16-bit tensor-core dtype (bf16, or fp16 on Volta)."""
    return "bf16" if gpu.supports("bf16") else "fp16"
