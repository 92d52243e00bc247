"""`fau train`, `fau evaluate`, `fau pool`: the model commands.

They read `<out>/folds.json` and `<out>/annotations.csv` (`<out>` =
results/<dataset name>, or --out) and write to `<out>/<fold>/`; with
--parent (the workflow's mlflow/parent.json) they log to the fold's MLflow
child run (pool: to the parent run).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from .config import Config
from .errors import FauError


def read_folds(out: Path) -> list[dict]:
    path = out / "folds.json"
    try:
        folds = json.loads(path.read_text())
    except FileNotFoundError:
        raise FauError(f"{path}: missing (run `fau folds` first)") from None
    except json.JSONDecodeError as e:
        raise FauError(f"{path}: not valid JSON ({e.msg})") from None
    if not isinstance(folds, list) or not all(isinstance(f, dict) and {"name", "train", "test"} <= set(f)
                                              for f in folds):
        raise FauError(f"{path}: expected a list of {{name, train, test}} objects")
    return folds


def find_fold(out: Path, name: str) -> dict:
    folds = read_folds(out)
    for f in folds:
        if f["name"] == name:
            return f
    raise FauError(f"{out / 'folds.json'}: no fold named '{name}' (has {', '.join(f['name'] for f in folds)})")


def _common(p: argparse.ArgumentParser, fold: bool = True) -> None:
    if fold:
        p.add_argument("--fold", required=True, help="fold name as in folds.json, e.g. fold1")
        p.add_argument("--threads", type=int, default=None, help="CPU threads for this job (and data workers)")
    p.add_argument("--out", type=Path, default=None, help="results folder of the dataset (default results/<name>)")
    p.add_argument("--parent", type=Path, default=None,
                   help="mlflow/parent.json of the workflow run: log to MLflow under it")


def _fold_run(args: argparse.Namespace, cfg: Config, out: Path, fold_dir: Path):
    from .mlflow_runs import FoldRun, open_fold_run

    if args.parent is None:
        return FoldRun(None, None)
    frames = out / "index" / "frames.csv"
    return open_fold_run(cfg, args.parent, fold_dir, args.fold,
                         dataset_file=frames if frames.exists() else out / "annotations.csv")


def add_train(p: argparse.ArgumentParser) -> None:
    _common(p)


def run_train(args: argparse.Namespace, cfg: Config) -> int:
    from .config import to_plain
    from . import atomic
    from .train import train_fold

    out = args.out or cfg.out_dir
    fold = find_fold(out, args.fold)
    fold_dir = out / fold["name"]
    run = _fold_run(args, cfg, out, fold_dir)
    try:
        result = train_fold(cfg, out / "annotations.csv", fold, fold_dir,
                            on_epoch=lambda epoch, m: run.log_metrics(m, step=epoch), threads=args.threads)
    except BaseException:
        run.finish("FAILED")
        raise
    if run.enabled:
        cfg_file = fold_dir / "config.json"
        atomic.write_text(cfg_file, json.dumps(to_plain(cfg), indent=2) + "\n")
        run.log_artifact(cfg_file, "config")
        run.log_artifact(fold_dir / "model.pt", "model")
        run.log_artifact(fold_dir / "history.csv", "model")
        run.finish()
    print(f"{fold['name']}: {result['n_train']} frames, {result['epochs']} epochs, final loss {result['loss']}: "
          f"{result['model']}")
    return 0


def add_evaluate(p: argparse.ArgumentParser) -> None:
    _common(p)


def run_evaluate(args: argparse.Namespace, cfg: Config) -> int:
    from .evaluate import evaluate_fold

    out = args.out or cfg.out_dir
    fold = find_fold(out, args.fold)
    fold_dir = out / fold["name"]
    metrics = evaluate_fold(cfg, out / "annotations.csv", fold, fold_dir, threads=args.threads)
    run = _fold_run(args, cfg, out, fold_dir)
    if run.enabled:
        run.log_metrics({f"{m}_{r['au']}": r[m] for _, r in metrics.iterrows() for m in ("icc", "mae", "pcc")})
        run.log_artifact(fold_dir / "predictions.csv", "evaluation")
        run.log_artifact(fold_dir / "metrics.csv", "evaluation")
        run.finish()
    print(metrics.to_string(index=False, float_format=lambda v: f"{v:.3f}"))
    return 0


def add_pool(p: argparse.ArgumentParser) -> None:
    _common(p, fold=False)


def run_pool(args: argparse.Namespace, cfg: Config) -> int:
    from .evaluate import pool
    from .mlflow_runs import parent_run

    out = args.out or cfg.out_dir
    result = pool([out / f["name"] for f in read_folds(out)], out)
    if args.parent is not None:
        run = parent_run(args.parent)
        rows = {**result["pooled"], "mean": result["mean"]}
        run.log_metrics({f"pooled_{m}_{au}": v[m] for au, v in rows.items() for m in ("icc", "mae", "pcc")})
        for name in ("metrics.json", "metrics.csv", "metrics_folds.csv"):
            run.log_artifact(out / name, "metrics")
    m = result["mean"]
    print(f"pooled mean over AUs: ICC(3,1) {m['icc']:.3f}  MAE {m['mae']:.3f}  PCC {m['pcc']:.3f}  -> {out}")
    return 0
