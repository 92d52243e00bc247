"""The embedded workflow end to end, for real: locally against a real
`mlflow server`, and through a real Slurm cluster (same seed -> same metrics)."""

from __future__ import annotations

import json
import math
import re
import time
import urllib.parse
import urllib.request
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from slurm_fixtures import slurm_cluster  # noqa: F401  (pytest fixture)
from workflow_helpers import copy_workflow, load_test_config, mlflow_server, snakemake, write_config

pytestmark = pytest.mark.integration

AUS = ["AU06", "AU10", "AU12", "AU14", "AU17"]
EPOCHS = load_test_config()["train"]["epochs"]


def _get(url: str, endpoint: str, **params) -> dict:
    q = f"?{urllib.parse.urlencode(params)}" if params else ""
    with urllib.request.urlopen(f"{url}{endpoint}{q}", timeout=30) as r:
        return json.loads(r.read())


def _post(url: str, path: str, body: dict) -> dict:
    req = urllib.request.Request(f"{url}{path}", data=json.dumps(body).encode(),
                                 headers={"Content-Type": "application/json"}, method="POST")
    with urllib.request.urlopen(req, timeout=30) as r:
        return json.loads(r.read())


@pytest.fixture(scope="module")
def local_run(tmp_path_factory):
    base = tmp_path_factory.mktemp("local")
    wf = copy_workflow(base / "wf")
    with mlflow_server(base / "mlflow") as url:
        cfg = write_config(base / "tiny.yaml", base, mlflow={"uri": url, "experiment": "e2e"})
        t0 = time.time()
        proc = snakemake(["--cores", "2", "--configfile", str(cfg)], cwd=wf)
        yield {"base": base, "out": base / "results" / "tiny", "url": url, "wf": wf, "cfg": cfg,
               "seconds": time.time() - t0, "stdout": proc.stdout + proc.stderr}


def test_local_run_writes_report_and_metrics(local_run):
    out = local_run["out"]
    metrics = json.loads((out / "metrics.json").read_text())
    assert set(AUS) <= set(metrics["pooled"])
    ann = pd.read_csv(out / "annotations.csv")
    preds = pd.concat([pd.read_csv(out / "predictions" / f"fold{i}.csv") for i in (1, 2, 3)], ignore_index=True)
    # Each annotated frame is predicted once: every subject is tested in exactly one fold.
    assert sorted(zip(preds["video"], preds["frame"])) == sorted(zip(ann["video"], ann["frame"]))
    for au in AUS:
        t, p = preds[f"{au}_true"].to_numpy(), preds[f"{au}_pred"].to_numpy()
        keep = ~np.isnan(t)
        pooled = metrics["pooled"][au]
        assert pooled["n"] == int(ann[au].notna().sum()) == int(keep.sum())
        assert pooled["mae"] == pytest.approx(np.abs(t[keep] - p[keep]).mean(), rel=1e-9)
        # Trained weights, not a constant predictor: the predictions vary from
        # frame to frame, so PCC is defined and ICC(3,1) is not exactly 0.
        assert np.std(p) > 0 and math.isfinite(pooled["pcc"]) and pooled["icc"] != 0, (au, pooled)
        assert pooled["pcc"] == pytest.approx(np.corrcoef(t[keep], p[keep])[0, 1], rel=1e-6)
    print(f"local run: {local_run['seconds']:.0f} s, pooled mean ICC {metrics['mean']['icc']:.3f}, "
          f"PCC {metrics['mean']['pcc']:.3f}, MAE {metrics['mean']['mae']:.3f}")
    report = (out / "report.md").read_text()
    for au in AUS:
        assert f"| {au} |" in report
    for fig in ["pred_vs_true.png", "sequences.png", "training_curves.png", "heatmaps.png"]:
        assert (out / "figures" / fig).stat().st_size > 5000, fig
        assert f"figures/{fig}" in report
    folds = json.loads((out / "folds.json").read_text())
    assert [f["name"] for f in folds] == ["fold1", "fold2", "fold3"]
    for f in folds:
        assert not set(f["train"]) & set(f["test"])
        assert (out / "models" / f"{f['name']}.pt").exists()
    # Snakemake benchmark: directives give per-stage wall times.
    assert list((out / "benchmarks").rglob("*.tsv"))


