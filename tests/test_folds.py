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


def test_group_by_person_keeps_each_dominant_person_on_one_side(tmp_path):
    """The split the learning tests use: no person dominates subjects on both
    sides of a fold; groups balanced by subject count (largest first)."""
    import json

    from fau.folds import person_groups

    people = {"F001": "eileen", "M001": "obama", "M002": "biden", "F002": "grace", "M003": "average",
              "M004": "obama", "M005": "obama", "F003": "eileen", "M006": "obama", "M007": "biden",
              "F004": "grace", "M008": "average"}
    manifest = tmp_path / "manifest.json"
    manifest.write_text(json.dumps({"subjects": {s: {"dominant_person": p} for s, p in people.items()}}))
    folds = make_folds(sorted(people), FoldsConfig(k=3, group_by="person"), person_groups(manifest))
    assert sorted(s for f in folds for s in f["test"]) == sorted(people)  # every subject tested once
    for f in folds:
        test_people = {people[s] for s in f["test"]}
        train_people = {people[s] for s in f["train"]}
        assert not test_people & train_people, f
        assert len(f["test"]) == 4
    assert folds[0]["test"] == ["M001", "M004", "M005", "M006"]  # the largest group first, into fold1
    with pytest.raises(FauError, match="only 2 people"):
        make_folds(["F001", "M001"], FoldsConfig(k=3, group_by="person"), people)
    with pytest.raises(FauError, match="manifest.*missing|missing.*manifest"):
        person_groups(tmp_path / "nope.json")
