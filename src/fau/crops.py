"""Aligned crops and AU centre points of one video.

`crop_video` writes `<images_dir>/<frame>.jpg` and returns the video's rows
of the annotation table (`fau.annotations`) with `imgpath` relative to the
folder of the table they will be written to. Point coordinates are crop
pixels; AU points come from the crop's landmarks (`fau.au_locations`).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Iterable

import numpy as np
import pandas as pd
from tqdm import tqdm

from . import align, atomic
from .annotations import META, point_columns, table_columns
from .au_locations import au_points, au_table
from .config import CropsConfig, au_name
from .landmarks import points_from_row
from .preprocess import encode_crop, face_crop


def crop_video(frames: Iterable[tuple[int, np.ndarray]], landmarks: pd.DataFrame, labels: pd.DataFrame,
               crops: CropsConfig, aus, images_dir: str | Path, table_dir: str | Path,
               write_to: str | Path | None = None) -> pd.DataFrame:
    """Crop every frame of one video whose landmarks were found into
    `images_dir/<frame>.jpg` (written to `write_to` instead when given: a
    temp folder the caller swaps in as `images_dir`).

    `frames` yields (frame, BGR image); `landmarks` is the video's landmark
    table, `labels` its frame-table rows; `aus` the AU numbers. Returns the
    annotation rows (`table_columns`), `imgpath` relative to `table_dir`;
    frames without landmarks are left out."""
    images_dir = Path(images_dir)
    write_to = Path(write_to) if write_to is not None else images_dir
    prefix = Path(os.path.relpath(images_dir, table_dir)).as_posix()
    names = [au_name(a) for a in aus]
    table = au_table(aus, crops.au_points)
    lm = landmarks[landmarks["success"] == 1].set_index("frame")
    lab = labels.set_index("frame")
    # The rows' numbers go into preallocated arrays, not a dict per row: a
    # DISFA video's 4,845 rows as dicts of Python floats took ~60 MB more
    # than 300 rows, memory that grew with the video's length.
    n, a = len(lab), len(aus)
    meta: list[tuple] = []
    intensity = np.empty((n, a), np.float64)  # (R, A)
    coords = np.empty((n, 4 * a), np.float64)  # (R, 4A): x1, y1, x2, y2 per AU
    for frame, image in tqdm(frames, total=len(labels), desc="crops", unit="frame", leave=False):
        if frame not in lm.index or frame not in lab.index:
            continue
        info = lab.loc[frame]
        pts = points_from_row(lm.loc[frame])  # (68, 2) frame pixels
        img, m = face_crop(image, pts, crops)  # the aligned crop, frame -> crop similarity (as `fau predict`)
        atomic.write_bytes(write_to / f"{int(frame)}.jpg", encode_crop(img, crops.jpeg_quality))
        rel = f"{int(frame)}.jpg" if prefix == "." else f"{prefix}/{int(frame)}.jpg"
        cpts = align.transform(pts, m)
        points = au_points(cpts, table)
        r = len(meta)  # < n: one row per labelled frame at most
        meta.append((rel, info["video"], info["subject"], info["task"], int(frame)))
        intensity[r] = [float(info[name]) for name in names]
        coords[r] = [round(float(v), 2) for au in aus for v in np.asarray(points[au]).reshape(-1)]
    r = len(meta)
    out = pd.DataFrame(meta, columns=["imgpath", *META])
    out = pd.concat([out, pd.DataFrame(intensity[:r], columns=names),
                     pd.DataFrame(coords[:r], columns=point_columns(names))], axis=1)
    return out[table_columns(names)]
