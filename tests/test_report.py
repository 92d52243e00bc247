"""The report's per-subject table: what a synthetic person is made from, and
how much of its face the training people of its fold carry."""

import json

import numpy as np
import pandas as pd
import pytest

from fau.report import made_from, subjects_section

MANIFEST = {"subjects": {
    "F001": {"dominant_person": "ann", "sources": [{"person": "bob", "photo": "bob.jpg", "weight": 0.3},
                                                   {"person": "ann", "photo": "ann.jpg", "weight": 0.7}]},
    "M001": {"dominant_person": "bob", "sources": [{"person": "bob", "photo": "bob.jpg", "weight": 0.6},
                                                   {"person": "ann", "photo": "ann2.jpg", "weight": 0.25},
                                                   {"person": "cy", "photo": "cy.jpg", "weight": 0.15}]},
    "M002": {"dominant_person": "cy", "sources": [{"person": "cy", "photo": "cy.jpg", "weight": 0.55},
                                                  {"person": "ann", "photo": "ann.jpg", "weight": 0.45}]},
}}
FOLDS = [{"name": "fold1", "train": ["M001", "M002"], "test": ["F001"]},
         {"name": "fold2", "train": ["F001", "M002"], "test": ["M001"]},
         {"name": "fold3", "train": ["F001", "M001"], "test": ["M002"]}]


def test_made_from_lists_photos_heaviest_first_and_sums_the_dominant_persons_weight_in_training(tmp_path):
    path = tmp_path / "manifest.json"
    path.write_text(json.dumps(MANIFEST))
    sources, carried = made_from(path, FOLDS)
    assert sources["F001"] == "ann.jpg 0.70, bob.jpg 0.30"
    assert sources["M001"] == "bob.jpg 0.60, ann2.jpg 0.25, cy.jpg 0.15"
    # F001's person (ann) in M001 (ann2.jpg 0.25) and M002 (ann.jpg 0.45); M001's (bob) only in F001;
    # M002's (cy) only in M001
    assert carried == pytest.approx({"F001": 0.70, "M001": 0.30, "M002": 0.15})
    assert made_from(None, FOLDS) == ({}, {})  # a real dataset has no manifest


def test_subjects_section_is_a_table_row_per_subject(tmp_path):
    path = tmp_path / "manifest.json"
    path.write_text(json.dumps(MANIFEST))
    table = pd.DataFrame({"subject": ["F001", "M001"], "fold": ["fold1", "fold2"], "AU12": [0.91, np.nan],
                          "mean": [0.91, np.nan], "mae": [0.4, 1.25], "n": [80, 79]})
    lines = subjects_section(table, ["AU12"], path, FOLDS)
    assert "| subject | fold | made from | in training | frames | AU12 | mean | MAE |" in lines
    assert "| F001 | fold1 | ann.jpg 0.70, bob.jpg 0.30 | 0.70 | 80 | 0.91 | **0.91** | 0.40 |" in lines
    assert "| M001 | fold2 | bob.jpg 0.60, ann2.jpg 0.25, cy.jpg 0.15 | 0.30 | 79 | n/a | **n/a** | 1.25 |" in lines
    plain = subjects_section(table, ["AU12"])  # no manifest: no synthetic columns
    assert "| subject | fold | frames | AU12 | mean | MAE |" in plain