def test_mlflow_server_shows_parent_children_and_metrics(local_run):
    url = local_run["url"]
    exp = _get(url, "/api/2.0/mlflow/experiments/get-by-name", experiment_name="e2e")["experiment"]
    runs = _post(url, "/api/2.0/mlflow/runs/search", {"experiment_ids": [exp["experiment_id"]],
                                                       "max_results": 100})["runs"]

    def tags(run):
        return {t["key"]: t["value"] for t in run["data"].get("tags", [])}

    parents = [r for r in runs if "mlflow.parentRunId" not in tags(r)]
    children = [r for r in runs if "mlflow.parentRunId" in tags(r)]
    assert len(parents) == 1, [tags(r) for r in runs]
    parent_id = parents[0]["info"]["run_id"]
    assert sorted(tags(c)["fau.fold"] for c in children) == ["fold1", "fold2", "fold3"]
    assert all(tags(c)["mlflow.parentRunId"] == parent_id for c in children)
    parent_metrics = {m["key"] for m in parents[0]["data"].get("metrics", [])}
    assert "pooled_icc_mean" in parent_metrics and "pooled_mae_AU12" in parent_metrics
    for child in children:
        cid = child["info"]["run_id"]
        params = {p["key"]: p["value"] for p in child["data"].get("params", [])}
        assert params["model.backbone"] == "resnet18" and "dataset_fingerprint" in params
        assert params["git_commit"]
        history = _get(url, "/api/2.0/mlflow/metrics/get-history", run_id=cid, metric_key="loss")["metrics"]
        assert sorted(m["step"] for m in history) == list(range(1, EPOCHS + 1))
        assert all(math.isfinite(m["value"]) for m in history)
        # The fold's metrics table, every finite value (MLflow stores no NaN), plus the loss.
        fold = tags(child)["fau.fold"]
        table = pd.read_csv(local_run["out"] / "metrics" / f"{fold}.csv").set_index("au")
        expected = {f"{m}_{au}": table.loc[au, m] for au in table.index for m in ("icc", "mae", "pcc")
                    if math.isfinite(table.loc[au, m])}
        logged = {m["key"]: m["value"] for m in child["data"]["metrics"] if m["key"] not in ("loss", "lr")}
        assert logged.keys() == expected.keys() and {"icc_mean", "mae_mean", "mae_AU12"} <= logged.keys()
        assert all(logged[k] == pytest.approx(v, rel=1e-6) for k, v in expected.items())

        def files(path):
            return {a["path"] for a in _get(url, "/api/2.0/mlflow/artifacts/list", run_id=cid,
                                            path=path).get("files", [])}
        assert {"model/model.pt", "model/history.csv"} <= files("model")
        assert {"evaluation/predictions.csv", "evaluation/metrics.csv"} <= files("evaluation")
        assert files("config") == {"config/config.json"}
    parent_arts = {a["path"] for a in _get(url, "/api/2.0/mlflow/artifacts/list", run_id=parent_id)["files"]}
    assert {"report", "metrics"} <= parent_arts
    with urllib.request.urlopen(url + "/", timeout=30) as r:
        assert r.status == 200 and b"<html" in r.read().lower()


def test_same_seed_same_predictions_on_rerun(local_run, tmp_path):
    """A second local run from scratch (synthetic data, landmarks, crops,
    training) with the same config and seed gives the same predictions and
    metrics on CPU; fold1 only, to keep it short."""
    cfg = write_config(tmp_path / "again.yaml", tmp_path, mlflow={"enabled": False})
    snakemake(["--cores", "2", "--configfile", str(cfg), "--", str(tmp_path / "results/tiny/metrics/fold1.csv")],
              cwd=local_run["wf"])
    for name in ("predictions/fold1.csv", "metrics/fold1.csv"):
        a = pd.read_csv(local_run["out"] / name)
        b = pd.read_csv(tmp_path / "results" / "tiny" / name)
        pd.testing.assert_frame_equal(a, b, rtol=1e-6, atol=1e-6)
    assert not (tmp_path / "results" / "tiny" / "models" / "fold2.pt").exists()


