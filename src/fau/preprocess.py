"""One preprocessing, from a frame and its 68 landmarks to the network's input.

The training data go through it in two stages with a file in between: the
crops stage (`fau.crops`) aligns the face (`face_crop`) and stores the crop
as a JPEG (`encode_crop`, `crops.jpeg_quality`); the dataset
(`fau.data.AUDataset`) reads the file back, resizes it to the model's input
(`resize_to_input`) and normalises it (`fau.data.normalise`).
`network_input` chains the same functions for a frame in memory (`fau
predict`), including the JPEG round trip, so a frame gives the network
exactly the pixels its stored crop gives it in training and evaluation.
"""

from __future__ import annotations

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


def network_input(image_bgr: np.ndarray, pts68: np.ndarray, crops: CropsConfig, input_size: int,
                  normalization: str) -> tuple[np.ndarray, np.ndarray]:
    """Frame (H, W, 3) uint8 BGR + landmarks (68, 2) in frame pixels ->
    (network input (3, S, S) float32, frame -> crop similarity (2, 3)):
    align, JPEG round trip at crops.jpeg_quality, resize, normalise."""
    from .data import normalise

    crop, m = face_crop(image_bgr, pts68, crops)  # (C, C, 3) BGR
    rgb = decode_crop_rgb(encode_crop(crop, crops.jpeg_quality))  # (C, C, 3) RGB, as read from the file
    return normalise(resize_to_input(rgb, input_size), normalization), m  # (3, S, S)
