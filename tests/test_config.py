"""Typed config: defaults, one check against the schema (messages naming
the key), and the shipped configs."""

import dataclasses
import typing
from pathlib import Path

import pytest
import yaml

from conftest import run_fau
from fau.config import DEFAULT_PATTERNS, Config, from_dict, load_config, reread_overrides, schema, to_plain
from fau.errors import FauError

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("name", ["config.yaml", "bp4d.yaml", "disfa.yaml"])
def test_shipped_configs_load(name):
    cfg = load_config([ROOT / "config" / name])
    assert isinstance(cfg, Config)


def test_test_config_loads_over_the_default():
    cfg = load_config([ROOT / "config" / "config.yaml", ROOT / ".test" / "config" / "config.yaml"])
    assert cfg.dataset.name == "tiny" and cfg.model.input_size == 64


def test_paper_protocol_in_dataset_configs():
    for name, n_aus in [("bp4d.yaml", 5), ("disfa.yaml", 12)]:
        cfg = load_config([ROOT / "config" / name])
        assert (cfg.model.backbone, cfg.model.input_size) == ("resnet50", 256)
        assert (cfg.train.epochs, cfg.train.batch_size, cfg.train.lr) == (10, 16, 5e-4)
        assert cfg.train.lr_milestones == (5, 10) and cfg.train.weight_decay == 1e-5
        assert len(cfg.dataset.aus) == n_aus and len(cfg.folds.parts) == 3
        # over the embedded default, as `snakemake --configfile config/<name>` merges them: the input
        # normalisation ImageNet weights expect, not the from-scratch default's per_crop
        merged = load_config([ROOT / "config" / "config.yaml", ROOT / "config" / name])
        assert cfg.train.normalization == merged.train.normalization == "imagenet", name
        # and nothing else of the small default leaks in: the full-width ResNet-50 with the paper's head,
        # BatchNorm momentum and output scale, no augmentation (config.yaml sets each of these otherwise)
        plain, layered = to_plain(cfg), to_plain(merged)
        plain.pop("synth"), layered.pop("synth")  # synth.enabled is false in both; its sizes are unused
        assert layered == plain, (name, {k: (layered[k], plain[k]) for k in plain if layered[k] != plain[k]})
        assert (merged.model.width, merged.model.head_channels) == (64, (256, 128, 64)), name
        assert not merged.train.augment.enabled and merged.model.bn_momentum == 0.01, name
    disfa = load_config([ROOT / "config" / "disfa.yaml"])
    subjects = [s for part in disfa.folds.parts for s in part]
    assert len(subjects) == len(set(subjects)) == 27


def test_unknown_key_is_named_with_a_suggestion():
    with pytest.raises(FauError, match=r"'train\.epoch' is not known \(did you mean 'train\.epochs'\?\)"):
        from_dict({"train": {"epoch": 3}})


@pytest.mark.parametrize(
    "data, message",
    [
        ({"train": {"epochs": "ten"}}, "config key 'train.epochs' must be an integer, got 'ten'"),
        ({"train": {"epochs": 0}}, "config key 'train.epochs' is 0; must be >= 1"),
        ({"train": {"lr": 0}}, "config key 'train.lr' is 0; must be > 0"),
        ({"model": {"scc": {"impl": "fast"}}},
         "config key 'model.scc.impl' is 'fast'; expected one of factorised, literal"),
        ({"dataset": {"kind": "affectnet"}}, "config key 'dataset.kind' is 'affectnet'; expected one of bp4d, disfa"),
        ({"model": {"input_size": 100}}, "config key 'model.input_size' is 100; must be a multiple of 32"),
        ({"synth": {"enabled": "yes"}}, "config key 'synth.enabled' must be true or false, got 'yes'"),
        ({"synth": {"jpeg_quality": 101}}, "config key 'synth.jpeg_quality' is 101; must be <= 100"),
        ({"dataset": {"aus": []}}, "config key 'dataset.aus' has 0 items; must have at least 1"),
        ({"dataset": {"subjects": ["F001", 2]}}, "config key 'dataset.subjects[1]' must be a string, got 2"),
        ({"folds": {"k": 1}}, "config key 'folds.k' is 1; must be >= 2"),
        ({"folds": {"explicit": [{"name": "a", "train": ["F001"]}]}},
         "config key 'folds.explicit[0]' needs the key test"),
        ({"landmarks": {"redetect_every": 0}}, "config key 'landmarks.redetect_every' is 0; must be >= 1"),
        ({"model": {"scc": {"kk": 3}}}, "config key 'model.scc.kk' is not known (did you mean 'model.scc.k'?)"),
    ],
)
def test_wrong_values_are_named(data, message):
    with pytest.raises(FauError) as err:
        from_dict(data)
    assert str(err.value) == message


