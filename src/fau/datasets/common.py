"""Helpers shared by the dataset readers: path patterns and label files."""

from __future__ import annotations

import glob
import re
import string
from pathlib import Path

import numpy as np
import pandas as pd

from ..config import au_name
from ..errors import FauError

FRAME_COLUMNS = ["video", "subject", "task", "frame", "source", "index"]


def match_pattern(root: Path, pattern: str, fixed: dict) -> list[dict[str, str]]:
    """Files under `root` matching `pattern` (a str.format pattern) with the
    `fixed` fields filled in; returns the other fields' values per file, sorted."""
    glob_parts, regex_parts, seen = [], [], set()
    for literal, field, spec, conv in string.Formatter().parse(pattern):
        glob_parts.append(glob.escape(literal))
        regex_parts.append(re.escape(literal))
        if field is None:
            continue
        if field in fixed:
            value = format(fixed[field], spec or "")
            glob_parts.append(glob.escape(value))
            regex_parts.append(re.escape(value))
        elif field in seen:
            glob_parts.append("*")
            regex_parts.append(f"(?P={field})")
        else:
            seen.add(field)
            glob_parts.append("*")
            regex_parts.append(f"(?P<{field}>[^/]+?)")
    regex = re.compile("".join(regex_parts) + r"\Z")
    out = []
    for p in sorted(Path(root).glob("".join(glob_parts))):
        m = regex.match(p.relative_to(root).as_posix())
        if m:
            out.append(m.groupdict())
    return out


def read_label_file(path: Path, allowed: set[int]) -> dict[int, int]:
    """`frame,intensity` lines (no header) -> {frame: intensity}; FauError on
    a missing or empty file or a line that is not two integers in `allowed`
    (`inf` and `nan` included)."""
    try:
        text = Path(path).read_text(errors="replace")
    except FileNotFoundError:
        raise FauError(f"{path}: label file missing") from None
    except OSError as e:
        raise FauError(f"{path}: cannot read label file ({e.strerror})") from None
    if not text.strip():
        raise FauError(f"{path}: empty label file ({len(text.encode())} bytes, no 'frame,intensity' line)")
    out: dict[int, int] = {}
    for n, line in enumerate(text.splitlines(), start=1):
        line = line.strip()
        if not line:
            continue
        parts = [p.strip() for p in line.replace("\t", ",").replace(" ", ",").split(",") if p.strip()]
        try:
            if len(parts) < 2:
                raise ValueError
            frame_f, value_f = float(parts[0]), float(parts[1])
            if frame_f != int(frame_f) or value_f != int(value_f):
                raise ValueError
            frame, value = int(frame_f), int(value_f)
        except (ValueError, OverflowError):  # OverflowError: inf
            raise FauError(f"{path}, line {n}: expected 'frame,intensity' (two integers), got {line[:40]!r}") from None
        if value not in allowed:
            raise FauError(f"{path}, line {n}: intensity {value} is not one of {sorted(allowed)}")
        out[frame] = value
    return out


def label_columns(frames: list[int], labels: dict[int, dict[int, int]], aus) -> dict[str, np.ndarray]:
    """Per AU a float column over `frames`: the value, NaN for 9 / not listed."""
    cols = {}
    for au in aus:
        lab = labels[au]
        col = np.array([lab.get(f, 9) for f in frames], dtype=np.float64)
        col[col == 9] = np.nan
        cols[au_name(au)] = col
    return cols


def finish_table(parts: list[pd.DataFrame], aus) -> pd.DataFrame:
    cols = FRAME_COLUMNS + [au_name(a) for a in aus]
    if not parts:
        return pd.DataFrame(columns=cols)
    table = pd.concat(parts, ignore_index=True)[cols]
    table["frame"] = table["frame"].astype(np.int64)
    table["index"] = table["index"].astype(np.int64)
    return table.sort_values(["video", "frame"], kind="stable").reset_index(drop=True)
