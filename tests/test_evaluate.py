import json

import numpy as np
import pandas as pd
import pytest
import torch

from fau.cli import main
from fau.errors import FauError
from fau.evaluate import pool
from fau.inference import predict_heatmaps
from model_fixtures import AU_NAMES, evaluate_into, fold, make_annotation_set, tiny_config, train_into

CFG = dict(train={"epochs": 1, "batch_size": 8, "lr": 1e-2})


def reference(true, pred) -> dict:
    """Independent of fau.metrics: frames with a label; MAE by hand, Pearson r
    by numpy, ICC(3,1) of two judges as 2 cov / (var + var) (the consistency
    ICC's closed form for k = 2)."""
    t, p = np.asarray(true, float), np.asarray(pred, float)
    keep = ~np.isnan(t)
    t, p = t[keep], p[keep]
    c = np.cov(t, p)  # sample (co)variances
    with np.errstate(invalid="ignore", divide="ignore"):  # r is NaN for a constant prediction
        r = float(np.corrcoef(t, p)[0, 1])
    return {"n": len(t), "mae": float(np.abs(t - p).sum() / len(t)), "pcc": r,
            "icc": float(2 * c[0, 1] / (c[0, 0] + c[1, 1]))}


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    torch.set_num_threads(2)
    root = tmp_path_factory.mktemp("synth")
    data = make_annotation_set(root, frames=8, nan_fraction=0.2, seed=2)
    train_into(tiny_config(**CFG), data, fold(), root / "fold1")
    return data, root / "fold1"


def test_predicts_every_test_row_and_leaves_nan_labels_out_per_au(trained):
    data, fold_dir = trained
    metrics = evaluate_into(tiny_config(**CFG), data, fold(), fold_dir)
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
    by_au = metrics.set_index("au")
    for au in AU_NAMES:
        row = by_au.loc[au]
        assert row["n"] == test[au].notna().sum()
        # The true column is the annotation table's label, row for row.
        assert np.array_equal(pred[f"{au}_true"].to_numpy(), test[au].to_numpy(), equal_nan=True)
        expect = reference(pred[f"{au}_true"], pred[f"{au}_pred"])
        assert row["mae"] == pytest.approx(expect["mae"], rel=1e-9)
        assert row["pcc"] == pytest.approx(expect["pcc"], rel=1e-6, nan_ok=True)
    assert by_au.loc["mean", "mae"] == pytest.approx(np.mean([by_au.loc[au, "mae"] for au in AU_NAMES]))
    assert metrics["n"].iloc[:-1].min() < len(test)  # some labels were NaN


def test_heatmaps_for_figures(trained):
    data, fold_dir = trained
    rows = pd.read_csv(data).iloc[:3]
    images, maps, inten = predict_heatmaps(tiny_config(**CFG), fold_dir / "model.pt", rows, data.parent)
    assert images.shape == (3, 64, 64, 3) and images.dtype == np.uint8
    assert maps.shape == (3, 6, 16, 16) and inten.shape == (3, 3)


def test_missing_model_is_a_clear_error(trained, tmp_path):
    with pytest.raises(FauError, match="model.pt: missing"):
        evaluate_into(tiny_config(), trained[0], fold(), tmp_path)


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
    result = pool({"fold1": tmp_path / "fold1" / "predictions.csv", "fold2": tmp_path / "fold2" / "predictions.csv"},
                  tmp_path / "metrics.csv", tmp_path / "metrics.json", tmp_path / "metrics_folds.csv")
    both = pd.concat([a, b])
    for au in ("AU01", "AU02"):
        expect = reference(both[f"{au}_true"], both[f"{au}_pred"])
        for m in ("icc", "mae", "pcc"):
            assert result["pooled"][au][m] == pytest.approx(expect[m], rel=1e-9), (au, m)
        assert result["pooled"][au]["n"] == expect["n"]
        per_fold = [reference(d[f"{au}_true"], d[f"{au}_pred"])["icc"] for d in (a, b)]
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
        pool({"fold3": tmp_path / "fold3" / "predictions.csv"}, tmp_path / "m.csv", tmp_path / "m.json",
             tmp_path / "f.csv")


def test_cli_train_evaluate_pool(tmp_path, capsys):
    torch.set_num_threads(2)
    out = tmp_path / "results"
    out.mkdir()
    ann = make_annotation_set(out, subjects=("S1", "S2", "S3"), frames=6, seed=3)
    folds = out / "folds.json"
    folds.write_text(json.dumps([fold(("S1", "S2"), ("S3",), "fold1"), fold(("S2", "S3"), ("S1",), "fold2")]))
    (out / "parent.json").write_text(json.dumps({"enabled": False}))
    cfg = json.dumps({"dataset": {"aus": [6, 12, 17]}, "mlflow": {"enabled": False},
                      "model": {"backbone": "resnet18", "input_size": 64, "head_channels": [32, 32, 32]},
                      "train": {"epochs": 1, "batch_size": 8, "device": "cpu", "lr_milestones": []}})
    common = ["--config-json", cfg, "--annotations", str(ann), "--folds", str(folds),
              "--parent", str(out / "parent.json")]
    for name in ("fold1", "fold2"):
        model = out / "models" / f"{name}.pt"
        assert main(["train", "--fold", name, "--threads", "2", *common, "--model", str(model),
                     "--history", str(out / "history" / f"{name}.csv")]) == 0
        assert main(["evaluate", "--fold", name, *common, "--model", str(model),
                     "--predictions", str(out / "predictions" / f"{name}.csv"),
                     "--metrics", str(out / "metrics" / f"{name}.csv")]) == 0
        assert model.exists() and (out / "models" / f"{name}.checkpoint.pt").exists()
        assert (out / "metrics" / f"{name}.csv").exists()
    assert main(["pool", "--config-json", cfg, *(str(p) for p in sorted((out / "predictions").glob("*.csv"))),
                 "--out", str(out / "metrics.csv"), "--json", str(out / "metrics.json"),
                 "--folds-out", str(out / "metrics_folds.csv")]) == 0
    assert set(json.loads((out / "metrics.json").read_text())["folds"]) == {"fold1", "fold2"}
    assert main(["train", "--fold", "fold9", *common, "--model", str(out / "m.pt"),
                 "--history", str(out / "h.csv")]) == 2
    assert "folds.json: no fold named 'fold9'" in capsys.readouterr().err
