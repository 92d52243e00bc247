"""Inference with a trained model: load `model.pt` (`load_model`) and predict
AU intensities (`predict`) or heatmaps (`predict_heatmaps`) for rows of an
annotation table (aligned crops). Used by evaluation, the report and `fau
predict`.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from torch.utils.data import DataLoader
from tqdm import tqdm

from .config import Config, ModelConfig, SCCConfig
from .data import AUDataset
from .errors import FauError
from .heatmaps import au_intensities, decode
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
        raise FauError(f"{path}: weights do not fit the stored model config ({state_dict_mismatch(e)}); the "
                       "file was written by other code or edited: train the fold again") from None
    return model.to(device).eval(), meta


def state_dict_mismatch(e: RuntimeError) -> str:
    """torch's multi-line `load_state_dict` error in one short line: how many
    weights are missing, unexpected or of another shape, with examples."""
    import re

    parts, sizes = [], []
    for line in str(e).splitlines()[1:]:
        line = line.strip()
        m = re.match(r"(Missing|Unexpected) key\(s\) in state_dict: (.*)", line)
        if m:
            keys = re.findall(r'"([^"]+)"', m.group(2))
            parts.append(f"{m.group(1).lower()} {len(keys)} weights ({', '.join(keys[:2])}"
                         f"{', ...' if len(keys) > 2 else ''})")
            continue
        m = re.match(r"size mismatch for ([^:]+): copying a param with shape torch.Size\((.*?)\) from checkpoint, "
                     r"the shape in current model is torch.Size\((.*?)\)", line)
        if m:
            sizes.append(f"{m.group(1)} {m.group(2)} in the file, {m.group(3)} in the model")
    if sizes:
        parts.append(f"{len(sizes)} of another shape ({sizes[0]}{', ...' if len(sizes) > 1 else ''})")
    return "; ".join(parts) or " ".join(str(e).split())[:200]


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
