"""BP4D reader: AU_INT label files -> frame table (docs/architecture.md).

The labels decide which frames exist: every (subject, task) with a label file
for any AU of `ds.aus` must have one for every AU; a frame listed in any AU's
file is a row, with NaN where an AU file gives 9 or does not list the frame.
Frames whose JPEG (or zip member, `frames_form: zip`) is missing are dropped
with a warning giving the count.
"""

from __future__ import annotations

import logging
import zipfile
from pathlib import Path

import pandas as pd

from ..config import DatasetConfig
from ..errors import FauError
from .common import finish_table, label_columns, match_pattern, read_label_file

log = logging.getLogger(__name__)
ALLOWED = {0, 1, 2, 3, 4, 5, 9}


def _zip_names(path: Path) -> set[str]:
    try:
        with zipfile.ZipFile(path) as zf:
            return set(zf.namelist())
    except FileNotFoundError:
        raise FauError(f"{path}: zip of frames missing (dataset.frames_form is 'zip')") from None
    except (OSError, zipfile.BadZipFile) as e:
        raise FauError(f"{path}: unreadable zip ({e})") from None


def read_frame_table(ds: DatasetConfig) -> pd.DataFrame:
    """One row per labelled frame of a BP4D-layout dataset at `ds.root`."""
    root = Path(ds.root)
    if not root.is_dir():
        raise FauError(f"{root}: dataset folder missing (config key 'dataset.root')")
    label_pattern = ds.pattern("labels")
    pairs = sorted({(m["subject"], m["task"]) for au in ds.aus
                    for m in match_pattern(root, label_pattern, {"au": au})})
    if not pairs:
        raise FauError(f"no label files match pattern '{label_pattern}' under {root} (dataset.patterns.labels)")
    if ds.subjects is not None:
        keep = set(ds.subjects)
        pairs = [p for p in pairs if p[0] in keep]
        if not pairs:
            raise FauError(f"{root}: none of the subjects in dataset.subjects ({', '.join(ds.subjects)}) has labels")
    parts, missing_total = [], 0
    zip_cache: dict[str, set[str]] = {}
    for subject, task in pairs:
        labels = {au: read_label_file(root / label_pattern.format(au=au, subject=subject, task=task), ALLOWED)
                  for au in ds.aus}
        frames = sorted(set().union(*(lab.keys() for lab in labels.values())))[::max(1, ds.frame_step)]
        if ds.frames_form == "zip":
            zrel = ds.pattern("zip").format(subject=subject)
            if zrel not in zip_cache:
                zip_cache[zrel] = _zip_names(root / zrel)
            members = [ds.pattern("zip_member").format(subject=subject, task=task, frame=f) for f in frames]
            present = [m in zip_cache[zrel] for m in members]
            sources = [f"{zrel}/{m}" for m in members]
        else:
            sources = [ds.pattern("frames").format(subject=subject, task=task, frame=f) for f in frames]
            present = [(root / s).is_file() for s in sources]
        missing = len(present) - sum(present)
        if missing:
            missing_total += missing
            log.warning("%s_%s: %d labelled frames have no image and are dropped", subject, task, missing)
        keep_idx = [i for i, ok in enumerate(present) if ok]
        frames = [frames[i] for i in keep_idx]
        table = pd.DataFrame({"video": f"{subject}_{task}", "subject": subject, "task": task,
                              "frame": frames, "source": [sources[i] for i in keep_idx], "index": -1,
                              **label_columns(frames, labels, ds.aus)})
        parts.append(table)
    if missing_total:
        log.warning("%s: %d labelled frames without an image were dropped in total", root, missing_total)
    return finish_table(parts, ds.aus)