def _fields(cls) -> dict:
    hints = typing.get_type_hints(cls)
    return {f.name: hints[f.name] for f in dataclasses.fields(cls)}


def test_schema_and_dataclasses_name_the_same_keys():
    """Every dataclass field is in the schema and the reverse, section by section."""
    def walk(cls, node, key):
        props = node.get("properties", {})
        assert set(props) == set(_fields(cls)), key or "top level"
        assert node.get("additionalProperties") is False, key
        for name, tp in _fields(cls).items():
            if dataclasses.is_dataclass(tp):
                walk(tp, props[name], f"{key}{name}.")
    walk(Config, schema(), "")


def test_defaults_satisfy_the_schema():
    assert from_dict(to_plain(Config())) == Config()


def test_workflow_schema_is_the_packaged_schema():
    assert yaml.safe_load((ROOT / "workflow" / "schemas" / "config.schema.yaml").read_text()) == schema()


def test_ranges_hold_for_the_fau_command_too(tmp_path):
    proc = run_fau("train", "--set", "train.epochs=0", "--annotations", "a.csv", "--folds", "f.json",
                   "--fold", "fold1", "--model", "m.pt", "--history", "h.csv", cwd=tmp_path)
    assert proc.returncode == 2
    assert proc.stderr.strip() == "fau train: error: config key 'train.epochs' is 0; must be >= 1"


def test_overrides_and_inline_json_merge_in_order(tmp_path):
    f = tmp_path / "c.yaml"
    f.write_text("train: {epochs: 3, batch_size: 8}\nmodel: {scc: {k: 5}}\n")
    cfg = load_config([f], ["train.epochs=7"], inline='{"model": {"scc": {"layout": "released"}}}')
    assert cfg.train.epochs == 7 and cfg.train.batch_size == 8
    assert cfg.model.scc.k == 5 and cfg.model.scc.layout == "released"


def test_nested_snakemake_overrides_get_their_types_back():
    """`snakemake --config 'synth={seed: 0}'` hands over every nested leaf as
    a string (YAML's BaseLoader); read again where the schema takes no
    string, kept where it does (a dataset named 123 stays a name)."""
    shipped = yaml.safe_load((ROOT / "config" / "config.yaml").read_text())
    over = {"synth": {"seed": "0"}, "train": {"lr": "0.002", "augment": {"enabled": "false"}},
            "dataset": {"name": "123", "aus": ["6", "12"]}}
    merged = {**shipped, **{k: {**shipped[k], **v} for k, v in over.items()}}  # as Snakemake merges them
    cfg = from_dict(reread_overrides(merged, over))
    assert cfg.synth.seed == 0 and cfg.train.lr == 0.002 and cfg.train.augment.enabled is False
    assert cfg.dataset.name == "123" and list(cfg.dataset.aus) == [6, 12]
    assert cfg.train.epochs == shipped["train"]["epochs"]  # keys the override leaves out stay
    with pytest.raises(FauError, match="must be an integer, got '6'"):
        from_dict(merged)  # what the schema saw before


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
