"""Similarity alignment of a face to a fixed template (the crops stage and
`fau predict` share it).

`frame_to_crop(pts68, crops)` is the (2, 3) frame -> crop similarity for
`crops.alignment`:

- `rigid` (default; as OpenFace aligns faces for AU analysis): the
  least-squares similarity (rotation, uniform scale, translation; Umeyama
  1991, no reflection) taking the face's *rigid* landmarks (`RIGID`: eye
  corners, nose bridge, the jaw at ear level; 0-based dlib indices),
  which no AU of interest moves, onto the same points of a neutral face
  (src/fau/assets/neutral_face_68.csv, written by scripts/neutral_template.py).
  Expressions then move the mouth, brows and cheeks inside a steady crop.
- `eyes_mouth`: three anchors, the eye centres (means of 36-41 and 42-47)
  and the mouth centre (mean of 48-67), onto the template's `left_eye`,
  `right_eye`, `mouth`. The mouth centre moves with mouth AUs (AU12, AU17,
  AU26 ...), so the crop shifts with the expression.

Template coordinates are for a 256 x 256 crop and scale with `crops.size`.
The crop: `cv2.warpAffine(frame, M, (size, size))`, bilinear, black border.
"""

from __future__ import annotations

import functools
from importlib import resources
from pathlib import Path

import cv2
import numpy as np

from .errors import FauError

TEMPLATE_SIZE = 256  # crop size the templates' coordinates are given for
RIGID = (0, 16, 27, 28, 29, 36, 39, 42, 45)  # jaw at ear level, nose bridge, eye corners
TEMPLATE_FILE = Path(str(resources.files("fau") / "assets" / "neutral_face_68.csv"))
CLASSIC = {"left_eye": [86.0, 100.0], "right_eye": [170.0, 100.0], "mouth": [128.0, 178.0]}
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


@functools.lru_cache(maxsize=1)
def read_template() -> np.ndarray:
    """The shipped neutral face (68, 2), in 256 x 256 crop pixels."""
    try:
        data = np.loadtxt(TEMPLATE_FILE, delimiter=",", skiprows=1)
    except OSError:
        raise FauError(f"{TEMPLATE_FILE}: neutral face template missing (scripts/neutral_template.py writes it)") from None
    if data.shape != (68, 3):
        raise FauError(f"{TEMPLATE_FILE}: expected 68 rows of i,x,y")
    pts = data[:, 1:].copy()
    pts.setflags(write=False)
    return pts


def frame_to_crop(pts68: np.ndarray, crops) -> np.ndarray:
    """The (2, 3) frame -> crop similarity of one face for `crops`
    (`CropsConfig`: alignment, template, size)."""
    k = crops.size / TEMPLATE_SIZE
    method = getattr(crops, "alignment", "rigid")
    if method == "rigid":
        dst = read_template()[list(RIGID)] * k
        return similarity(np.asarray(pts68, np.float64)[list(RIGID)], dst)
    if method == "eyes_mouth":
        return similarity(anchors(pts68), template_points(crops.template) * k)
    raise FauError(f"config key 'crops.alignment' is {method!r}; expected rigid or eyes_mouth")
