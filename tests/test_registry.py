"""A trained model through a real `mlflow server`: logged as an MLflow
model (pyfunc: aligned crops -> AU intensities), registered, and used by
`fau predict` through `models:/` and `runs:/` URIs."""

from __future__ import annotations

import json
import urllib.parse
import urllib.request
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
import pytest
import torch
import yaml

from conftest import run_fau
from model_fixtures import fold, make_annotation_set, tiny_config, train_into
from workflow_helpers import mlflow_server

pytestmark = pytest.mark.integration


def _get(url: str, path: str, **params) -> dict:
    q = f"?{urllib.parse.urlencode(params)}" if params else ""
    with urllib.request.urlopen(f"{url}{path}{q}", timeout=30) as r:
        return json.loads(r.read())


def aligned_crops(shared: Path) -> np.ndarray:
    """Real aligned crops (n, 256, 256, 3) RGB of two face photos, made with
    the pipeline's landmarks and alignment, stored and read back as JPEG as
    the crops stage does."""
    from fau.config import CropsConfig, LandmarksConfig
    from fau.landmarks import LandmarkDetector
    from fau.preprocess import decode_crop_rgb, encode_crop, face_crop

    det = LandmarkDetector(LandmarksConfig())
    out = []
    for name in ("obama.jpg", "grace_hopper.jpg"):
        img = cv2.imread(str(shared / "faces" / name))
        ok, _, _, pts = det.detect(img)
        assert ok, name
        crop, _ = face_crop(img, pts, CropsConfig())
        out.append(decode_crop_rgb(encode_crop(crop, CropsConfig().jpeg_quality)))
    return np.stack(out)


@pytest.fixture(scope="module")
def registered(tmp_path_factory, shared):
    from mlflow.tracking import MlflowClient

    from fau.registry import log_and_register

    torch.set_num_threads(2)
    base = tmp_path_factory.mktemp("registry")
    data = make_annotation_set(base / "data", frames=6, seed=5)
    train_into(tiny_config(train={"epochs": 1}), data, fold(), base / "fold")
    model = base / "fold" / "model.pt"
    crops = aligned_crops(shared)
    with mlflow_server(base / "mlflow") as url:
        client = MlflowClient(url)
        exp = client.create_experiment("registry-test")
        run = client.create_run(exp, run_name="final")
        info = log_and_register(model, url, run.info.run_id, "fau-test", crops[:1], base / "registered.json")
        yield {"url": url, "model": model, "info": info, "run_id": run.info.run_id, "base": base, "crops": crops}


def test_registered_version_with_signature_input_example_and_preprocessing(registered):
    url, info = registered["url"], registered["info"]
    assert info["name"] == "fau-test" and info["version"] == 1 and info["model_uri"] == "models:/fau-test/1"
    assert json.loads((registered["base"] / "registered.json").read_text()) == info
    versions = _get(url, "/api/2.0/mlflow/registered-models/get", name="fau-test")["registered_model"]
    assert [v["version"] for v in versions["latest_versions"]] == ["1"]
    mv = _get(url, "/api/2.0/mlflow/model-versions/get", name="fau-test", version="1")["model_version"]
    assert mv["run_id"] == registered["run_id"] and mv["status"] == "READY"

    import mlflow.artifacts

    local = Path(mlflow.artifacts.download_artifacts("models:/fau-test/1", tracking_uri=url, registry_uri=url))
    mlmodel = yaml.safe_load((local / "MLmodel").read_text())
    assert "python_function" in mlmodel["flavors"]
    sig_in = json.loads(mlmodel["signature"]["inputs"])
    assert sig_in[0]["type"] == "tensor" and sig_in[0]["tensor-spec"] == {"dtype": "uint8", "shape": [-1, 256, 256, 3]}
    assert [c["name"] for c in json.loads(mlmodel["signature"]["outputs"])] == ["AU06_r", "AU12_r", "AU17_r"]
    assert (local / mlmodel["saved_input_example_info"]["artifact_path"]).is_file()
    meta = torch.load(registered["model"], weights_only=True)
    assert mlmodel["metadata"]["fau"]["preprocessing"] == meta["preprocessing"]
    # the flip test (eval.flip_test, on by default) travels with the model
    assert mlmodel["flavors"]["python_function"]["config"] == {"flip_test": True}
    assert (local / "code" / "fau" / "pyfunc.py").is_file()  # the model carries the code it runs


def test_pyfunc_gives_evaluate_intensities_for_the_same_crops(registered, tmp_path):
    """The registered pyfunc on aligned crops == `fau evaluate`'s prediction
    path (`fau.inference.predict` over an annotation table) on those crops."""
    import mlflow.pyfunc

    from fau.inference import load_model, predict

    crops = registered["crops"]
    from fau.registry import _tracking

    with _tracking(registered["url"]):
        loaded = mlflow.pyfunc.load_model("models:/fau-test/1")
    rows = []
    for i, c in enumerate(crops):
        cv2.imwrite(str(tmp_path / f"{i}.png"), cv2.cvtColor(c, cv2.COLOR_RGB2BGR))  # lossless: the same pixels
        row = {"imgpath": f"{i}.png", "video": "v", "subject": "s", "task": "", "frame": i}
        for au in ("AU06", "AU12", "AU17"):
            row.update({au: 0.0, f"{au}_x1": 0, f"{au}_y1": 0, f"{au}_x2": 0, f"{au}_y2": 0})
        rows.append(row)
    net, meta = load_model(registered["model"])
    ev = predict(net, pd.DataFrame(rows), tmp_path, meta["aus"], int(meta["model_config"]["input_size"]),
                 meta["normalization"], flip_test=True)  # as registered (eval.flip_test's default)
    got = loaded.predict(crops)
    assert list(got.columns) == ["AU06_r", "AU12_r", "AU17_r"]
    for au in ("AU06", "AU12", "AU17"):
        assert got[f"{au}_r"].to_numpy() == pytest.approx(ev[f"{au}_pred"].to_numpy(), abs=1e-6)


def test_predict_from_models_and_runs_uris_equals_the_file(registered, shared, tmp_path):
    video = shared / "videos" / "single_face.mp4"
    url = registered["url"]
    outs = {}
    for key, model in {"file": str(registered["model"]), "models": "models:/fau-test/1",
                       "runs": f"runs:/{registered['run_id']}/model"}.items():
        out = tmp_path / key
        args = ["predict", str(video), "--model", model, "--out", str(out), "--quiet"]
        proc = run_fau(*args, *([] if key == "file" else ["--tracking-uri", url]), cwd=tmp_path)
        assert proc.returncode == 0, proc.stderr
        outs[key] = (out / "single_face.csv").read_text()
    assert outs["models"] == outs["file"] and outs["runs"] == outs["file"]
    assert outs["file"].count("\n") == 73  # header + 72 frames


def test_unknown_registered_model_is_one_line(registered, shared, tmp_path):
    proc = run_fau("predict", str(shared / "videos" / "single_face.mp4"), "--model", "models:/no-such-model/3",
                   "--tracking-uri", registered["url"], "--out", str(tmp_path), cwd=tmp_path)
    assert proc.returncode == 2
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert lines[-1].startswith("fau predict: error: models:/no-such-model/3: not found") and "Traceback" not in proc.stderr
