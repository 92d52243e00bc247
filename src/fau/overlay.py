"""`fau predict --overlay`: the seed's demo on video.

Each frame with the 68 landmarks, one bar per AU (predicted intensity,
0..5) and the predicted heatmaps (the maximum over all AU points) blended
over the face. The heatmaps live in the network's output grid; they are
mapped back to frame pixels through the inverse of the chain the input
went through: frame -(similarity M)-> crop (crops.size) -(the model's
window, resized: `fau.preprocess.crop_to_input`)-> input (S) -(/ stride)->
heatmap (`heatmap_transform`).

Written as .mp4 (OpenCV's `mp4v`), or .avi (Motion JPEG) where this OpenCV
cannot write mp4; an image input gives a .png. The file is written beside
its final name and moved there when complete.
"""

from __future__ import annotations

import functools
import os
import tempfile
from pathlib import Path
from typing import Optional

import cv2
import numpy as np

from .errors import FauError
from .heatmaps import MAX_INTENSITY, SCALE
from .model import STRIDE
from .preprocess import crop_to_input

HEAT_ALPHA = 0.6  # opacity of the heatmap where it reaches intensity 1


def heatmap_transform(m: np.ndarray, crop_size: int, input_size: int, stride: int = STRIDE,
                      window: float = 1.0) -> np.ndarray:
    """The (2, 3) affine frame pixels -> heatmap pixels, given the frame ->
    crop similarity `m`: the model's window of the crop is resized to the
    input (`crop_to_input`, pixel centres kept) and heatmap pixel u sits at
    input pixel u * stride (`fau.heatmaps.encode`)."""
    a = crop_to_input(crop_size, input_size, window)  # (2, 3) crop -> input
    m = np.asarray(m, np.float64)
    f = np.hstack([a[:, :2] @ m[:, :2], (a[:, :2] @ m[:, 2] + a[:, 2])[:, None]])  # frame -> input
    return f / stride


def heat_in_frame(heatmap: np.ndarray, m: np.ndarray, crop_size: int, input_size: int,
                  frame_shape: tuple[int, int], window: float = 1.0) -> tuple[np.ndarray, tuple[int, int, int, int]]:
    """One heatmap (h, w) -> its values over the frame region the crop
    covers: (values (y1 - y0, x1 - x0) float32, (x0, y0, x1, y1))."""
    h, w = frame_shape
    inv = cv2.invertAffineTransform(np.asarray(m, np.float64))  # crop -> frame
    c = float(crop_size)
    corners = np.array([[0, 0], [c, 0], [0, c], [c, c]]) @ inv[:, :2].T + inv[:, 2]  # (4, 2)
    x0, y0 = (max(0, int(np.floor(v))) for v in corners.min(axis=0))
    x1, y1 = min(w, int(np.ceil(corners[:, 0].max()))), min(h, int(np.ceil(corners[:, 1].max())))
    if x1 <= x0 or y1 <= y0:
        return np.zeros((0, 0), np.float32), (0, 0, 0, 0)
    f = heatmap_transform(m, crop_size, input_size, window=window)
    f[:, 2] += f[:, :2] @ np.array([x0, y0], np.float64)  # region pixel (0, 0) is frame pixel (x0, y0)
    values = cv2.warpAffine(np.ascontiguousarray(heatmap, np.float32), f, (x1 - x0, y1 - y0),
                            flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP, borderMode=cv2.BORDER_CONSTANT,
                            borderValue=0.0)
    return values, (x0, y0, x1, y1)


def _colour(level: float) -> tuple[int, int, int]:
    """BGR of the jet colour map at level 0..1 (bars match the heatmaps)."""
    v = np.array([[int(round(np.clip(level, 0, 1) * 255))]], np.uint8)
    return tuple(int(c) for c in cv2.applyColorMap(v, cv2.COLORMAP_JET)[0, 0])


