"""Kernel roofline and efficiency tables against hand-computed values (sim/costs/kernels.py)."""

from __future__ import annotations

import itertools
import math

import pytest

from sim import catalog
from sim.costs import kernels
from sim.specs.scenario import gpu_spec

H100 = gpu_spec("H100-SXM-80GB")  # bf16 989.4 TF, gemm_max_fraction 0.803, HBM 3.35 TB/s x 0.85
A100 = gpu_spec("A100-SXM-80GB")  # bf16 312 TF, gemm_max_fraction 0.869, HBM 2.039 TB/s x 0.78
PEAK = 989.4e12
#: The calibrated in-training fraction of isolated tensor-core rates (efficiency.yaml ``calibration``),
#: 1 where the table has none. It multiplies every GEMM and attention efficiency.
SUSTAINED = (catalog.efficiency_table().get("calibration", {})
             .get("sustained_tensor_fraction", {}).get("value", 1.0))


# ---- interp_log -------------------------------------------------------------------------------
def test_interp_log_at_points():
    pts = [[1.0, 0.2], [10.0, 0.4], [1000.0, 1.0]]
    for x, y in pts:
        assert kernels.interp_log(pts, x) == pytest.approx(y)


def test_interp_log_between_points_is_linear_in_log_x():
    assert kernels.interp_log([[1.0, 0.0], [100.0, 1.0]], 10.0) == pytest.approx(0.5)
    # 100 sits halfway between 10 and 1000 in log: 0.4 + 0.5 * (1.0 - 0.4)
    assert kernels.interp_log([[1.0, 0.2], [10.0, 0.4], [1000.0, 1.0]], 100.0) == pytest.approx(0.7)
    # a quarter of the way in log: 10**0.5 between 1 and 100
    assert kernels.interp_log([[1.0, 0.0], [100.0, 1.0]], 10**0.5) == pytest.approx(0.25)


def test_interp_log_clamps_beyond_the_ends():
    pts = [[1.0, 0.2], [10.0, 0.4]]
    assert kernels.interp_log(pts, 0.01) == 0.2
    assert kernels.interp_log(pts, 1e9) == 0.4


# ---- GEMM -------------------------------------------------------------------------------------
def test_gemm_efficiency_on_the_plateau():
    # 2*16384^3 FLOPs take 8890 us at peak: beyond the last point (1111.3 us, 0.994) of the hopper curve
    flops = 2 * 16384**3
    assert kernels.gemm_efficiency(H100, "bf16", flops) == pytest.approx(0.803 * 0.994 * SUSTAINED)


def test_gemm_efficiency_mid_curve():
    # the geometric mean of 17.36 us and 58.6 us is halfway in log: (0.908 + 0.962) / 2
    ideal_us = math.sqrt(17.36 * 58.6)
    flops = ideal_us * 1e-6 * PEAK
    assert kernels.gemm_efficiency(H100, "bf16", flops) == pytest.approx(0.803 * 0.935 * SUSTAINED)


def test_big_gemm_is_compute_bound():
    n = 16384
    flops = 2 * n**3
    expected = flops / (PEAK * 0.803 * 0.994 * SUSTAINED)  # ~1.40 ms
    assert kernels.gemm_time(H100, "bf16", n, n, n) == pytest.approx(expected, rel=1e-12)
    # its bytes ((2 inputs + 1 output) * n^2 * 2 B = 1.6 GB) would take only ~0.57 ms at HBM speed
    assert kernels.hbm_time(H100, 3 * n * n * 2) < expected


def test_batched_gemm_scales_flops_and_bytes():
    one = kernels.gemm_time(H100, "bf16", 8192, 8192, 8192)
    assert kernels.gemm_time(H100, "bf16", 8192, 8192, 8192, batch=4) > 3.9 * one


def test_skinny_gemm_is_memory_bound():
    m, n, k = 1, 8192, 8192
    nbytes = (m * k + k * n + m * n) * 2  # 134.25 MB, above the 100 MB end of the HBM curve -> eff 1.0
    expected = nbytes / (3.35e12 * 0.85)  # ~47 us
    assert kernels.gemm_time(H100, "bf16", m, n, k) == pytest.approx(expected, rel=1e-12)
    # even at the best GEMM efficiency the FLOPs (2*8192^2) would take ~0.17 us
    assert 2 * m * n * k / (PEAK * 0.803) < expected / 100


def test_fp8_gemm_reads_one_byte_writes_bf16():
    m, n, k = 1, 16384, 16384  # 268 MB of fp8 weights: past the 100 MB end of the HBM curve
    nbytes = (m * k + k * n) * 1 + m * n * 2
    assert kernels.gemm_time(H100, "fp8", m, n, k) == pytest.approx(nbytes / (3.35e12 * 0.85), rel=1e-12)


