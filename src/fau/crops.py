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
from .annotations import table_columns
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
    rows = []
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
        row = {"imgpath": rel, "video": info["video"], "subject": info["subject"], "task": info["task"],
               "frame": int(frame)}
        for a in aus:
            row[au_name(a)] = float(info[au_name(a)])
            (x1, y1), (x2, y2) = points[a]
            row.update({f"{au_name(a)}_x1": round(float(x1), 2), f"{au_name(a)}_y1": round(float(y1), 2),
                        f"{au_name(a)}_x2": round(float(x2), 2), f"{au_name(a)}_y2": round(float(y2), 2)})
        rows.append(row)
    return pd.DataFrame(rows, columns=table_columns(names))
