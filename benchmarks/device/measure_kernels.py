#!/usr/bin/env python3
"""Measure real kernel efficiencies on one GPU and write them as YAML (+ raw CSV).

Tables measured (all inputs random normal, never zeros):
  gemm_square        bf16 torch.matmul, m=n=k
  gemm_transformer   bf16 torch.matmul, M tokens x (K, N) transformer-layer shapes
  gemm_fp8_square    torch._scaled_mm, float8_e4m3fn, per-tensor scales, bf16 out
                     (use_fast_accum False and True)
  attention_flash    F.scaled_dot_product_attention, SDPBackend.FLASH_ATTENTION forced
  attention_cudnn    same, SDPBackend.CUDNN_ATTENTION forced
  hbm_copy           dst.copy_(src), bytes = read + written
  hbm_elementwise    torch.addcmul(z, x, y, out=o) == x*y+z in one kernel, bf16,
                     bytes = 3 reads + 1 write
  hbm_elementwise_unfused  x*y+z written as Python (two kernels); bytes counted
                     as the fused minimum (3 reads + 1 write) so it reads as an
                     effective rate

Timing: CUDA events around each sample; 5 warm-up calls; the median of >= 20
samples (30 for calls under 10 ms).  Where one call is shorter than ~1 ms, a
sample is a CUDA-graph replay of `reps` back-to-back calls (eager loop if graph
capture fails) and the per-call time is the sample time / reps, so launch
overhead from Python is kept out of the kernel numbers; `reps` and `graph` are
recorded for every point.  HBM tables cycle over enough buffer sets that each
sample touches >= 256 MiB (over 2x the L2); "hot" columns re-use one buffer set.

Usage on the device:   python3 measure_kernels.py --out "$OUT"
Smoke test on CPU:     python measure_kernels.py --smoke --out /tmp/x
"""

# ruff: noqa: B023  (closures are called inside the loop iteration that defines them)
from __future__ import annotations

import argparse
import csv
import datetime as _dt
import json
import math
import os
import platform
import statistics
import subprocess
import sys
import time
import traceback

import torch
import torch.nn.functional as F

T0 = time.time()
MiB = 1 << 20
GiB = 1 << 30


def log(msg: str) -> None:
    print(f"[{time.time() - T0:7.1f}s] {msg}", flush=True)


# --------------------------------------------------------------------------- timing
class Bench:
    def __init__(
        self,
        device: torch.device,
        warmup: int = 5,
        min_iters: int = 20,
        iters_small: int = 30,
        target_ms: float = 1.0,
        max_reps: int = 2000,
    ):
        self.dev = device
        self.cuda = device.type == "cuda"
        self.warmup = warmup
        self.min_iters = min_iters
        self.iters_small = iters_small
        self.target_ms = target_ms
        self.max_reps = max_reps

    def sync(self) -> None:
        if self.cuda:
            torch.cuda.synchronize()

    def _time_once(self, fn) -> float:
        if self.cuda:
            s, e = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            s.record()
            fn()
            e.record()
            e.synchronize()
            return s.elapsed_time(e)
        t = time.perf_counter()
        fn()
        return (time.perf_counter() - t) * 1e3

    def run(self, fn, use_graph: bool = True, min_reps: int = 1, batch_below_ms: float | None = None):
        """Return dict(median_ms, min_ms, max_ms, p25_ms, p75_ms, n_samples, reps, graph) per call."""
        for _ in range(self.warmup):
            fn()
        self.sync()
        est = min(self._time_once(fn) for _ in range(3))
        thresh = self.target_ms if batch_below_ms is None else batch_below_ms
        reps = 1
        if est < thresh:
            reps = int(min(self.max_reps, max(1, math.ceil(self.target_ms / max(est, 1e-4)))))
        reps = max(reps, min_reps)
        n = self.iters_small if est < 10.0 else self.min_iters
        graph = None
        if self.cuda and use_graph and reps > 1:
            try:
                side = torch.cuda.Stream()
                side.wait_stream(torch.cuda.current_stream())
                with torch.cuda.stream(side):
                    for _ in range(3):
                        fn()
                torch.cuda.current_stream().wait_stream(side)
                g = torch.cuda.CUDAGraph()
                with torch.cuda.graph(g):
                    for _ in range(reps):
                        fn()
                g.replay()
                torch.cuda.synchronize()
                graph = g
            except Exception as ex:
                log(f"    graph capture failed ({type(ex).__name__}: {str(ex)[:120]}); eager loop")
                graph = None
                torch.cuda.synchronize()

        def sample():
            if graph is not None:
                graph.replay()
            else:
                for _ in range(reps):
                    fn()

        sample()  # one more warm sample at the chosen batch size
        self.sync()
        times = []
        if self.cuda:
            evs = [
                (torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)) for _ in range(n)
            ]
            for s, e in evs:
                s.record()
                sample()
                e.record()
            torch.cuda.synchronize()
            times = [s.elapsed_time(e) / reps for s, e in evs]
        else:
            for _ in range(n):
                t = time.perf_counter()
                sample()
                times.append((time.perf_counter() - t) * 1e3 / reps)
        used_graph = graph is not None
        graph = None
        q = statistics.quantiles(times, n=4) if len(times) >= 2 else [times[0]] * 3
        return {
            "median_ms": statistics.median(times),
            "min_ms": min(times),
            "max_ms": max(times),
            "p25_ms": q[0],
            "p75_ms": q[2],
            "n_samples": n,
            "reps": reps,
            "graph": used_graph,
        }