def test_hbm_time_hand_values():
    assert kernels.hbm_time(H100, 0) == 0.0
    assert kernels.hbm_time(H100, 1e6) == pytest.approx(1e6 / (3.35e12 * 0.85 * 0.667))  # 1 MB point
    assert kernels.hbm_time(H100, 1e9) == pytest.approx(1e9 / (3.35e12 * 0.85))  # > 100 MB: full
    assert kernels.hbm_time(A100, 1e9) == pytest.approx(1e9 / (2.039e12 * 0.78))


@pytest.mark.parametrize("gpu", [H100, A100], ids=["H100", "A100"])
def test_gemm_time_is_monotone_in_size(gpu):
    sizes = [2**k for k in range(4, 16)]
    times = [kernels.gemm_time(gpu, "bf16", n, n, n) for n in sizes]
    assert all(t2 > t1 for t1, t2 in itertools.pairwise(times))


def test_gemm_efficiency_ampere_is_monotone_non_decreasing():
    effs = [kernels.gemm_efficiency(A100, "bf16", 10 ** (k / 4)) for k in range(20, 60)]
    assert all(e2 >= e1 for e1, e2 in itertools.pairwise(effs))


def test_gemm_efficiency_hopper_is_monotone_up_to_its_plateau():
    """Non-decreasing while the ideal duration grows to the plateau (468.8 us); beyond it the measured
    table dips by 0.6 % (0.994 at 1111 us: the 700 W power cap), which the test tolerates."""
    flops = [10 ** (k / 8) for k in range(40, 120)]
    effs = [kernels.gemm_efficiency(H100, "bf16", f) for f in flops]
    plateau = [e for f, e in zip(flops, effs, strict=True) if f / PEAK * 1e6 <= 468.8]
    assert all(e2 >= e1 for e1, e2 in itertools.pairwise(plateau))
    running = 0.0
    for e in effs:
        running = max(running, e)
        assert e >= 0.99 * running
    assert max(effs) <= 0.803 * SUSTAINED * (1 + 1e-12)
    assert kernels.gemm_efficiency(H100, "bf16", 468.8e-6 * PEAK) == pytest.approx(0.803 * SUSTAINED)
    assert min(effs) == pytest.approx(0.803 * 0.016 * SUSTAINED)


# ---- flash attention ----------------------------------------------------------------------------
def test_flash_attention_forward_hand_value():
    bh, s, d = 16, 8192, 128
    flops = 4 * bh * s * s * d / 2  # causal halves the square
    expected = flops / (PEAK * 0.622 * SUSTAINED)  # hopper hd128 fwd fraction at 8192
    assert kernels.flash_attention_time(H100, bh, s, s, d, causal=True) == pytest.approx(expected)
    non_causal = kernels.flash_attention_time(H100, bh, s, s, d, causal=False)
    assert non_causal == pytest.approx(2 * expected)


def test_flash_attention_backward_hand_value():
    bh, s, d = 16, 8192, 128
    flops = 2.5 * 4 * bh * s * s * d / 2
    expected = flops / (PEAK * 0.496 * SUSTAINED)
    got = kernels.flash_attention_time(H100, bh, s, s, d, causal=True, backward=True)
    assert got == pytest.approx(expected)


HOPPER_TABLE = {  # efficiency.yaml attention.flash_causal_fraction.hopper
    64: ([0.245, 0.321, 0.380, 0.423, 0.441, 0.461], [0.147, 0.225, 0.303, 0.371, 0.413, 0.455]),
    128: ([0.339, 0.456, 0.536, 0.590, 0.622, 0.616], [0.173, 0.291, 0.396, 0.475, 0.496, 0.531]),
}
SEQS = [512, 1024, 2048, 4096, 8192, 16384]


@pytest.mark.parametrize("d", [64, 128])
@pytest.mark.parametrize("i", range(len(SEQS)))
def test_flash_backward_over_forward_ratio_matches_table(d, i):
    s = SEQS[i]
    fwd_frac, bwd_frac = HOPPER_TABLE[d][0][i], HOPPER_TABLE[d][1][i]
    fwd = kernels.flash_attention_time(H100, 8, s, s, d, causal=True)
    bwd = kernels.flash_attention_time(H100, 8, s, s, d, causal=True, backward=True)
    assert bwd / fwd == pytest.approx(2.5 * fwd_frac / bwd_frac, rel=1e-9)
    assert bwd / fwd >= 2.5


@pytest.mark.parametrize("s", [300, 512, 3000, 8192, 50000])
def test_flash_backward_ratio_on_ampere_is_exactly_2_5(s):
    # the A100 table uses the fwd+bwd figure for both passes
    fwd = kernels.flash_attention_time(A100, 8, s, s, 128, causal=True)
    bwd = kernels.flash_attention_time(A100, 8, s, s, 128, causal=True, backward=True)
    assert bwd / fwd == pytest.approx(2.5)


def test_half_dtype():
    assert kernels.half_dtype(H100) == "bf16"
    assert kernels.half_dtype(gpu_spec("V100-SXM-32GB")) == "fp16"
