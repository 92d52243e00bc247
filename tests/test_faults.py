"""Bad input and faults through the `fau` command (issue 13; docs/faults.md
lists every case and its test): each gets one line naming the file or
config key, or the correct behaviour, and nothing already made is lost or
left stale."""

from __future__ import annotations

import ast
import importlib.util
import json
import math
import os
import shutil
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
import pytest
import torch

from conftest import REPO, run_fau
from model_fixtures import make_annotation_set

BP4D_AUS = "[6,10,12,14,17]"


def _bp4d(root: Path) -> list[str]:
    return ["--set", f"dataset.root={root}", "--set", "dataset.kind=bp4d", "--set", f"dataset.aus={BP4D_AUS}"]


def _disfa(root: Path) -> list[str]:
    return ["--set", f"dataset.root={root}", "--set", "dataset.kind=disfa", "--set", "dataset.aus=[1,2,4]"]


def _error_line(proc: subprocess.CompletedProcess, *needles: str) -> str:
    """The one `error` line of a failed command; every needle in it, no traceback."""
    assert proc.returncode != 0, proc.stdout + proc.stderr
    assert "Traceback" not in proc.stderr, proc.stderr
    lines = [ln for ln in proc.stderr.splitlines() if "error" in ln]
    assert len(lines) == 1, proc.stderr
    for n in needles:
        assert n in lines[0], lines[0]
    return lines[0]


def _ok(proc: subprocess.CompletedProcess) -> subprocess.CompletedProcess:
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc


