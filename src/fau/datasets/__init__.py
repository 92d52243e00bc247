"""Dataset readers (BP4D, DISFA) and frame access (the synthetic generator is `fau.synth`)."""

from __future__ import annotations

import pandas as pd

from ..config import DatasetConfig
from ..errors import FauError


def read_frame_table(ds: DatasetConfig) -> pd.DataFrame:
    """The frame table of docs/architecture.md for the dataset at `ds.root` (by `ds.kind`)."""
    if ds.kind == "bp4d":
        from .bp4d import read_frame_table as read
    elif ds.kind == "disfa":
        from .disfa import read_frame_table as read
    else:
        raise FauError(f"config key 'dataset.kind' is {ds.kind!r}; expected bp4d or disfa")
    return read(ds)


def load_frame_table(path) -> pd.DataFrame:
    """Read `<out>/index/frames.csv` back (task "" for DISFA, AU columns float)."""
    from pathlib import Path

    path = Path(path)
    if not path.is_file():
        raise FauError(f"{path}: frame table missing (run `fau index` first)")
    table = pd.read_csv(path, dtype={"video": str, "subject": str, "task": str, "source": str})
    missing = [c for c in ("video", "subject", "task", "frame", "source", "index") if c not in table.columns]
    if missing:
        raise FauError(f"{path}: not a frame table (missing column {missing[0]})")
    table["task"] = table["task"].fillna("")
    return table
