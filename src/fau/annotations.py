"""The annotation table and JSON (docs/formats.md): their columns, the merge
of the per-video crop tables, and reading the table back.

- Table (`annotations.csv`): `imgpath` (relative to the table's folder),
  `video, subject, task, frame`, one intensity column per AU (`AU06`; NaN =
  not coded) and per AU its two centre points in crop pixels
  (`AU06_x1, AU06_y1, AU06_x2, AU06_y2`).
- JSON (`annotations.json`): `[{"imgpath": ..., "AUs": [x1, y1, I1, x2, y2,
  I2, ...]}]`, two points per AU in config order, only frames with every AU
  coded; `imgpath` relative to the JSON's folder.

AUs are given by their column names (`fau.config.au_name`: 6 -> "AU06").
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pandas as pd

from . import atomic
from .errors import FauError

META = ["video", "subject", "task", "frame"]


def point_columns(aus: list[str]) -> list[str]:
    """['AU06_x1', 'AU06_y1', 'AU06_x2', 'AU06_y2', ...]: point 1 then point 2 per AU."""
    return [f"{au}_{c}{i}" for au in aus for i in (1, 2) for c in ("x", "y")]


def table_columns(aus: list[str]) -> list[str]:
    return ["imgpath", *META, *aus, *point_columns(aus)]


def check_columns(df: pd.DataFrame, aus: list[str], source: str | Path) -> None:
    """FauError naming the table if a column the model needs is absent."""
    need = ["imgpath", "video", "subject", "frame", *aus, *point_columns(aus)]
    missing = [c for c in need if c not in df.columns]
    if missing:
        raise FauError(f"{source}: missing columns {', '.join(missing[:6])}{' ...' if len(missing) > 6 else ''}")


def read_annotations(path: str | Path, aus: list[str]) -> pd.DataFrame:
    """The annotation table, checked for the columns of `aus`."""
    path = Path(path)
    try:
        df = pd.read_csv(path, dtype={"subject": str, "video": str, "task": str})
    except FileNotFoundError:
        raise FauError(f"{path}: missing (run the annotations stage first)") from None
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as e:
        raise FauError(f"{path}: not a readable CSV table ({type(e).__name__})") from None
    check_columns(df, aus, path)
    if "task" in df.columns:
        df["task"] = df["task"].fillna("")
    return df


def json_entries(table: pd.DataFrame, aus: list[str]) -> list[dict]:
    """JSON entries for the rows with every AU coded (imgpath as in `table`)."""
    full = table.dropna(subset=list(aus))
    out = []
    for _, r in full.iterrows():
        vals: list = []
        for n in aus:
            vals += [float(r[f"{n}_x1"]), float(r[f"{n}_y1"]), int(r[n]),
                     float(r[f"{n}_x2"]), float(r[f"{n}_y2"]), int(r[n])]
        out.append({"imgpath": r["imgpath"], "AUs": vals})
    return out


def _relative(paths, table: Path, to: Path) -> list[str]:
    """imgpaths relative to `table`'s folder -> relative to the folder `to`."""
    return [Path(os.path.relpath(table.parent / p, to)).as_posix() for p in paths]


def merge_annotations(tables: list[str | Path], csv_path: str | Path, json_path: str | Path,
                      aus: list[str]) -> tuple[int, int]:
    """Per-video crop tables -> the annotation table `csv_path` and JSON
    `json_path`. Returns (rows in the table, entries in the JSON)."""
    csv_path, json_path = Path(csv_path), Path(json_path)
    cols = table_columns(aus)
    parts = []
    for path in map(Path, tables):
        if not path.is_file():
            raise FauError(f"{path}: crop table missing (run the crops stage for this video first)")
        t = pd.read_csv(path, dtype={"task": str, "video": str, "subject": str}, keep_default_na=False,
                        na_values={au: [""] for au in aus})
        missing = [c for c in cols if c not in t.columns]
        if missing:
            raise FauError(f"{path}: not a crop table for these AUs (missing column {missing[0]})")
        t["imgpath"] = _relative(t["imgpath"], path, csv_path.parent.absolute())
        parts.append(t[cols])
    merged = pd.concat(parts, ignore_index=True) if parts else pd.DataFrame(columns=cols)
    merged = merged.sort_values(["video", "frame"], kind="stable").reset_index(drop=True)
    entries = json_entries(merged, aus)
    if json_path.parent.absolute() != csv_path.parent.absolute():
        rel = _relative([e["imgpath"] for e in entries], csv_path.absolute(), json_path.parent.absolute())
        entries = [{**e, "imgpath": p} for e, p in zip(entries, rel)]
    atomic.write_csv(csv_path, merged)
    atomic.write_text(json_path, json.dumps(entries) + "\n")
    return len(merged), len(entries)
