"""Shared helpers of the benchmark scripts (timing, devices, tables, bars).

Every figure a benchmark reports is a ratio against a baseline measured in
the same run: repeats of the things compared are interleaved (A, B, A, B,
...) so that load from other processes hits both alike, and the median of the
repeats is taken. No absolute time is a bar.

A bar is printed twice: a human line and a machine line
`BAR {"name": ..., "measured": ..., "bar": ..., "op": ">=", "pass": ...}` that
`run_all.py` collects into its summary table.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import statistics
import sys
import time
from pathlib import Path
from typing import Callable, Iterable

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT / "src") not in sys.path:  # run from a checkout without `pip install -e .`
    sys.path.insert(0, str(ROOT / "src"))

import torch  # noqa: E402
from tabulate import tabulate  # noqa: E402


def copy_workflow(dest: Path) -> None:
    """The repository's Snakefile, workflow, config, profiles and envs into
    `dest` (created if missing), replacing those of an earlier run there
    (copied over, the schema's relative link would clash with the one
    already there)."""
    dest.mkdir(parents=True, exist_ok=True)
    shutil.copy2(ROOT / "Snakefile", dest / "Snakefile")
    for name in ["workflow", "config", "profiles", "envs"]:
        shutil.rmtree(dest / name, ignore_errors=True)
        shutil.copytree(ROOT / name, dest / name, symlinks=True, ignore=shutil.ignore_patterns("__pycache__"))


def parser(doc: str | None) -> argparse.ArgumentParser:
    """argparse with the two flags every benchmark takes: --quick, --device."""
    ap = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="fewer repeats / frames (smoke run; ratios are rougher)")
    ap.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto",
                    help="auto: CPU (where the bars are), then CUDA too when a GPU is present")
    ap.add_argument("--threads", type=int, default=None,
                    help="torch CPU threads (default: os.cpu_count()); 1 gives steadier ratios when other jobs "
                         "hold cores (OpenMP threads then wait on each other)")
    return ap


def devices(choice: str) -> list[str]:
    """The devices a run covers: auto -> cpu (+ cuda when present)."""
    if choice == "cpu":
        return ["cpu"]
    if choice == "cuda":
        if not torch.cuda.is_available():
            raise SystemExit("--device cuda: no CUDA device is available")
        return ["cuda"]
    return ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])


def setup_threads(threads: int | None = None) -> int:
    n = threads or int(os.environ.get("FAU_BENCH_THREADS", 0)) or os.cpu_count() or 1
    os.environ["FAU_BENCH_THREADS"] = str(n)  # memory children inherit it
    torch.set_num_threads(n)
    return n


def sync(device: str) -> None:
    if str(device).startswith("cuda"):
        torch.cuda.synchronize()


def time_interleaved(fns: dict[str, Callable[[], object]], repeats: int, warmup: int, device: str = "cpu",
                     progress: str | None = None) -> dict[str, list[float]]:
    """Wall time (s) of each callable, `warmup` untimed rounds then `repeats`
    timed rounds, the callables alternating inside each round."""
    times: dict[str, list[float]] = {k: [] for k in fns}
    for r in range(warmup + repeats):
        for name, fn in fns.items():
            sync(device)
            t0 = time.perf_counter()
            fn()
            sync(device)
            dt = time.perf_counter() - t0
            if r >= warmup:
                times[name].append(dt)
        if progress:
            print(f"  {progress}: round {r + 1}/{warmup + repeats}"
                  f"{' (warm-up)' if r < warmup else ''}", file=sys.stderr, flush=True)
    return times


def median(xs: Iterable[float]) -> float:
    return float(statistics.median(list(xs)))


def spread(xs: list[float]) -> str:
    """'min..max' of the repeats, to show how noisy a median is."""
    return f"{min(xs):.3g}..{max(xs):.3g}" if xs else ""


def table(rows: list[dict], floatfmt: str = ".3g") -> str:
    return tabulate(rows, headers="keys", floatfmt=floatfmt, missingval="")


def heading(text: str) -> None:
    print(f"\n== {text}", flush=True)


def bar(name: str, measured: float, threshold: float, op: str, note: str = "") -> bool:
    """Print one bar (human + machine line); op is '>=' or '<='."""
    ok = bool(measured >= threshold) if op == ">=" else bool(measured <= threshold)
    verdict = "PASS" if ok else "FAIL"
    print(f"BAR  {name}: {measured:.3g} (bar {op} {threshold:g})  {verdict}{'  ' + note if note else ''}", flush=True)
    print("BAR " + json.dumps({"name": name, "measured": float(measured), "bar": f"{op} {threshold:g}", "op": op,
                               "threshold": threshold, "pass": ok, "note": note}), flush=True)
    return ok


def _status_kib(key: str) -> int | None:
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith(key + ":"):
                    return int(line.split()[1])
    except OSError:
        pass
    return None


def current_rss_bytes() -> int:
    """Resident set size now (Linux /proc/self/status VmRSS)."""
    kib = _status_kib("VmRSS")
    if kib is None:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    return kib * 1024


def reset_peak_rss() -> bool:
    """Reset this process's peak RSS (VmHWM) to its current RSS (Linux >= 4.0:
    `echo 5 > /proc/self/clear_refs`); False where that is not possible."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def peak_rss_bytes() -> int:
    """Peak resident set size of this process's memory map (VmHWM). Not
    ru_maxrss: a child inherits its parent's RSS at fork into ru_maxrss."""
    kib = _status_kib("VmHWM")
    if kib is None:
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    return kib * 1024


