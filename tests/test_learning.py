"""The embedded default's model learns AU intensity on people it has not seen.

A small synthetic BP4D dataset goes through the whole data chain (synthetic
people -> index -> dlib landmarks -> crops -> annotations), split with
`folds.group_by: person` (the people whose face dominates the test subjects
dominate no training subject), and the embedded default's model and training
schedule (config/config.yaml) train on one fold. Bar: see BAR below.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
import torch

from fau import stages
from fau.config import deep_merge, load_yaml, from_dict
from fau.folds import read_folds

from conftest import REPO

pytestmark = pytest.mark.integration

# 12 people of 40 frames (the embedded default has 48 of 20: half its frames
# and a quarter of its people) at a third of BP4D's frame size, to fit CI;
# fold1 of the person split: 8 people train, 4 test.
# FAU_LEARNING_SEED=N runs it with another seed (people and training), as the spread below was measured.
DATA = {"seed": int(os.environ.get("FAU_LEARNING_SEED", "0")),
        "synth": {"enabled": True, "subjects": 12, "tasks": 1, "frames": 40, "width": 348, "height": 464},
        "folds": {"k": 3, "group_by": "person"}, "mlflow": {"enabled": False}}
BAR, BAR_AU, LEARNED = 0.5, 0.3, 5  # mean ICC(3,1) over the 5 AUs > BAR, and at least LEARNED AUs > BAR_AU,
                                    # on the held-out people (see the docstring)


def test_embedded_model_learns_intensities_of_held_out_people(tmp_path):
    """Mean ICC(3,1) over AUs > 0.5 on held-out people, and every AU > 0.3.

    Why these bars: a model that did not learn gives ~0 (a constant
    predictor's ICC is 0; the untrained network's predictions barely vary).
    Here 8 people with 34 coded frames each train (half the embedded
    default's frames, at a third of its frame size, to fit CI) and 4 are
    tested, so one AU's ICC moves with the training and the people. With
    the embedded default (the crop's middle 0.75 as input, unlabelled AUs
    moving in the people, teeth in the open mouth), seeds 0 / 1 / 2
    (FAU_LEARNING_SEED; the seed draws the people too) gave mean 0.76 /
    0.78 / 0.67 and lowest AU 0.63 (AU17) / 0.68 (AU14) / 0.45 (AU17)
    (before the teeth: 0.75 / 0.74 / 0.68, lowest 0.57 / 0.65 / 0.48).
    The bars sit below all three with room
    for another machine's arithmetic, and a model that skipped one AU
    fails them. The default before (the whole crop, only the labelled AUs
    moving) did fail them: seed 0 gave mean 0.55 with AU10 0.22 (and 0.44
    with AU14 0.19 once the unlabelled AUs moved). The embedded default
    itself (48 people, three folds of 28-34 training people) reaches
    >= 0.75 pooled on seeds 0-4 (benchmarks/end_to_end.py checks that bar
    on `make run`'s run)."""
    torch.set_num_threads(1)
    base = load_yaml(REPO / "config" / "config.yaml")
    cfg = from_dict(deep_merge(base, deep_merge(DATA, {
        "results": str(tmp_path / "results"), "dataset": {"name": "learn", "root": str(tmp_path / "BP4D")}})))
    out = tmp_path / "results" / "learn"
    stages.synth(cfg)
    manifest = Path(cfg.dataset.root) / ".synth" / "manifest.json"
    stages.index(cfg, out / "index" / "frames.csv", out / "index" / "videos.txt")
    videos = (out / "index" / "videos.txt").read_text().split()
    tables = []
    for v in videos:
        stages.landmarks(cfg, out / "index" / "frames.csv", v, out / "landmarks" / f"{v}.csv")
        stages.crops(cfg, out / "index" / "frames.csv", out / "landmarks" / f"{v}.csv", v, out / "crops" / f"{v}.csv",
                     out / "crops" / v)
        tables.append(out / "crops" / f"{v}.csv")
    stages.annotations(cfg, tables, out / "annotations.csv", out / "annotations.json")
    stages.folds(cfg, out / "annotations.csv", out / "folds.json", manifest)
    folds = read_folds(out / "folds.json")
    people = {s: r["dominant_person"] for s, r in json.loads(manifest.read_text())["subjects"].items()}
    fold = folds[0]
    assert not {people[s] for s in fold["test"]} & {people[s] for s in fold["train"]}  # held-out people only

    stages.train(cfg, out / "annotations.csv", out / "folds.json", fold["name"], out / "models" / "fold1.pt",
                 out / "history" / "fold1.csv", checkpoint=out / "checkpoints" / "fold1.pt", threads=1)
    stages.evaluate(cfg, out / "annotations.csv", out / "folds.json", fold["name"], out / "models" / "fold1.pt",
                    out / "predictions" / "fold1.csv", out / "metrics" / "fold1.csv", threads=1)
    import pandas as pd

    metrics = pd.read_csv(out / "metrics" / "fold1.csv").set_index("au")
    print("held-out people:", fold["test"], "\n", metrics)
    assert metrics.loc["mean", "icc"] > BAR, metrics
    assert (metrics.drop(index="mean")["icc"] > BAR_AU).sum() >= LEARNED, metrics
