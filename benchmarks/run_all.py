"""Run every benchmark in turn (what `make bench` runs) and summarise the bars.

    python benchmarks/run_all.py [--quick] [--device auto|cpu|cuda] [--only scc,train_step,...] [--e2e]

Each script runs as its own subprocess (fresh memory, no state shared); its
output streams through. --quick and --device are passed to the scripts that
take them. end_to_end.py (the whole DAG from clean, several minutes) runs in
a full run and is skipped with --quick unless --e2e is given; real_faces.py
then runs its fold models on real photos. At the end: a
table of every bar (name, measured, bar, PASS/FAIL); exit status 1 when a bar
fails or a script fails.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import shutil
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
SCRIPTS = ["scc", "train_step", "landmarks", "predict", "scale", "mlflow_outage", "end_to_end", "real_faces"]
# --device / --quick / --threads; end_to_end.py takes --cores / --keep only, real_faces.py --run
TAKES_FLAGS = {"scc", "train_step", "landmarks", "predict", "scale", "mlflow_outage"}


def run_script(name: str, args: argparse.Namespace, extra: list[str] = ()) -> tuple[int, list[dict], float]:
    cmd = [sys.executable, "-u", str(HERE / f"{name}.py"), *extra]
    if name in TAKES_FLAGS:
        cmd += ["--device", args.device] + (["--quick"] if args.quick else [])
        cmd += ["--threads", str(args.threads)] if args.threads else []
    print(f"\n######## {' '.join(cmd[2:])}", flush=True)
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True, cwd=HERE.parent)
    bars = []
    assert proc.stdout is not None
    for line in proc.stdout:
        if line.startswith("BAR {"):
            bars.append(json.loads(line[4:]))
            continue  # the human line above it says the same
        sys.stdout.write(line)
        sys.stdout.flush()
    rc = proc.wait()
    return rc, bars, time.perf_counter() - t0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="smoke run: fewer repeats / frames")
    ap.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto")
    ap.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: os.cpu_count())")
    ap.add_argument("--only", default=None, help=f"comma-separated subset of {','.join(SCRIPTS)}")
    ap.add_argument("--e2e", action="store_true", help="run end_to_end.py with --quick too")
    args = ap.parse_args()
    names = args.only.split(",") if args.only else list(SCRIPTS)
    unknown = [n for n in names if n not in SCRIPTS]
    if unknown:
        ap.error(f"unknown benchmark {unknown[0]!r}; expected some of {','.join(SCRIPTS)}")
    if args.quick and not args.e2e and "end_to_end" in names and not args.only:
        names.remove("end_to_end")
        names.remove("real_faces")
        print("(--quick: end_to_end.py and real_faces.py, which tests its models, skipped; --e2e runs them)")
    keep = Path(tempfile.mkdtemp(prefix="fau-bench-e2e-"))  # end_to_end's run, for real_faces' models

    rows, failed_scripts, wall = [], [], {}
    for name in names:
        extra = {"end_to_end": ["--keep", str(keep)],
                 "real_faces": ["--run", str(keep / "results" / "synth_bp4d")] if "end_to_end" in names else []}
        rc, bars, secs = run_script(name, args, extra.get(name, []))
        wall[name] = secs
        if rc != 0:
            failed_scripts.append(name)
        if rc != 0 and all(b["pass"] for b in bars):  # a failed bar exits 1 too: that row says it already
            rows.append({"name": f"{name}.py", "measured": f"exit {rc}", "bar": "exit 0", "result": "FAIL"})
        elif rc == 0 and not all(b["pass"] for b in bars):
            rows.append({"name": f"{name}.py exits 0 with a failed bar", "measured": "exit 0", "bar": "exit 1",
                         "result": "FAIL"})
        for b in bars:
            rows.append({"name": b["name"], "measured": f"{b['measured']:.3g}", "bar": b["bar"],
                         "result": "PASS" if b["pass"] else "FAIL"})

    print("\n######## summary" + (" (--quick: rougher figures)" if args.quick else ""))
    try:
        from tabulate import tabulate

        print(tabulate(rows, headers="keys", disable_numparse=True))
    except ImportError:
        for r in rows:
            print(f"{r['name']:70s} {r['measured']:>10s} {r['bar']:>8s} {r['result']}")
    print("script wall times: " + ", ".join(f"{k} {v:.0f} s" for k, v in wall.items()))
    shutil.rmtree(keep, ignore_errors=True)
    n_fail = sum(r["result"] == "FAIL" for r in rows)
    print(f"{len(rows) - n_fail} PASS, {n_fail} FAIL")
    return 1 if n_fail else 0


if __name__ == "__main__":
    sys.exit(main())