def r4(x: float) -> float:
    if x == 0 or not math.isfinite(x):
        return x
    return float(f"{x:.4g}")


def rel_err(out: torch.Tensor, ref: torch.Tensor) -> float:
    out = out.double()
    ref = ref.double()
    if not torch.isfinite(out).all():
        return float("nan")
    return float((out - ref).norm() / ref.norm())


def free():
    import gc

    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()


# --------------------------------------------------------------------------- sections
class Runner:
    def __init__(self, args):
        self.args = args
        self.smoke = args.smoke
        self.dev = torch.device("cuda" if (torch.cuda.is_available() and not args.cpu) else "cpu")
        self.bench = Bench(self.dev)
        self.tables: dict[str, dict] = {}
        self.rows: list[dict] = []
        self.failures: list[str] = []
        self.meta: dict = {}
        self.out = args.out
        os.makedirs(self.out, exist_ok=True)

    def over_budget(self) -> bool:
        return (time.time() - T0) > self.args.budget_s

    def add(self, table: str, point: dict) -> None:
        self.tables.setdefault(table, {"points": []})["points"].append(point)
        self.rows.append({"table": table, **point})

    def fail(self, what: str, ex: BaseException) -> None:
        msg = f"{what}: {type(ex).__name__}: {str(ex).splitlines()[0][:200] if str(ex) else ''}"
        self.failures.append(msg)
        log("  FAIL " + msg)

    # ---- metadata
    def collect_meta(self) -> None:
        m = {
            "date_utc": _dt.datetime.now(_dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "host": platform.node(),
            "python": platform.python_version(),
            "torch": torch.__version__,
            "cuda_runtime": torch.version.cuda,
            "device": str(self.dev),
            "smoke": self.smoke,
        }
        if self.dev.type == "cuda":
            p = torch.cuda.get_device_properties(0)
            m.update(
                {
                    "gpu_name": torch.cuda.get_device_name(0),
                    "compute_capability": f"{p.major}.{p.minor}",
                    "sm_count": p.multi_processor_count,
                    "total_memory_bytes": int(p.total_memory),
                    "l2_cache_bytes": int(getattr(p, "L2_cache_size", 0)),
                    "cudnn": torch.backends.cudnn.version(),
                    "flash_sdp_available": bool(
                        getattr(torch.backends.cuda, "is_flash_attention_available", lambda: None)()
                    ),
                    "cublas_allow_bf16_reduced_precision_reduction": bool(
                        torch.backends.cuda.matmul.allow_bf16_reduced_precision_reduction
                    ),
                }
            )
        else:
            m["gpu_name"] = "cpu (smoke test)"
        m["nvidia_smi_before"] = nvsmi_query()
        self.meta = m
        log(f"meta: {json.dumps({k: v for k, v in m.items() if k != 'nvidia_smi_before'})}")
        log(f"nvidia-smi: {m['nvidia_smi_before']}")

    # ---- GEMM
    def spin_up(self) -> None:
        if self.dev.type != "cuda":
            return
        log("spin-up: 1.5 s of 8192^3 bf16 matmul so clocks settle")
        a = torch.randn(8192, 8192, device=self.dev, dtype=torch.bfloat16)
        b = torch.randn(8192, 8192, device=self.dev, dtype=torch.bfloat16)
        t = time.time()
        while time.time() - t < 1.5:
            for _ in range(10):
                torch.matmul(a, b)
            torch.cuda.synchronize()
        del a, b
        free()

    def gemm_point(self, table: str, m: int, n: int, k: int, extra: dict | None = None) -> None:
        dt = torch.bfloat16
        try:
            a = torch.randn(m, k, device=self.dev, dtype=dt)
            b = torch.randn(k, n, device=self.dev, dtype=dt)
            c = torch.empty(m, n, device=self.dev, dtype=dt)
            r = self.bench.run(lambda: torch.matmul(a, b, out=c))
            fl = 2.0 * m * n * k
            pt = {
                **(extra or {}),
                "m": m,
                "n": n,
                "k": k,
                "ms": r4(r["median_ms"]),
                "tflops": r4(fl / (r["median_ms"] * 1e-3) / 1e12),
                "tflops_best": r4(fl / (r["min_ms"] * 1e-3) / 1e12),
                "spread_ms": [r4(r["p25_ms"]), r4(r["p75_ms"])],
                "reps": r["reps"],
                "graph": r["graph"],
                "n_samples": r["n_samples"],
            }
            self.add(table, pt)
            log(f"  {table} m={m} n={n} k={k}: {pt['ms']} ms  {pt['tflops']} TFLOP/s (reps {r['reps']})")
        except Exception as ex:
            self.fail(f"{table} m={m} n={n} k={k}", ex)
        finally:
            a = b = c = None
            free()

    def gemm_square(self) -> None:
        sizes = [64, 128, 256] if self.smoke else [256, 512, 1024, 2048, 3072, 4096, 6144, 8192, 16384]
        log("== bf16 GEMM square")
        self.tables["gemm_square"] = {
            "what": "bf16 torch.matmul(A[m,k], B[k,n], out=C) row-major, fp32 accumulate (cuBLAS default)",
            "flops": "2*m*n*k",
            "points": [],
        }
        for s in sizes:
            if self.over_budget():
                self.failures.append(f"gemm_square {s}: skipped (time budget)")
                continue
            self.gemm_point("gemm_square", s, s, s)

    def gemm_transformer(self) -> None:
        Ms = [16, 32] if self.smoke else [512, 1024, 2048, 4096, 8192, 16384]
        KN = (
            [(64, 80), (80, 64)]
            if self.smoke
            else [
                (8192, 10240),
                (8192, 8192),
                (8192, 28672),
                (28672, 8192),
                (16384, 6656),
                (6656, 16384),
                (4096, 14336),
                (2304, 9216),
                (12288, 4608),
            ]
        )
        log("== bf16 GEMM transformer shapes")
        self.tables["gemm_transformer"] = {
            "what": "bf16 torch.matmul(X[M,K], W[K,N], out=Y) row-major; M = tokens",
            "flops": "2*M*N*K",
            "points": [],
        }
        for k, n in KN:
            for m in Ms:
                if self.over_budget():
                    self.failures.append(f"gemm_transformer M={m} K={k} N={n}: skipped (time budget)")
                    continue
                self.gemm_point("gemm_transformer", m, n, k)

    def gemm_fp8(self) -> None:
        sizes = [32, 64] if self.smoke else [1024, 2048, 4096, 8192, 16384]
        log("== fp8 GEMM (torch._scaled_mm)")
        tab = {
            "what": "torch._scaled_mm(A8[m,k] row-major, B8[k,n] column-major), float8_e4m3fn, "
            "per-tensor float32 scales (amax/448), bf16 out; use_fast_accum False and True",
            "flops": "2*m*n*k",
            "points": [],
        }
        self.tables["gemm_fp8_square"] = tab
        f8 = getattr(torch, "float8_e4m3fn", None)
        if f8 is None or not hasattr(torch, "_scaled_mm"):
            tab["skipped"] = "torch has no float8_e4m3fn or _scaled_mm"
            log("  skipped: " + tab["skipped"])
            return
        # correctness check once
        try:
            s = 64 if self.smoke else 1024
            af = torch.randn(s, s, device=self.dev, dtype=torch.float32)
            bf = torch.randn(s, s, device=self.dev, dtype=torch.float32)
            sa = (af.abs().max() / 448.0).float()
            sb = (bf.abs().max() / 448.0).float()
            a8 = (af / sa).to(f8)
            b8 = (bf.t().contiguous() / sb).to(f8).t()  # [k, n] column-major, as cuBLASLt needs
            out = torch._scaled_mm(a8, b8, scale_a=sa, scale_b=sb, out_dtype=torch.bfloat16)
            tab[f"rel_err_vs_fp32_at_{s}"] = r4(rel_err(out, af @ bf))
            log(f"  fp8 check rel err vs fp32 matmul at {s}: {tab[f'rel_err_vs_fp32_at_{s}']}")
        except Exception as ex:
            first = str(ex).splitlines()[0][:200] if str(ex) else ""
            tab["skipped"] = f"_scaled_mm unsupported here: {type(ex).__name__}: {first}"
            log("  skipped: " + tab["skipped"])
            free()
            return
        for s in sizes:
            for fast in (False, True):
                if self.over_budget():
                    self.failures.append(f"gemm_fp8 {s}: skipped (time budget)")
                    continue
                try:
                    sa = torch.tensor(1.0 / 64, device=self.dev, dtype=torch.float32)
                    sb = torch.tensor(1.0 / 64, device=self.dev, dtype=torch.float32)
                    a8 = (torch.randn(s, s, device=self.dev) * 64).to(f8)
                    b8 = (torch.randn(s, s, device=self.dev) * 64).to(f8).t()
                    r = self.bench.run(
                        lambda: torch._scaled_mm(
                            a8, b8, scale_a=sa, scale_b=sb, out_dtype=torch.bfloat16, use_fast_accum=fast
                        )
                    )
                    fl = 2.0 * s**3
                    pt = {
                        "m": s,
                        "n": s,
                        "k": s,
                        "fast_accum": fast,
                        "ms": r4(r["median_ms"]),
                        "tflops": r4(fl / (r["median_ms"] * 1e-3) / 1e12),
                        "tflops_best": r4(fl / (r["min_ms"] * 1e-3) / 1e12),
                        "spread_ms": [r4(r["p25_ms"]), r4(r["p75_ms"])],
                        "reps": r["reps"],
                        "graph": r["graph"],
                        "n_samples": r["n_samples"],
                    }
                    self.add("gemm_fp8_square", pt)
                    log(f"  fp8 {s}^3 fast_accum={fast}: {pt['ms']} ms  {pt['tflops']} TFLOP/s")
                except Exception as ex:
                    self.fail(f"gemm_fp8 {s} fast_accum={fast}", ex)
                finally:
                    a8 = b8 = None
                    free()

    # ---- attention
    def attention(self) -> None:
        from torch.nn.attention import SDPBackend, sdpa_kernel

        tokens = 256 if self.smoke else 16384
        heads = 2 if self.smoke else 16
        seqs = [64, 128] if self.smoke else [512, 1024, 2048, 4096, 8192, 16384]
        dims = [64] if self.smoke else [128, 64]
        backends = [("attention_flash", "FLASH_ATTENTION"), ("attention_cudnn", "CUDNN_ATTENTION")]
        dt = torch.bfloat16
        for table, bname in backends:
            log(f"== attention {bname}")
            tab = {
                "what": f"F.scaled_dot_product_attention under sdpa_kernel(SDPBackend.{bname}), bf16, "
                f"q/k/v [B,H,S,D] contiguous, B*S = {tokens} tokens, H = {heads}; fwd timed with "
                "autograd on (training forward); "
                "bwd = torch.autograd.grad(out, (q,k,v), dO, retain_graph=True)",
                "flops": "fwd = 4*B*S^2*H*D (/2 if causal); bwd = 2.5 * fwd (FlashAttention convention)",
                "points": [],
            }
            self.tables[table] = tab
            be = getattr(SDPBackend, bname, None)
            if be is None:
                tab["skipped"] = f"SDPBackend.{bname} not in this torch"
                log("  skipped: " + tab["skipped"])
                continue
            # correctness check against fp32 math on upcast inputs
            chk, errs = {}, []
            for d in dims:
                for causal in (False, True):
                    key = f"d{d}_{'causal' if causal else 'full'}"
                    try:
                        q, k, v = (torch.randn(2, 4, 256, d, device=self.dev, dtype=dt) for _ in range(3))
                        with sdpa_kernel(be):
                            o = F.scaled_dot_product_attention(q, k, v, is_causal=causal)
                        up = torch.float32 if self.bench.cuda else torch.float64
                        ref = F.scaled_dot_product_attention(q.to(up), k.to(up), v.to(up), is_causal=causal)
                        chk[key] = r4(rel_err(o, ref))
                    except Exception as ex:
                        msg = f"{type(ex).__name__}: {str(ex).splitlines()[0][:240] if str(ex) else ''}"
                        chk[key] = "error: " + msg
                        errs.append(msg)
            tab["rel_err_vs_fp32"] = chk
            log(f"  check rel err vs fp32: {chk}")
            free()
            if len(errs) == len(chk):
                tab["skipped"] = "backend unusable: " + errs[0]
                log("  skipped: " + tab["skipped"])
                continue
            for d in dims:
                for causal in (False, True):
                    for s in seqs:
                        if self.over_budget():
                            self.failures.append(
                                f"{table} d={d} causal={causal} S={s}: skipped (time budget)"
                            )
                            continue
                        b = tokens // s
                        fwd_fl = 4.0 * b * s * s * heads * d * (0.5 if causal else 1.0)
                        pt = {"batch": b, "seq": s, "heads": heads, "head_dim": d, "causal": causal}
                        try:
                            q, k, v = (
                                torch.randn(b, heads, s, d, device=self.dev, dtype=dt, requires_grad=True)
                                for _ in range(3)
                            )

                            def fwd():
                                with sdpa_kernel(be):
                                    return F.scaled_dot_product_attention(q, k, v, is_causal=causal)

                            rf = self.bench.run(fwd, use_graph=False, batch_below_ms=0.1)
                            out = fwd()
                            dout = torch.randn_like(out)

                            def bwd():
                                return torch.autograd.grad(out, (q, k, v), dout, retain_graph=True)

                            rb = self.bench.run(bwd, use_graph=False, batch_below_ms=0.1)
                            pt.update(
                                {
                                    "fwd_ms": r4(rf["median_ms"]),
                                    "fwd_tflops": r4(fwd_fl / (rf["median_ms"] * 1e-3) / 1e12),
                                    "bwd_ms": r4(rb["median_ms"]),
                                    "bwd_tflops": r4(2.5 * fwd_fl / (rb["median_ms"] * 1e-3) / 1e12),
                                    "fwd_spread_ms": [r4(rf["p25_ms"]), r4(rf["p75_ms"])],
                                    "bwd_spread_ms": [r4(rb["p25_ms"]), r4(rb["p75_ms"])],
                                    "n_samples": rf["n_samples"],
                                }
                            )
                            self.add(table, pt)
                            log(
                                f"  {bname} d={d} causal={causal} B={b} S={s}: fwd {pt['fwd_ms']} ms "
                                f"{pt['fwd_tflops']} TF/s | bwd {pt['bwd_ms']} ms {pt['bwd_tflops']} TF/s"
                            )
                        except Exception as ex:
                            self.fail(f"{table} d={d} causal={causal} S={s}", ex)
                        finally:
                            q = k = v = out = dout = None
                            free()

    # ---- HBM
    def hbm(self) -> None:
        sizes = [MiB, 4 * MiB] if self.smoke else [MiB << i for i in range(13)]  # 1 MiB .. 4 GiB
        pool_bytes = 8 * MiB if self.smoke else 256 * MiB
        hot_max = 4 * MiB if self.smoke else 16 * MiB
        dt = torch.bfloat16
        log("== HBM bandwidth")
        self.tables["hbm_copy"] = {
            "what": "dst.copy_(src), bf16 buffers of `bytes` each; gbps counts bytes read + written "
            f"(2*bytes); cold = cycles over buffer sets totalling >= {pool_bytes // MiB} MiB per sample; "
            "hot = one set re-used (L2-resident when small)",
            "points": [],
        }
        self.tables["hbm_elementwise"] = {
            "what": "torch.addcmul(z, x, y, out=o) == x*y+z, one kernel, bf16 tensors of `bytes` each; "
            "gbps counts 3 reads + 1 write (4*bytes)",
            "points": [],
        }
        self.tables["hbm_elementwise_unfused"] = {
            "what": "o = x*y + z as plain PyTorch (2 kernels + temp); gbps = 4*bytes / time, i.e. effective "
            "against the fused minimum; cold buffer cycling as above",
            "points": [],
        }

        def one(table, size, ntens, mk_fn, bytes_factor, hot):
            try:
                numel = size // 2
                nsets = 1 if hot else max(1, math.ceil(pool_bytes / (size * ntens)))
                sets = [
                    [torch.randn(numel, device=self.dev, dtype=dt) for _ in range(ntens)]
                    for _ in range(nsets)
                ]
                ctr = [0]

                def fn():
                    st = sets[ctr[0] % nsets]
                    ctr[0] += 1
                    mk_fn(st)

                r = self.bench.run(fn, min_reps=nsets)
                gbps = bytes_factor * size / (r["median_ms"] * 1e-3) / 1e9
                return r, gbps
            finally:
                sets = None
                free()

        copy_fn = lambda st: st[1].copy_(st[0])  # noqa: E731
        ew_fn = lambda st: torch.addcmul(st[2], st[0], st[1], out=st[3])  # noqa: E731

        def ew_unfused(st):
            st[3] = st[0] * st[1] + st[2]

        for table, ntens, fn, fac in (
            ("hbm_copy", 2, copy_fn, 2),
            ("hbm_elementwise", 4, ew_fn, 4),
            ("hbm_elementwise_unfused", 4, ew_unfused, 4),
        ):
            for size in sizes:
                if self.over_budget():
                    self.failures.append(f"{table} {size}: skipped (time budget)")
                    continue
                try:
                    r, gbps = one(table, size, ntens, fn, fac, hot=False)
                    pt = {
                        "bytes": size,
                        "mib": size / MiB,
                        "us": r4(r["median_ms"] * 1e3),
                        "gbps": r4(gbps),
                        "reps": r["reps"],
                        "graph": r["graph"],
                        "n_samples": r["n_samples"],
                    }
                    if size <= hot_max and table != "hbm_elementwise_unfused":
                        rh, gh = one(table, size, ntens, fn, fac, hot=True)
                        pt["hot_us"] = r4(rh["median_ms"] * 1e3)
                        pt["hot_gbps"] = r4(gh)
                    self.add(table, pt)
                    log(
                        f"  {table} {size / MiB:g} MiB: {pt['us']} us  {pt['gbps']} GB/s"
                        + (f"  (hot {pt['hot_gbps']} GB/s)" if "hot_gbps" in pt else "")
                    )
                except Exception as ex:
                    self.fail(f"{table} {size / MiB:g} MiB", ex)

    # ---- output
    def write(self, final: bool = False) -> None:
        doc = {
            "meta": {
                **self.meta,
                "complete": final,
                "elapsed_s": round(time.time() - T0, 1),
                "method": (
                    "CUDA events; 5 warm-up calls; median of >=20 samples (30 when a call is "
                    "< 10 ms); calls under ~1 ms batched `reps` per sample as a CUDA-graph "
                    "replay (GEMM, HBM) or an eager loop (attention, batched only under 0.1 ms); "
                    "inputs random normal"
                ),
            },
            "failures": self.failures,
            "tables": self.tables,
        }
        if final:
            doc["meta"]["nvidia_smi_after"] = nvsmi_query()
            doc["meta"]["nvidia_smi_during"] = summarize_smi_log(os.path.join(self.out, "nvsmi_log.csv"))
        text = to_yaml(doc)
        path = os.path.join(self.out, "h100_kernels.yaml")
        with open(path + ".tmp", "w") as f:
            f.write(text)
        os.replace(path + ".tmp", path)
        keys: list[str] = []
        for r in self.rows:
            for k in r:
                if k not in keys:
                    keys.append(k)
        with open(os.path.join(self.out, "h100_kernels_raw.csv"), "w", newline="") as f:
            w = csv.DictWriter(f, fieldnames=keys)
            w.writeheader()
            for r in self.rows:
                w.writerow({k: (json.dumps(v) if isinstance(v, list) else v) for k, v in r.items()})


# --------------------------------------------------------------------------- nvidia-smi
SMI_FIELDS = (
    "name,driver_version,pstate,clocks.sm,clocks.max.sm,clocks.mem,clocks.max.mem,"
    "power.draw,power.limit,temperature.gpu,clocks_throttle_reasons.active"
)


SMI_FIELDS_MIN = (
    "name,driver_version,pstate,clocks.sm,clocks.max.sm,clocks.mem,clocks.max.mem,power.draw,temperature.gpu"
)
LOG_FIELDS = (
    "timestamp,clocks.sm,clocks.mem,power.draw,temperature.gpu,utilization.gpu,clocks_throttle_reasons.active"
)
LOG_FIELDS_MIN = "timestamp,clocks.sm,clocks.mem,power.draw,temperature.gpu,utilization.gpu"


def _smi_ok(fields):
    try:
        return (
            subprocess.run(
                ["nvidia-smi", f"--query-gpu={fields}", "--format=csv"],
                capture_output=True,
                text=True,
                timeout=20,
            ).returncode
            == 0
        )
    except Exception:
        return False


def nvsmi_query():
    try:
        p = subprocess.run(
            ["nvidia-smi", f"--query-gpu={SMI_FIELDS}", "--format=csv"],
            capture_output=True,
            text=True,
            timeout=20,
        )
        if p.returncode != 0:
            p = subprocess.run(
                ["nvidia-smi", f"--query-gpu={SMI_FIELDS_MIN}", "--format=csv"],
                capture_output=True,
                text=True,
                timeout=20,
            )
        if p.returncode != 0:
            return f"nvidia-smi rc={p.returncode}: {p.stderr.strip()[:200]}"
        lines = p.stdout.strip().splitlines()
        if len(lines) < 2:
            return p.stdout.strip()
        hdr = [h.strip() for h in lines[0].split(",")]
        val = [v.strip() for v in lines[1].split(",")]
        return dict(zip(hdr, val, strict=False))
    except Exception as ex:
        return f"nvidia-smi unavailable: {type(ex).__name__}"


def start_smi_log(path):
    try:
        fields = LOG_FIELDS if _smi_ok(LOG_FIELDS) else LOG_FIELDS_MIN
        f = open(path, "w")  # noqa: SIM115 (held open by the logger process)
        return subprocess.Popen(
            ["nvidia-smi", f"--query-gpu={fields}", "--format=csv", "-lms", "500"],
            stdout=f,
            stderr=subprocess.STDOUT,
        )
    except Exception:
        return None


def summarize_smi_log(path):
    try:
        with open(path) as f:
            rows = list(csv.reader(f))
        if len(rows) < 3:
            return "no samples"
        hdr = [h.strip() for h in rows[0]]
        busy = []
        for r in rows[1:]:
            if len(r) != len(hdr):
                continue
            d = dict(zip(hdr, [x.strip() for x in r], strict=False))
            util = d.get("utilization.gpu [%]", "0 %").split()[0]
            if util.isdigit() and int(util) >= 50:
                busy.append(d)
        if not busy:
            return "no busy samples"

        def num(d, key):
            try:
                return float(d[key].split()[0])
            except Exception:
                return float("nan")

        sm = [num(d, "clocks.current.sm [MHz]") for d in busy]
        pw = [num(d, "power.draw [W]") for d in busy]
        tp = [num(d, "temperature.gpu") for d in busy]
        rkey = next((k for k in hdr if "reasons" in k), None)
        thr = sorted({d.get(rkey, "") for d in busy}) if rkey else []
        return {
            "busy_samples": len(busy),
            "sm_mhz_median": statistics.median(sm),
            "sm_mhz_min": min(sm),
            "sm_mhz_max": max(sm),
            "power_w_median": statistics.median(pw),
            "power_w_max": max(pw),
            "temp_c_max": max(tp),
            "throttle_reasons_seen": thr,
        }
    except Exception as ex:
        return f"log unreadable: {type(ex).__name__}"


# --------------------------------------------------------------------------- YAML
def _scalar(v) -> str:
    if v is None:
        return "null"
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int):
        return str(v)
    if isinstance(v, float):
        if math.isnan(v):
            return ".nan"
        if math.isinf(v):
            return ".inf" if v > 0 else "-.inf"
        return repr(v)
    return json.dumps(str(v))  # JSON strings are valid YAML double-quoted scalars