def _snapshot(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


# ---------------------------------------------------------------- label files


@pytest.fixture()
def bp4d_copy(bp4d, tmp_path):
    root = tmp_path / "BP4D"
    shutil.copytree(bp4d.root, root, ignore=shutil.ignore_patterns("2D+3D", ".synth", "*T2*"))
    return root


@pytest.fixture()
def disfa_copy(disfa, tmp_path):
    root = tmp_path / "DISFA"
    shutil.copytree(disfa.root, root, ignore=shutil.ignore_patterns(".synth", "*SN002*"))
    return root


def test_disfa_au_file_shorter_than_the_video_is_named_and_its_frames_left_out(disfa_copy, tmp_path):
    short = disfa_copy / "ActionUnit_Labels" / "SN001" / "SN001_au2.txt"
    lines = short.read_text().splitlines()
    n = len(lines)
    short.write_text("\n".join(lines[:-3]) + "\n")  # the last 3 frames of the video have no AU2 label
    out = tmp_path / "frames.csv"
    proc = _ok(run_fau("index", *_disfa(disfa_copy), "--out", str(out), cwd=tmp_path))
    warning = [ln for ln in proc.stderr.splitlines() if str(short) in ln]
    assert len(warning) == 1 and f"no label for 3 of the video's {n} frames (frames {n - 2}-{n})" in warning[0], \
        proc.stderr
    assert "DISFA has no 'not coded' value" in warning[0]
    table = pd.read_csv(out)
    # DISFA has no "not coded": those frames are left out, not kept with a NaN label.
    assert table["frame"].tolist() == list(range(1, n - 2))
    assert table[["AU01", "AU02", "AU04"]].notna().all().all()


def test_empty_label_file_is_an_error(bp4d_copy, tmp_path):
    victim = bp4d_copy / "AUCoding" / "AU_INT" / "AU12" / "F001_T1_AU12.csv"
    victim.write_bytes(b"")
    out = tmp_path / "frames.csv"
    out.write_text("earlier\n")
    proc = run_fau("index", *_bp4d(bp4d_copy), "--out", str(out), cwd=tmp_path)
    _error_line(proc, str(victim), "empty label file (0 bytes")
    assert out.read_text() == "earlier\n"


def test_all_label_files_of_a_task_empty_is_an_error_not_a_vanished_task(bp4d_copy, disfa_copy, tmp_path):
    for f in (bp4d_copy / "AUCoding" / "AU_INT").rglob("M001_T1_*.csv"):
        f.write_bytes(b"")
    proc = run_fau("index", *_bp4d(bp4d_copy), "--out", str(tmp_path / "a.csv"), cwd=tmp_path)
    _error_line(proc, "M001_T1_AU", "empty label file")
    assert not (tmp_path / "a.csv").exists()
    for f in (disfa_copy / "ActionUnit_Labels" / "SN001").iterdir():
        f.write_text("\n\n")
    proc = run_fau("index", *_disfa(disfa_copy), "--out", str(tmp_path / "b.csv"), cwd=tmp_path)
    _error_line(proc, "SN001_au", "empty label file")


@pytest.mark.parametrize("value", ["inf", "-inf", "nan", "1e400"])
def test_non_finite_intensity_is_an_error(bp4d_copy, tmp_path, value):
    victim = bp4d_copy / "AUCoding" / "AU_INT" / "AU06" / "F001_T1_AU06.csv"
    lines = victim.read_text().splitlines()
    frame = lines[1].split(",")[0]
    lines[1] = f"{frame},{value}"
    victim.write_text("\n".join(lines) + "\n")
    proc = run_fau("index", *_bp4d(bp4d_copy), "--out", str(tmp_path / "f.csv"), cwd=tmp_path)
    _error_line(proc, str(victim), "line 2", "two integers", value)


# ---------------------------------------------------------------- user mistakes


def _without_file_permissions() -> list[str]:
    """A command prefix under which file permissions apply: nothing as a
    non-root user; as root, root without the capabilities that bypass them
    (setpriv), i.e. a user who cannot write a folder it may not write."""
    if os.geteuid() != 0:
        return []
    caps = "-dac_override,-dac_read_search"
    prefix = ["setpriv", "--bounding-set", caps, "--inh-caps", caps, "--"]
    if shutil.which("setpriv") is None or subprocess.run([*prefix, "true"]).returncode != 0:
        pytest.skip("running as root without setpriv (util-linux) able to drop CAP_DAC_OVERRIDE")
    return prefix


def test_results_folder_the_user_cannot_write(bp4d_copy, tmp_path):
    """Every data-chain command, as a user who cannot write the results
    folder: one line naming the file, the earlier file kept."""
    prefix = _without_file_permissions()
    args = _bp4d(bp4d_copy)
    work = tmp_path / "ok"
    frames, lm = work / "frames.csv", work / "F001_T1.csv"
    _ok(run_fau("index", *args, "--out", str(frames), cwd=tmp_path))
    _ok(run_fau("landmarks", *args, "--frames", str(frames), "--video", "F001_T1", "--out", str(lm), cwd=tmp_path))
    _ok(run_fau("crops", *args, "--frames", str(frames), "--landmarks", str(lm), "--video", "F001_T1",
                "--out", str(work / "crops.csv"), "--images", str(work / "crops"), cwd=tmp_path))
    ro = tmp_path / "results"
    (ro / "index").mkdir(parents=True)
    (ro / "index" / "frames.csv").write_text("earlier\n")
    os.chmod(ro / "index", 0o555)
    os.chmod(ro, 0o555)
    env = dict(os.environ, PYTHONPATH=str(REPO / "src"))

    def fau(*a: str) -> subprocess.CompletedProcess:
        return subprocess.run([*prefix, sys.executable, "-m", "fau.cli", *a], cwd=tmp_path, env=env,
                              capture_output=True, text=True, timeout=300)

    try:
        cases = {
            "index": (["--out", str(ro / "index" / "frames.csv")], ro / "index" / "frames.csv"),
            "landmarks": (["--frames", str(frames), "--video", "F001_T1", "--out", str(ro / "landmarks" / "a.csv")],
                          ro / "landmarks"),
            "crops": (["--frames", str(frames), "--landmarks", str(lm), "--video", "F001_T1",
                       "--out", str(ro / "crops" / "F001_T1.csv")], ro / "crops"),
            "annotations": ([str(work / "crops.csv"), "--out", str(ro / "ann.csv"), "--json", str(ro / "a.json")],
                            ro / "ann.csv"),
        }
        for cmd, (extra, named) in cases.items():
            proc = fau(cmd, *args, *extra)
            line = _error_line(proc, f"fau {cmd}: error: {named}", "Permission denied")
            assert proc.returncode == 2, line
        assert (ro / "index" / "frames.csv").read_text() == "earlier\n"
    finally:
        os.chmod(ro, 0o755)
        os.chmod(ro / "index", 0o755)


def test_corrupt_or_truncated_dlib_model_file(bp4d_copy, tmp_path):
    from fau.landmarks import predictor_path

    args = _bp4d(bp4d_copy)
    frames = tmp_path / "frames.csv"
    _ok(run_fau("index", *args, "--out", str(frames), cwd=tmp_path))
    garbage, cut = tmp_path / "garbage.dat", tmp_path / "cut.dat"
    garbage.write_bytes(b"\x00not a model" * 100)
    cut.write_bytes(predictor_path().read_bytes()[:1_000_000])
    for bad in (garbage, cut):
        out = tmp_path / "lm.csv"
        proc = run_fau("landmarks", *args, "--set", f"landmarks.predictor={bad}", "--frames", str(frames),
                       "--video", "F001_T1", "--out", str(out), cwd=tmp_path)
        _error_line(proc, str(bad), "not a dlib shape predictor model file")
        assert not out.exists()


@pytest.mark.parametrize("kv,message", [
    ("train.batch_size=0", "config key 'train.batch_size' is 0; must be >= 1"),
    ("train.lr=-0.1", "config key 'train.lr' is -0.1; must be > 0"),
    ("train.epochs=0", "config key 'train.epochs' is 0; must be >= 1"),
])
def test_training_values_out_of_range_through_fau_train(tmp_path, kv, message):
    proc = run_fau("train", "--set", kv, "--annotations", "a.csv", "--folds", "f.json", "--fold", "fold1",
                   "--model", "m.pt", "--history", "h.csv", cwd=tmp_path)
    assert proc.returncode == 2
    assert proc.stderr.strip() == f"fau train: error: {message}"
    assert not (tmp_path / "m.pt").exists()


# ---------------------------------------------------------------- videos and crops


@pytest.fixture(scope="module")
def disfa_chain(disfa, tmp_path_factory):
    """SN001 of the DISFA fixture indexed, its landmarks and crops made by `fau`."""
    base = tmp_path_factory.mktemp("disfa_chain")
    root = base / "DISFA"
    shutil.copytree(disfa.root, root, ignore=shutil.ignore_patterns(".synth", "*SN002*"))
    frames, lm = base / "frames.csv", base / "SN001.csv"
    _ok(run_fau("index", *_disfa(root), "--out", str(frames), cwd=base))
    _ok(run_fau("landmarks", *_disfa(root), "--frames", str(frames), "--video", "SN001", "--out", str(lm), cwd=base))
    return root, frames, lm


def _crops(root: Path, frames: Path, lm: Path, out: Path, *extra: str, kind=_disfa, video="SN001"):
    return run_fau("crops", *kind(root), *extra, "--frames", str(frames), "--landmarks", str(lm), "--video", video,
                   "--out", str(out / f"{video}.csv"), "--images", str(out / video), cwd=out.parent)


def test_truncated_video_is_named_and_earlier_crops_stay(disfa_chain, tmp_path):
    root, frames, lm = disfa_chain
    copy = tmp_path / "DISFA"
    shutil.copytree(root, copy)
    out = tmp_path / "crops"
    _ok(_crops(copy, frames, lm, out))
    before = _snapshot(out)
    assert len([k for k in before if k.endswith(".jpg")]) > 5
    video = copy / "Videos_LeftCamera" / "LeftVideoSN001_comp.avi"
    video.write_bytes(video.read_bytes()[:-3000])  # the last 3 KB lost: OpenCV alone reads it as complete
    _error_line(_crops(copy, frames, lm, out), str(video), "truncated video")
    assert _snapshot(out) == before  # nothing rewritten, no temp folder left
    assert sorted(p.name for p in out.iterdir()) == ["SN001", "SN001.csv"]
    _error_line(run_fau("index", *_disfa(copy), "--out", str(tmp_path / "f.csv"), cwd=tmp_path), str(video),
                "truncated video")
    _error_line(run_fau("landmarks", *_disfa(copy), "--frames", str(frames), "--video", "SN001",
                        "--out", str(tmp_path / "lm.csv"), cwd=tmp_path), str(video), "truncated video")


def test_crops_fail_midway_leave_the_earlier_crops_whole(bp4d_copy, tmp_path):
    """A frame that cannot be read after some crops were made: the earlier
    crops and table stay as they were, no half-made folder is left."""
    args = _bp4d(bp4d_copy)
    frames, lm, out = tmp_path / "frames.csv", tmp_path / "lm.csv", tmp_path / "crops"
    _ok(run_fau("index", *args, "--out", str(frames), cwd=tmp_path))
    _ok(run_fau("landmarks", *args, "--frames", str(frames), "--video", "F001_T1", "--out", str(lm), cwd=tmp_path))
    _ok(_crops(bp4d_copy, frames, lm, out, kind=_bp4d, video="F001_T1"))
    before = _snapshot(out)
    rows = pd.read_csv(frames)
    victim = bp4d_copy / rows.loc[rows["video"] == "F001_T1", "source"].iloc[-2]  # late in the video
    victim.write_bytes(victim.read_bytes()[:200])
    _error_line(_crops(bp4d_copy, frames, lm, out, kind=_bp4d, video="F001_T1"), str(victim))
    assert _snapshot(out) == before
    assert sorted(p.name for p in out.iterdir()) == ["F001_T1", "F001_T1.csv"]


def test_frame_that_lost_its_face_leaves_no_old_crop(disfa_chain, tmp_path):
    root, frames, lm = disfa_chain
    out = tmp_path / "crops"
    _ok(_crops(root, frames, lm, out))
    table = pd.read_csv(lm)
    lost = int(table.loc[table["success"] == 1, "frame"].iloc[3])
    assert (out / "SN001" / f"{lost}.jpg").is_file()
    table.loc[table["frame"] == lost, [c for c in table.columns if c != "frame"]] = np.nan
    table.loc[table["frame"] == lost, "success"] = 0
    lm2 = tmp_path / "lm.csv"
    table.to_csv(lm2, index=False)
    _ok(_crops(root, frames, lm2, out))
    assert not (out / "SN001" / f"{lost}.jpg").exists()
    crops = pd.read_csv(out / "SN001.csv")
    assert lost not in crops["frame"].tolist()
    assert sorted(p.name for p in (out / "SN001").iterdir()) == sorted(f"{f}.jpg" for f in crops["frame"])


def test_crop_size_128_shows_the_same_face_with_the_au_points_inside(disfa_chain, tmp_path):
    """crops.size 128 against 256 through `fau crops`: the 128 crop is the
    256 crop at half the size (the same face region) and every AU point is
    inside the crop, at half the 256 crop's coordinates."""
    root, frames, lm = disfa_chain
    full, half = tmp_path / "c256", tmp_path / "c128"
    _ok(_crops(root, frames, lm, full, "--set", "crops.size=256"))
    _ok(_crops(root, frames, lm, half, "--set", "crops.size=128"))
    a, b = pd.read_csv(full / "SN001.csv"), pd.read_csv(half / "SN001.csv")
    assert len(a) == len(b) > 5
    pts = [c for c in b.columns if c[-2:] in ("x1", "y1", "x2", "y2")]
    assert ((b[pts] >= 0) & (b[pts] < 128)).all().all()
    np.testing.assert_allclose(b[pts].to_numpy(), a[pts].to_numpy() / 2, atol=1.0)
    for rel_a, rel_b in zip(a["imgpath"], b["imgpath"]):
        img_a, img_b = cv2.imread(str(full / rel_a)), cv2.imread(str(half / rel_b))
        assert img_b.shape == (128, 128, 3) and img_a.shape == (256, 256, 3)
        small = cv2.resize(img_a, (128, 128), interpolation=cv2.INTER_AREA).astype(float)
        assert np.abs(small - img_b).mean() < 6, rel_b  # the same view (JPEG and resampling differ)


# ---------------------------------------------------------------- models and metrics


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory):
    """One fold trained for one epoch by `fau train` on the model tests' small set."""
    base = tmp_path_factory.mktemp("model")
    ann = make_annotation_set(base, subjects=("S1", "S2", "S3"), frames=6, seed=3)
    folds = base / "folds.json"
    folds.write_text(json.dumps([{"name": "fold1", "train": ["S1", "S2"], "test": ["S3"]}]))
    cfg = json.dumps({"dataset": {"aus": [6, 12, 17]}, "mlflow": {"enabled": False},
                      "model": {"backbone": "resnet18", "input_size": 64, "head_channels": [32, 32, 32]},
                      "train": {"epochs": 1, "batch_size": 8, "device": "cpu", "lr_milestones": []}})
    common = ["--config-json", cfg, "--annotations", str(ann), "--folds", str(folds), "--fold", "fold1"]
    model = base / "model.pt"
    _ok(run_fau("train", *common, "--model", str(model), "--history", str(base / "history.csv"), cwd=base))
    return {"base": base, "common": common, "model": model}


