"""DISFA reader: per-subject videos + per-AU label files -> frame table.

Subjects are the videos matching `patterns.video`; each needs a label file per
AU of `ds.aus`. Rows are the frames present in the labels and in the video
(1-based frame numbers, `index` = frame - 1); a mismatch is reported with the
number of frames dropped.
"""

from __future__ import annotations

import logging
from pathlib import Path

import pandas as pd

from ..config import DatasetConfig
from ..errors import FauError
from .common import finish_table, label_columns, match_pattern, read_label_file
from .frames import video_frame_count

log = logging.getLogger(__name__)
ALLOWED = {0, 1, 2, 3, 4, 5}


def read_frame_table(ds: DatasetConfig) -> pd.DataFrame:
    """One row per labelled frame of a DISFA-layout dataset at `ds.root`."""
    root = Path(ds.root)
    if not root.is_dir():
        raise FauError(f"{root}: dataset folder missing (config key 'dataset.root')")
    video_pattern = ds.pattern("video")
    subjects = sorted({m["subject"] for m in match_pattern(root, video_pattern, {})})
    if not subjects:
        raise FauError(f"no videos match pattern '{video_pattern}' under {root} (dataset.patterns.video)")
    if ds.subjects is not None:
        subjects = [s for s in subjects if s in set(ds.subjects)]
        if not subjects:
            raise FauError(f"{root}: none of the subjects in dataset.subjects ({', '.join(ds.subjects)}) has a video")
    parts = []
    for subject in subjects:
        labels = {au: read_label_file(root / ds.pattern("labels").format(au=au, subject=subject), ALLOWED)
                  for au in ds.aus}
        source = video_pattern.format(subject=subject)
        n_video = video_frame_count(root / source)
        labelled = set().union(*(lab.keys() for lab in labels.values()))
        frames = sorted(f for f in labelled if 1 <= f <= n_video)
        dropped_labels = len(labelled) - len(frames)
        dropped_video = n_video - len(frames)
        if dropped_labels or dropped_video:
            log.warning("%s: video has %d frames, labels %d; using the %d in both (dropped %d labelled "
                        "frames beyond the video, %d video frames without labels)", subject, n_video,
                        len(labelled), len(frames), dropped_labels, dropped_video)
        frames = frames[::max(1, ds.frame_step)]
        parts.append(pd.DataFrame({"video": subject, "subject": subject, "task": "", "frame": frames,
                                   "source": source, "index": [f - 1 for f in frames],
                                   **label_columns(frames, labels, ds.aus)}))
    return finish_table(parts, ds.aus)
