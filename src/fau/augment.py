"""Training-time augmentation of aligned crops (`train.augment`; the paper
has none): a random horizontal flip, a small similarity (scale, rotation,
shift) and a colour change (saturation, contrast, brightness) of each crop,
with its AU points moved along. Draws come from a generator seeded with
(seed, epoch, row), so an epoch's batches are the same after a resume."""

from __future__ import annotations

import cv2
import numpy as np

from .config import AugmentConfig


def augment(img: np.ndarray, points: np.ndarray, a: AugmentConfig, rng: np.random.Generator
            ) -> tuple[np.ndarray, np.ndarray]:
    """One (S, S, 3) uint8 crop and its points (P, 2), P = 2 per AU ->
    the changed crop and points. A flip swaps each left-right pair, so point
    1 stays the image-left one (a pair on the midline, AU17's, keeps its order)."""
    s = img.shape[0]
    m = cv2.getRotationMatrix2D((s / 2, s / 2), float(rng.uniform(-a.rotate, a.rotate)),
                                float(1 + rng.uniform(-a.scale, a.scale)))  # (2, 3)
    m[:, 2] += rng.uniform(-a.shift, a.shift, size=2) * s
    flip = a.flip and rng.uniform() < 0.5
    if flip:
        m = m @ np.array([[-1.0, 0.0, s - 1.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]])  # mirror, then m
    img = cv2.warpAffine(img, m, (s, s), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT101)
    pairs = np.asarray(points, np.float64).reshape(-1, 2, 2)  # (A, 2, 2)
    out = (pairs.reshape(-1, 2) @ m[:, :2].T + m[:, 2]).reshape(-1, 2, 2)
    if flip:
        lr = pairs[:, 0, 0] < pairs[:, 1, 0] - 1.0  # (A,) pairs ordered image-left to image-right
        out[lr] = out[lr][:, ::-1]
    x = img.astype(np.float32)
    grey = x.mean(axis=2, keepdims=True)
    x = grey + (x - grey) * (1 + rng.uniform(-a.saturation, a.saturation))
    mean = x.mean()
    x = (x - mean) * (1 + rng.uniform(-a.contrast, a.contrast)) + mean * (1 + rng.uniform(-a.brightness, a.brightness))
    return np.clip(x, 0, 255).astype(np.uint8), out.reshape(-1, 2)
