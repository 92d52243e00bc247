import json

import numpy as np
import pandas as pd
import pytest
import torch

from fau.cli import main
from fau.errors import FauError
from fau.evaluate import evaluate_fold, pool
from fau.inference import predict_heatmaps
from fau.metrics import au_metrics
from fau.train import train_fold
from model_fixtures import AU_NAMES, make_annotation_set, tiny_config, fold

CFG = dict(train={"epochs": 1, "batch_size": 8, "lr": 1e-2})


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    torch.set_num_threads(2)
    root = tmp_path_factory.mktemp("synth")
    data = make_annotation_set(root, frames=8, nan_fraction=0.2, seed=2)
    train_fold(tiny_config(**CFG), data, fold(), root / "fold1")
    return data, root / "fold1"


def test_predicts_every_test_row_and_leaves_nan_labels_out_per_au(trained):
    data, fold_dir = trained
    metrics = evaluate_fold(tiny_config(**CFG), data, fold(), fold_dir)
    pred = pd.read_csv(fold_dir / "predictions.csv")
    ann = pd.read_csv(data)
    test = ann[ann["subject"] == "S4"]
    assert list(pred.columns) == ["video", "subject", "task", "frame", "imgpath",
                                  *[f"{au}_{s}" for au in AU_NAMES for s in ("true", "pred")]]
    assert len(pred) == len(test) and set(pred["subject"]) == {"S4"}
    assert pred[[f"{au}_pred" for au in AU_NAMES]].notna().all().all()
    assert pred[[f"{au}_pred" for au in AU_NAMES]].stack().between(0, 5).all()
    on_disk = pd.read_csv(fold_dir / "metrics.csv")
    assert list(on_disk.columns) == ["au", "icc", "mae", "pcc", "n"]
    assert on_disk["au"].tolist() == [*AU_NAMES, "mean"]
    for au in AU_NAMES:
        row = metrics.set_index("au").loc[au]
        assert row["n"] == test[au].notna().sum()
        expect = au_metrics(pred[f"{au}_true"], pred[f"{au}_pred"])
        assert row["mae"] == pytest.approx(expect["mae"])
    assert metrics["n"].iloc[:-1].min() < len(test)  # some labels were NaN


def test_heatmaps_for_figures(trained):
    data, fold_dir = trained
    rows = pd.read_csv(data).iloc[:3]
    images, maps, inten = predict_heatmaps(tiny_config(**CFG), fold_dir / "model.pt", rows, data.parent)
    assert images.shape == (3, 64, 64, 3) and images.dtype == np.uint8
    assert maps.shape == (3, 6, 16, 16) and inten.shape == (3, 3)


def test_missing_model_is_a_clear_error(trained, tmp_path):
    with pytest.raises(FauError, match="model.pt: missing"):
        evaluate_fold(tiny_config(), trained[0], fold(), tmp_path)


def _fake_predictions(fold_dir, n, seed):
    rng = np.random.default_rng(seed)
    t = rng.integers(0, 6, size=(n, 2)).astype(float)
    t[0, 1] = np.nan
    p = np.clip(t + rng.normal(0, 1, size=t.shape), 0, 5)
    df = pd.DataFrame({"video": "V", "subject": fold_dir.name, "task": "T1", "frame": range(n), "imgpath": "x.jpg",
                       "AU01_true": t[:, 0], "AU01_pred": p[:, 0], "AU02_true": t[:, 1], "AU02_pred": p[:, 1]})
    fold_dir.mkdir(parents=True)
    df.to_csv(fold_dir / "predictions.csv", index=False)
    return df


def test_pool_pools_frames_and_summarises_folds(tmp_path):
    a = _fake_predictions(tmp_path / "fold1", 30, 0)
    b = _fake_predictions(tmp_path / "fold2", 20, 1)
    result = pool([tmp_path / "fold1", tmp_path / "fold2"], tmp_path)
    both = pd.concat([a, b])
    for au in ("AU01", "AU02"):
        expect = au_metrics(both[f"{au}_true"], both[f"{au}_pred"])
        assert result["pooled"][au]["icc"] == pytest.approx(expect["icc"])
        assert result["pooled"][au]["n"] == expect["n"]
        per_fold = [au_metrics(d[f"{au}_true"], d[f"{au}_pred"])["icc"] for d in (a, b)]
        assert result["fold_mean_sd"][au]["icc_mean"] == pytest.approx(np.mean(per_fold))
        assert result["fold_mean_sd"][au]["icc_sd"] == pytest.approx(np.std(per_fold, ddof=1))
    assert result["mean"]["mae"] == pytest.approx((result["pooled"]["AU01"]["mae"] +
                                                   result["pooled"]["AU02"]["mae"]) / 2)
    on_disk = json.loads((tmp_path / "metrics.json").read_text())
    assert on_disk["pooled"] == result["pooled"] and on_disk["mean"] == result["mean"]
    assert set(on_disk) == {"pooled", "mean", "folds", "fold_mean_sd"} and set(on_disk["folds"]) == {"fold1", "fold2"}
    assert pd.read_csv(tmp_path / "metrics.csv")["au"].tolist() == ["AU01", "AU02", "mean"]
    folds = pd.read_csv(tmp_path / "metrics_folds.csv")
    assert list(folds.columns) == ["fold", "au", "icc", "mae", "pcc", "n"] and len(folds) == 6


def test_pool_names_a_missing_fold(tmp_path):
    with pytest.raises(FauError, match="fold3/predictions.csv: missing"):
        pool([tmp_path / "fold3"], tmp_path)


def test_cli_train_evaluate_pool(tmp_path, capsys):
    torch.set_num_threads(2)
    out = tmp_path / "results"
    out.mkdir()
    make_annotation_set(out, subjects=("S1", "S2", "S3"), frames=6, seed=3)
    (out / "folds.json").write_text(json.dumps([fold(("S1", "S2"), ("S3",), "fold1"),
                                                fold(("S2", "S3"), ("S1",), "fold2")]))
    (out / "parent.json").write_text(json.dumps({"enabled": False}))
    cfg = json.dumps({"dataset": {"aus": [6, 12, 17]}, "mlflow": {"enabled": False},
                      "model": {"backbone": "resnet18", "input_size": 64, "head_channels": [32, 32, 32]},
                      "train": {"epochs": 1, "batch_size": 8, "device": "cpu", "lr_milestones": []}})
    common = ["--config-json", cfg, "--out", str(out), "--parent", str(out / "parent.json")]
    for name in ("fold1", "fold2"):
        assert main(["train", "--fold", name, "--threads", "2", *common]) == 0
        assert main(["evaluate", "--fold", name, *common]) == 0
        assert (out / name / "model.pt").exists() and (out / name / "metrics.csv").exists()
    assert main(["pool", *common]) == 0
    assert set(json.loads((out / "metrics.json").read_text())["folds"]) == {"fold1", "fold2"}
    assert main(["train", "--fold", "fold9", *common]) == 2
    assert "folds.json: no fold named 'fold9'" in capsys.readouterr().err