def test_slurm_profile_runs_every_job_through_slurm(local_run, tmp_path, slurm_cluster):  # noqa: F811
    wf = copy_workflow(tmp_path / "wf")
    cfg = write_config(tmp_path / "slurm.yaml", tmp_path, mlflow={"enabled": False}, resources={"gpu": 1})
    t0 = time.time()
    proc = snakemake(["--profile", str(wf / "profiles" / "slurm"), "--configfile", str(cfg)], cwd=wf, timeout=1500)
    wall = time.time() - t0
    sacct = slurm_cluster.sacct("-X", "-S", "now-1days", "-o", "JobID,JobName,State,AllocTRES,WorkDir")
    # This run's jobs: those started in its folder (accounting may record other tests' jobs late).
    jobs = [j for j in (line.split("|") for line in sacct.splitlines() if line.strip())
            if Path(j[4]).resolve() == wf.resolve()]
    # Every step of the DAG except the action-less `all` target ran as a Slurm job.
    steps = int(re.findall(r"\d+ of (\d+) steps \(100%\) done", proc.stdout + proc.stderr)[-1])
    assert steps > 10, proc.stdout + proc.stderr
    assert len(jobs) == steps - 1, (steps, sacct)
    assert all(j[2] == "COMPLETED" for j in jobs), sacct
    gpu_jobs = [j for j in jobs if "gres/gpu" in j[3]]
    assert len(gpu_jobs) == 6, sacct  # 3 train + 3 evaluate jobs asked for a GPU
    # The same trained model's predictions and numbers as the local run (same
    # config and seed, CPU).
    for i in (1, 2, 3):
        pd.testing.assert_frame_equal(pd.read_csv(local_run["out"] / "predictions" / f"fold{i}.csv"),
                                      pd.read_csv(tmp_path / "results" / "tiny" / "predictions" / f"fold{i}.csv"),
                                      rtol=1e-6, atol=1e-6)
    a = json.loads((local_run["out"] / "metrics.json").read_text())
    b = json.loads((tmp_path / "results" / "tiny" / "metrics.json").read_text())
    for au in [*AUS, "mean"]:
        for m in ("icc", "mae", "pcc"):
            x = a["mean"][m] if au == "mean" else a["pooled"][au][m]
            y = b["mean"][m] if au == "mean" else b["pooled"][au][m]
            assert math.isfinite(x) and x == pytest.approx(y, abs=1e-6), (au, m)
    print(f"slurm run: {len(jobs)} Slurm jobs, {wall:.0f} s")



# ------------------------------------------------------------ final model and predict (issue 11)


def _ran(stdout: str) -> list[str]:
    """Rules of the jobs a Snakemake run executed (its 'Job stats' table)."""
    rows = re.findall(r"^(\w+)\s+(\d+)$", stdout.split("Job stats:")[-1].split("\n\n")[0], flags=re.MULTILINE)
    return sorted(r for r, n in rows for _ in range(int(n)) if r != "total")


@pytest.fixture(scope="module")
def final_run(local_run):
    """`snakemake final` after the cross-validation run, same config and server."""
    proc = snakemake(["final", "--cores", "2", "--configfile", str(local_run["cfg"])], cwd=local_run["wf"])
    return {**local_run, "final_stdout": proc.stdout + proc.stderr}


def test_final_model_trains_on_all_subjects_registers_and_is_named_in_the_report(final_run):
    out, url = final_run["out"], final_run["url"]
    # Only the final model's jobs ran: the cross-validation outputs were up to date.
    assert _ran(final_run["final_stdout"]) == ["final", "register_final", "report_final", "train_final"], \
        final_run["final_stdout"][-3000:]
    info = json.loads((out / "models" / "final.json").read_text())
    assert info["registered"] and info["name"] == "fau-tiny" and info["version"] == 1
    assert info["model_uri"] == "models:/fau-tiny/1"
    mv = _get(url, "/api/2.0/mlflow/model-versions/get", name="fau-tiny", version="1")["model_version"]
    assert mv["status"] == "READY" and mv["run_id"] == info["run_id"]
    run = _get(url, "/api/2.0/mlflow/runs/get", run_id=info["run_id"])["run"]
    tags = {t["key"]: t["value"] for t in run["data"]["tags"]}
    parent = json.loads((out / "mlflow" / "parent.json").read_text())
    assert tags["fau.role"] == "final" and tags["mlflow.parentRunId"] == parent["run_id"]
    params = {p["key"]: p["value"] for p in run["data"]["params"]}
    assert params["train.epochs"] == str(EPOCHS) and params["model.input_size"] == "64"  # the same config
    # Trained on every subject: all fully coded frames of the annotation table.
    import torch

    ann = pd.read_csv(out / "annotations.csv")
    meta = torch.load(out / "models" / "final.pt", weights_only=True)
    assert meta["n_train"] == int(ann[AUS].notna().all(axis=1).sum())
    assert meta["signature"]["fold"]["train"] == sorted(ann["subject"].astype(str).unique())
    text = (out / "report_final.md").read_text()
    cv = (out / "report.md").read_text()
    assert "## Final model" in text and "`fau-tiny` version 1" in text and "models:/fau-tiny/1" in text
    assert text.replace(text[text.index("## Final model"):text.index("## Run")], "") == cv  # the rest: the report


