"""`fau mlflow-start` and `fau report`: the workflow-level commands."""

from __future__ import annotations

import argparse
from pathlib import Path

from . import stages
from .cli_model import named_paths
from .config import Config


def add_mlflow_start(p: argparse.ArgumentParser) -> None:
    p.add_argument("--out", type=Path, required=True, metavar="JSON",
                   help="where to write the parent run's IDs (the --parent of later commands)")
    p.add_argument("--annotations", type=Path, default=None, metavar="CSV",
                   help="the annotation table: logged as the parent run's dataset input")


def run_mlflow_start(args: argparse.Namespace, cfg: Config) -> int:
    print(stages.mlflow_parent(cfg, args.out, args.annotations))
    return 0


def add_report(p: argparse.ArgumentParser) -> None:
    p.add_argument("--metrics", type=Path, required=True, metavar="JSON", help="metrics.json of `fau pool`")
    p.add_argument("--folds", type=Path, required=True, metavar="JSON", help="folds.json of `fau folds`")
    p.add_argument("--annotations", type=Path, required=True, metavar="CSV", help="the annotation table")
    p.add_argument("--predictions", nargs="+", required=True, metavar="[FOLD=]CSV",
                   help="the folds' predictions tables (a bare path is named by its file name)")
    p.add_argument("--histories", nargs="+", required=True, metavar="[FOLD=]CSV",
                   help="the folds' training histories")
    p.add_argument("--models", nargs="+", required=True, metavar="[FOLD=]PT", help="the folds' model files")
    p.add_argument("--out", type=Path, required=True, metavar="MD", help="the report to write")
    p.add_argument("--figures", type=Path, default=None, metavar="DIR",
                   help="folder for the figures (default: figures/ beside --out)")
    p.add_argument("--parent", type=Path, default=None, metavar="JSON",
                   help="MLflow parent file: log the report and figures there")


def run_report(args: argparse.Namespace, cfg: Config) -> int:
    print(stages.report(cfg, metrics_json=args.metrics, folds_json=args.folds, annotations_csv=args.annotations,
                        predictions=named_paths(args.predictions), histories=named_paths(args.histories),
                        models=named_paths(args.models), report_md=args.out,
                        figures_dir=args.figures or args.out.parent / "figures", parent=args.parent))
    return 0
