"""The flip test (`eval.flip_test`, as Simple Baselines tests): an AU's
intensity is the mean of the crop's and of its mirror image's. Checked on
evaluation's path against mirrored crop files written to disk and read
through the same path without the flip test."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pandas as pd
import pytest
import torch
from model_fixtures import AU_NAMES, fold, make_annotation_set, spread_outputs, tiny_config, train_into

from fau.inference import load_model, predict


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    torch.set_num_threads(2)
    base = tmp_path_factory.mktemp("flip")
    data = make_annotation_set(base / "data", subjects=("S1", "S2"), frames=8, seed=3)
    train_into(tiny_config(train={"epochs": 1}), data, fold(("S1", "S2"), ("S1", "S2")), base / "fold")
    spread_outputs(base / "fold" / "model.pt", data)  # peaks over 0.5..4.5: nothing clipped flat
    return data, base / "fold" / "model.pt"


def _mirrored_table(table: pd.DataFrame, root, out_dir) -> pd.DataFrame:
    """The same rows with every crop mirrored left-right into `out_dir` (PNG: lossless)."""
    rows = table.copy()
    for i, path in enumerate(table["imgpath"]):
        out = out_dir / f"{i}.png"
        cv2.imwrite(str(out), cv2.flip(cv2.imread(str(root / path)), 1))
        rows.loc[rows.index[i], "imgpath"] = str(out.relative_to(root))
    return rows


def test_flip_test_is_the_mean_over_the_crop_and_its_mirror_image(trained):
    data, model_pt = trained
    net, meta = load_model(model_pt)
    size, norm = int(meta["model_config"]["input_size"]), meta["normalization"]
    table = pd.read_csv(data)
    (data.parent / "mirrored").mkdir()
    mirrored = _mirrored_table(table, data.parent, data.parent / "mirrored")

    def run(rows, flip):
        pred = predict(net, rows, data.parent, AU_NAMES, size, norm, batch_size=5, flip_test=flip)
        return pred[[f"{au}_pred" for au in AU_NAMES]].to_numpy()  # (N, A)

    plain, of_mirror = run(table, False), run(mirrored, False)
    flipped = run(table, True)
    assert flipped == pytest.approx((plain + of_mirror) / 2, abs=1e-5)
    # a face and its mirror image read the same
    assert run(mirrored, True) == pytest.approx(flipped, abs=1e-5)
    # and the comparison is not vacuous: this model reads a crop and its mirror differently
    assert np.abs(plain - of_mirror).max() > 0.05
    assert 0.5 < plain.mean() < 4.5


def test_the_report_says_how_inputs_were_normalised_and_whether_the_flip_test_ran():
    """The report's Run section names the input normalisation and the flip
    test, which both change the numbers in its table."""
    from fau.config import from_dict, load_yaml
    from fau.report import _config_summary

    folds = [{"name": "fold1", "train": ["F001"], "test": ["M001"]}]
    for normalization, flip, words in (
            ("per_crop", True, "each crop minus its own mean colour, divided by its own contrast; "
                               "intensities: the mean of each crop's and its mirror image's (flip test)"),
            ("imagenet", False, "RGB scaled by ImageNet's mean and sd; intensities: one pass per crop (no flip test)")):
        data = load_yaml(Path(__file__).resolve().parents[1] / "config" / "config.yaml")
        data["train"]["normalization"], data["eval"]["flip_test"] = normalization, flip
        text = _config_summary(from_dict(data), 10, folds)
        assert f"- network input: {words}" in text.splitlines(), text
