"""Subject-exclusive folds."""

from __future__ import annotations

import logging

import pytest

from fau.config import FoldsConfig
from fau.errors import FauError
from fau.folds import fold_names, make_folds

SUBJECTS = [f"F{i:03d}" for i in range(1, 8)] + [f"M{i:03d}" for i in range(1, 6)]


@pytest.mark.parametrize("k", [2, 3, 5])
def test_kfold_tests_every_subject_once(k):
    folds = make_folds(list(reversed(SUBJECTS)), FoldsConfig(k=k))
    assert [f["name"] for f in folds] == fold_names(FoldsConfig(k=k)) == [f"fold{i + 1}" for i in range(k)]
    tested = [s for f in folds for s in f["test"]]
    assert sorted(tested) == sorted(SUBJECTS)  # each exactly once
    for f in folds:
        assert not set(f["train"]) & set(f["test"])
        assert sorted(f["train"] + f["test"]) == sorted(SUBJECTS)


def test_parts(caplog):
    parts = (("F001", "M001", "F002", "X999"), ("F003", "M002"), ("F004", "M003", "M004"))
    with caplog.at_level(logging.WARNING):
        folds = make_folds(SUBJECTS, FoldsConfig(parts=parts))
    assert "X999" in caplog.text  # listed but absent: dropped with a warning
    assert folds[0] == {"name": "fold1", "test": ["F001", "M001", "F002"],
                        "train": ["F003", "M002", "F004", "M003", "M004"]}
    assert folds[2]["test"] == ["F004", "M003", "M004"]


def test_explicit_fera_style():
    odd = [s for s in SUBJECTS if int(s[1:]) % 2]
    even = [s for s in SUBJECTS if not int(s[1:]) % 2]
    cfg = FoldsConfig(explicit=({"name": "fera2015", "train": odd, "test": even},))
    assert fold_names(cfg) == ["fera2015"]
    assert make_folds(SUBJECTS, cfg) == [{"name": "fera2015", "train": odd, "test": even}]


def test_empty_fold_is_an_error():
    with pytest.raises(FauError, match="fold1: no train subject"):
        make_folds(SUBJECTS, FoldsConfig(parts=(("F001",), ("Z001",))))
    with pytest.raises(FauError, match="only 2 subjects"):
        make_folds(["F001", "M001"], FoldsConfig(k=3))
    with pytest.raises(FauError, match="both train and test"):
        make_folds(SUBJECTS, FoldsConfig(explicit=({"train": ["F001"], "test": ["F001", "F002"]},)))
