"""`fau mlflow-start` and `fau report`: the workflow-level commands."""

from __future__ import annotations

import argparse
from pathlib import Path

from .config import Config


def add_mlflow_start(p: argparse.ArgumentParser) -> None:
    p.add_argument("--out", type=Path, default=None,
                   help="where to write the parent run's IDs (default <out>/mlflow/parent.json)")


def run_mlflow_start(args: argparse.Namespace, cfg: Config) -> int:
    from .mlflow_runs import PARENT_FILE, start_parent

    out = args.out or cfg.out_dir / PARENT_FILE
    info = start_parent(cfg, out)
    if info.get("enabled"):
        print(f"MLflow parent run {info['run_name']} ({info['run_id']}) at {info['uri']}")
    else:
        print("MLflow logging disabled (mlflow.enabled: false)")
    return 0


def add_report(p: argparse.ArgumentParser) -> None:
    p.add_argument("--parent", type=Path, default=None,
                   help="parent run file (mlflow/parent.json): log the report and figures there")


def run_report(args: argparse.Namespace, cfg: Config) -> int:
    from .report import write_report
    from .mlflow_runs import parent_run

    path = write_report(cfg, cfg.out_dir)
    print(f"report: {path}")
    if args.parent is not None:
        run = parent_run(args.parent)
        run.log_artifact(path, "report")
        for fig in sorted((cfg.out_dir / "figures").glob("*.png")):
            run.log_artifact(fig, "report/figures")
        run.finish()
    return 0
