"""Predictions and metrics: per fold (`evaluate_fold`) and pooled (`pool`).

A fold's TEST subjects are predicted on every row (also rows with some AU not
coded); metrics leave a frame out only for the AUs it lacks a label for.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Mapping, Optional

import numpy as np
import pandas as pd
import torch

from . import atomic
from .config import Config
from .annotations import read_annotations
from .errors import FauError
from .inference import load_model, predict
from .metrics import METRICS, metrics_table
from .train import select_device


def evaluate_fold(cfg: Config, annotations_csv: str | Path, fold: dict, model_path: str | Path,
                  predictions_csv: str | Path, metrics_csv: str | Path, threads: Optional[int] = None
                  ) -> pd.DataFrame:
    """Predict the fold's test subjects with the fold's model; write the
    predictions table (docs/architecture.md) and the metrics table; return
    the metrics table."""
    annotations_csv = Path(annotations_csv)
    prev = torch.get_num_threads()
    if threads:
        torch.set_num_threads(max(1, int(threads)))
    try:
        device = select_device(cfg.train.device)
        model, meta = load_model(model_path, device)
        aus = list(meta["aus"])
        df = read_annotations(annotations_csv, aus)
        test = df[df["subject"].astype(str).isin([str(s) for s in fold["test"]])]
        if test.empty:
            raise FauError(f"{annotations_csv}: no rows for the test subjects of {fold['name']} "
                           f"({', '.join(map(str, fold['test'][:5]))}...)")
        workers = max(0, (threads or 1) - 1) if device.type == "cuda" else 0
        pred = predict(model, test, annotations_csv.parent, aus, int(meta["model_config"]["input_size"]),
                       meta["normalization"], cfg.eval.batch_size, workers)
    finally:
        torch.set_num_threads(prev)
    metrics = metrics_table(pred, aus)
    atomic.write_csv(Path(predictions_csv), pred)
    atomic.write_csv(Path(metrics_csv), metrics)
    return metrics


def _records(table: pd.DataFrame) -> dict:
    return {r["au"]: {m: float(r[m]) for m in METRICS} | {"n": int(r["n"])} for _, r in table.iterrows()}


def _aus_of(pred: pd.DataFrame) -> list[str]:
    return [c[:-5] for c in pred.columns if c.endswith("_true")]


def read_predictions(path: str | Path) -> pd.DataFrame:
    """A fold's predictions table; FauError naming the file if missing or not one."""
    path = Path(path)
    try:
        p = pd.read_csv(path, dtype={"subject": str, "video": str, "task": str})
    except FileNotFoundError:
        raise FauError(f"{path}: missing (run the evaluate stage for this fold first)") from None
    if not _aus_of(p):
        raise FauError(f"{path}: no AUxx_true / AUxx_pred columns")
    return p


def pool(predictions: Mapping[str, str | Path], metrics_csv: str | Path, metrics_json: str | Path,
         folds_csv: str | Path) -> dict:
    """Pool the folds' predictions (fold name -> predictions table): write
    `metrics_csv` (pooled per AU + mean), `folds_csv` (fold, au, icc, mae,
    pcc, n) and `metrics_json`; return the JSON's content. The fold sd is the
    sample sd (ddof 1; NaN for one fold)."""
    preds, per_fold = [], []
    for name, path in predictions.items():
        p = read_predictions(path)
        preds.append(p.assign(fold=name))
        per_fold.append(metrics_table(p, _aus_of(p)).assign(fold=name))
    if not preds:
        raise FauError(f"{metrics_json}: no folds to pool")
    aus = _aus_of(preds[0])
    pooled = metrics_table(pd.concat(preds, ignore_index=True), aus)
    folds = pd.concat(per_fold, ignore_index=True)[["fold", "au", *METRICS, "n"]]
    mean_sd = {}
    for au in [*aus, "mean"]:
        sub = folds[folds["au"] == au]
        mean_sd[au] = {}
        for m in METRICS:
            v = sub[m].to_numpy(float)
            v = v[np.isfinite(v)]
            mean_sd[au][f"{m}_mean"] = float(v.mean()) if len(v) else float("nan")
            mean_sd[au][f"{m}_sd"] = float(v.std(ddof=1)) if len(v) > 1 else float("nan")
    rec = _records(pooled)
    result = {"pooled": {au: rec[au] for au in aus}, "mean": rec["mean"],
              "folds": {f: _records(g) for f, g in folds.groupby("fold", sort=False)},
              "fold_mean_sd": mean_sd}
    atomic.write_csv(Path(metrics_csv), pooled)
    atomic.write_csv(Path(folds_csv), folds)
    atomic.write_text(Path(metrics_json), json.dumps(result, indent=2) + "\n")
    return result