def _evaluate(m: dict, model: Path, tmp_path: Path, *extra: str) -> subprocess.CompletedProcess:
    return run_fau("evaluate", *m["common"], *extra, "--model", str(model), "--predictions",
                   str(tmp_path / "pred.csv"), "--metrics", str(tmp_path / "metrics.csv"), cwd=tmp_path)


def _edited(m: dict, tmp_path: Path, edit) -> Path:
    meta = torch.load(m["model"], weights_only=True)
    edit(meta)
    path = tmp_path / "edited.pt"
    torch.save(meta, path)
    return path


def test_untrained_model_is_not_evaluated(tiny_model, tmp_path):
    path = _edited(tiny_model, tmp_path, lambda meta: meta.update(epochs=0, history=[]))
    _error_line(_evaluate(tiny_model, path, tmp_path), str(path), "untrained model")
    assert not (tmp_path / "metrics.csv").exists()


def test_weights_that_do_not_fit_the_stored_config_are_described(tiny_model, tmp_path):
    def edit(meta):
        meta["model_config"]["scc"]["enabled"] = not meta["model_config"]["scc"]["enabled"]
    path = _edited(tiny_model, tmp_path, edit)
    line = _error_line(_evaluate(tiny_model, path, tmp_path), str(path), "weights do not fit")
    assert "missing" in line or "unexpected" in line, line
    assert "weights (" in line, line  # the names of some of them, not torch's bare header


