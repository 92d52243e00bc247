"""Torch Dataset over the annotation table (`annotations.csv`).

Each row: the crop at `imgpath` (relative to the table's folder), its
model's window (`model.input_window`) resized to the model's input size, its
AU centre points moved and scaled the same way,
normalised, and (for training) the heatmap targets of `fau.heatmaps.encode`.
Point order: for each AU in the given order, point 1 then point 2.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pandas as pd
import torch
from torch.utils.data import Dataset

from .annotations import check_columns, point_columns
from .augment import augment
from .config import AugmentConfig
from .errors import FauError
from .heatmaps import encode
from .preprocess import input_box, to_input

CACHE_BYTES = 1 << 30  # training crops kept decoded in memory up to this size

IMAGENET_MEAN = np.array([0.485, 0.456, 0.406], np.float32)
IMAGENET_STD = np.array([0.229, 0.224, 0.225], np.float32)
TF_MEAN = np.array([123.68, 116.78, 103.94], np.float32)  # TF-slim mean-pixel subtraction (RGB)


def load_rgb(path: Path) -> np.ndarray:
    """(H, W, 3) uint8 RGB; FauError naming the file if unreadable."""
    img = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if img is None:
        raise FauError(f"{path}: cannot read image (missing or not an image)")
    return cv2.cvtColor(img, cv2.COLOR_BGR2RGB)


def normalise(img: np.ndarray, mode: str) -> np.ndarray:
    """uint8 (S, S, 3) RGB -> float32 (3, S, S): 'imagenet' (torchvision),
    'tf_mean', or 'per_crop': each channel minus its own mean over the crop,
    then divided by the sd of the result (one sd for all three channels,
    which keeps their relative contrast) + 1 grey level (finite for a flat
    crop). The light on a face (darker, lighter) and a colour cast then
    leave the input unchanged, so a new person's skin tone and lighting do
    not move it: TF's `per_image_standardization` with the mean taken per
    channel."""
    x = img.astype(np.float32)
    if mode == "imagenet":
        x = (x / 255.0 - IMAGENET_MEAN) / IMAGENET_STD
    elif mode == "tf_mean":
        x = x - TF_MEAN
    elif mode == "per_crop":
        x = x - x.mean(axis=(0, 1))  # (S, S, 3) - (3,)
        x = x / (x.std() + 1.0)
    else:
        raise FauError(f"config key 'train.normalization' is {mode!r}; expected imagenet, tf_mean or per_crop")
    return np.ascontiguousarray(x.transpose(2, 0, 1))


class AUDataset(Dataset):
    """Items: {"image": (3, S, S) float32, "points": (P, 2) input pixels,
    "intensity": (A,) float32 (NaN = not coded), "index": row position} and,
    with targets=True, "target": (P, S/stride, S/stride) float32."""

    def __init__(self, df: pd.DataFrame, table_dir: str | Path, aus: list[str], input_size: int,
                 normalization: str = "imagenet", targets: bool = False, sigma: float = 2.0, stride: int = 4,
                 augment: AugmentConfig | None = None, seed: int = 0, window: float = 1.0):
        check_columns(df, aus, f"annotation rows of {table_dir}")
        self.df = df.reset_index(drop=True)
        self.table_dir = Path(table_dir)
        self.aus = list(aus)
        self.input_size = input_size
        self.window = float(window)  # model.input_window: the share of the crop the network sees
        self.normalization = normalization
        self.targets = targets
        self.sigma = sigma
        self.stride = stride
        self.paths = [self.table_dir / p for p in self.df["imgpath"].astype(str)]
        self.points = self.df[point_columns(self.aus)].to_numpy(np.float64).reshape(len(self.df), -1, 2)  # (R, P, 2)
        self.intensity = np.array(self.df[self.aus], np.float32)  # (R, A), a writable copy (pandas may hand out a read-only view)
        self.augment = augment if augment is not None and augment.enabled else None
        self.seed = seed
        self.epoch = 0  # set by the trainer: augmentation draws from (seed, epoch, row)
        # Training reads every crop once per epoch: keep the resized crops in
        # memory when they fit in CACHE_BYTES (the embedded default's: ~7 MB).
        self._cache: dict[int, tuple[np.ndarray, np.ndarray]] | None = \
            {} if targets and len(self.df) * 3 * input_size ** 2 <= CACHE_BYTES else None

    def __len__(self) -> int:
        return len(self.df)

    def image(self, i: int) -> tuple[np.ndarray, np.ndarray]:
        """The model's window of the crop resized to the input size (uint8 RGB)
        and the (2, 3) affine crop pixels -> input pixels applied to the points."""
        if self._cache is not None and i in self._cache:
            return self._cache[i]
        img = load_rgb(self.paths[i])
        h, w = img.shape[:2]
        s = self.input_size
        try:
            x = to_input(img, s, self.window)
        except FauError as e:
            raise FauError(f"{self.paths[i]}: {e}") from None
        if self.window >= 1:  # the whole image, scaled per axis
            out = x, np.array([[s / w, 0.0, 0.0], [0.0, s / h, 0.0]])
        else:
            x0, y0, side = input_box(w, self.window)
            r = s / side
            out = x, np.array([[r, 0.0, -x0 * r], [0.0, r, -y0 * r]])
        if self._cache is not None:
            out[0].setflags(write=False)
            self._cache[i] = out
        return out

    def __getitem__(self, i: int) -> dict:
        img, a = self.image(i)
        points = self.points[i] @ a[:, :2].T + a[:, 2]  # (P, 2) input pixels
        if self.augment is not None:
            img, points = augment(img, points, self.augment, np.random.default_rng([self.seed, self.epoch, i]))
        item = {
            "image": torch.from_numpy(normalise(img, self.normalization)),
            "points": torch.from_numpy(points.astype(np.float32)),
            "intensity": torch.from_numpy(self.intensity[i]),
            "index": i,
        }
        if self.targets:
            per_point = np.repeat(np.nan_to_num(self.intensity[i], nan=0.0), 2)  # (P,)
            item["target"] = torch.from_numpy(encode(points, per_point, self.input_size // self.stride, self.stride,
                                                     self.sigma))
        return item