def _flow(v) -> str:
    if isinstance(v, dict):
        return (
            "{"
            + ", ".join(f"{_scalar(k) if not str(k).isidentifier() else k}: {_flow(x)}" for k, x in v.items())
            + "}"
        )
    if isinstance(v, (list, tuple)):
        return "[" + ", ".join(_flow(x) for x in v) + "]"
    return _scalar(v)


def _is_flat(v) -> bool:
    if isinstance(v, dict):
        return all(not isinstance(x, dict) and _is_flat(x) for x in v.values())
    if isinstance(v, (list, tuple)):
        return all(not isinstance(x, (dict, list, tuple)) for x in v)
    return True


def to_yaml(v, indent: int = 0) -> str:
    pad = "  " * indent
    out = []
    if isinstance(v, dict):
        if not v:
            return pad + "{}\n"
        for k, x in v.items():
            key = k if str(k).isidentifier() else _scalar(k)
            if isinstance(x, dict) and x and not (_is_flat(x) and len(x) <= 3):
                out.append(f"{pad}{key}:\n{to_yaml(x, indent + 1)}")
            elif isinstance(x, list) and x and not _is_flat(x):
                out.append(
                    f"{pad}{key}:\n"
                    + "".join(
                        f"{pad}  - {_flow(e)}\n" if _is_flat(e) else f"{pad}  -\n{to_yaml(e, indent + 2)}"
                        for e in x
                    )
                )
            else:
                out.append(f"{pad}{key}: {_flow(x)}\n")
        return "".join(out)
    return pad + _flow(v) + "\n"


