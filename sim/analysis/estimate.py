"""The back-of-envelope figure users compare against: ``6 N D / (GPUs x peak x MFU)``."""

from __future__ import annotations

from sim.costs import flops
from sim.specs.scenario import Scenario
from sim.units import DAY

#: The MFU a planner typically assumes (Llama 3 reports 38-43% BF16 MFU on 16K H100, arXiv 2407.21783
#: Table 4); only used for the naive estimate printed beside the simulated figures.
ASSUMED_MFU = 0.40


def estimate_6nd_days(s: Scenario, mfu: float = ASSUMED_MFU) -> float | None:
    """Days to train ``training.tokens`` at ``6 N D / (GPUs * peak * mfu)``; None without tokens.

    N is the *active* parameter count (MoE: ``top_k`` routed experts; equal to the total for dense models),
    as the usual public estimates of MoE runs take it."""
    if s.training.tokens is None:
        return None
    n = flops.active_params(s.model)
    peak = s.gpu.peak_flops(s.training.precision.value)
    return 6.0 * n * s.training.tokens / (s.cluster.num_gpus * peak * mfu) / DAY
