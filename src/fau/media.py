"""A user's input for `fau predict`: a video, an image, or a folder of images.

`open_input(path)` checks the input at once (a FauError naming it when it
is missing, unreadable or empty) and returns a `MediaInput`, whose
`frames()` streams (frame number, (BGR image, grey image)) pairs, frame
numbers from 1 as in OpenFace, decoded ahead in a child process
(`fau.datasets.frames.prefetch`). The grey image is decoded the way the
landmark stage decodes the same source (`fau.datasets.frames.iter_frames`
with grey=True): for a video frame `cvtColor` of the colour frame, for an
image file libjpeg's own greyscale decoding, which differs from `cvtColor`
by a few grey levels and moves dlib's points by up to 2 px.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from itertools import islice
from pathlib import Path
from typing import Iterator, Optional

import cv2
import numpy as np

from .datasets.frames import decode_jpeg, open_video, prefetch
from .errors import FauError

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp", ".ppm", ".pgm", ".pbm", ".jp2")
DEFAULT_FPS = 30.0  # image folders (and videos without a frame rate), as OpenFace

Frame = tuple[int, tuple[np.ndarray, np.ndarray]]  # (frame number, (BGR (H, W, 3), grey (H, W)))


def natural_key(name: str) -> list:
    """'frame10.jpg' after 'frame9.jpg': digit runs compare as numbers."""
    return [int(t) if t.isdigit() else t.lower() for t in re.split(r"(\d+)", name)]


def _read_image(path: Path) -> tuple[np.ndarray, np.ndarray]:
    try:
        data = path.read_bytes()
    except OSError as e:
        raise FauError(f"{path}: cannot read image ({e.strerror})") from None
    return decode_jpeg(data, str(path)), decode_jpeg(data, str(path), grey=True)


@dataclass
class MediaInput:
    """One input. kind: 'video' | 'image' | 'folder'; name: the output stem;
    fps: frames per second for the timestamps; n_frames: the container's
    count (a video's may be approximate; for progress only)."""

    path: Path
    kind: str
    name: str
    fps: float
    n_frames: Optional[int]
    files: list[Path] = field(default_factory=list)  # images of a folder, in frame order
    decoded: int = 0  # frames decoded so far (set while streaming)

    def _items(self) -> Iterator[Frame]:
        """Decode here, in order."""
        if self.kind == "video":
            cap = open_video(self.path)
            try:
                i = 0
                while True:
                    ok, img = cap.read()
                    if not ok or img is None:
                        return
                    i += 1
                    yield i, (img, cv2.cvtColor(img, cv2.COLOR_BGR2GRAY))
            finally:
                cap.release()
        else:
            for i, p in enumerate(self.files, start=1):
                yield i, _read_image(p)

    def frames(self, depth: int = 16) -> Iterator[Frame]:
        """All frames, decoded up to `depth` ahead in a child process."""
        self.decoded = 0
        first = self._items()
        try:
            item0 = next(first, None)
        finally:
            first.close()
        if item0 is None:
            return
        for item in prefetch(item0, lambda: islice(self._items(), 1, None), depth, where=str(self.path)):
            self.decoded += 1
            yield item


def open_input(path: str | Path, fps: Optional[float] = None) -> MediaInput:
    """Classify and check an input. `fps` overrides the frame rate (image
    folders: default 30, as OpenFace; videos: the container's)."""
    path = Path(path)
    if path.is_dir():
        files = sorted((p for p in path.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES),
                       key=lambda p: natural_key(p.name))
        if not files:
            raise FauError(f"{path}: no images ({', '.join(IMAGE_SUFFIXES[:4])}, ...) in this folder")
        return MediaInput(path, "folder", path.name, float(fps or DEFAULT_FPS), len(files), files)
    if not path.exists():
        raise FauError(f"{path}: no such file or folder")
    if not path.is_file():
        raise FauError(f"{path}: not a file or folder")
    if path.suffix.lower() in IMAGE_SUFFIXES:
        _read_image(path)  # unreadable: FauError now
        return MediaInput(path, "image", path.stem, float(fps or DEFAULT_FPS), 1, [path])
    try:
        cap = open_video(path)
    except FauError:
        raise FauError(f"{path}: not a readable video or image (OpenCV cannot open it)") from None
    try:
        ok = cap.grab()
        if not ok:
            raise FauError(f"{path}: unreadable video (no decodable frame)")
        rate = cap.get(cv2.CAP_PROP_FPS)
        count = int(cap.get(cv2.CAP_PROP_FRAME_COUNT))
    finally:
        cap.release()
    if not fps and not (rate and np.isfinite(rate) and rate > 0):
        rate = DEFAULT_FPS  # no frame rate in the container
    return MediaInput(path, "video", path.stem, float(fps or rate), count if count > 0 else None)
