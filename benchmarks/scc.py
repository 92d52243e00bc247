"""SCC: literal vs factorised edge projection, forward + backward.

    python benchmarks/scc.py [--quick] [--device auto|cpu|cuda]

One SCC module at each of the paper's three sizes (256 nodes x 256 features,
128 x 1024, 64 x 4096; batch 4) and the whole head (3 x deconv + SCC, input
2048 x 8 x 8, batch 4), built from `fau.model` with impl "literal" and
"factorised" holding the same weights. Before timing, outputs and gradients
(input and weight) of the two are checked equal (max |a - b| / max |b|):
the outputs in float32, outputs and all gradients in float64. (In float32 the
head's gradients differ by up to a few per cent: rounding decides near-ties
in the max over neighbours and flips which edge gets the gradient; in float64
they agree to ~1e-8, so the two are the same function.)

Timing: forward + backward (y.backward(g) with a fixed random g), warm-up
rounds, then repeats with the two implementations alternating; the median.
Peak memory: CPU, the peak-RSS growth of one forward + backward in a fresh
child process per measurement (torch's CPU allocations are invisible to
tracemalloc); CUDA, torch.cuda.max_memory_allocated above the start.

Bar (CPU): factorised >= 5x faster than literal for the largest SCC
(64 x 4096); the bound from counted multiply-adds is about 7 (k = 7).
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import gc
import json
import subprocess
import sys

import _common as C
import torch

from fau.model.heads import DeconvSCCHead
from fau.model.scc import SCC

SIZES = [(256, 16), (128, 32), (64, 64)]  # (nodes = channels, map side): features = side^2
BATCH = 4
HEAD_IN = (2048, 8)  # ResNet-50 last stage for a 256 input
N_POINTS = 10
SPEEDUP_BAR = 5.0
EQUAL_TOL_FP32 = 1e-4  # outputs in float32
EQUAL_TOL_FP64 = 1e-6  # outputs and all gradients in float64 (same function up to rounding)
IMPLS = ("literal", "factorised")


def build(what: str, impl: str, n: int = 0, s: int = 0, seed: int = 0) -> torch.nn.Module:
    """The module under test, seeded so that both impls get the same weights."""
    torch.manual_seed(seed)
    if what == "head":
        return DeconvSCCHead(HEAD_IN[0], HEAD_IN[1], (256, 128, 64), N_POINTS, impl=impl).train()
    return SCC(n, s, s, k=7, impl=impl).train()


def inputs(what: str, n: int, s: int, device: str, seed: int = 1) -> tuple[torch.Tensor, torch.Tensor]:
    """Input x (B, C, H, W) (non-negative, as after BN + ReLU) and the output gradient g."""
    gen = torch.Generator().manual_seed(seed)
    if what == "head":
        x = torch.randn(BATCH, HEAD_IN[0], HEAD_IN[1], HEAD_IN[1], generator=gen).relu()
        g = torch.randn(BATCH, N_POINTS, HEAD_IN[1] * 8, HEAD_IN[1] * 8, generator=gen)
    else:
        x = torch.randn(BATCH, n, s, s, generator=gen).relu()
        g = torch.randn(BATCH, n, s, s, generator=gen)
    return x.to(device), g.to(device)


def step(module: torch.nn.Module, x: torch.Tensor, g: torch.Tensor, bf16: bool = False) -> torch.Tensor:
    """One forward + backward; returns the output."""
    module.zero_grad(set_to_none=True)
    x.grad = None
    ctx = torch.autocast("cuda", dtype=torch.bfloat16) if bf16 else contextlib.nullcontext()
    with ctx:
        y = module(x)
    y.backward(g.to(y.dtype))
    return y


def rel_err(a: torch.Tensor, b: torch.Tensor) -> float:
    a, b = a.detach().float(), b.detach().float()
    return float((a - b).abs().max() / b.abs().max().clamp_min(1e-30))


def check_equal(lit: torch.nn.Module, fac: torch.nn.Module, x: torch.Tensor, g: torch.Tensor,
                dtype: torch.dtype = torch.float32) -> tuple[float, float]:
    """(max relative error of the output, of output + input grad + every
    weight grad) between the two impls, computed in `dtype` on copies.
    TF32 is off meanwhile: cuDNN runs float32 convolutions in TF32 (10-bit
    mantissa) by default on Ampere and later, and may pick a different
    algorithm for each copy; the head's deconvolutions then differ by ~3e-4
    (seen on an H100) before SCC sees them."""
    outs = []
    matmul_tf32 = torch.backends.cuda.matmul.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = False
    try:
        with torch.backends.cudnn.flags(enabled=torch.backends.cudnn.enabled, allow_tf32=False):
            for m in (lit, fac):
                m = copy.deepcopy(m).to(dtype)
                xi = x.detach().to(dtype).clone().requires_grad_(True)
                y = step(m, xi, g.to(dtype))
                outs.append([y.detach(), xi.grad.detach()] + [p.grad.detach() for p in m.parameters()])
                del m
    finally:
        torch.backends.cuda.matmul.allow_tf32 = matmul_tf32
    errs = [rel_err(f, l_) for l_, f in zip(*outs)]
    return errs[0], max(errs)


# ----------------------------------------------------------- memory (child)


def mem_child(spec: str) -> None:
    """In a fresh process: peak-RSS growth of one forward + backward. Prints JSON."""
    what, impl, n, s = spec.split(":")
    n, s = int(n), int(s)
    C.setup_threads()
    module = build(what, impl, n, s)
    x, g = inputs(what, n, s, "cpu")
    x.requires_grad_(True)
    gc.collect()
    reset = C.reset_peak_rss()
    before = C.current_rss_bytes()
    prior_peak = C.peak_rss_bytes()
    step(module, x, g)
    peak = C.peak_rss_bytes()
    print(json.dumps({"growth": peak - before, "prior_peak_above": prior_peak - before, "reset": reset}))


def peak_mem_cpu(what: str, impl: str, n: int = 0, s: int = 0) -> float:
    """MiB; NaN when the child fails."""
    proc = subprocess.run([sys.executable, __file__, "--mem-child", f"{what}:{impl}:{n}:{s}"],
                          capture_output=True, text=True)
    if proc.returncode != 0:
        print(proc.stderr[-2000:], file=sys.stderr)
        return float("nan")
    r = json.loads(proc.stdout.strip().splitlines()[-1])
    if r["prior_peak_above"] > r["growth"]:
        print(f"  note: {what} {impl}: an earlier peak hides this one; memory figure is a lower bound",
              file=sys.stderr)
    return C.mib(r["growth"])


def peak_mem_cuda(module: torch.nn.Module, x: torch.Tensor, g: torch.Tensor, bf16: bool) -> float:
    module.zero_grad(set_to_none=True)
    x.grad = None
    gc.collect()
    torch.cuda.synchronize()
    torch.cuda.reset_peak_memory_stats()
    before = torch.cuda.memory_allocated()
    step(module, x, g, bf16)
    torch.cuda.synchronize()
    return C.mib(torch.cuda.max_memory_allocated() - before)


# ------------------------------------------------------------------- main


def run_device(device: str, quick: bool) -> list[dict]:
    cases = [("scc", n, s) for n, s in SIZES] + [("head", 0, 0)]
    precisions = [False] + ([True] if device == "cuda" else [])  # bf16 autocast on CUDA
    rows = []
    for what, n, s in cases:
        label = f"SCC {n} x {s * s}" if what == "scc" else "head (3 deconv + SCC)"
        lit, fac = (build(what, impl, n, s).to(device) for impl in IMPLS)
        fac.load_state_dict(lit.state_dict())
        x, g = inputs(what, n, s, device)
        err32, _ = check_equal(lit, fac, x, g)
        _, err64 = check_equal(lit, fac, x, g, torch.float64)
        big = what == "head" or n * s * s >= 64 * 64 * 64
        repeats = (2 if big else 3) if quick else (5 if big else 10)
        warmup = 1 if quick else 2
        if what == "scc":
            macs = {impl: BATCH * C.scc_macs(n, s * s, s * s, 7, impl) for impl in IMPLS}
        else:
            macs = {}
            for impl, m in zip(IMPLS, (lit, fac)):
                with C.MacCounter(m) as mc, torch.no_grad():
                    m.eval()(x)
                m.train()
                macs[impl] = mc.total
        for bf16 in precisions:
            xg = x.detach().clone().requires_grad_(True)
            fns = {impl: (lambda m=m: step(m, xg, g, bf16)) for impl, m in zip(IMPLS, (lit, fac))}
            tag = f"{device} {label}{' bf16' if bf16 else ''}"
            t = C.time_interleaved(fns, repeats, warmup, device, progress=tag)
            if device == "cpu" and not bf16:
                mem = {impl: peak_mem_cpu(what, impl, n, s) for impl in IMPLS}
            else:
                mem = {impl: peak_mem_cuda(m, xg, g, bf16) for impl, m in zip(IMPLS, (lit, fac))}
            speedup = C.median(t["literal"]) / C.median(t["factorised"])
            for impl in IMPLS:
                rows.append({
                    "device": device + (" bf16" if bf16 else ""), "module": label, "impl": impl,
                    "fwd GMAC": macs[impl] / 1e9,
                    "fwd+bwd ms": 1e3 * C.median(t[impl]),
                    "repeats ms": C.spread([1e3 * v for v in t[impl]]),
                    "peak MiB": mem[impl],
                    "counted x": macs["literal"] / macs["factorised"] if impl == "factorised" else None,
                    "measured x": speedup if impl == "factorised" else None,
                    "rel err fp32 out": err32 if impl == "factorised" else None,
                    "rel err fp64 all": err64 if impl == "factorised" else None,
                })
        lit = fac = x = g = xg = None  # free before the next size
        gc.collect()
    return rows


def main() -> int:
    ap = C.parser(__doc__)
    ap.add_argument("--mem-child", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.mem_child:
        mem_child(args.mem_child)
        return 0
    C.setup_threads(args.threads)
    print(f"SCC forward + backward, batch {BATCH}, k = 7; {C.cpu_info()}")
    ok = True
    for device in C.devices(args.device):
        if device == "cuda":
            print(f"GPU: {C.gpu_info()}")
        rows = run_device(device, args.quick)
        C.heading(f"SCC literal vs factorised on {device} (measured x = literal time / factorised time, "
                  f"median of interleaved repeats; counted x = ratio of forward multiply-adds)")
        print(C.table(rows))
        e32 = max(r["rel err fp32 out"] for r in rows if r["rel err fp32 out"] is not None)
        e64 = max(r["rel err fp64 all"] for r in rows if r["rel err fp64 all"] is not None)
        ok &= C.bar(f"scc[{device}] literal == factorised, fp32 outputs (max rel err)", e32, EQUAL_TOL_FP32, "<=")
        ok &= C.bar(f"scc[{device}] literal == factorised, fp64 outputs + all grads (max rel err)", e64,
                    EQUAL_TOL_FP64, "<=")
        largest = next(r for r in rows if r["module"] == "SCC 64 x 4096" and r["impl"] == "factorised"
                       and r["device"] == device)
        if device == "cpu":
            ok &= C.bar("scc[cpu] factorised speed-up, SCC 64 x 4096", largest["measured x"], SPEEDUP_BAR, ">=",
                        note=f"counted bound {largest['counted x']:.2f}")
        else:
            print(f"(no bar on {device}) factorised speed-up, SCC 64 x 4096: {largest['measured x']:.2f}x")
    return 0 if ok else 1  # a failed bar fails the script


if __name__ == "__main__":
    sys.exit(main())
