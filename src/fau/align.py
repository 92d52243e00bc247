"""Similarity alignment of a face to a fixed template.

Three anchors from the 68 dlib landmarks (0-based): the image-left eye centre
(mean of 36-41), the image-right eye centre (mean of 42-47) and the mouth
centre (mean of 48-67). The least-squares similarity (rotation, uniform scale,
translation; Umeyama 1991, no reflection) mapping them onto the template's
`left_eye`, `right_eye`, `mouth` (crop pixels, `CropsConfig.template`) defines
the crop: `cv2.warpAffine(frame, M, (size, size))`, bilinear, black border.
"""

from __future__ import annotations

import cv2
import numpy as np

from .errors import FauError

TEMPLATE_KEYS = ("left_eye", "right_eye", "mouth")


def anchors(pts68: np.ndarray) -> np.ndarray:
    """(3, 2): left eye centre, right eye centre, mouth centre."""
    return np.stack([pts68[36:42].mean(axis=0), pts68[42:48].mean(axis=0), pts68[48:68].mean(axis=0)])


def template_points(template: dict) -> np.ndarray:
    try:
        return np.array([[float(v) for v in template[k]] for k in TEMPLATE_KEYS], dtype=np.float64)
    except (KeyError, TypeError, ValueError):
        raise FauError(f"config key 'crops.template' must map {', '.join(TEMPLATE_KEYS)} to [x, y]") from None


def similarity(src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """Least-squares similarity (2, 3) taking points `src` (N, 2) to `dst` (N, 2) (Umeyama)."""
    mu_s, mu_d = src.mean(axis=0), dst.mean(axis=0)
    s, d = src - mu_s, dst - mu_d
    cov = d.T @ s / len(src)  # (2, 2)
    u, sig, vt = np.linalg.svd(cov)
    e = np.diag([1.0, np.sign(np.linalg.det(u @ vt)) or 1.0])
    r = u @ e @ vt
    var = (s ** 2).sum() / len(src)
    scale = float(np.trace(np.diag(sig) @ e) / var)
    m = np.zeros((2, 3))
    m[:, :2] = scale * r
    m[:, 2] = mu_d - scale * r @ mu_s
    return m


def alignment(pts68: np.ndarray, template: dict) -> np.ndarray:
    """The (2, 3) frame -> crop similarity for one face."""
    return similarity(anchors(pts68), template_points(template))


def transform(points: np.ndarray, m: np.ndarray) -> np.ndarray:
    """Apply a (2, 3) affine to points (N, 2)."""
    return points @ m[:, :2].T + m[:, 2]


def crop(image: np.ndarray, m: np.ndarray, size: int) -> np.ndarray:
    """The aligned size x size crop."""
    return cv2.warpAffine(image, m, (size, size), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT)