def test_nan_prediction_is_a_failure_not_a_dropped_frame(tiny_model, tmp_path):
    def edit(meta):
        key = next(k for k, v in meta["state_dict"].items() if v.is_floating_point() and k.endswith("weight"))
        meta["state_dict"][key] = torch.full_like(meta["state_dict"][key], float("nan"))
    path = _edited(tiny_model, tmp_path, edit)
    _error_line(_evaluate(tiny_model, path, tmp_path), str(path), "predicts NaN or inf", "no metrics written")
    assert not (tmp_path / "metrics.csv").exists() and not (tmp_path / "pred.csv").exists()


def test_evaluate_says_when_the_config_model_differs_from_the_model_file(tiny_model, tmp_path):
    proc = _ok(_evaluate(tiny_model, tiny_model["model"], tmp_path, "--set", "model.input_size=96",
                         "--set", "model.sigma=3.0"))
    lines = [ln for ln in proc.stderr.splitlines() if str(tiny_model["model"]) in ln and "trained with" in ln]
    assert len(lines) == 1, proc.stderr
    assert "model.input_size=64 (config: 96)" in lines[0] and "model.sigma=2.0 (config: 3.0)" in lines[0]
    quiet = _ok(_evaluate(tiny_model, tiny_model["model"], tmp_path))
    assert "trained with" not in quiet.stderr
    # a model file written before model.input_window existed was trained on the whole crop, the default
    before = _edited(tiny_model, tmp_path, lambda meta: meta["model_config"].pop("input_window"))
    quiet = _ok(_evaluate(tiny_model, before, tmp_path))
    assert "trained with" not in quiet.stderr


