"""Aligned crops, AU centre points and the annotation table / JSON.

`crop_video` writes `<crops_dir>/<video>/<frame>.jpg` and returns the video's
annotation rows with `imgpath` relative to `crops_dir` (`<video>/<frame>.jpg`;
the per-video table `<out>/crops/<video>.csv` lives in `crops_dir`).
`merge_annotations` joins the per-video tables into `<out>/annotations.csv`
(`imgpath` relative to `<out>`: `crops/<video>/<frame>.jpg`) and the seed's
JSON `<out>/annotations.json` (same relative `imgpath`; only frames with every
AU coded). Point coordinates are crop pixels; AU points come from the crop's
landmarks (`fau.au_locations`).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Iterable

import cv2
import numpy as np
import pandas as pd
from tqdm import tqdm

from . import align, atomic
from .au_locations import au_points, au_table
from .config import CropsConfig, au_name
from .errors import FauError
from .landmarks import points_from_row

META = ["video", "subject", "task", "frame"]


def point_columns(aus) -> list[str]:
    return [f"{au_name(a)}_{c}" for a in aus for c in ("x1", "y1", "x2", "y2")]


def table_columns(aus) -> list[str]:
    return ["imgpath"] + META + [au_name(a) for a in aus] + point_columns(aus)


def crop_video(frames: Iterable[tuple[int, np.ndarray]], landmarks: pd.DataFrame, labels: pd.DataFrame,
               crops: CropsConfig, aus, out_dir: Path) -> pd.DataFrame:
    """Crop every frame of one video whose landmarks were found.

    `frames` yields (frame, BGR image); `landmarks` is the video's landmark
    table, `labels` its frame-table rows. Returns the annotation rows
    (`table_columns(aus)`); frames without landmarks are left out."""
    out_dir = Path(out_dir)
    table = au_table(aus, crops.au_points)
    lm = landmarks[landmarks["success"] == 1].set_index("frame")
    lab = labels.set_index("frame")
    rows = []
    for frame, image in tqdm(frames, total=len(labels), desc="crops", unit="frame", leave=False):
        if frame not in lm.index or frame not in lab.index:
            continue
        info = lab.loc[frame]
        pts = points_from_row(lm.loc[frame])  # (68, 2) frame pixels
        m = align.alignment(pts, crops.template)
        img = align.crop(image, m, crops.size)
        ok, buf = cv2.imencode(".jpg", img, [cv2.IMWRITE_JPEG_QUALITY, int(crops.jpeg_quality)])
        if not ok:
            raise FauError(f"{out_dir}: cannot encode the crop of frame {frame}")
        rel = f"{info['video']}/{int(frame)}.jpg"
        atomic.write_bytes(out_dir / rel, buf.tobytes())
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
    return pd.DataFrame(rows, columns=table_columns(aus))


def json_entries(table: pd.DataFrame, aus) -> list[dict]:
    """Seed-format entries for the rows with every AU coded."""
    names = [au_name(a) for a in aus]
    full = table.dropna(subset=names)
    out = []
    for _, r in full.iterrows():
        vals: list = []
        for n in names:
            vals += [float(r[f"{n}_x1"]), float(r[f"{n}_y1"]), int(r[n]),
                     float(r[f"{n}_x2"]), float(r[f"{n}_y2"]), int(r[n])]
        out.append({"imgpath": r["imgpath"], "AUs": vals})
    return out


def merge_annotations(tables: list[Path], out_dir: Path, aus) -> tuple[int, int]:
    """Per-video crop tables -> `<out_dir>/annotations.csv` + `annotations.json`.

    Returns (rows in the CSV, entries in the JSON)."""
    out_dir = Path(out_dir)
    parts = []
    for path in tables:
        path = Path(path)
        if not path.is_file():
            raise FauError(f"{path}: crop table missing (run `fau crops` for this video first)")
        t = pd.read_csv(path, dtype={"task": str, "video": str, "subject": str}, keep_default_na=False,
                        na_values={au_name(a): [""] for a in aus})
        missing = [c for c in table_columns(aus) if c not in t.columns]
        if missing:
            raise FauError(f"{path}: not a crop table for these AUs (missing column {missing[0]})")
        here, base = path.parent.resolve(), out_dir.resolve()
        rel = here.relative_to(base).as_posix() if here != base else ""
        t["imgpath"] = [f"{rel}/{p}" if rel else p for p in t["imgpath"]]
        parts.append(t[table_columns(aus)])
    merged = (pd.concat(parts, ignore_index=True) if parts else pd.DataFrame(columns=table_columns(aus)))
    merged = merged.sort_values(["video", "frame"], kind="stable").reset_index(drop=True)
    entries = json_entries(merged, aus)
    atomic.write_csv(out_dir / "annotations.csv", merged)
    atomic.write_text(out_dir / "annotations.json", json.dumps(entries) + "\n")
    return len(merged), len(entries)
