"""`fau synth | index | landmarks | crops | annotations | folds`: the data-chain commands."""

from __future__ import annotations

import argparse
import json
import logging
import sys

from . import atomic
from .config import Config
from .errors import FauError


def _logging() -> None:
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s", stream=sys.stderr)


def _video_rows(cfg: Config, video: str):
    from .datasets import load_frame_table

    table = load_frame_table(cfg.out_dir / "index" / "frames.csv")
    rows = table[table["video"] == video]
    if rows.empty:
        raise FauError(f"{cfg.out_dir / 'index' / 'frames.csv'}: no frames of video {video!r}")
    return rows.sort_values("frame", kind="stable").reset_index(drop=True)


# ------------------------------------------------------------------ synth


def add_synth(p: argparse.ArgumentParser) -> None:
    p.set_defaults()


def run_synth(args: argparse.Namespace, cfg: Config) -> int:
    from .synth import generate

    _logging()
    path = generate(cfg.dataset, cfg.synth, cfg.seed)
    print(f"synthetic {cfg.dataset.kind} dataset at {cfg.dataset.root} (manifest {path})")
    return 0


# ------------------------------------------------------------------ index


def add_index(p: argparse.ArgumentParser) -> None:
    p.set_defaults()


def run_index(args: argparse.Namespace, cfg: Config) -> int:
    from .datasets import read_frame_table

    _logging()
    table = read_frame_table(cfg.dataset)
    out = cfg.out_dir / "index"
    videos = sorted(table["video"].unique())
    atomic.write_csv(out / "frames.csv", table)
    atomic.write_text(out / "videos.txt", "".join(f"{v}\n" for v in videos))
    print(f"index: {len(table)} labelled frames in {len(videos)} videos -> {out / 'frames.csv'}")
    return 0


# ------------------------------------------------------------------ landmarks


def add_landmarks(p: argparse.ArgumentParser) -> None:
    p.add_argument("--video", required=True, help="video / task ID (a line of <out>/index/videos.txt)")


def run_landmarks(args: argparse.Namespace, cfg: Config) -> int:
    from .landmarks import LandmarkDetector

    _logging()
    rows = _video_rows(cfg, args.video)
    table = LandmarkDetector(cfg.landmarks).detect_rows(cfg.dataset.root, rows, desc=args.video)
    path = cfg.out_dir / "landmarks" / f"{args.video}.csv"
    atomic.write_csv(path, table)
    found = int(table["success"].sum())
    print(f"landmarks {args.video}: face found in {found}/{len(table)} frames -> {path}")
    return 0


# ------------------------------------------------------------------ crops


def add_crops(p: argparse.ArgumentParser) -> None:
    p.add_argument("--video", required=True, help="video / task ID (a line of <out>/index/videos.txt)")


def run_crops(args: argparse.Namespace, cfg: Config) -> int:
    from .crops import crop_video
    from .datasets.frames import iter_frames
    from .landmarks import read_landmarks

    _logging()
    rows = _video_rows(cfg, args.video)
    lm = read_landmarks(cfg.out_dir / "landmarks" / f"{args.video}.csv")
    found = set(lm.loc[lm["success"] == 1, "frame"].astype(int))
    todo = rows[rows["frame"].isin(found)]
    crops_dir = cfg.out_dir / "crops"
    table = crop_video(iter_frames(cfg.dataset.root, todo), lm, rows, cfg.crops, cfg.dataset.aus, crops_dir)
    atomic.write_csv(crops_dir / f"{args.video}.csv", table)
    print(f"crops {args.video}: {len(table)} crops, {len(rows) - len(table)} frames excluded "
          f"(no landmarks) -> {crops_dir / args.video}")
    return 0


# ------------------------------------------------------------------ annotations


def add_annotations(p: argparse.ArgumentParser) -> None:
    p.set_defaults()


def run_annotations(args: argparse.Namespace, cfg: Config) -> int:
    from .crops import merge_annotations

    _logging()
    listing = cfg.out_dir / "index" / "videos.txt"
    if not listing.is_file():
        raise FauError(f"{listing}: video list missing (run `fau index` first)")
    videos = listing.read_text().split()
    tables = [cfg.out_dir / "crops" / f"{v}.csv" for v in videos]
    n_rows, n_json = merge_annotations(tables, cfg.out_dir, cfg.dataset.aus)
    from .datasets import load_frame_table

    n_frames = len(load_frame_table(cfg.out_dir / "index" / "frames.csv"))
    print(f"annotations: {n_rows} of {n_frames} labelled frames have crops ({n_frames - n_rows} excluded: "
          f"no landmarks); {n_json} in the JSON ({n_rows - n_json} excluded: some AU not coded)")
    return 0


# ------------------------------------------------------------------ folds


def add_folds(p: argparse.ArgumentParser) -> None:
    p.set_defaults()


def run_folds(args: argparse.Namespace, cfg: Config) -> int:
    import pandas as pd

    from .folds import make_folds

    _logging()
    path = cfg.out_dir / "annotations.csv"
    if not path.is_file():
        raise FauError(f"{path}: annotation table missing (run `fau annotations` first)")
    subjects = sorted(pd.read_csv(path, usecols=["subject"], dtype={"subject": str})["subject"].unique())
    folds = make_folds(subjects, cfg.folds)
    atomic.write_text(cfg.out_dir / "folds.json", json.dumps(folds, indent=1) + "\n")
    for f in folds:
        print(f"{f['name']}: train {len(f['train'])} subjects, test {len(f['test'])}: {' '.join(f['test'])}")
    return 0
