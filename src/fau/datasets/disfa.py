"""DISFA reader: per-subject videos + per-AU label files -> frame table.

Subjects are the videos matching `patterns.video`; each needs a label file per
AU of `ds.aus`. DISFA codes every frame of every AU (it has no "not coded"
value), so rows are the frames present in the video and in *every* AU file
(1-based frame numbers, `index` = frame - 1). An AU file that lacks frames
of the video (e.g. shorter than the video) gets a warning naming it and the
frames left out; labelled frames beyond the video are reported with their
count; a subject left with no frame is an error.
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
        paths = {au: root / ds.pattern("labels").format(au=au, subject=subject) for au in ds.aus}
        labels = {au: read_label_file(path, ALLOWED) for au, path in paths.items()}
        source = video_pattern.format(subject=subject)
        n_video = video_frame_count(root / source)
        in_video = set(range(1, n_video + 1))
        for au, lab in labels.items():  # DISFA has no "not coded": a frame missing from one AU file is unlabelled
            lacking = sorted(in_video - lab.keys())
            if lacking:
                log.warning("%s: no label for %d of the video's %d frames (%s); they are left out (DISFA has "
                            "no 'not coded' value)", paths[au], len(lacking), n_video, _ranges(lacking))
        labelled = set().union(*(lab.keys() for lab in labels.values()))
        frames = sorted(in_video.intersection(*(lab.keys() for lab in labels.values())))
        beyond = len(labelled - in_video)
        if beyond:
            log.warning("%s: video has %d frames; %d labelled frames beyond its end are left out", root / source,
                        n_video, beyond)
        if not frames:
            raise FauError(f"{root / source}: none of its {n_video} frames is labelled in every AU file "
                           f"({paths[ds.aus[0]].parent})")
        frames = frames[::max(1, ds.frame_step)]
        parts.append(pd.DataFrame({"video": subject, "subject": subject, "task": "", "frame": frames,
                                   "source": source, "index": [f - 1 for f in frames],
                                   **label_columns(frames, labels, ds.aus)}))
    return finish_table(parts, ds.aus)


def _ranges(frames: list[int], most: int = 3) -> str:
    """[1, 2, 3, 7, 9, 10] -> 'frames 1-3, 7, 9-10' (the first `most` runs, then '...')."""
    runs: list[list[int]] = []
    for f in frames:
        if runs and f == runs[-1][1] + 1:
            runs[-1][1] = f
        else:
            runs.append([f, f])
    text = ", ".join(f"{a}-{b}" if b > a else f"{a}" for a, b in runs[:most])
    return f"frames {text}{', ...' if len(runs) > most else ''}"