def draw(image: np.ndarray, pts: Optional[np.ndarray], values: Optional[np.ndarray], aus: list[str],
         heatmaps: Optional[np.ndarray], m: Optional[np.ndarray], crop_size: int, input_size: int,
         window: float = 1.0) -> np.ndarray:
    """Draw one frame's overlay in place (BGR uint8) and return it.

    pts (68, 2) frame pixels; values (A,) intensities in `aus` order;
    heatmaps (P, h, w) in the network's output units (255 per intensity
    unit); m the frame -> crop similarity. None for a frame without a face."""
    h, w = image.shape[:2]
    if heatmaps is not None and m is not None:
        heat, (x0, y0, x1, y1) = heat_in_frame(heatmaps.max(axis=0), m, crop_size, input_size, (h, w), window)
        if heat.size:
            roi = image[y0:y1, x0:x1]
            level = np.clip(heat / (SCALE * MAX_INTENSITY), 0, 1)
            colour = cv2.applyColorMap((level * 255).astype(np.uint8), cv2.COLORMAP_JET).astype(np.float32)
            alpha = (np.clip(heat / SCALE, 0, 1) * HEAT_ALPHA)[..., None]  # (h', w', 1)
            roi[...] = (roi.astype(np.float32) * (1 - alpha) + colour * alpha).astype(np.uint8)
    if pts is not None:
        size = float(np.ptp(pts[:, 0]))
        radius = max(1, int(round(size / 90)))
        for x, y in pts:
            cv2.circle(image, (int(round(x)), int(round(y))), radius, (0, 255, 0), -1, lineType=cv2.LINE_AA)
    # AU bars, top left, on a darkened panel.
    unit = max(h / 360.0, 0.6)
    row = int(round(16 * unit))
    font = 0.42 * unit
    label_w = int(round(42 * unit))
    bar_w = int(round(90 * unit))
    pad = int(round(4 * unit))
    n = max(1, len(aus))
    pw, ph = min(w, label_w + bar_w + int(round(34 * unit)) + 2 * pad), min(h, n * row + 2 * pad)
    image[:ph, :pw] = (image[:ph, :pw].astype(np.float32) * 0.35).astype(np.uint8)
    if values is None:
        cv2.putText(image, "no face", (pad, pad + row - 4), cv2.FONT_HERSHEY_SIMPLEX, font, (255, 255, 255), 1,
                    cv2.LINE_AA)
        return image
    for i, (au, v) in enumerate(zip(aus, values)):
        top = pad + i * row
        cv2.putText(image, au, (pad, top + row - 4), cv2.FONT_HERSHEY_SIMPLEX, font, (255, 255, 255), 1, cv2.LINE_AA)
        bx = pad + label_w
        cv2.rectangle(image, (bx, top + 3), (bx + bar_w, top + row - 3), (90, 90, 90), 1)
        fill = int(round(bar_w * float(np.clip(v / MAX_INTENSITY, 0, 1))))
        if fill > 0:
            cv2.rectangle(image, (bx, top + 3), (bx + fill, top + row - 3), _colour(v / MAX_INTENSITY), -1)
        cv2.putText(image, f"{v:.1f}", (bx + bar_w + pad, top + row - 4), cv2.FONT_HERSHEY_SIMPLEX, font,
                    (255, 255, 255), 1, cv2.LINE_AA)
    return image


@functools.lru_cache(maxsize=1)
def mp4_available() -> bool:
    """Whether this OpenCV can write .mp4 (mp4v): probed once with a tiny file."""
    with tempfile.TemporaryDirectory() as d:
        path = os.path.join(d, "probe.mp4")
        vw = cv2.VideoWriter(path, cv2.VideoWriter_fourcc(*"mp4v"), 10.0, (64, 64))
        try:
            if not vw.isOpened():
                return False
            vw.write(np.zeros((64, 64, 3), np.uint8))
        finally:
            vw.release()
        return os.path.getsize(path) > 0


class OverlayWriter:
    """Context manager writing overlay frames to `path` (.mp4; .avi when mp4
    cannot be written; .png for a still image). `path` after opening is the
    final file; it appears only when the block ends without an error."""

    def __init__(self, path: Path, fps: float, still: bool = False, aus: Optional[list[str]] = None):
        path = Path(path)
        if still:
            self.path, self.fourcc = path.with_suffix(".png"), None
        elif mp4_available():
            self.path, self.fourcc = path.with_suffix(".mp4"), "mp4v"
        else:
            self.path, self.fourcc = path.with_suffix(".avi"), "MJPG"
        self.fps = float(fps) if fps and fps > 0 else 30.0
        self.aus = list(aus or [])
        self.tmp = self.path.with_name(f".tmp-{self.path.name}")
        self.writer: Optional[cv2.VideoWriter] = None
        self.last: Optional[np.ndarray] = None
        self.frames = 0

    def __enter__(self) -> "OverlayWriter":
        self.path.parent.mkdir(parents=True, exist_ok=True)
        return self

    def add(self, image: np.ndarray, pts, values, heatmaps, m, crop_size: int, input_size: int,
            window: float = 1.0) -> None:
        frame = draw(image, pts, values, self.aus, heatmaps, m, crop_size, input_size, window)
        self.frames += 1
        if self.fourcc is None:
            self.last = frame
            return
        if self.writer is None:
            h, w = frame.shape[:2]
            self.writer = cv2.VideoWriter(str(self.tmp), cv2.VideoWriter_fourcc(*self.fourcc), self.fps, (w, h))
            if not self.writer.isOpened():
                raise FauError(f"{self.path}: OpenCV cannot write this video ({self.fourcc}, {w}x{h})")
            self.size = (w, h)
        if frame.shape[1::-1] != self.size:  # a folder of images of several sizes
            frame = cv2.resize(frame, self.size, interpolation=cv2.INTER_AREA)
        self.writer.write(frame)

    def __exit__(self, exc_type, exc, tb) -> None:
        try:
            if self.writer is not None:
                self.writer.release()
            if exc_type is None:
                if self.fourcc is None and self.last is not None:
                    if not cv2.imwrite(str(self.tmp), self.last):
                        raise FauError(f"{self.path}: cannot write the overlay image")
                if self.tmp.exists():
                    os.replace(self.tmp, self.path)
        finally:
            self.tmp.unlink(missing_ok=True)
