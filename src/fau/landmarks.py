"""dlib 68-point landmarks per frame (HOG frontal detector + shape predictor).

Detection runs on a grey copy downscaled to `LandmarksConfig.detect_width`
(retried once with one more pyramid upsampling when nothing is found); the
68 points are always predicted on the full-resolution grey frame. Several
faces: the largest. No face: a row with `success == 0` and NaN, never an
exception.

In a video the face is tracked, as OpenFace does: the next frame's box is
placed by the last frame's landmarks (the box-to-landmarks geometry of the
last detection, moved and scaled with the points), so most frames cost one
run of the 68-point predictor. The HOG detector runs again (first in a small
region around the face, then on the whole frame) every `redetect_every`
frames, and at once when the points jump (mean move > `max_motion` x the
face's size) or leave their box; when it finds nothing the face is lost and
the frame gets NaN. A scheduled re-detection whose points jump that far from
the last frame's while the followed points do not is not taken at once (HOG
boxes snap between pyramid scales; glasses and caps move them, and the
points with them): the followed points stand for that frame, and the
detection on the next frame is taken whatever it is. A face that vanishes
between two detections is noticed at the next one (`redetect_every: 1`
detects on every frame). Frames are decoded `read_ahead` frames ahead in a
child process.

`confidence` is the HOG detector's score of the detection the points come
from (the last one, for tracked frames).
"""

from __future__ import annotations

import functools
import importlib.util
import os
from pathlib import Path
from dataclasses import dataclass
from typing import Iterable, Iterator, Optional

import cv2
import numpy as np
import pandas as pd
from tqdm import tqdm

from .config import LandmarksConfig
from .errors import FauError

PREDICTOR_ENV = "FAU_DLIB_PREDICTOR"  # environment override of the 68-point model file
BOX_COLUMNS = ["box_left", "box_top", "box_right", "box_bottom"]
COLUMNS = (["frame", "success", "confidence"] + BOX_COLUMNS
           + [f"x_{i}" for i in range(68)] + [f"y_{i}" for i in range(68)])

Box = tuple[float, float, float, float]  # left, top, right, bottom (full-frame pixels)


def predictor_path(configured: Optional[str] = None) -> Path:
    """The 68-point model: config value, else $FAU_DLIB_PREDICTOR, else the
    copy inside the face_recognition_models package."""
    path = configured or os.environ.get(PREDICTOR_ENV)
    if path:
        p = Path(path)
    else:
        spec = importlib.util.find_spec("face_recognition_models")
        if spec is None or not spec.submodule_search_locations:
            raise FauError("face_recognition_models is not installed; set landmarks.predictor to "
                           "shape_predictor_68_face_landmarks.dat")
        p = Path(list(spec.submodule_search_locations)[0]) / "models" / "shape_predictor_68_face_landmarks.dat"
    if not p.is_file():
        raise FauError(f"{p}: dlib 68-point model file not found (landmarks.predictor)")
    return p


@functools.lru_cache(maxsize=4)
def _load_predictor(path: str):
    import dlib

    try:
        return dlib.shape_predictor(path)
    except RuntimeError as e:  # dlib: "Error deserializing object of type ..." (corrupt, truncated, another model)
        raise FauError(f"{path}: not a dlib shape predictor model file, corrupt or truncated "
                       f"({str(e).strip().splitlines()[0] if str(e).strip() else 'dlib cannot read it'}); "
                       "landmarks.predictor must be shape_predictor_68_face_landmarks.dat") from None


@functools.lru_cache(maxsize=1)
def _load_detector():
    import dlib

    return dlib.get_frontal_face_detector()


def _iou(a: Box, b: Box) -> float:
    iw = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    ih = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = iw * ih
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


def _grey(image: np.ndarray) -> np.ndarray:
    g = image if image.ndim == 2 else cv2.cvtColor(image, cv2.COLOR_BGR2GRAY)
    return np.ascontiguousarray(g, dtype=np.uint8)  # dlib sees nothing in a strided view


