"""One preprocessing, from a frame and its 68 landmarks to the network's input.

The training data go through it in two stages with a file in between: the
crops stage (`fau.crops`) aligns the face (`face_crop`) and stores the crop
as a JPEG (`encode_crop`, `crops.jpeg_quality`); the dataset
(`fau.data.AUDataset`) reads the file back, cuts the model's window out of
it and resizes that to the model's input (`to_input`, `model.input_window`)
and normalises it (`fau.data.normalise`).
`network_input` chains the same functions for a frame in memory (`fau
predict`), including the JPEG round trip, so a frame gives the network
exactly the pixels its stored crop gives it in training and evaluation.
"""

from __future__ import annotations

import functools

import cv2
import numpy as np

from . import align
from .config import CropsConfig
from .errors import FauError


def face_crop(image: np.ndarray, pts68: np.ndarray, crops: CropsConfig) -> tuple[np.ndarray, np.ndarray]:
    """The aligned crops.size x crops.size crop of a frame (same channels and
    dtype) and the (2, 3) frame -> crop similarity."""
    m = align.frame_to_crop(pts68, crops)  # (2, 3)
    return align.crop(image, m, crops.size), m


def encode_crop(crop: np.ndarray, quality: int) -> bytes:
    """The crop as the crops stage stores it: JPEG at `quality`."""
    ok, buf = cv2.imencode(".jpg", crop, [cv2.IMWRITE_JPEG_QUALITY, int(quality)])
    if not ok:
        raise FauError(f"cannot encode a {crop.shape} crop as JPEG")
    return buf.tobytes()


def decode_crop_rgb(data: bytes) -> np.ndarray:
    """Stored crop bytes -> (H, W, 3) uint8 RGB, decoded as `fau.data.load_rgb`
    decodes a crop file (`cv2.imread` colour, then BGR -> RGB)."""
    img = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    if img is None:
        raise FauError("corrupt crop JPEG")
    return cv2.cvtColor(img, cv2.COLOR_BGR2RGB)


def resize_to_input(img: np.ndarray, size: int) -> np.ndarray:
    """A crop resized to the model's input size (area when shrinking,
    bilinear when enlarging), as the dataset resizes it."""
    h, w = img.shape[:2]
    if (h, w) == (size, size):
        return img
    return cv2.resize(img, (size, size), interpolation=cv2.INTER_AREA if w > size else cv2.INTER_LINEAR)


@functools.lru_cache(maxsize=16)
def input_box(crop_size: int, window: float) -> tuple[int, int, int]:
    """The square of a crop_size crop the network sees, (x0, y0, side) in
    crop pixels: the whole crop for window 1; otherwise `window` of its side,
    centred on the neutral face of the crop template (brow top to chin, jaw
    to jaw: `align.read_template`) and kept inside the crop. Cached: every
    training item and predicted frame asks for it."""
    if window >= 1:
        return 0, 0, crop_size
    side = int(round(window * crop_size))
    t = align.read_template() * (crop_size / align.TEMPLATE_SIZE)  # (68, 2) crop pixels
    cx, cy = (t[0, 0] + t[16, 0]) / 2, (t[17:27, 1].min() + t[8, 1]) / 2
    x0 = int(np.clip(round(cx - side / 2), 0, crop_size - side))
    y0 = int(np.clip(round(cy - side / 2), 0, crop_size - side))
    return x0, y0, side


def to_input(crop: np.ndarray, size: int, window: float = 1.0) -> np.ndarray:
    """A crop (C, C, ...) -> the network's (size, size, ...) input: its
    `input_box` resized to `size` (`resize_to_input`); window 1: the whole
    image, whatever its shape. FauError for a window below 1 on an image that
    is not square (not a crop)."""
    if window >= 1:
        return resize_to_input(crop, size)
    h, w = crop.shape[:2]
    if h != w:
        raise FauError(f"a {w} x {h} image; model.input_window below 1 needs the square crops of the crops stage")
    x0, y0, side = input_box(w, window)
    return resize_to_input(np.ascontiguousarray(crop[y0:y0 + side, x0:x0 + side]), size)


def crop_to_input(crop_size: int, size: int, window: float = 1.0) -> np.ndarray:
    """The (2, 3) affine crop pixels -> input pixels of `to_input`, pixel
    centres kept: x_in = (x_c - x0 + 0.5) r - 0.5, r = size / side."""
    x0, y0, side = input_box(crop_size, window)
    r = size / side
    return np.array([[r, 0.0, (0.5 - x0) * r - 0.5], [0.0, r, (0.5 - y0) * r - 0.5]])


def network_input(image_bgr: np.ndarray, pts68: np.ndarray, crops: CropsConfig, input_size: int,
                  normalization: str, window: float = 1.0) -> tuple[np.ndarray, np.ndarray]:
    """Frame (H, W, 3) uint8 BGR + landmarks (68, 2) in frame pixels ->
    (network input (3, S, S) float32, frame -> crop similarity (2, 3)):
    align, JPEG round trip at crops.jpeg_quality, window and resize, normalise."""
    from .data import normalise

    crop, m = face_crop(image_bgr, pts68, crops)  # (C, C, 3) BGR
    rgb = decode_crop_rgb(encode_crop(crop, crops.jpeg_quality))  # (C, C, 3) RGB, as read from the file
    return normalise(to_input(rgb, input_size, window), normalization), m  # (3, S, S)
