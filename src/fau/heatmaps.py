"""Heatmap targets and their decoding (the codec, separate from the model).

Encoding (the paper's): one Gaussian per AU point, sigma in output pixels,
centred at (floor(x / stride + 0.5), floor(y / stride + 0.5)) for a point
(x, y) in input pixels, peak 1, scaled by 255 x the AU's intensity.
Decoding: a point's intensity is max / 255; an AU's is the mean over its two
points clipped to [0, 5]; its location is the arg-max shifted a quarter pixel
towards the larger neighbour (Simple Baselines' `get_final_preds`), mapped
back to input pixels (x stride).
"""

from __future__ import annotations

import numpy as np
import torch

SCALE = 255.0
MAX_INTENSITY = 5.0


def encode(points: np.ndarray, intensities: np.ndarray, output_size: int, stride: int,
           sigma: float = 2.0) -> np.ndarray:
    """Targets for one image.

    points: (P, 2) x, y in input pixels; intensities: (P,) per point (an AU's
    intensity repeated for its points). Returns (P, output_size, output_size)
    float32.
    """
    points = np.asarray(points, np.float64).reshape(-1, 2)  # (P, 2)
    inten = np.asarray(intensities, np.float64).reshape(-1)  # (P,)
    centres = np.floor(points / stride + 0.5)  # (P, 2) output pixels
    grid = np.arange(output_size, dtype=np.float64)  # (S,)
    gx = np.exp(-((grid[None, :] - centres[:, 0:1]) ** 2) / (2 * sigma**2))  # (P, S) along x
    gy = np.exp(-((grid[None, :] - centres[:, 1:2]) ** 2) / (2 * sigma**2))  # (P, S) along y
    maps = gy[:, :, None] * gx[:, None, :]  # (P, S, S) separable Gaussian, peak 1
    return (maps * (SCALE * inten)[:, None, None]).astype(np.float32)


def decode(heatmaps: np.ndarray | torch.Tensor, stride: int) -> tuple[np.ndarray, np.ndarray]:
    """Locations and peak values of a batch of heatmaps.

    heatmaps: (B, P, h, w). Returns points (B, P, 2) x, y in input pixels and
    maxvals (B, P) (raw heatmap units).
    """
    hm = heatmaps.detach().float().cpu().numpy() if isinstance(heatmaps, torch.Tensor) else np.asarray(heatmaps)
    b, p, h, w = hm.shape
    flat = hm.reshape(b, p, h * w)  # (B, P, hw)
    idx = flat.argmax(axis=2)  # (B, P)
    maxvals = np.take_along_axis(flat, idx[..., None], axis=2)[..., 0]  # (B, P)
    px, py = idx % w, idx // w  # (B, P) each
    coords = np.stack([px, py], axis=-1).astype(np.float64)  # (B, P, 2)
    # Quarter-pixel shift towards the larger neighbour, where both neighbours exist.
    bi, pi = np.meshgrid(np.arange(b), np.arange(p), indexing="ij")  # (B, P) each
    inside_x = (px > 0) & (px < w - 1)
    inside_y = (py > 0) & (py < h - 1)
    xr, xl = np.clip(px + 1, 0, w - 1), np.clip(px - 1, 0, w - 1)
    yd, yu = np.clip(py + 1, 0, h - 1), np.clip(py - 1, 0, h - 1)
    dx = hm[bi, pi, py, xr] - hm[bi, pi, py, xl]  # (B, P)
    dy = hm[bi, pi, yd, px] - hm[bi, pi, yu, px]  # (B, P)
    coords[..., 0] += np.where(inside_x, np.sign(dx) * 0.25, 0.0)
    coords[..., 1] += np.where(inside_y, np.sign(dy) * 0.25, 0.0)
    return coords * stride, maxvals.astype(np.float64)


def au_intensities(maxvals: np.ndarray) -> np.ndarray:
    """Per-point peaks (B, 2A) -> AU intensities (B, A): mean of each AU's two
    points / 255, clipped to [0, 5]."""
    m = np.asarray(maxvals, np.float64)
    b, p = m.shape
    per_au = (m / SCALE).reshape(b, p // 2, 2).mean(axis=2)  # (B, A)
    return np.clip(per_au, 0.0, MAX_INTENSITY)
