"""`fau train`, `fau evaluate`, `fau pool`: the model commands.

Every input and output is a path argument. With --parent (a parent file of
`fau mlflow-start`) they log to MLflow: train and evaluate to the fold's
child run (recorded in --run-file), pool to the parent run. Without it,
train and evaluate log to a run of their own when the config's
mlflow.enabled is true (recorded in --run-file, default <model>.mlflow.json).
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from . import stages
from .config import Config
from .errors import FauError


def named_paths(items: list[str]) -> dict[str, Path]:
    """['fold1=a.csv', 'b/fold2.csv'] -> {'fold1': a.csv, 'fold2': b/fold2.csv} (a bare path is named by its stem)."""
    out: dict[str, Path] = {}
    for item in items:
        name, sep, path = item.partition("=")
        name, path = (name, Path(path)) if sep else (Path(item).stem, Path(item))
        if name in out:
            raise FauError(f"{item}: fold '{name}' given twice")
        out[name] = path
    return out


def _fold(p: argparse.ArgumentParser) -> None:
    p.add_argument("--annotations", type=Path, required=True, metavar="CSV", help="the annotation table")
    p.add_argument("--folds", type=Path, required=True, metavar="JSON", help="folds.json of `fau folds`")
    p.add_argument("--fold", required=True, help="fold name as in folds.json, e.g. fold1")
    p.add_argument("--model", type=Path, required=True, metavar="PT", help="the fold's model file")
    p.add_argument("--threads", type=int, default=None, help="CPU threads for this job (and data workers)")
    p.add_argument("--parent", type=Path, default=None, metavar="JSON",
                   help="MLflow parent file of `fau mlflow-start`: log to the fold's child run under it "
                        "(without it: a run of its own, when mlflow.enabled)")
    p.add_argument("--run-file", type=Path, default=None, metavar="JSON",
                   help="where the fold's MLflow run is recorded (default: <model>.mlflow.json)")


def _run_file(args: argparse.Namespace, cfg: Config) -> Path | None:
    if args.parent is None and not cfg.mlflow.enabled:
        return None
    return args.run_file or args.model.with_name(f"{args.model.stem}.mlflow.json")


def add_train(p: argparse.ArgumentParser) -> None:
    _fold(p)
    p.add_argument("--history", type=Path, required=True, metavar="CSV", help="per-epoch loss table to write")
    p.add_argument("--checkpoint", type=Path, default=None, metavar="PT",
                   help="resume state, written every epoch (default: <model>.checkpoint.pt)")


def run_train(args: argparse.Namespace, cfg: Config) -> int:
    print(stages.train(cfg, args.annotations, args.folds, args.fold, args.model, args.history,
                       checkpoint=args.checkpoint, parent=args.parent, run_file=_run_file(args, cfg),
                       threads=args.threads))
    return 0


def add_evaluate(p: argparse.ArgumentParser) -> None:
    _fold(p)
    p.add_argument("--predictions", type=Path, required=True, metavar="CSV", help="predictions table to write")
    p.add_argument("--metrics", type=Path, required=True, metavar="CSV", help="per-AU metrics table to write")


def _logging() -> None:  # warnings (a model config that differs, folds left out of mean +- sd) on stderr
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s", stream=sys.stderr)


def run_evaluate(args: argparse.Namespace, cfg: Config) -> int:
    _logging()
    print(stages.evaluate(cfg, args.annotations, args.folds, args.fold, args.model, args.predictions,
                          args.metrics, parent=args.parent, run_file=_run_file(args, cfg), threads=args.threads))
    return 0


def add_pool(p: argparse.ArgumentParser) -> None:
    p.add_argument("predictions", nargs="+", metavar="[FOLD=]CSV",
                   help="the folds' predictions tables (a bare path is named by its file name: fold1.csv)")
    p.add_argument("--out", type=Path, required=True, metavar="CSV", help="pooled metrics table to write")
    p.add_argument("--json", type=Path, required=True, metavar="JSON", help="metrics.json to write")
    p.add_argument("--folds-out", type=Path, required=True, metavar="CSV",
                   help="per-fold metrics table to write")
    p.add_argument("--parent", type=Path, default=None, metavar="JSON",
                   help="MLflow parent file of `fau mlflow-start`: log the pooled metrics there")


def run_pool(args: argparse.Namespace, cfg: Config) -> int:
    _logging()
    print(stages.pool(cfg, named_paths(args.predictions), args.out, args.json, args.folds_out, parent=args.parent))
    return 0
