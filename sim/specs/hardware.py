"""On what: one GPU type's figures (from the packaged catalog, each with its source)."""

from __future__ import annotations

from dataclasses import dataclass

from sim.errors import Issue
from sim.specs._schema import Spec, spec_field


@dataclass(frozen=True, slots=True, kw_only=True)
class GpuSpec(Spec):
    """One accelerator. Peaks are dense (no sparsity), decimal units."""

    name: str = spec_field(doc="catalog name")
    aliases: tuple[str, ...] = spec_field((), doc="other spellings")
    vendor: str = spec_field(doc="nvidia | amd")
    arch: str = spec_field(doc="volta | ampere | hopper | blackwell | cdna3")
    peak_tflops: dict[str, float | None] = spec_field(doc="dense peak TFLOP/s per dtype")
    memory_gib: float = spec_field(doc="HBM capacity usable by the framework, GiB", gt=0)
    hbm_tbyte_s: float = spec_field(doc="HBM bandwidth, TB/s", gt=0)
    scale_up_gbyte_s: float = spec_field(doc="NVLink/xGMI bandwidth per GPU per direction, GB/s", gt=0)
    tdp_w: float = spec_field(doc="board power, W", gt=0)
    gemm_max_fraction: dict[str, float] = spec_field(doc="best achievable GEMM fraction of peak per dtype")
    hbm_efficiency: float = spec_field(doc="achieved fraction of HBM bandwidth", gt=0, le=1)
    source: str = spec_field(doc="where the figures come from")
    note: str | None = spec_field(None, doc="caveats")
    usd_per_gpu_hour: float | None = spec_field(None, doc="default rental price, USD per GPU-hour (trainsim size)",
                                                ge=0)
    price_source: str | None = spec_field(None, doc="where usd_per_gpu_hour comes from")

    def peak_flops(self, dtype: str) -> float:
        """Dense peak FLOP/s for ``dtype`` (fp16 stands in for bf16 on GPUs without bf16)."""
        tflops = self.peak_tflops.get(dtype)
        if tflops is None:
            raise KeyError(f"{self.name} has no {dtype} tensor-core peak")
        return tflops * 1e12

    def supports(self, dtype: str) -> bool:
        return self.peak_tflops.get(dtype) is not None

    def gemm_fraction(self, dtype: str) -> float:
        """Best achievable GEMM fraction of peak for ``dtype`` (bf16's figure stands in for fp16)."""
        for key in (dtype, "bf16" if dtype == "fp16" else "fp16"):
            if key in self.gemm_max_fraction:
                return self.gemm_max_fraction[key]
        raise KeyError(f"{self.name}: no achievable GEMM fraction for {dtype}")

    def _issues(self) -> list[Issue]:
        bad = [k for k, v in self.gemm_max_fraction.items() if not 0 < v <= 1]
        issues = [Issue("gemm_max_fraction", f"fractions must lie in (0, 1]: {bad}")] if bad else []
        if self.usd_per_gpu_hour is not None and not self.price_source:
            issues.append(Issue("price_source", "a catalog price needs its source"))
        return issues
