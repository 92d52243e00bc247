"""Synthetic identities from the shipped face photos (src/fau/assets/faces/).

Each photo's 68 dlib landmarks are computed once per process (cached). A
subject is a photo plus a deterministic landmark-driven shape morph, a colour
and lighting change, optional mirroring (landmark indices mirrored too), placed
on a background in a frame of the configured size: the neutral frame that
every frame of the subject's videos is warped from.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import cv2
import numpy as np

from ..config import LandmarksConfig
from ..errors import FauError
from .expressions import MIRROR, face_axes
from .warp import delaunay, ring_points, warp_piecewise

FEMALE = ("astronaut.jpg", "grace_hopper.jpg")
MALE = ("obama.jpg", "obama2.jpg", "obama3.jpg", "biden.jpg", "AverageMaleFace.jpg")
PHOTOS = FEMALE + MALE


def faces_dir() -> Path:
    return Path(str(resources.files("fau") / "assets" / "faces"))


@functools.lru_cache(maxsize=None)
def photo(name: str) -> tuple[np.ndarray, np.ndarray]:
    """(BGR image, 68 landmarks (68, 2)) of one shipped photo; cached."""
    from ..landmarks import LandmarkDetector

    path = faces_dir() / name
    img = cv2.imread(str(path))
    if img is None:
        raise FauError(f"{path}: shipped face photo missing or unreadable")
    ok, _, _, pts = LandmarkDetector(LandmarksConfig(detect_width=10_000, track=False)).detect(img)
    if not ok:
        raise FauError(f"{path}: dlib finds no face in this shipped photo")
    img.setflags(write=False)
    return img, pts


@dataclass(frozen=True)
class Subject:
    """A synthetic identity: its neutral frame and landmarks in that frame."""

    id: str
    photo: str
    mirrored: bool
    frame: np.ndarray  # (H, W, 3) uint8 BGR
    points: np.ndarray  # (68, 2) landmarks of the neutral face in the frame


def _morph(pts: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Identity shape change: random per-feature scalings about the face axes."""
    centre, u, v, iod = face_axes(pts)
    rel = pts - centre
    x, y = rel @ u, rel @ v  # (68,) coordinates along the face axes
    out_x, out_y = x.copy(), y.copy()
    out_x *= rng.uniform(0.93, 1.07)  # face width
    out_y *= rng.uniform(0.94, 1.06)  # face length
    jaw = np.arange(0, 17)
    out_x[jaw] *= rng.uniform(0.95, 1.06)  # jaw width
    eyes = np.arange(36, 48)
    for sl in (np.arange(36, 42), np.arange(42, 48)):
        c = x[sl].mean()
        out_x[sl] = c * rng.uniform(0.96, 1.05) + (x[sl] - c) * rng.uniform(0.92, 1.1)
    out_y[eyes] += rng.uniform(-0.02, 0.02) * iod
    brows = np.arange(17, 27)
    out_y[brows] += rng.uniform(-0.05, 0.04) * iod
    nose = np.arange(31, 36)
    out_y[np.arange(29, 36)] += rng.uniform(-0.04, 0.05) * iod
    out_x[nose] *= rng.uniform(0.9, 1.12)
    mouth = np.arange(48, 68)
    cm = x[mouth].mean()
    out_x[mouth] = cm + (x[mouth] - cm) * rng.uniform(0.9, 1.1)
    out_y[mouth] += rng.uniform(-0.03, 0.04) * iod
    return centre + out_x[:, None] * u[None, :] + out_y[:, None] * v[None, :]


def _background(rng: np.random.Generator, width: int, height: int) -> np.ndarray:
    """A studio-like backdrop: vertical gradient of two muted colours + soft texture."""
    top = rng.uniform(60, 200, size=3)
    bottom = top * rng.uniform(0.55, 0.9)
    t = np.linspace(0, 1, height, dtype=np.float32)[:, None, None]
    bg = (1 - t) * top[None, None, :] + t * bottom[None, None, :]  # (H, 1, 3)
    tex = rng.normal(0, 8, size=(max(2, height // 64), max(2, width // 64), 3)).astype(np.float32)
    tex = cv2.resize(tex, (width, height), interpolation=cv2.INTER_CUBIC)
    return np.clip(bg + tex, 0, 255).astype(np.uint8)


def make_subject(subject_id: str, photo_name: str, mirrored: bool, width: int, height: int,
                 rng: np.random.Generator, face_fraction: float) -> Subject:
    """Compose the neutral frame of one synthetic subject.

    The face (landmarks 0..16 span) is scaled to `face_fraction` of
    min(width, height) and centred a little above the frame centre."""
    img, pts = photo(photo_name)
    img, pts = img.copy(), pts.copy()
    if mirrored:
        img = np.ascontiguousarray(img[:, ::-1])
        pts = pts[MIRROR].copy()
        pts[:, 0] = img.shape[1] - 1 - pts[:, 0]
    # Shape morph in photo space (piecewise-affine; a ring keeps the rest still).
    morphed = _morph(pts, rng)
    ring = ring_points(pts, 1.5, 1.7, n=20, shift_y=-0.1)
    src = np.vstack([pts, ring])
    dst = np.vstack([morphed, ring])
    tris = delaunay(src, img.shape[1], img.shape[0])
    img = warp_piecewise(img, src, dst, tris)
    pts = morphed
    # Colour and lighting: per-channel gain, gamma, a linear light ramp.
    f = img.astype(np.float32) / 255.0
    f = f ** rng.uniform(0.85, 1.2)
    f *= rng.uniform(0.85, 1.12, size=3)[None, None, :]
    ang = rng.uniform(0, 2 * np.pi)
    yy, xx = np.mgrid[0:img.shape[0], 0:img.shape[1]].astype(np.float32)
    ramp = ((xx - xx.mean()) * np.cos(ang) + (yy - yy.mean()) * np.sin(ang)) / max(img.shape[:2])
    f *= (1.0 + rng.uniform(0.1, 0.35) * ramp)[..., None]
    img = np.clip(f * 255.0, 0, 255).astype(np.uint8)
    # Place it into the frame.
    face_w = np.hypot(*(pts[16] - pts[0]))
    scale = face_fraction * min(width, height) / face_w
    centre = pts.mean(axis=0)
    target = np.array([width / 2 + rng.uniform(-0.03, 0.03) * width,
                       height * rng.uniform(0.43, 0.5)])
    m = np.array([[scale, 0, target[0] - scale * centre[0]], [0, scale, target[1] - scale * centre[1]]])
    placed = cv2.warpAffine(img, m, (width, height), flags=cv2.INTER_CUBIC, borderMode=cv2.BORDER_CONSTANT)
    mask = cv2.warpAffine(np.full(img.shape[:2], 255, np.uint8), m, (width, height), flags=cv2.INTER_LINEAR)
    feather = max(3, int(0.02 * min(width, height))) | 1
    mask = cv2.erode(mask, np.ones((3, 3), np.uint8), iterations=2)
    mask = cv2.GaussianBlur(mask, (2 * feather + 1, 2 * feather + 1), 0).astype(np.float32)[..., None] / 255.0
    frame = (mask * placed + (1 - mask) * _background(rng, width, height)).astype(np.uint8)
    frame_pts = pts * scale + m[:, 2][None, :]
    return Subject(id=subject_id, photo=photo_name, mirrored=mirrored, frame=frame, points=frame_pts)