# --------------------------------------------------------------------------- main
def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default=os.environ.get("OUT", "."))
    ap.add_argument("--smoke", action="store_true", help="tiny sizes, runs on CPU")
    ap.add_argument("--cpu", action="store_true")
    ap.add_argument(
        "--budget-s",
        type=float,
        default=330.0,
        help="wall-clock budget; remaining points are skipped past it",
    )
    ap.add_argument("--only", default="", help="comma list of sections (gemm,transformer,fp8,attn,hbm)")
    args = ap.parse_args()
    R = Runner(args)
    smi = None if R.dev.type != "cuda" else start_smi_log(os.path.join(R.out, "nvsmi_log.csv"))
    R.collect_meta()
    R.write()
    sections = [
        ("gemm", R.gemm_square),
        ("hbm", R.hbm),
        ("attn", R.attention),
        ("fp8", R.gemm_fp8),
        ("transformer", R.gemm_transformer),
    ]
    only = {s for s in args.only.split(",") if s}
    try:
        R.spin_up()
        for name, fn in sections:
            if only and name not in only:
                continue
            try:
                fn()
            except Exception as ex:
                R.fail(f"section {name}", ex)
                traceback.print_exc()
            R.write()
    finally:
        if smi is not None:
            smi.terminate()
            try:
                smi.wait(5)
            except Exception:
                smi.kill()
        R.write(final=True)
    print_summary(R)
    return 0