def _predictions(path: Path, true: np.ndarray, pred: dict) -> Path:
    n = len(true)
    table = pd.DataFrame({"video": "S1_T1", "subject": "S1", "task": "T1", "frame": range(1, n + 1),
                          "imgpath": "x.jpg"})
    for au, p in pred.items():
        table[f"{au}_true"] = true
        table[f"{au}_pred"] = p
    table.to_csv(path, index=False)
    return path


def test_pool_names_folds_left_out_of_mean_sd_and_keeps_nan_predictions(tmp_path):
    rng = np.random.default_rng(0)
    t = rng.integers(0, 6, 20).astype(float)
    good = lambda: t + rng.normal(0, 0.5, 20)  # noqa: E731
    p1 = _predictions(tmp_path / "fold1.csv", t, {"AU06": good(), "AU12": good()})
    p2 = _predictions(tmp_path / "fold2.csv", t, {"AU06": np.full(20, 2.0), "AU12": good()})  # constant: PCC NaN
    p3 = _predictions(tmp_path / "fold3.csv", t, {"AU06": good(), "AU12": good()})
    out = tmp_path / "m.json"
    args = ["--out", str(tmp_path / "m.csv"), "--json", str(out), "--folds-out", str(tmp_path / "mf.csv")]
    proc = _ok(run_fau("pool", str(p1), str(p2), str(p3), *args, cwd=tmp_path))
    warn = [ln for ln in proc.stderr.splitlines() if "left out of the mean +- sd" in ln]
    assert len(warn) == 1 and "fold2: pcc AU06" in warn[0] and str(out) in warn[0], proc.stderr
    m = json.loads(out.read_text())
    assert m["fold_mean_sd"]["AU06"]["pcc_folds"] == 2 and m["fold_mean_sd"]["AU12"]["pcc_folds"] == 3
    # A NaN prediction (a hand-made or broken predictions table) is never dropped: its AU and the mean show it.
    bad = good()
    bad[4] = np.nan
    p4 = _predictions(tmp_path / "fold4.csv", t, {"AU06": good(), "AU12": bad})
    _ok(run_fau("pool", str(p1), str(p4), *args, cwd=tmp_path))
    m = json.loads(out.read_text())
    assert m["pooled"]["AU12"]["n"] == 40 and all(math.isnan(m["pooled"]["AU12"][k]) for k in ("icc", "mae", "pcc"))
    assert all(math.isnan(m["mean"][k]) for k in ("icc", "mae", "pcc"))
    assert math.isfinite(m["pooled"]["AU06"]["mae"])


