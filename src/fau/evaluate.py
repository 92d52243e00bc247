"""Predictions and metrics: per fold (`evaluate_fold`) and pooled (`pool`).

A fold's TEST subjects are predicted on every row (also rows with some AU not
coded); metrics leave a frame out only for the AUs it lacks a label for.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Mapping, Optional

import numpy as np
import pandas as pd
import torch

from . import atomic
from .config import Config, to_plain
from .annotations import read_annotations
from .errors import FauError
from .inference import input_window, load_model, model_config_from, predict
from .metrics import METRICS, metrics_table
from .train import select_device

log = logging.getLogger(__name__)


def check_trained(path: str | Path, meta: dict) -> None:
    """FauError when model.pt holds no trained epoch (nothing to evaluate)."""
    if not meta.get("history") or int(meta.get("epochs") or 0) < 1:
        raise FauError(f"{path}: an untrained model (0 epochs in its history); train it with train.epochs >= 1")


def model_config_differences(cfg: Config, meta: dict) -> list[str]:
    """`model.<key>` values of the config that differ from those model.pt was
    trained with (`backbone_weights` aside: only the initialisation)."""
    def flat(d: dict, prefix: str = "model") -> dict:
        out = {}
        for k, v in d.items():
            if isinstance(v, dict):
                out.update(flat(v, f"{prefix}.{k}"))
            elif k != "backbone_weights":
                out[f"{prefix}.{k}"] = list(v) if isinstance(v, (list, tuple)) else v
        return out

    # the file's config as loading reads it: keys added since it was written take their defaults
    stored = meta.get("model_config")
    have = flat(to_plain(model_config_from(stored)) if stored else {})
    want = flat(to_plain(cfg.model))
    return [f"{k}={have.get(k)!r} (config: {want[k]!r})" for k in sorted(want) if have.get(k) != want[k]]


def check_predictions(path: str | Path, pred: pd.DataFrame, aus: list[str]) -> None:
    """FauError when the model predicted NaN or inf anywhere: a broken
    (diverged) model, not a frame to leave out."""
    bad = {au: int((~np.isfinite(pred[f"{au}_pred"].to_numpy(float))).sum()) for au in aus}
    bad = {au: n for au, n in bad.items() if n}
    if bad:
        which = ", ".join(f"{au} {n}" for au, n in bad.items())
        raise FauError(f"{path}: the model predicts NaN or inf ({which} of {len(pred)} frames): its weights "
                       "are broken (training diverged?); no metrics written")


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
        check_trained(model_path, meta)
        differ = model_config_differences(cfg, meta)
        if differ:
            log.warning("%s was trained with %s; evaluating it as trained (the config's model.* is not used)",
                        model_path, "; ".join(differ))
        aus = list(meta["aus"])
        df = read_annotations(annotations_csv, aus)
        test = df[df["subject"].astype(str).isin([str(s) for s in fold["test"]])]
        if test.empty:
            raise FauError(f"{annotations_csv}: no rows for the test subjects of {fold['name']} "
                           f"({', '.join(map(str, fold['test'][:5]))}...)")
        workers = max(0, (threads or 1) - 1) if device.type == "cuda" else 0
        pred = predict(model, test, annotations_csv.parent, aus, int(meta["model_config"]["input_size"]),
                       meta["normalization"], cfg.eval.batch_size, workers, cfg.eval.flip_test,
                       input_window(meta))
    finally:
        torch.set_num_threads(prev)
    check_predictions(model_path, pred, aus)
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
    sample sd (ddof 1; NaN for one fold). A fold whose metric is undefined
    (NaN) is left out of that metric's mean +- sd, with a warning naming it;
    `<metric>_folds` records how many folds each is over."""
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
    mean_sd, undefined = {}, {}
    for au in [*aus, "mean"]:
        sub = folds[folds["au"] == au]
        mean_sd[au] = {}
        for m in METRICS:
            v = sub[m].to_numpy(float)
            for fold in sub["fold"][~np.isfinite(v)]:
                undefined.setdefault(fold, []).append(f"{m} {au}")
            v = v[np.isfinite(v)]
            mean_sd[au][f"{m}_mean"] = float(v.mean()) if len(v) else float("nan")
            mean_sd[au][f"{m}_sd"] = float(v.std(ddof=1)) if len(v) > 1 else float("nan")
            mean_sd[au][f"{m}_folds"] = int(len(v))  # folds the mean +- sd is over
    if undefined:  # e.g. PCC of a fold whose predictions or labels of an AU are constant
        log.warning("%s: left out of the mean +- sd over folds, undefined (NaN) there: %s", metrics_json,
                    "; ".join(f"{fold}: {', '.join(v)}" for fold, v in undefined.items()))
    rec = _records(pooled)
    result = {"pooled": {au: rec[au] for au in aus}, "mean": rec["mean"],
              "folds": {f: _records(g) for f, g in folds.groupby("fold", sort=False)},
              "fold_mean_sd": mean_sd}
    atomic.write_csv(Path(metrics_csv), pooled)
    atomic.write_csv(Path(folds_csv), folds)
    atomic.write_text(Path(metrics_json), json.dumps(result, indent=2) + "\n")
    return result

