import pandas as pd
import pytest
import torch

from fau.errors import FauError
from fau.model import build_model
from fau.train import param_groups
from model_fixtures import evaluate_into, fold, make_annotation_set, tiny_config, train_into

CHECKPOINT = "checkpoint.pt"

# 2 epochs with the lr divided after epoch 1, so resume must restore the scheduler too.
CFG = dict(train={"epochs": 2, "batch_size": 8, "lr": 1e-2, "lr_milestones": [1]})


class Kill(Exception):
    pass


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    root = tmp_path_factory.mktemp("synth")
    return make_annotation_set(root, frames=10, nan_fraction=0.15, seed=1)


@pytest.fixture(scope="module")
def uninterrupted(data, tmp_path_factory):
    torch.set_num_threads(2)
    out = tmp_path_factory.mktemp("run_a") / "fold1"
    epochs = []
    result = train_into(tiny_config(**CFG), data, fold(), out, on_epoch=lambda e, m: epochs.append((e, m)))
    return out, result, epochs


def _weights(fold_dir):
    return torch.load(fold_dir / "model.pt", weights_only=True)["state_dict"]


def test_writes_model_history_and_reports_each_epoch(uninterrupted, data):
    out, result, epochs = uninterrupted
    assert [e for e, _ in epochs] == [1, 2]
    assert set(epochs[0][1]) == {"loss", "lr"}
    hist = pd.read_csv(out / "history.csv")
    assert list(hist.columns) == ["epoch", "loss", "lr", "seconds"]
    assert hist["epoch"].tolist() == [1, 2]
    assert hist["lr"].tolist() == pytest.approx([1e-2, 1e-3])
    assert hist["loss"].tolist() == pytest.approx([m["loss"] for _, m in epochs])
    assert (out / CHECKPOINT).exists() and not list(out.glob("*.tmp"))
    # Rows with an AU not coded are left out of training and counted.
    df = pd.read_csv(data)
    train = df[df["subject"].isin(fold()["train"])]
    coded = train[["AU06", "AU12", "AU17"]].notna().all(axis=1)
    assert result["n_train"] == coded.sum() and result["n_excluded"] == (~coded).sum() > 0


def test_resume_after_a_kill_gives_bitwise_the_same_weights(uninterrupted, data, tmp_path):
    out = tmp_path / "fold1"

    def kill_after_first(epoch, metrics):
        if epoch == 1:
            raise Kill()

    with pytest.raises(Kill):
        train_into(tiny_config(**CFG), data, fold(), out, on_epoch=kill_after_first)
    assert not (out / "model.pt").exists()
    assert torch.load(out / CHECKPOINT, weights_only=True)["epoch"] == 1
    result = train_into(tiny_config(**CFG), data, fold(), out)
    assert result["resumed_from"] == 1
    a, b = _weights(uninterrupted[0]), _weights(out)
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    assert pd.read_csv(out / "history.csv")["loss"].tolist() == \
        pd.read_csv(uninterrupted[0] / "history.csv")["loss"].tolist()


def test_same_config_and_seed_give_identical_metrics(uninterrupted, data, tmp_path):
    out = tmp_path / "fold1"
    train_into(tiny_config(**CFG), data, fold(), out)
    a = evaluate_into(tiny_config(**CFG), data, fold(), uninterrupted[0])
    b = evaluate_into(tiny_config(**CFG), data, fold(), out)
    pd.testing.assert_frame_equal(a, b)
    pd.testing.assert_frame_equal(pd.read_csv(uninterrupted[0] / "predictions.csv"),
                                  pd.read_csv(out / "predictions.csv"))


def test_complete_model_returns_at_once(uninterrupted, data):
    out = uninterrupted[0]
    mtime = (out / "model.pt").stat().st_mtime_ns
    result = train_into(tiny_config(**CFG), data, fold(), out, on_epoch=lambda e, m: pytest.fail("trained again"))
    assert result["resumed_from"] == 2 and (out / "model.pt").stat().st_mtime_ns == mtime


def test_weight_decay_only_on_convolution_weights():
    model = build_model(tiny_config().model, 6)
    decay, rest = param_groups(model, 1e-5)
    assert decay["weight_decay"] == 1e-5 and rest["weight_decay"] == 0
    names = {id(p): n for n, p in model.named_parameters()}
    decayed = {names[id(p)] for p in decay["params"]}
    assert "backbone.conv1.weight" in decayed and "head.stages.0.deconv.weight" in decayed
    assert "head.stages.2.scc.weight" in decayed and "head.final.weight" in decayed
    assert not any("bn" in n or n.endswith("bias") for n in decayed)
    assert len(decay["params"]) + len(rest["params"]) == len(list(model.parameters()))


def test_no_training_rows_is_a_clear_error(data, tmp_path):
    with pytest.raises(FauError, match="annotations.csv: no fully coded rows .* fold1"):
        train_into(tiny_config(), data, fold(train=("nobody",)), tmp_path / "f")


def test_missing_table_is_a_clear_error(tmp_path):
    with pytest.raises(FauError, match="annotations.csv: missing"):
        train_into(tiny_config(), tmp_path / "annotations.csv", fold(), tmp_path / "f")


@pytest.mark.integration
def test_short_training_learns_intensities_on_held_out_subject(tmp_path):
    """resnet18, 64 px input, 12 epochs of 120 frames (~30 s on 2 cores):
    the held-out subject's mean ICC(3,1) is clearly above 0 (about 0.8)."""
    torch.set_num_threads(2)
    data = make_annotation_set(tmp_path, frames=40, seed=0)
    # A high lr: the 255-scaled targets need large output weights, and the
    # short run has few steps; BN momentum 0.1 so eval statistics settle.
    cfg = tiny_config(train={"epochs": 12, "batch_size": 8, "lr": 3e-2, "lr_milestones": []},
                      model={"bn_momentum": 0.1})
    train_into(cfg, data, fold(), tmp_path / "fold1")
    metrics = evaluate_into(cfg, data, fold(), tmp_path / "fold1").set_index("au")
    print("learning test metrics:\n", metrics)
    assert metrics.loc["mean", "icc"] > 0.5
    assert metrics.loc["mean", "mae"] < 1.2
