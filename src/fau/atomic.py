"""Atomic file writes: every output is written to a hidden temp file beside
its final path and moved into place with os.replace, so an interrupted or
failed job never leaves a truncated output (and never clobbers a good one).
"""

from __future__ import annotations

import os
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

import pandas as pd


@contextmanager
def replacing(path: str | Path) -> Iterator[Path]:
    """Yield a temp path beside `path` (same extension, so writers that pick
    a format from it still work); on success it replaces `path`, on error it
    is removed and `path` is left as it was."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".tmp-{path.name}")
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def write_bytes(path: str | Path, data: bytes) -> None:
    with replacing(path) as tmp:
        tmp.write_bytes(data)


def write_text(path: str | Path, text: str) -> None:
    with replacing(path) as tmp:
        tmp.write_text(text)


def write_csv(path: str | Path, table: pd.DataFrame) -> None:
    with replacing(path) as tmp:
        table.to_csv(tmp, index=False)


def torch_save(path: str | Path, obj: object) -> None:
    import torch

    with replacing(path) as tmp:
        torch.save(obj, tmp)
