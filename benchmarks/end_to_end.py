"""Wall time of the embedded default DAG (`snakemake --cores 2`) from clean,
per stage from the rules' `benchmark:` files.

    python benchmarks/end_to_end.py [--cores 2] [--keep DIR]

Bar (issue #5): the whole DAG in <= 10 minutes on a 2-core machine.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd
import yaml

ROOT = Path(__file__).resolve().parents[1]
BAR_S = 600.0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--cores", type=int, default=2)
    ap.add_argument("--keep", type=Path, default=None, help="run in this folder and keep it")
    args = ap.parse_args()

    work = args.keep or Path(tempfile.mkdtemp(prefix="fau-e2e-"))
    for name in ["Snakefile"]:
        shutil.copy2(ROOT / name, work / name)
    for name in ["workflow", "config", "profiles", "envs"]:
        shutil.copytree(ROOT / name, work / name, dirs_exist_ok=True)
    cfg = yaml.safe_load((ROOT / "config" / "config.yaml").read_text())
    out = work / cfg["results"] / cfg["dataset"]["name"]
    shutil.rmtree(work / cfg["results"], ignore_errors=True)
    shutil.rmtree(work / cfg["dataset"]["root"], ignore_errors=True)

    env = dict(os.environ, PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}")
    t0 = time.perf_counter()
    proc = subprocess.run([str(Path(sys.executable).parent / "snakemake"), "--cores", str(args.cores)],
                          cwd=work, env=env, capture_output=True, text=True)
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        print(proc.stdout[-3000:], proc.stderr[-5000:], file=sys.stderr)
        return 1

    rows = []
    for tsv in sorted((out / "benchmarks").rglob("*.tsv")):
        b = pd.read_csv(tsv, sep="\t")
        stage = tsv.relative_to(out / "benchmarks").parts[0].removesuffix(".tsv")
        rows.append({"stage": stage, "job": tsv.stem, "s": float(b["s"].iloc[0]), "max_rss_mb": b["max_rss"].iloc[0]})
    jobs = pd.DataFrame(rows)
    per_stage = jobs.groupby("stage", sort=False).agg(jobs=("job", "count"), cpu_seconds=("s", "sum"),
                                                     max_rss_mb=("max_rss_mb", "max"))
    print(f"embedded default DAG, snakemake --cores {args.cores}, from clean ({work})")
    print(per_stage.sort_values("cpu_seconds", ascending=False).to_string(float_format=lambda v: f"{v:.1f}"))
    print(f"\nsum of job times  {jobs['s'].sum():7.1f} s  ({len(jobs)} jobs with a benchmark file)")
    print(f"wall time         {wall:7.1f} s")
    print(f"ratio to the bar  {wall / BAR_S:7.2f}  (wall / 600 s; bar: <= 1.00)  "
          f"{'PASS' if wall <= BAR_S else 'FAIL'}")
    if args.keep is None:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
