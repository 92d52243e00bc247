"""Typed config: defaults, strictness, and the shipped configs."""

from pathlib import Path

import pytest

from fau.config import DEFAULT_PATTERNS, Config, from_dict, load_config
from fau.errors import FauError

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("name", ["config.yaml", "bp4d.yaml", "disfa.yaml"])
def test_shipped_configs_load(name):
    cfg = load_config([ROOT / "config" / name])
    assert isinstance(cfg, Config)
    assert cfg.out_dir == Path(cfg.results) / cfg.dataset.name


def test_paper_protocol_in_dataset_configs():
    for name, n_aus in [("bp4d.yaml", 5), ("disfa.yaml", 12)]:
        cfg = load_config([ROOT / "config" / name])
        assert (cfg.model.backbone, cfg.model.input_size) == ("resnet50", 256)
        assert (cfg.train.epochs, cfg.train.batch_size, cfg.train.lr) == (10, 16, 5e-4)
        assert cfg.train.lr_milestones == (5, 10) and cfg.train.weight_decay == 1e-5
        assert len(cfg.dataset.aus) == n_aus and len(cfg.folds.parts) == 3
    disfa = load_config([ROOT / "config" / "disfa.yaml"])
    subjects = [s for part in disfa.folds.parts for s in part]
    assert len(subjects) == len(set(subjects)) == 27


def test_unknown_key_is_named_with_a_suggestion():
    with pytest.raises(FauError, match=r"'train\.epoch' is not known \(did you mean 'train\.epochs'\?\)"):
        from_dict({"train": {"epoch": 3}})


@pytest.mark.parametrize(
    "data, message",
    [
        ({"train": {"epochs": "ten"}}, r"'train\.epochs' must be an integer"),
        ({"model": {"scc": {"impl": "fast"}}}, r"'model\.scc\.impl' is 'fast'"),
        ({"dataset": {"kind": "affectnet"}}, r"'dataset\.kind'"),
        ({"model": {"input_size": 100}}, r"multiple of 32"),
        ({"synth": {"enabled": "yes"}}, r"'synth\.enabled' must be true or false"),
    ],
)
def test_wrong_values_are_named(data, message):
    with pytest.raises(FauError, match=message):
        from_dict(data)


def test_overrides_and_inline_json_merge_in_order(tmp_path):
    f = tmp_path / "c.yaml"
    f.write_text("train: {epochs: 3, batch_size: 8}\nmodel: {scc: {k: 5}}\n")
    cfg = load_config([f], ["train.epochs=7"], inline='{"model": {"scc": {"layout": "released"}}}')
    assert cfg.train.epochs == 7 and cfg.train.batch_size == 8
    assert cfg.model.scc.k == 5 and cfg.model.scc.layout == "released"


def test_bad_yaml_names_the_file(tmp_path):
    f = tmp_path / "broken.yaml"
    f.write_text("train: [unclosed\n")
    with pytest.raises(FauError, match="broken.yaml"):
        load_config([f])


def test_default_patterns_are_the_official_layouts():
    cfg = from_dict({})
    assert cfg.dataset.pattern("labels") == DEFAULT_PATTERNS["bp4d"]["labels"]
    assert DEFAULT_PATTERNS["bp4d"]["labels"].format(subject="F001", task="T1", au=6) == \
        "AUCoding/AU_INT/AU06/F001_T1_AU06.csv"
    assert DEFAULT_PATTERNS["disfa"]["video"].format(subject="SN001") == "Videos_LeftCamera/LeftVideoSN001_comp.avi"
    assert DEFAULT_PATTERNS["disfa"]["labels"].format(subject="SN001", au=1) == \
        "ActionUnit_Labels/SN001/SN001_au1.txt"
    custom = from_dict({"dataset": {"patterns": {"labels": "AU Intensity Codes3.0/AU{au:02d}/{subject}_{task}_AU{au:02d}.csv"}}})
    assert custom.dataset.pattern("labels").startswith("AU Intensity Codes3.0/")
    assert custom.dataset.pattern("frames") == DEFAULT_PATTERNS["bp4d"]["frames"]
