"""A small synthetic annotation set for the model tests (independent of the
data chain): crops with one bright disc per AU point whose brightness and
radius grow with the AU's intensity, on a per-subject textured background."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pandas as pd

from fau.config import from_dict

AUS = (6, 12, 17)
AU_NAMES = [f"AU{a:02d}" for a in AUS]
# Point pairs (x, y) in a 64 x 64 crop, scaled for other sizes.
BASE_POINTS = {"AU06": ((14, 22), (50, 22)), "AU12": ((20, 44), (44, 44)), "AU17": ((32, 52), (32, 60))}


def make_annotation_set(root: Path, subjects: tuple[str, ...] = ("S1", "S2", "S3", "S4"), frames: int = 30,
                        size: int = 64, seed: int = 0, nan_fraction: float = 0.0) -> Path:
    """Write `<root>/crops/<video>/<frame>.png` and `<root>/annotations.csv`
    (the annotation table's columns); returns the table's path."""
    rng = np.random.default_rng(seed)
    k = size / 64
    rows = []
    for s_i, subject in enumerate(subjects):
        video = f"{subject}_T1"
        (root / "crops" / video).mkdir(parents=True, exist_ok=True)
        tint = rng.uniform(20, 70, size=3)
        texture = rng.normal(0, 8, size=(size, size, 3))
        jitter = {au: rng.uniform(-2, 2, size=2) * k for au in AU_NAMES}
        for f in range(1, frames + 1):
            intens = rng.integers(0, 6, size=len(AU_NAMES)).astype(float)
            img = np.clip(tint + texture + rng.normal(0, 4, size=(size, size, 3)), 0, 255).astype(np.uint8)
            row = {"imgpath": f"crops/{video}/{f}.png", "video": video, "subject": subject, "task": "T1",
                   "frame": f}
            for au, inten in zip(AU_NAMES, intens):
                for i, (x, y) in enumerate(BASE_POINTS[au], start=1):
                    px, py = x * k + jitter[au][0], y * k + jitter[au][1]
                    if inten > 0:
                        level = int(60 + 38 * inten)
                        cv2.circle(img, (int(round(px)), int(round(py))), int(round((1.5 + 0.5 * inten) * k)),
                                   (level, level, level), -1, lineType=cv2.LINE_AA)
                    row[f"{au}_x{i}"], row[f"{au}_y{i}"] = px, py
                row[au] = inten
            cv2.imwrite(str(root / row["imgpath"]), img)
            rows.append(row)
    df = pd.DataFrame(rows)
    if nan_fraction > 0:
        for au in AU_NAMES:
            df.loc[rng.random(len(df)) < nan_fraction, au] = np.nan
    cols = ["imgpath", "video", "subject", "task", "frame", *AU_NAMES,
            *[f"{au}_{c}{i}" for au in AU_NAMES for i in (1, 2) for c in ("x", "y")]]
    path = root / "annotations.csv"
    df[cols].to_csv(path, index=False)
    return path


def tiny_config(**sections):
    """Config for the synthetic set: resnet18, 64 px input, CPU; `sections`
    are deep-merged overrides, e.g. train={"epochs": 2}."""
    from fau.config import deep_merge

    base = {
        "seed": 0,
        "dataset": {"name": "synthtest", "aus": list(AUS)},
        "model": {"backbone": "resnet18", "input_size": 64, "head_channels": [64, 32, 32]},
        "train": {"epochs": 2, "batch_size": 8, "lr_milestones": [], "device": "cpu"},
        "eval": {"batch_size": 16},
        "mlflow": {"enabled": False},
    }
    return from_dict(deep_merge(base, sections))


def fold(train: tuple[str, ...] = ("S1", "S2", "S3"), test: tuple[str, ...] = ("S4",), name: str = "fold1") -> dict:
    return {"name": name, "train": list(train), "test": list(test)}


def train_into(cfg, data: Path, fold_: dict, fold_dir: Path, **kwargs):
    """`fau.train.train_fold` with the fold's files in one folder (model.pt, history.csv, checkpoint.pt)."""
    from fau.train import train_fold

    return train_fold(cfg, data, fold_, fold_dir / "model.pt", fold_dir / "history.csv", fold_dir / "checkpoint.pt",
                      **kwargs)


def evaluate_into(cfg, data: Path, fold_: dict, fold_dir: Path, **kwargs):
    """`fau.evaluate.evaluate_fold` reading and writing in the fold's folder."""
    from fau.evaluate import evaluate_fold

    return evaluate_fold(cfg, data, fold_, fold_dir / "model.pt", fold_dir / "predictions.csv",
                         fold_dir / "metrics.csv", **kwargs)


def spread_outputs(model_pt: Path, annotations_csv: Path) -> None:
    """Rescale the model's last 1 x 1 convolution per output map so that
    each map's peak over the dataset's crops spans 0.5..4.5 x 255: a model
    briefly trained on a few dozen crops predicts near-constants (clipped at
    0 or 5), which would make a weak comparison. The peak of a x map + b is
    a x peak + b (a > 0): the intensities stay the network's function of
    the crop, now spread over the scale."""
    import torch

    from fau.data import AUDataset
    from fau.inference import load_model

    net, meta = load_model(model_pt)
    ds = AUDataset(pd.read_csv(annotations_csv), annotations_csv.parent, meta["aus"],
                   int(meta["model_config"]["input_size"]), meta["normalization"])
    with torch.no_grad():
        x = torch.stack([ds[i]["image"] for i in range(len(ds))])
        peak = net(x).flatten(2).amax(2).double()  # (N, P)
    lo, hi = peak.min(0).values, peak.max(0).values
    a = 4 * 255.0 / (hi - lo)
    b = 0.5 * 255.0 - a * lo
    state = meta["state_dict"]
    state["head.final.weight"] = (state["head.final.weight"].double() * a[:, None, None, None]).float()
    state["head.final.bias"] = (state["head.final.bias"].double() * a + b).float()
    torch.save(meta, model_pt)
