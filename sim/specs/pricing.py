"""Prices, power and carbon."""

from __future__ import annotations

from dataclasses import dataclass

from sim.specs._schema import Spec, spec_field


@dataclass(frozen=True, slots=True, kw_only=True)
class CostsSpec(Spec):
    """What a GPU-hour costs and what the energy emits."""

    usd_per_gpu_hour: float = spec_field(2.0, doc="USD per GPU-hour", ge=0)
    pue: float = spec_field(1.1, doc="power usage effectiveness", ge=1)
    grid_kgco2_per_kwh: float = spec_field(0.385, doc="grid carbon intensity, kgCO2e/kWh", ge=0)
    gpu_power_w: float | None = spec_field(None, doc="average GPU draw, W (default: the catalog TDP, as the "
                                                     "LLaMA and Llama 3 carbon figures assume)", ge=0)
    host_power_w_per_gpu: float | None = spec_field(
        None, doc="host share (CPUs, memory, NICs, fans) per GPU, W (default: the catalog's for the GPU's node, "
                  "e.g. 575 W for DGX H100; 0 = GPUs only, the LLaMA papers' convention)", ge=0)
    idle_gpu_power_w: float | None = spec_field(None, doc="GPU draw while the job restarts or waits for nodes, W "
                                                          "(default: gpu_power_w, the baseline formula)", ge=0)
