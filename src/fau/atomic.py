"""Atomic file writes: every output is written to a hidden temp file beside
its final path and moved into place with os.replace, so an interrupted or
failed job never leaves a truncated output (and never clobbers a good one).
A folder output (`replacing_dir`) is filled in a fresh hidden folder and
swapped in whole: nothing of the old folder's files is left in it.
"""

from __future__ import annotations

import os
import shutil
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
    except OSError as e:  # name the output, not its temp file (e.g. "permission denied")
        if e.filename is not None and Path(e.filename) == tmp:
            e.filename, e.filename2 = str(path), None
        raise
    finally:
        try:
            tmp.unlink(missing_ok=True)
        except OSError:  # a folder we cannot write holds no temp file
            pass


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


@contextmanager
def replacing_dir(path: str | Path) -> Iterator[Path]:
    """Yield a fresh, empty temp folder beside `path`; on success it takes
    `path`'s place (the old folder, if any, is removed: no stale file of it
    stays), on error it is removed and `path` is left as it was. The swap is
    two renames on the same filesystem."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp, old = path.with_name(f".tmp-{path.name}"), path.with_name(f".old-{path.name}")
    for leftover in (tmp, old):  # from a job killed earlier
        shutil.rmtree(leftover, ignore_errors=True)
    tmp.mkdir()
    try:
        yield tmp
        if path.exists():
            os.rename(path, old)
        os.rename(tmp, path)
        shutil.rmtree(old, ignore_errors=True)
    except OSError as e:
        if e.filename is not None and Path(e.filename) == tmp:
            e.filename, e.filename2 = str(path), None
        raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