def test_predict_target_one_job_per_input_with_the_registered_model(final_run, shared, tmp_path):
    """`snakemake predict` on a video and an image folder with the registered
    final model (models:/fau-tiny/1): one job each, the CSVs `fau predict`
    writes from the model file, and the overlays."""
    import shutil
    import subprocess
    import sys

    import cv2

    rec = tmp_path / "recordings"
    rec.mkdir()
    shutil.copy(shared / "videos" / "single_face.mp4", rec / "clip.mp4")
    folder = rec / "stills"
    folder.mkdir()
    cap = cv2.VideoCapture(str(shared / "videos" / "WolfgangLanger_Pexels.mp4"))
    for i in range(1, 6):
        cv2.imwrite(str(folder / f"f{i}.jpg"), cap.read()[1])
    pcfg = tmp_path / "predict.yaml"
    pcfg.write_text(json.dumps({"predict": {"input": str(rec / "*"), "model": "models:/fau-tiny/1",
                                            "overlay": True}}))
    proc = snakemake(["predict", "--cores", "2", "--configfile", str(final_run["cfg"]), str(pcfg)],
                     cwd=final_run["wf"])
    assert _ran(proc.stdout + proc.stderr) == ["predict", "predict_input", "predict_input"]
    pred = final_run["base"] / "results" / "predict"
    direct = tmp_path / "direct"
    cli = subprocess.run([sys.executable, "-m", "fau.cli", "predict", str(rec / "clip.mp4"), str(rec / "stills"),
                          "--model", str(final_run["out"] / "models" / "final.pt"), "--out", str(direct), "--quiet"],
                         capture_output=True, text=True)
    assert cli.returncode == 0, cli.stderr
    for name, frames in (("clip", 72), ("stills", 5)):
        assert (pred / f"{name}.csv").read_text() == (direct / f"{name}.csv").read_text()
        assert len(pd.read_csv(pred / f"{name}.csv")) == frames
        overlay = pred / "overlays" / name / f"{name}.mp4"
        assert overlay.stat().st_size > 10_000
        assert int(cv2.VideoCapture(str(overlay)).get(cv2.CAP_PROP_FRAME_COUNT)) == frames


def test_predict_target_through_slurm(local_run, shared, tmp_path, slurm_cluster):  # noqa: F811
    """The predict target's jobs, one per input, as Slurm jobs."""
    import shutil

    wf = copy_workflow(tmp_path / "wf")
    rec = tmp_path / "recordings"
    rec.mkdir()
    for name in ("single_face.mp4", "no_face.mp4"):
        shutil.copy(shared / "videos" / name, rec / name)
    cfg = write_config(tmp_path / "slurm.yaml", tmp_path, mlflow={"enabled": False},
                       predict={"input": str(rec / "*.mp4"), "model": str(local_run["out"] / "models" / "fold1.pt")})
    proc = snakemake(["predict", "--profile", str(wf / "profiles" / "slurm"), "--configfile", str(cfg)], cwd=wf,
                     timeout=600)
    run_id = re.search(r"SLURM run ID: (\S+)", proc.stdout + proc.stderr).group(1)  # the jobs' Slurm name
    sacct = slurm_cluster.sacct("-X", "--name", run_id, "-S", "now-1days", "-o", "JobID,JobName,State,Comment")
    jobs = [line.split("|") for line in sacct.splitlines() if line.strip()]
    assert sorted(j[3] for j in jobs) == ["rule_predict_input_wildcards_no_face",
                                          "rule_predict_input_wildcards_single_face"], sacct
    assert all(j[2] == "COMPLETED" for j in jobs), sacct
    for name in ("single_face", "no_face"):
        table = pd.read_csv(tmp_path / "results" / "predict" / f"{name}.csv")
        assert len(table) > 50 and (table["success"].sum() > 0) == (name == "single_face")