# ---------------------------------------------------------------- benchmarks


def _bar_calls_ignored(path: Path) -> list[int]:
    """Lines where a benchmark calls bar(...) and drops its verdict."""
    tree = ast.parse(path.read_text())
    return [node.lineno for node in ast.walk(tree)
            if isinstance(node, ast.Expr) and isinstance(node.value, ast.Call)
            and (getattr(node.value.func, "id", None) == "bar"  # from _common import bar; import _common as C
                 or (isinstance(node.value.func, ast.Attribute) and node.value.func.attr == "bar"
                     and getattr(node.value.func.value, "id", None) in ("C", "_common")))]


def test_every_benchmark_script_uses_the_verdict_of_its_bars():
    scripts = [p for p in (REPO / "benchmarks").glob("*.py") if p.name not in ("_common.py", "run_all.py")]
    assert scripts
    for path in scripts:
        text = path.read_text()
        if "bar(" not in text:
            continue
        assert not _bar_calls_ignored(path), (path.name, _bar_calls_ignored(path))
        main = next(n for n in ast.parse(text).body if isinstance(n, ast.FunctionDef) and n.name == "main")
        returns = [ast.unparse(n.value) for n in ast.walk(main) if isinstance(n, ast.Return) and n.value]
        assert any("else 1" in r for r in returns), (path.name, returns)  # `return 0 if ok else 1`


