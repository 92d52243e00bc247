import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import mean_absolute_error

from fau.metrics import au_metrics, icc, icc31, mae, metrics_table, pcc, subject_table

# Shrout & Fleiss (1979), Table 2: 6 targets rated by 4 judges.
SF = np.array([[9, 2, 5, 8], [6, 1, 3, 2], [8, 4, 6, 8], [7, 1, 2, 6], [10, 5, 6, 9], [6, 2, 4, 7]], float)


@pytest.mark.parametrize("kind, expected", [("1,1", 0.17), ("2,1", 0.29), ("3,1", 0.71), ("3,k", 0.91)])
def test_icc_matches_shrout_fleiss_table(kind, expected):
    assert round(icc(SF, kind), 2) == expected


def test_icc31_of_two_judges_is_one_for_perfect_agreement_and_penalises_offset_less_than_scale():
    t = np.array([0, 1, 2, 3, 4, 5, 2, 1], float)
    assert icc31(t, t) == pytest.approx(1.0)
    # ICC(3,1) is a consistency measure: a constant offset does not change it.
    assert icc31(t, t + 1.5) == pytest.approx(1.0)
    assert icc31(t, 0.5 * t) < 0.95


def test_mae_and_pcc_agree_with_sklearn_and_numpy():
    rng = np.random.default_rng(3)
    t, p = rng.uniform(0, 5, 200), rng.uniform(0, 5, 200)
    p = 0.6 * t + 0.4 * p
    assert mae(t, p) == pytest.approx(mean_absolute_error(t, p), rel=1e-12)
    assert pcc(t, p) == pytest.approx(np.corrcoef(t, p)[0, 1], rel=1e-10)


def test_constant_prediction_gives_nan_pcc_and_nanmean_skips_it():
    pred = pd.DataFrame({"AU01_true": [0, 1, 2, 3.0], "AU01_pred": [1, 1, 1, 1.0],
                         "AU02_true": [0, 1, 2, 3.0], "AU02_pred": [0, 1, 2, 4.0]})
    table = metrics_table(pred, ["AU01", "AU02"]).set_index("au")
    assert np.isnan(table.loc["AU01", "pcc"])
    assert table.loc["mean", "pcc"] == pytest.approx(table.loc["AU02", "pcc"])
    assert table.loc["mean", "mae"] == pytest.approx((table.loc["AU01", "mae"] + table.loc["AU02", "mae"]) / 2)


def test_nan_labels_are_left_out_of_that_au_only():
    t = np.array([0, 1, np.nan, 3, 4.0])
    p = np.array([0, 1, 100, 3, 4.0])
    m = au_metrics(t, p)
    assert m["n"] == 4 and m["mae"] == 0 and m["icc"] == pytest.approx(1.0)


def test_subject_table_scores_each_subject_on_its_own_frames():
    """Two test subjects whose predictions follow their labels exactly, one of
    them 2 intensity units too high throughout: each agrees perfectly with its
    own labels (ICC(3,1) 1), its MAE says by how far it is off, and only the
    pooled ICC pays for the offset between the two. An AU whose label never
    changes for a subject has no ICC there and is left out of its mean."""
    t = np.array([0, 1, 2, 3, 2, 1, 0, 4], float)
    still = np.zeros(8)
    pred = pd.DataFrame({
        "subject": ["M001"] * 8 + ["F001"] * 8, "fold": ["fold2"] * 8 + ["fold1"] * 8,
        "AU12_true": np.r_[t, t], "AU12_pred": np.r_[t + 2, t],
        "AU14_true": np.r_[t[::-1], still], "AU14_pred": np.r_[t[::-1] + 2, still + 0.5],
    })
    table = subject_table(pred, ["AU12", "AU14"]).set_index("subject")
    assert list(table.index) == ["F001", "M001"]
    assert table.loc["M001", "AU12"] == pytest.approx(1.0) and table.loc["M001", "AU14"] == pytest.approx(1.0)
    assert table.loc["M001", "mae"] == pytest.approx(2.0) and table.loc["M001", "fold"] == "fold2"
    assert table.loc["F001", "AU12"] == pytest.approx(1.0) and np.isnan(table.loc["F001", "AU14"])
    assert table.loc["F001", "mean"] == pytest.approx(1.0)  # AU14 (label always 0) left out
    assert table.loc["F001", "mae"] == pytest.approx(0.25)  # 0 on AU12, 0.5 on AU14's 8 frames
    assert (table["n"] == 8).all()
    pooled = metrics_table(pred, ["AU12"]).set_index("au").loc["AU12", "icc"]
    assert pooled < 0.8  # the same frames pooled: M001's offset counts against it
