"""Predictions and metrics: per fold (`evaluate_fold`) and pooled (`pool`).

A fold's TEST subjects are predicted on every row (also rows with some AU not
coded); metrics leave a frame out only for the AUs it lacks a label for.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Optional

import numpy as np
import pandas as pd
import torch
from torch.utils.data import DataLoader
from tqdm import tqdm

from . import atomic
from .config import Config, ModelConfig, SCCConfig
from .data import AUDataset, read_annotations
from .errors import FauError
from .heatmaps import au_intensities, decode
from .metrics import METRICS, metrics_table
from .model import STRIDE, FauNet, build_model
from .train import select_device

ID_COLUMNS = ["video", "subject", "task", "frame", "imgpath"]


def model_config_from(d: dict) -> ModelConfig:
    """The ModelConfig stored in model.pt (backbone weights not re-loaded)."""
    d = dict(d)
    scc = SCCConfig(**d.pop("scc"))
    d["head_channels"] = tuple(d["head_channels"])
    d["backbone_weights"] = None
    return ModelConfig(**d, scc=scc)


def load_model(path: str | Path, device: torch.device | str = "cpu") -> tuple[FauNet, dict]:
    """The trained network (eval mode) and model.pt's metadata
    (model_config, aus, normalization, ...)."""
    path = Path(path)
    try:
        meta = torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise FauError(f"{path}: missing (run `fau train` for this fold first)") from None
    except Exception as e:
        raise FauError(f"{path}: not a readable model file ({type(e).__name__})") from None
    if not isinstance(meta, dict) or not {"state_dict", "model_config", "aus"} <= set(meta):
        raise FauError(f"{path}: not a fau model file (expected state_dict, model_config and aus)")
    model = build_model(model_config_from(meta["model_config"]), 2 * len(meta["aus"]))
    try:
        model.load_state_dict(meta["state_dict"])
    except RuntimeError as e:
        raise FauError(f"{path}: weights do not fit the stored model config ({str(e).splitlines()[0]})") from None
    return model.to(device).eval(), meta


@torch.no_grad()
def _forward(model: FauNet, df: pd.DataFrame, table_dir: Path, aus: list[str], input_size: int,
             normalization: str, batch_size: int, workers: int, desc: str):
    """Yields (dataset, batch indices, heatmaps (B, P, h, w) on CPU)."""
    device = next(model.parameters()).device
    ds = AUDataset(df, table_dir, aus, input_size, normalization, targets=False)
    loader = DataLoader(ds, batch_size=batch_size, shuffle=False, num_workers=workers)
    for batch in tqdm(loader, desc=desc, file=sys.stderr, leave=False):
        out = model(batch["image"].to(device)).float().cpu()  # (B, P, S/4, S/4)
        yield ds, batch["index"].numpy(), out


def predict(model: FauNet, annotations_df: pd.DataFrame, table_dir: str | Path, aus: list[str], input_size: int,
            normalization: str = "imagenet", batch_size: int = 32, workers: int = 0) -> pd.DataFrame:
    """Predicted intensities for every row: video, subject, task, frame,
    imgpath, then AUxx_true, AUxx_pred per AU (row order kept)."""
    model.eval()
    df = annotations_df.reset_index(drop=True)
    pred = np.full((len(df), len(aus)), np.nan)
    for _, idx, out in _forward(model, df, Path(table_dir), aus, input_size, normalization, batch_size, workers,
                                "predict"):
        _, maxvals = decode(out, STRIDE)  # (B, P)
        pred[idx] = au_intensities(maxvals)  # (B, A)
    table = pd.DataFrame({c: df[c] if c in df.columns else "" for c in ID_COLUMNS})
    for a, au in enumerate(aus):
        table[f"{au}_true"] = df[au].to_numpy(float)
        table[f"{au}_pred"] = pred[:, a]
    return table


def predict_heatmaps(cfg: Config, model_path: str | Path, rows: pd.DataFrame, table_dir: str | Path
                     ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """For figures: the input-size crops (n, S, S, 3) uint8 RGB, predicted
    heatmaps (n, P, S/4, S/4) and AU intensities (n, A)."""
    model, meta = load_model(model_path, select_device(cfg.train.device))
    aus, size = list(meta["aus"]), int(meta["model_config"]["input_size"])
    rows = rows.reset_index(drop=True)
    if rows.empty:
        return np.zeros((0, size, size, 3), np.uint8), np.zeros((0, 2 * len(aus), size // 4, size // 4)), \
            np.zeros((0, len(aus)))
    maps, images = [], []
    for ds, idx, out in _forward(model, rows, Path(table_dir), aus, size, meta["normalization"],
                                 cfg.eval.batch_size, 0, "heatmaps"):
        maps.append(out.numpy())
        images += [ds.image(int(i))[0] for i in idx]
    heatmaps = np.concatenate(maps)
    return np.stack(images), heatmaps, au_intensities(heatmaps.reshape(*heatmaps.shape[:2], -1).max(axis=2))


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