def print_summary(R: Runner) -> None:
    t = R.tables
    print("\n===== SUMMARY =====", R.meta.get("gpu_name"), "torch", R.meta.get("torch"), flush=True)
    for p in t.get("gemm_square", {}).get("points", []):
        print(f"gemm bf16 {p['m']:>6}^3  {p['tflops']:>7} TF/s")
    for p in t.get("gemm_fp8_square", {}).get("points", []):
        print(f"gemm fp8  {p['m']:>6}^3 fast={int(p['fast_accum'])} {p['tflops']:>7} TF/s")
    if "skipped" in t.get("gemm_fp8_square", {}):
        print("fp8 skipped:", t["gemm_fp8_square"]["skipped"])
    tr = t.get("gemm_transformer", {}).get("points", [])
    if tr:
        print("transformer GEMM TF/s  rows (K,N), cols M")
        ks = []
        for p in tr:
            if (p["k"], p["n"]) not in ks:
                ks.append((p["k"], p["n"]))
        for kn in ks:
            print(f"  {kn!s:>15} " + " ".join(f"{p['tflops']:>6}" for p in tr if (p["k"], p["n"]) == kn))
    for tab in ("attention_flash", "attention_cudnn"):
        if "skipped" in t.get(tab, {}):
            print(tab, "skipped:", t[tab]["skipped"])
        for p in t.get(tab, {}).get("points", []):
            print(
                f"{tab} d={p['head_dim']} c={int(p['causal'])} S={p['seq']:>5} fwd {p['fwd_tflops']:>6} "
                f"bwd {p['bwd_tflops']:>6} TF/s"
            )
    for tab in ("hbm_copy", "hbm_elementwise", "hbm_elementwise_unfused"):
        pts = t.get(tab, {}).get("points", [])
        if pts:
            print(tab, " ".join(f"{p['mib']:g}M:{p['gbps']:g}" for p in pts))
    print("failures:", len(R.failures))
    for f in R.failures:
        print("  ", f)
    print(f"total {time.time() - T0:.1f} s")


if __name__ == "__main__":
    sys.exit(main())
