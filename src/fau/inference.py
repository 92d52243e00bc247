"""Inference with a trained model: load `model.pt` (`load_model`), turn a
batch of network inputs into AU intensities (`intensities`, the one place
that does, with the optional flip test), and predict intensities
(`predict`) or heatmaps (`predict_heatmaps`) for rows of an annotation
table (aligned crops). Used by evaluation, the report, `fau predict` and
the MLflow pyfunc.
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
from .heatmaps import au_intensities
from .model import FauNet, build_model
from .train import select_device

ID_COLUMNS = ["video", "subject", "task", "frame", "imgpath"]


def model_config_from(d: dict) -> ModelConfig:
    """The ModelConfig stored in model.pt (backbone weights not re-loaded)."""
    d = dict(d)
    scc = SCCConfig(**d.pop("scc"))
    d["head_channels"] = tuple(d["head_channels"])
    d["backbone_weights"] = None
    return ModelConfig(**d, scc=scc)


def input_window(meta: dict) -> float:
    """A model file's `model.input_window`, as loading reads its config
    (`model_config_from`: files written before windows get the default, 1)."""
    return float(model_config_from(meta["model_config"]).input_window)


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


def _peaks(maps: torch.Tensor) -> np.ndarray:
    """Heatmaps (B, P, h, w) -> each map's peak (B, P) float64."""
    return maps.float().flatten(2).amax(dim=2).double().cpu().numpy()


@torch.no_grad()
def intensities(model: FauNet, x: torch.Tensor, flip_test: bool = True, bf16: bool = False
                ) -> tuple[np.ndarray, torch.Tensor]:
    """Network inputs (B, 3, S, S) on the model's device -> AU intensities
    (B, A) float64 and the heatmaps of x (B, P, S/4, S/4) float32.

    flip_test: the mean of x's intensities and of its mirror image's (the
    flip test of Simple Baselines). A mirror swaps the two points of a
    bilateral AU; an AU's intensity is the mean over its two points, so no
    channel needs swapping back (a midline AU's pair, AU17's, likewise).
    bf16: autocast (CUDA)."""
    with torch.autocast(device_type=x.device.type, dtype=torch.bfloat16, enabled=bf16):
        maps = model(x).float()  # (B, P, S/4, S/4)
        out = au_intensities(_peaks(maps))  # (B, A)
        if flip_test:
            mirrored = model(torch.flip(x, dims=[3]))  # (B, P, S/4, S/4), left and right swapped
            out = (out + au_intensities(_peaks(mirrored))) / 2
    return out, maps


@torch.no_grad()
def _forward(model: FauNet, df: pd.DataFrame, table_dir: Path, aus: list[str], input_size: int,
             normalization: str, batch_size: int, workers: int, desc: str, flip_test: bool, window: float = 1.0):
    """Yields (dataset, batch indices, AU intensities (B, A), heatmaps (B, P, h, w) on CPU)."""
    device = next(model.parameters()).device
    ds = AUDataset(df, table_dir, aus, input_size, normalization, targets=False, window=window)
    loader = DataLoader(ds, batch_size=batch_size, shuffle=False, num_workers=workers)
    for batch in tqdm(loader, desc=desc, file=sys.stderr, leave=False):
        inten, maps = intensities(model, batch["image"].to(device), flip_test)
        yield ds, batch["index"].numpy(), inten, maps.cpu()


def predict(model: FauNet, annotations_df: pd.DataFrame, table_dir: str | Path, aus: list[str], input_size: int,
            normalization: str = "imagenet", batch_size: int = 32, workers: int = 0, flip_test: bool = True,
            window: float = 1.0) -> pd.DataFrame:
    """Predicted intensities for every row: video, subject, task, frame,
    imgpath, then AUxx_true, AUxx_pred per AU (row order kept)."""
    model.eval()
    df = annotations_df.reset_index(drop=True)
    pred = np.full((len(df), len(aus)), np.nan)
    for _, idx, inten, _ in _forward(model, df, Path(table_dir), aus, input_size, normalization, batch_size,
                                     workers, "predict", flip_test, window):
        pred[idx] = inten  # (B, A)
    table = pd.DataFrame({c: df[c] if c in df.columns else "" for c in ID_COLUMNS})
    for a, au in enumerate(aus):
        table[f"{au}_true"] = df[au].to_numpy(float)
        table[f"{au}_pred"] = pred[:, a]
    return table


def predict_heatmaps(cfg: Config, model_path: str | Path, rows: pd.DataFrame, table_dir: str | Path
                     ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """For figures: the input-size crops (n, S, S, 3) uint8 RGB, predicted
    heatmaps (n, P, S/4, S/4) and AU intensities (n, A) as evaluation gives
    them (`eval.flip_test`)."""
    model, meta = load_model(model_path, select_device(cfg.train.device))
    aus, size = list(meta["aus"]), int(meta["model_config"]["input_size"])
    rows = rows.reset_index(drop=True)
    if rows.empty:
        return np.zeros((0, size, size, 3), np.uint8), np.zeros((0, 2 * len(aus), size // 4, size // 4)), \
            np.zeros((0, len(aus)))
    maps, images, values = [], [], []
    for ds, idx, inten, out in _forward(model, rows, Path(table_dir), aus, size, meta["normalization"],
                                        cfg.eval.batch_size, 0, "heatmaps", cfg.eval.flip_test,
                                        input_window(meta)):
        maps.append(out.numpy())
        values.append(inten)
        images += [ds.image(int(i))[0] for i in idx]
    return np.stack(images), np.concatenate(maps), np.concatenate(values)
