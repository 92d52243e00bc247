"""Predictions and metrics: per fold (`evaluate_fold`) and pooled (`pool`).

A fold's TEST subjects are predicted on every row (also rows with some AU not
coded); metrics leave a frame out only for the AUs it lacks a label for.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import numpy as np
import pandas as pd
import torch

from . import atomic
from .config import Config
from .data import read_annotations
from .errors import FauError
from .inference import load_model, predict
from .metrics import METRICS, metrics_table
from .train import select_device


def evaluate_fold(cfg: Config, annotations_csv: str | Path, fold: dict, fold_dir: str | Path,
                  threads: Optional[int] = None) -> pd.DataFrame:
    """Predict the fold's test subjects with `<fold dir>/model.pt`; write
    predictions.csv and metrics.csv there; return the metrics table."""
    annotations_csv, fold_dir = Path(annotations_csv), Path(fold_dir)
    prev = torch.get_num_threads()
    if threads:
        torch.set_num_threads(max(1, int(threads)))
    try:
        device = select_device(cfg.train.device)
        model, meta = load_model(fold_dir / "model.pt", device)
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
    atomic.write_csv(fold_dir / "predictions.csv", pred)
    atomic.write_csv(fold_dir / "metrics.csv", metrics)
    return metrics


def _records(table: pd.DataFrame) -> dict:
    return {r["au"]: {m: float(r[m]) for m in METRICS} | {"n": int(r["n"])} for _, r in table.iterrows()}


def _aus_of(pred: pd.DataFrame) -> list[str]:
    return [c[:-5] for c in pred.columns if c.endswith("_true")]


def pool(fold_dirs: list[str | Path], out_dir: str | Path) -> dict:
    """Pool the folds' predictions.csv: write `<out>/metrics.csv` (pooled per
    AU + mean), `<out>/metrics_folds.csv` (fold, au, icc, mae, pcc, n) and
    `<out>/metrics.json`; return the JSON's content. The fold sd is the sample
    sd (ddof 1; NaN for one fold)."""
    out_dir = Path(out_dir)
    preds, per_fold = [], []
    for d in map(Path, fold_dirs):
        path = d / "predictions.csv"
        try:
            p = pd.read_csv(path, dtype={"subject": str, "video": str, "task": str})
        except FileNotFoundError:
            raise FauError(f"{path}: missing (run `fau evaluate --fold {d.name}` first)") from None
        aus = _aus_of(p)
        if not aus:
            raise FauError(f"{path}: no AUxx_true / AUxx_pred columns")
        preds.append(p.assign(fold=d.name))
        per_fold.append(metrics_table(p, aus).assign(fold=d.name))
    if not preds:
        raise FauError(f"{out_dir}: no folds to pool")
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
    atomic.write_csv(out_dir / "metrics.csv", pooled)
    atomic.write_csv(out_dir / "metrics_folds.csv", folds)
    atomic.write_text(out_dir / "metrics.json", json.dumps(result, indent=2) + "\n")
    return result