class LandmarkDetector:
    """HOG face detector + 68-point predictor, configured by `LandmarksConfig`."""

    def __init__(self, cfg: LandmarksConfig):
        self.cfg = cfg
        self._detector = _load_detector()
        self._predictor = _load_predictor(str(predictor_path(cfg.predictor)))

    # ---------------------------------------------------------------- pieces

    def _run_detector(self, grey: np.ndarray, scale: float, offset: tuple[float, float],
                      upsample: int, min_width: float) -> Optional[tuple[Box, float]]:
        """Largest detection in `grey` (a scaled crop) as a full-frame box."""
        dets, scores, _ = self._detector.run(np.ascontiguousarray(grey), upsample, 0.0)
        best = None
        for d, s in zip(dets, scores):
            box = (d.left() / scale + offset[0], d.top() / scale + offset[1],
                   d.right() / scale + offset[0], d.bottom() / scale + offset[1])
            w = box[2] - box[0]
            if w < min_width:
                continue
            if best is None or w * (box[3] - box[1]) > (best[0][2] - best[0][0]) * (best[0][3] - best[0][1]):
                best = (box, float(s))
        return best

    def _detect_full(self, grey: np.ndarray) -> Optional[tuple[Box, float]]:
        h, w = grey.shape
        scale = min(1.0, self.cfg.detect_width / w)
        small = grey if scale == 1.0 else cv2.resize(grey, (round(w * scale), round(h * scale)),
                                                     interpolation=cv2.INTER_AREA)
        min_width = self.cfg.min_face_fraction * w
        found = self._run_detector(small, scale, (0.0, 0.0), self.cfg.upsample, min_width)
        if found is None:  # small faces: one more pyramid level
            found = self._run_detector(small, scale, (0.0, 0.0), self.cfg.upsample + 1, min_width)
        return found

    def _detect_near(self, grey: np.ndarray, prev: Box) -> Optional[tuple[Box, float]]:
        """Detection restricted to a region 1.5 x the previous box, scaled so
        the face is about 88 px wide: just above the HOG window (80 px), so
        dlib's pyramid has only ~3 small levels (a frame-to-frame move is a
        small share of the box; a miss falls back to the whole frame). The
        downscale is an integer-factor area average (OpenCV's fast path), then
        bilinear for the remaining factor below 2."""
        h, w = grey.shape
        bw, bh = prev[2] - prev[0], prev[3] - prev[1]
        x0, y0 = max(0, int(prev[0] - bw / 4)), max(0, int(prev[1] - bh / 4))
        x1, y1 = min(w, int(prev[2] + bw / 4)), min(h, int(prev[3] + bh / 4))
        f = max(1, int(bw / 88.0))  # integer area factor
        x1, y1 = x0 + (x1 - x0) // f * f, y0 + (y1 - y0) // f * f
        if x1 - x0 < 16 * f or y1 - y0 < 16 * f:
            return None
        roi = grey[y0:y1, x0:x1]
        if f > 1:
            roi = cv2.resize(roi, ((x1 - x0) // f, (y1 - y0) // f), interpolation=cv2.INTER_AREA)
        rest = min(1.0, 88.0 * f / max(bw, 1.0))
        if rest < 1.0:
            roi = cv2.resize(roi, (max(1, round(roi.shape[1] * rest)), max(1, round(roi.shape[0] * rest))),
                             interpolation=cv2.INTER_LINEAR)
        scale = roi.shape[1] / (x1 - x0)
        found = self._run_detector(roi, scale, (x0, y0), 0, self.cfg.min_face_fraction * w)
        if found is None or _iou(found[0], prev) < self.cfg.track_min_overlap:
            return None
        return found

    def _predict(self, grey: np.ndarray, box: Box) -> np.ndarray:
        """68 points in `box`, predicted on a copy of the box's surroundings
        (the box plus a quarter of its size on each side): for a box on a
        face the same points as on the whole frame (checked on the benchmark
        frames), without handing dlib the whole frame (~20 % of the
        predictor's time on a 1024 x 768 frame)."""
        import dlib

        left, top, right, bottom = (int(round(v)) for v in box)
        mx, my = (right - left) // 4 + 1, (bottom - top) // 4 + 1
        h, w = grey.shape
        x0, y0 = max(0, left - mx), max(0, top - my)
        roi = np.ascontiguousarray(grey[y0:min(h, bottom + my + 1), x0:min(w, right + mx + 1)])  # (h', w') uint8
        shape = self._predictor(roi, dlib.rectangle(left - x0, top - y0, right - x0, bottom - y0))
        return np.array([[p.x + x0, p.y + y0] for p in shape.parts()], dtype=np.float64)  # (68, 2)

    def _plausible(self, pts: np.ndarray, box: Box) -> bool:
        hull = (pts[:, 0].min(), pts[:, 1].min(), pts[:, 0].max(), pts[:, 1].max())
        return _iou(hull, box) >= self.cfg.track_min_overlap

    # ---------------------------------------------------------------- API

    def detect(self, image: np.ndarray, prev_box: Optional[Box] = None
               ) -> tuple[bool, float, Optional[Box], Optional[np.ndarray]]:
        """One frame (BGR or grey) -> (success, confidence, box, pts68 (68, 2)).

        With `prev_box` (the last detection's box) the search starts there."""
        return self._detect(_grey(image), prev_box)

    def _detect(self, grey: np.ndarray, prev_box: Optional[Box]
                ) -> tuple[bool, float, Optional[Box], Optional[np.ndarray]]:
        tries = []
        if prev_box is not None and self.cfg.track:
            tries.append(lambda: self._detect_near(grey, prev_box))
        tries.append(lambda: self._detect_full(grey))
        for attempt in tries:
            found = attempt()
            if found is None:
                continue
            box, conf = found
            pts = self._predict(grey, box)
            if self._plausible(pts, box):
                return True, conf, box, pts
        return False, float("nan"), None, None

    def _follow(self, grey: np.ndarray, track: "_Track") -> Optional[tuple[Box, np.ndarray]]:
        """The tracked face in this frame: predict in the box placed by the
        last frame's points; None when the points jump or leave the box."""
        box = track.box_for(track.pts)
        pts = self._predict(grey, box)
        if _jumped(pts, track.pts, self.cfg.max_motion):
            return None
        if not self._plausible(pts, box):
            return None
        return box, pts

    def tracker(self) -> "FaceTracker":
        """A frame-by-frame tracker (`FaceTracker.step`): what `detect_video`
        runs, for callers that stream frames (`fau predict`)."""
        return FaceTracker(self)

    def detect_video(self, frames: Iterable[tuple[int, np.ndarray]], total: Optional[int] = None,
                     desc: str = "landmarks") -> pd.DataFrame:
        """(frame number, image) pairs -> the landmark table (`COLUMNS`), one row per frame."""
        tracker = self.tracker()
        rows = [landmark_row(frame, *tracker.step(image))
                for frame, image in tqdm(frames, total=total, desc=desc, unit="frame", leave=False)]
        return pd.DataFrame(rows, columns=COLUMNS)

    def detect_rows(self, root: str | Path, rows: pd.DataFrame, desc: str = "landmarks") -> pd.DataFrame:
        """The landmark table of frame-table rows (one video, in order), read
        `read_ahead` frames ahead in a child process: the landmark stage."""
        from .datasets.frames import read_ahead

        frames = read_ahead(root, rows, grey=True, depth=self.cfg.read_ahead)
        return self.detect_video(frames, total=len(rows), desc=desc)


class FaceTracker:
    """The landmark stage's per-frame logic with its state: follow the face
    by its landmarks, re-detect every `redetect_every` frames or when the
    points jump; a scheduled re-detection that jumps is checked once more
    on the next frame (`doubt`). `step(image)` (BGR or grey, frames in order) -> (success,
    confidence, box, pts68 (68, 2) or None)."""

    def __init__(self, detector: LandmarkDetector):
        self.det = detector
        self.track: Optional[_Track] = None
        self.doubt = False  # the last scheduled re-detection jumped and was not taken: detect again, take it

    def step(self, image: np.ndarray) -> tuple[bool, float, Optional[Box], Optional[np.ndarray]]:
        det, cfg, track = self.det, self.det.cfg, self.track
        grey = _grey(image)
        tracking = track is not None and cfg.track
        scheduled = tracking and (track.age + 1 >= cfg.redetect_every or self.doubt)  # a re-detection is due
        if tracking and not scheduled:
            followed = det._follow(grey, track)
            if followed is not None:
                return self._follows(*followed)
        ok, conf, box, pts = det._detect(grey, track.box_for(track.pts) if track is not None else None)
        if ok and scheduled and not self.doubt and _jumped(pts, track.pts, cfg.max_motion):
            # The re-detection's points jump further than a face moves in a
            # frame: most likely the detector's box was off (HOG boxes snap
            # between pyramid scales; glasses, a cap) and the 68 points with
            # it. If the followed points do not jump, they stand for this
            # frame and the detector runs again on the next, whose result is
            # taken whatever it is (a track gone wrong is still corrected,
            # one frame later).
            followed = det._follow(grey, track)
            if followed is not None:
                self.doubt = True
                return self._follows(*followed)
        self.doubt = False
        self.track = _Track.start(box, pts, conf) if ok else None
        return ok, conf, box, pts

    def _follows(self, box: Box, pts: np.ndarray) -> tuple[bool, float, Box, np.ndarray]:
        """Take the followed points (68, 2) in `box` for this frame."""
        self.track = self.track.moved(pts)
        return True, self.track.conf, box, pts


def _jumped(pts: np.ndarray, prev: np.ndarray, max_motion: float) -> bool:
    """Whether the points `pts` (68, 2) moved or resized from the last
    frame's `prev` (68, 2) by more than a face does in a frame: mean point
    displacement > `max_motion` x the face's size (`_spread`), or the size
    changed by more than `max_motion` (relative)."""
    size = _spread(prev)
    moved = float(np.linalg.norm(pts - prev, axis=1).mean())
    return moved > max_motion * size or abs(_spread(pts) / size - 1.0) > max_motion


def _spread(pts: np.ndarray) -> float:
    """Size of a point set: RMS distance to its centroid (px)."""
    return float(np.sqrt(((pts - pts.mean(axis=0)) ** 2).sum(axis=1).mean()))


@dataclass(frozen=True)
class _Track:
    """A face followed from frame to frame.

    geometry: the last HOG detection's box relative to its landmarks
    ((centre offset x, y, width, height) / spread); pts: the last frame's
    points; age: frames since the detection; conf: its score. Re-detection
    searches near `box_for(pts)`: where the detection's box is now."""

    geometry: tuple[float, float, float, float]
    pts: np.ndarray
    conf: float
    age: int = 0

    @staticmethod
    def start(box: Box, pts: np.ndarray, conf: float) -> "_Track":
        cx, cy = pts.mean(axis=0)
        s = _spread(pts)
        geometry = (((box[0] + box[2]) / 2 - cx) / s, ((box[1] + box[3]) / 2 - cy) / s,
                    (box[2] - box[0]) / s, (box[3] - box[1]) / s)
        return _Track(geometry, pts, conf)

    def box_for(self, pts: np.ndarray) -> Box:
        """The detection's box moved and scaled with the points."""
        cx, cy = pts.mean(axis=0)
        s = _spread(pts)
        dx, dy, w, h = self.geometry
        x, y = cx + dx * s, cy + dy * s
        return (x - w * s / 2, y - h * s / 2, x + w * s / 2, y + h * s / 2)

    def moved(self, pts: np.ndarray) -> "_Track":
        return _Track(self.geometry, pts, self.conf, self.age + 1)


def landmark_row(frame: int, ok: bool, conf: float, box: Optional[Box], pts: Optional[np.ndarray]) -> list:
    """One row of the landmark table (NaN everywhere but the frame when not ok)."""
    if not ok:
        return [int(frame), 0] + [float("nan")] * (len(COLUMNS) - 2)
    return [int(frame), 1, conf, *map(float, box), *pts[:, 0].tolist(), *pts[:, 1].tolist()]


def points_from_row(row: pd.Series | dict) -> np.ndarray:
    """The (68, 2) points of one landmark-table row."""
    return np.array([[row[f"x_{i}"], row[f"y_{i}"]] for i in range(68)], dtype=np.float64)


def points_array(table: pd.DataFrame) -> np.ndarray:
    """All rows' points: (N, 68, 2), NaN where success == 0."""
    xs = table[[f"x_{i}" for i in range(68)]].to_numpy(dtype=np.float64)
    ys = table[[f"y_{i}" for i in range(68)]].to_numpy(dtype=np.float64)
    return np.stack([xs, ys], axis=-1)


def read_landmarks(path: Path) -> pd.DataFrame:
    """Read a landmark table, checking its columns."""
    path = Path(path)
    if not path.is_file():
        raise FauError(f"{path}: landmark table missing (run `fau landmarks` for this video first)")
    table = pd.read_csv(path)
    missing = [c for c in COLUMNS if c not in table.columns]
    if missing:
        raise FauError(f"{path}: not a landmark table (missing column {missing[0]})")
    return table


def iter_images(paths: Iterable[Path]) -> Iterator[tuple[int, np.ndarray]]:
    """(i, image) for image files (helper for tests and benchmarks)."""
    for i, p in enumerate(paths):
        img = cv2.imread(str(p))
        if img is None:
            raise FauError(f"{p}: not a readable image")
        yield i, img
