"""The command of every dvc.yaml stage (not a rule's script): run Snakemake
for the stage's targets, and decide whether its rules must run again.

    python workflow/scripts/dvc_stage.py STAGE --rules RULE... [--until RULE] -- TARGET...

The stage's outputs are `persist: true`, so DVC leaves them in place and
this decides, from dvc.lock:

- the outputs on disk are exactly those dvc.lock records for the stage: DVC
  runs the stage because a dependency, parameter or piece of code changed
  (or `dvc repro --force`): its rules are forced to run again
  (`snakemake --forcerun RULE...`), as DVC means;
- otherwise (no record yet, or Snakemake has made newer outputs since, e.g.
  by `make run`): Snakemake runs with its own triggers, as `make run` does,
  so that outputs already made are only recorded, not made again.

DVC hashes files as md5 of their bytes and folders as md5 of the JSON list
of their files' `{"md5", "relpath"}` (sorted by relpath) plus ".dir"; this
recomputes that to compare with dvc.lock.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import yaml


def file_md5(path: Path) -> str:
    h = hashlib.md5()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def dir_md5(path: Path) -> str:
    entries = [{"md5": file_md5(f), "relpath": f.relative_to(path).as_posix()}
               for f in path.rglob("*") if f.is_file()]
    entries.sort(key=lambda e: e["relpath"])
    return hashlib.md5(json.dumps(entries, sort_keys=True).encode()).hexdigest() + ".dir"


def _files(path: Path) -> list[Path]:
    return [f for f in path.rglob("*") if f.is_file()]


def matches_lock(outs: list[dict], root: Path) -> bool:
    """Whether every output on disk is the one dvc.lock records."""
    for out in outs:  # cheap checks first: existence, size, number of files
        path = root / out["path"]
        if not path.exists():
            return False
        if out.get("md5", "").endswith(".dir"):
            files = _files(path)
            if len(files) != out.get("nfiles", len(files)) or sum(f.stat().st_size for f in files) != out.get(
                    "size", sum(f.stat().st_size for f in files)):
                return False
        elif path.stat().st_size != out.get("size", path.stat().st_size):
            return False
    for out in outs:
        path, md5 = root / out["path"], out.get("md5")
        if md5 is None or (dir_md5(path) if md5.endswith(".dir") else file_md5(path)) != md5:
            return False
    return True


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("stage", help="the dvc.yaml stage running this")
    ap.add_argument("--rules", nargs="+", required=True, help="the Snakemake rules the stage consists of")
    ap.add_argument("--until", default=None, help="stop at this rule (snakemake --until)")
    ap.add_argument("targets", nargs="+", help="Snakemake targets")
    args = ap.parse_args(argv)

    lock_path = Path("dvc.lock")
    lock = yaml.safe_load(lock_path.read_text()) if lock_path.is_file() else None
    entry = ((lock or {}).get("stages") or {}).get(args.stage)
    cmd = [sys.executable, "-m", "snakemake", "--cores", "all", "--rerun-incomplete"]
    if entry is not None and matches_lock(entry.get("outs", []), Path.cwd()):
        print(f"dvc stage {args.stage}: its outputs are those dvc.lock records and DVC runs it again: "
              f"forcing rules {' '.join(args.rules)}", file=sys.stderr)
        cmd += ["--forcerun", *args.rules]
    else:
        why = "not recorded in dvc.lock yet" if entry is None else "differ from dvc.lock's record (made since)"
        print(f"dvc stage {args.stage}: outputs {why}: Snakemake makes only what is missing or out of date, "
              "DVC records the rest", file=sys.stderr)
        cmd += ["--rerun-triggers", "mtime", "params", "input", "code"]
    if args.until:
        cmd += ["--until", args.until]
    cmd += ["--", *args.targets]
    sys.stderr.flush()
    return subprocess.call(cmd, env=dict(os.environ))


if __name__ == "__main__":
    sys.exit(main())