def mib(n: float) -> float:
    return n / 2**20


def cpu_info() -> str:
    name = ""
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                name = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    return (f"torch {torch.__version__}, {torch.get_num_threads()} threads, {os.cpu_count()} CPUs "
            f"({name or 'unknown CPU'}), load average {load:.2f}")


def gpu_info() -> str:
    if not torch.cuda.is_available():
        return "no CUDA device"
    p = torch.cuda.get_device_properties(0)
    return f"{p.name}, {p.total_memory / 2**30:.0f} GiB, CUDA {torch.version.cuda}"


# ------------------------------------------------------------- counted work


def scc_macs(nodes: int, features: int, out_features: int, k: int, impl: str) -> int:
    """Multiply-adds of one SCC forward pass for one sample: the kNN distance
    matmul (N N D) plus the edge projection (factorised: 2 N D D'; literal:
    N k 2D D')."""
    knn = nodes * nodes * features
    if impl == "literal":
        return knn + nodes * k * 2 * features * out_features
    return knn + 2 * nodes * features * out_features


class MacCounter:
    """Forward multiply-adds of Conv2d / ConvTranspose2d / Linear / SCC modules
    (forward hooks; per sample: divide by the batch). Use as a context manager."""

    def __init__(self, model: torch.nn.Module):
        from fau.model.scc import SCC

        self.model, self.scc_type = model, SCC
        self.by_kind: dict[str, int] = {}
        self.handles = []

    def _add(self, kind: str, n: int) -> None:
        self.by_kind[kind] = self.by_kind.get(kind, 0) + int(n)

    def _hook(self, module, inputs, output) -> None:
        nn = torch.nn
        x = inputs[0]
        if isinstance(module, nn.ConvTranspose2d):  # every input pixel scatters a Cout x kh x kw patch
            kh, kw = module.kernel_size
            self._add("deconv", x.numel() * (module.out_channels // module.groups) * kh * kw)
        elif isinstance(module, nn.Conv2d):
            kh, kw = module.kernel_size
            self._add("conv", output.numel() * (module.in_channels // module.groups) * kh * kw)
        elif isinstance(module, nn.Linear):
            self._add("linear", output.numel() * module.in_features)
        elif isinstance(module, self.scc_type):
            b, c, h, w = x.shape
            self._add("scc", b * scc_macs(c, h * w, h * w, module.k, module.impl))

    def __enter__(self) -> "MacCounter":
        nn = torch.nn
        for m in self.model.modules():
            if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d, nn.Linear, self.scc_type)):
                self.handles.append(m.register_forward_hook(self._hook))
        return self

    def __exit__(self, *exc) -> None:
        for h in self.handles:
            h.remove()

    @property
    def total(self) -> int:
        return sum(self.by_kind.values())