def _benchmark(name: str):
    """benchmarks/<name>.py imported as a module (its `_common` import found
    beside it), without running its main()."""
    spec = importlib.util.spec_from_file_location(f"{name}_under_test", REPO / "benchmarks" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.path.insert(0, str(REPO / "benchmarks"))
    try:
        spec.loader.exec_module(module)
    finally:
        sys.path.remove(str(REPO / "benchmarks"))
    return module


def test_run_all_fails_when_a_script_fails_a_bar(tmp_path, monkeypatch, capsys):
    run_all = _benchmark("run_all")
    bar = 'print("BAR " + json.dumps({"name": "x", "measured": 2.0, "bar": ">= 3", "pass": False}))'
    (tmp_path / "fails.py").write_text(f"import json, sys\n{bar}\nsys.exit(1)\n")
    (tmp_path / "lies.py").write_text(f"import json, sys\n{bar}\nsys.exit(0)\n")
    (tmp_path / "fine.py").write_text(f"import json\n{bar.replace('False', 'True')}\n")
    monkeypatch.setattr(run_all, "HERE", tmp_path)
    monkeypatch.setattr(run_all, "SCRIPTS", ["fails", "lies", "fine"])
    monkeypatch.setattr(run_all, "TAKES_FLAGS", set())
    for only, rc, fails in (("fine", 0, 0), ("fails", 1, 1), ("lies", 1, 2)):
        monkeypatch.setattr(sys, "argv", ["run_all.py", "--only", only])
        assert run_all.main() == rc, only
        assert f"{fails} FAIL" in capsys.readouterr().out.splitlines()[-1], only


def test_end_to_end_tells_the_same_people_from_other_people(tmp_path):
    """The second-seed bar's line says whether the two runs' synthetic people
    are the same (synth.seed kept: the training seed alone) or others (the
    issue's bar): the manifests' seed and subjects, compared."""
    e2e = _benchmark("end_to_end")

    def run(name: str, seed: int, photo: str) -> Path:
        folder = tmp_path / name
        (folder / "config").mkdir(parents=True)
        (folder / "config" / "config.yaml").write_text("dataset: {root: data/synth/BP4D}\n")
        (folder / "data/synth/BP4D/.synth").mkdir(parents=True)
        (folder / "data/synth/BP4D/.synth/manifest.json").write_text(json.dumps(
            {"seed": seed, "synth": {"seed": seed}, "subjects": {"F001": {"sources": [{"photo": photo}]}}}))
        return folder

    a, kept, other = run("a", 0, "astronaut.jpg"), run("kept", 0, "astronaut.jpg"), run("other", 1, "biden.jpg")
    assert e2e.people(a) == e2e.people(kept) != e2e.people(other)
    assert e2e.people(tmp_path / "typo") is None  # no synthetic dataset: never "the same people"


def test_end_to_end_runs_again_in_a_kept_folder(tmp_path):
    """`end_to_end.py --keep DIR` a second time into the same folder: the
    workflow is copied again (the config schema is a relative link, which a
    copy over the first one refused with 'File exists'), and a file the
    repository no longer has does not linger there."""
    e2e = _benchmark("end_to_end")
    e2e.copy_workflow(tmp_path)
    (tmp_path / "workflow" / "rules" / "stale.smk").write_text("# from an older tree\n")
    e2e.copy_workflow(tmp_path)
    link = tmp_path / "workflow" / "schemas" / "config.schema.yaml"
    assert link.is_symlink() and os.readlink(link) == os.readlink(e2e.ROOT / "workflow" / "schemas" / link.name)
    assert not (tmp_path / "workflow" / "rules" / "stale.smk").exists()
    assert (tmp_path / "config" / "config.yaml").read_text() == (e2e.ROOT / "config" / "config.yaml").read_text()


def test_end_to_end_against_reads_a_kept_run_and_names_a_folder_that_is_not_one(tmp_path):
    """`end_to_end.py --against DIR` (the second-seed bar) reads the other
    seed's pooled mean from the summary a kept run leaves, or from an older
    kept run's metrics.json; any other folder stops it with one line naming
    the folder, before its own run starts."""
    e2e = _benchmark("end_to_end")
    new = tmp_path / "new"
    new.mkdir()
    (new / "end_to_end.json").write_text(json.dumps({"config": ["seed=0"], "pooled_mean_icc": 0.804}))
    assert e2e.kept_run(new) == (0.804, "seed=0")
    old = tmp_path / "old"
    (old / "config").mkdir(parents=True)
    (old / "config" / "config.yaml").write_text("results: results\ndataset: {name: synth_bp4d}\n")
    (old / "results" / "synth_bp4d").mkdir(parents=True)
    (old / "results" / "synth_bp4d" / "metrics.json").write_text(json.dumps({"mean": {"icc": 0.659}}))
    assert e2e.kept_run(old) == (0.659, "overrides not recorded")
    (old / "results" / "synth_bp4d" / "metrics.json").unlink()
    with pytest.raises(SystemExit) as err:
        e2e.kept_run(old)
    assert str(err.value).startswith(f"{old}: ") and "not a finished kept run" in str(err.value)
    with pytest.raises(SystemExit) as err:
        e2e.kept_run(tmp_path / "typo")
    assert str(err.value).startswith(f"{tmp_path / 'typo'}: ")
