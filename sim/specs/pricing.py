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
