"""`fau synth | index | landmarks | crops | annotations | folds`: the data-chain commands.

Every input and output is a path argument (the workflow's rules pass the
same paths to the same `fau.stages` functions).
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from . import stages
from .config import Config


def _logging() -> None:
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s", stream=sys.stderr)


def _frames(p: argparse.ArgumentParser) -> None:
    p.add_argument("--frames", type=Path, required=True, metavar="CSV",
                   help="the frame table written by `fau index` (e.g. results/<name>/index/frames.csv)")


def add_synth(p: argparse.ArgumentParser) -> None:
    p.set_defaults()


def run_synth(args: argparse.Namespace, cfg: Config) -> int:
    _logging()
    print(stages.synth(cfg))
    return 0


def add_index(p: argparse.ArgumentParser) -> None:
    p.add_argument("--out", type=Path, required=True, metavar="CSV", help="the frame table to write")
    p.add_argument("--videos", type=Path, default=None, metavar="TXT",
                   help="also write the dataset's video / task IDs, one a line")


def run_index(args: argparse.Namespace, cfg: Config) -> int:
    _logging()
    print(stages.index(cfg, args.out, args.videos))
    return 0


def add_landmarks(p: argparse.ArgumentParser) -> None:
    _frames(p)
    p.add_argument("--video", required=True, help="video / task ID (a `video` of the frame table)")
    p.add_argument("--out", type=Path, required=True, metavar="CSV", help="the video's landmark table to write")


def run_landmarks(args: argparse.Namespace, cfg: Config) -> int:
    _logging()
    print(stages.landmarks(cfg, args.frames, args.video, args.out))
    return 0


def add_crops(p: argparse.ArgumentParser) -> None:
    _frames(p)
    p.add_argument("--landmarks", type=Path, required=True, metavar="CSV", help="the video's landmark table")
    p.add_argument("--video", required=True, help="video / task ID (a `video` of the frame table)")
    p.add_argument("--out", type=Path, required=True, metavar="CSV", help="the video's crop table to write")
    p.add_argument("--images", type=Path, default=None, metavar="DIR",
                   help="folder for the crops (default: beside --out, named after the video)")


def run_crops(args: argparse.Namespace, cfg: Config) -> int:
    _logging()
    images = args.images or args.out.parent / args.video
    print(stages.crops(cfg, args.frames, args.landmarks, args.video, args.out, images))
    return 0


def add_annotations(p: argparse.ArgumentParser) -> None:
    p.add_argument("tables", nargs="+", type=Path, metavar="CROP_TABLE", help="per-video crop tables")
    p.add_argument("--out", type=Path, required=True, metavar="CSV", help="the annotation table to write")
    p.add_argument("--json", type=Path, required=True, metavar="JSON", help="the annotation JSON to write")
    p.add_argument("--frames", type=Path, default=None, metavar="CSV",
                   help="the frame table (only to report how many frames have no crop)")


def run_annotations(args: argparse.Namespace, cfg: Config) -> int:
    _logging()
    print(stages.annotations(cfg, args.tables, args.out, args.json, frames_csv=args.frames))
    return 0


def add_folds(p: argparse.ArgumentParser) -> None:
    p.add_argument("--annotations", type=Path, required=True, metavar="CSV", help="the annotation table")
    p.add_argument("--out", type=Path, required=True, metavar="JSON", help="folds.json to write")


def run_folds(args: argparse.Namespace, cfg: Config) -> int:
    _logging()
    print(stages.folds(cfg, args.annotations, args.out).replace("; ", "\n"))
    return 0
