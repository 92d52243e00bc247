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
from workflow_helpers import copy_workflow, job_counts, load_test_config, mlflow_server, snakemake, write_config

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
    # The workflow, its dataset and results in a folder whose name has a
    # space and a non-ASCII letter: every rule of the run must cope (issue 13).
    top = tmp_path_factory.mktemp("local")
    base = top / "wörk dir"
    wf = copy_workflow(base / "wf")
    with mlflow_server(top / "mlflow") as url:
        cfg = write_config(base / "tiny.yaml", base, mlflow={"uri": url, "experiment": "e2e",
                                                             "system_metrics_interval": 1})
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
    # what moves the synthetic faces besides the labelled AUs (config.yaml: synth.other_aus)
    assert "- unlabelled motion: AU01, AU02, AU04, AU05, AU07, AU23, AU24 move the faces without a label" in report
    # the per-subject table: one row per test subject, its fold and its frames
    lines = report.split("## Per test subject")[1].split("\n## ")[0].splitlines()
    head = next(line for line in lines if line.startswith("| subject |")).strip("| ").split(" | ")
    rows = {c[0]: dict(zip(head, c)) for c in (line.strip("| ").split(" | ") for line in lines
                                                if line.startswith("| ") and not line.startswith("| subject"))}
    fold_of = {s: f"fold{i}" for i in (1, 2, 3)
               for s in pd.read_csv(out / "predictions" / f"fold{i}.csv")["subject"].unique()}
    assert sorted(rows) == sorted(fold_of)
    for subject, row in rows.items():
        assert row["fold"] == fold_of[subject] and int(row["frames"]) == int((preds["subject"] == subject).sum())
    for fig in ["pred_vs_true.png", "sequences.png", "training_curves.png", "heatmaps.png", "subjects.png"]:
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
    parent_params = {p["key"]: p["value"] for p in parents[0]["data"].get("params", [])}
    # The training seed and the synthetic people's (synth.seed null: the same one).
    assert parent_params["seed"] == "0" and parent_params["synth.seed"] == "0", parent_params
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
        logged = {m["key"]: m["value"] for m in child["data"]["metrics"]
                  if m["key"] not in ("loss", "lr") and not m["key"].startswith("system/")}
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


def test_another_seed_retrains_without_redoing_the_data_chain(local_run):
    """Another training seed (`--config seed=N`) re-runs the training and what
    follows it. With the synthetic people kept (`synth.seed`: the run's
    seed, so the same people) no data job re-runs: landmarks and crops of a
    real dataset take hours, and they do not draw from the seed. Without
    synth.seed the seed also draws new people: the data chain re-runs from
    the synthesis on."""
    base = ["-n", "--cores", "2", "--configfile", str(local_run["cfg"]), "--config", "seed=7"]
    data_chain = {"synth", "index", "landmarks", "crops", "annotations", "folds"}
    kept = job_counts(snakemake([*base, "synth={seed: 0}"], cwd=local_run["wf"]).stdout)
    assert kept.get("train") == 3 and kept.get("evaluate") == 3 and kept.get("report") == 1, kept
    assert not data_chain & set(kept), kept
    new_people = job_counts(snakemake(base, cwd=local_run["wf"]).stdout)  # the DAG up to the index checkpoint
    assert new_people.get("synth") == 1 and new_people.get("index") == 1, new_people


def test_slurm_profile_runs_every_job_through_slurm(local_run, tmp_path, slurm_cluster):  # noqa: F811
    wf = copy_workflow(tmp_path / "wf")
    cfg = write_config(tmp_path / "slurm.yaml", tmp_path, mlflow={"enabled": False}, resources={"gpu": 1})
    t0 = time.time()
    proc = snakemake(["--profile", str(wf / "profiles" / "slurm"), "--configfile", str(cfg)], cwd=wf, timeout=1500)
    wall = time.time() - t0
    sacct = slurm_cluster.sacct("-X", "-S", "now-1days", "-o", "JobID,JobName,State,AllocTRES,WorkDir,Comment")
    # This run's jobs: those started in its folder (accounting may record other tests' jobs late).
    jobs = [j for j in (line.split("|") for line in sacct.splitlines() if line.strip())
            if Path(j[4]).resolve() == wf.resolve()]
    # Every step of the DAG except the action-less `all` target ran in a Slurm
    # job; the per-video landmarks and crops steps of up to 16 videos share one
    # (the profile's group "prep"): here the 3 videos' 6 steps, one job.
    out = proc.stdout + proc.stderr
    steps = int(re.findall(r"\d+ of (\d+) steps \(100%\) done", out)[-1])
    per_video = len(re.findall(r"^\s+rule (?:landmarks|crops):$", out, flags=re.MULTILINE))  # inside "Group job"
    assert steps > 10 and per_video == 6, out
    prep = [j for j in jobs if j[5] == "rule_prep_crops_landmarks"]
    assert len(prep) == 1, sacct
    assert len(jobs) == steps - 1 - per_video + len(prep), (steps, sacct)
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
    print(f"slurm run: {len(jobs)} Slurm jobs ({per_video} per-video steps in {len(prep)}), {wall:.0f} s")


def test_training_cancelled_mid_epoch_is_resubmitted_and_resumes_to_the_same_weights(local_run, tmp_path,
                                                                                      slurm_cluster):  # noqa: F811
    """scancel of a fold's training job during its second epoch: Snakemake
    resubmits it (`retries` in profiles/slurm), the new job resumes from the
    epoch-1 checkpoint and ends with bitwise the weights of the local,
    uninterrupted run. (Also through Slurm with a space in every path.)"""
    import shutil
    import subprocess

    import torch

    base = tmp_path / "cancel dir"
    wf = copy_workflow(base / "wf")
    out = base / "results" / "tiny"
    for name in ("index", "landmarks", "crops", "annotations.csv", "annotations.json", "folds.json"):
        src = local_run["out"] / name
        (shutil.copytree if src.is_dir() else shutil.copy2)(src, out / name)  # mtimes kept: up to date
    cfg = write_config(base / "cancel.yaml", base, mlflow={"enabled": False},
                       dataset={"root": str(local_run["base"] / "data" / "BP4D")})
    ckpt, model = out / "checkpoints" / "fold1.pt", out / "models" / "fold1.pt"
    cmd = ["timeout", "-k", "10", "600", str(slurm_cluster.snakemake), "--profile", str(wf / "profiles" / "slurm"),
           "--configfile", str(cfg), "--rerun-triggers", "mtime", "--", str(model)]
    log = open(base / "snakemake.log", "w")
    proc = subprocess.Popen(cmd, cwd=wf, stdout=log, stderr=subprocess.STDOUT, env=slurm_cluster.env)
    job, cancelled_after = None, None
    try:
        while proc.poll() is None:
            if job is None:  # the training job, once Slurm runs it
                queue = subprocess.run(["squeue", "-h", "-t", "RUNNING", "-o", "%i %k"], capture_output=True,
                                       text=True, env=slurm_cluster.env).stdout.split("\n")
                job = next((line.split()[0] for line in queue if line.endswith(" rule_train_wildcards_tiny_fold1")),
                           None)
            elif cancelled_after is None and ckpt.exists():  # epoch 1 written: now in epoch 2
                subprocess.run(["scancel", job], check=True, env=slurm_cluster.env)
                cancelled_after = torch.load(ckpt, weights_only=True)["epoch"]
            time.sleep(0.05)
    finally:
        if proc.poll() is None:
            proc.kill()
        log.close()
    text = (base / "snakemake.log").read_text()
    assert proc.returncode == 0, text[-6000:]
    assert cancelled_after is not None and cancelled_after < EPOCHS, (cancelled_after, text[-3000:])
    states = slurm_cluster.sacct("-X", "-S", "now-1days", "-o", "JobID,State,Comment,WorkDir")
    train_jobs = [j[:2] for j in (line.split("|") for line in states.splitlines() if line.strip())
                  if j[2] == "rule_train_wildcards_tiny_fold1" and Path(j[3]).resolve() == wf.resolve()]
    assert [s.split()[0] for _, s in train_jobs] == ["CANCELLED", "COMPLETED"] and train_jobs[0][0] == job, states
    assert "Trying to restart job" in text, text[-3000:]
    train_log = (out / "logs" / "train" / "fold1.log").read_text()  # the resubmitted job's
    assert f"checkpoints/fold1.pt: resuming after epoch {cancelled_after}" in train_log, train_log[-2000:]
    a = torch.load(local_run["out"] / "models" / "fold1.pt", weights_only=True)
    b = torch.load(model, weights_only=True)
    assert a["state_dict"].keys() == b["state_dict"].keys()
    assert all(torch.equal(a["state_dict"][k], b["state_dict"][k]) for k in a["state_dict"])
    assert [h["loss"] for h in a["history"]] == [h["loss"] for h in b["history"]]
    print(f"scancel of job {job} after epoch {cancelled_after}: resubmitted, resumed, bitwise the same weights")



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


# ------------------------------------------------------------ MLflow as its users see it (issues 13, 14)


def _tags(run: dict) -> dict:
    return {t["key"]: t["value"] for t in run["data"].get("tags", [])}


def _runs(url: str, experiment: str) -> tuple[dict, list[dict]]:
    exp = _get(url, "/api/2.0/mlflow/experiments/get-by-name", experiment_name=experiment)["experiment"]
    runs = _post(url, "/api/2.0/mlflow/runs/search", {"experiment_ids": [exp["experiment_id"]],
                                                       "max_results": 100})["runs"]
    return exp, runs


def test_mlflow_runs_carry_the_data_version_and_end_finished(local_run):
    """The experiment is a model-training one; every fold run has its train
    and test data as MLflow dataset inputs whose digest is DVC's md5 of the
    annotation table; no run is left RUNNING; system metrics were sampled."""
    import hashlib

    url, out = local_run["url"], local_run["out"]
    exp, runs = _runs(url, "e2e")
    assert {t["key"]: t["value"] for t in exp["tags"]}["mlflow.experimentKind"] == "custom_model_development"
    md5 = hashlib.md5((out / "annotations.csv").read_bytes()).hexdigest()  # what dvc.lock records for it
    assert all(r["info"]["status"] == "FINISHED" for r in runs), [(r["info"]["run_name"], r["info"]["status"])
                                                                    for r in runs]
    folds = {_tags(r)["fau.fold"]: r for r in runs if _tags(r)["fau.role"] == "fold"}
    assert sorted(folds) == ["fold1", "fold2", "fold3"]
    for final in (r for r in runs if _tags(r)["fau.role"] == "final"):  # `snakemake final` ran before: all subjects
        assert [(i["dataset"]["name"], i["dataset"]["digest"]) for i in final["inputs"]["dataset_inputs"]] == \
            [("tiny", md5)]
    split = {f["name"]: f for f in json.loads((out / "folds.json").read_text())}
    for name, run in folds.items():
        inputs = {(i["dataset"]["name"], i["dataset"]["digest"]):
                  {t["key"]: t["value"] for t in i.get("tags", [])} for i in run["inputs"]["dataset_inputs"]}
        assert inputs.keys() == {(f"tiny/{name}/train", md5), (f"tiny/{name}/test", md5)}, inputs
        assert inputs[(f"tiny/{name}/train", md5)]["mlflow.data.context"] == "training"
        assert inputs[(f"tiny/{name}/test", md5)]["mlflow.data.context"] == "testing"
        assert inputs[(f"tiny/{name}/test", md5)]["fau.subjects"].split() == split[name]["test"]
        params = {p["key"]: p["value"] for p in run["data"]["params"]}
        assert params["dataset_fingerprint"] == md5 and params["model.scc.enabled"] == "True"
        assert any(m["key"].startswith("system/cpu") for m in run["data"]["metrics"]), "no system metrics"
    parent = next(r for r in runs if "mlflow.parentRunId" not in _tags(r))
    assert [(i["dataset"]["name"], i["dataset"]["digest"]) for i in parent["inputs"]["dataset_inputs"]] == \
        [("tiny", md5)]


def _screenshot_module():
    import importlib
    import sys

    from slurm_fixtures import skip_or_fail
    from workflow_helpers import ROOT

    sys.path.insert(0, str(ROOT / "scripts"))
    try:
        shot = importlib.import_module("mlflow_screenshot")
        import selenium  # noqa: F401
    except ImportError as e:
        skip_or_fail(f"selenium is not installed ({e})")
    finally:
        sys.path.remove(str(ROOT / "scripts"))
    if shot.browser_paths() is None:
        skip_or_fail("Debian's chromium and chromium-driver are not installed (scripts/ci-system-deps.sh)")
    return shot


def test_mlflow_ui_opens_on_the_runs_table_with_fold_runs_and_datasets(local_run, tmp_path):
    """The real MLflow UI of the run's server in headless Chromium: the
    experiment's runs table (not the GenAI overview) with the parent run, its
    three fold runs, and each fold's Dataset cell naming its data and version;
    the same screenshot the README shows (scripts/mlflow_screenshot.py)."""
    import subprocess

    shot = _screenshot_module()
    md5 = __import__("hashlib").md5((local_run["out"] / "annotations.csv").read_bytes()).hexdigest()
    # The address `make ui` (fau mlflow-ui) prints for this config: the runs table's.
    ui = _fau("mlflow-ui", "--config", str(local_run["cfg"]), "--print-url", cwd=tmp_path, stdout=subprocess.PIPE)
    printed = ui.communicate(timeout=120)[0].split(": ", 1)[-1].strip()
    with shot.chromium(1600, 720) as driver:
        table = shot.open_runs_table(driver, local_run["url"], "e2e", expect_children=3)
        driver.save_screenshot(str(tmp_path / "runs.png"))
    assert ui.returncode == 0 and printed == table["url"], (printed, table["url"])
    page, rows = table["page"], table["rows"]
    assert "Runs" in page and "Traces 0" not in page and "No data available" not in page, page[:2000]
    assert len(table["parents"]) == 1, rows
    by_name = {r["name"]: r for r in rows.values()}
    assert {"fold1", "fold2", "fold3"} <= by_name.keys(), rows
    for fold in ("fold1", "fold2", "fold3"):
        dataset = by_name[fold]["dataset"]
        assert f"tiny/{fold}/train ({md5[:12]}" in dataset and f"tiny/{fold}/test" in dataset, rows
    assert (tmp_path / "runs.png").stat().st_size > 20_000


def _fau(*args: str, cwd: Path, **kw):
    import subprocess
    import sys

    from workflow_helpers import env

    return subprocess.Popen([sys.executable, "-m", "fau.cli", *args], cwd=cwd, env=env(), text=True, **kw)


def test_training_goes_on_when_the_tracking_server_stops_and_is_synced_later(local_run, tmp_path):
    """`fau train --parent` as the rule runs it, against a real `mlflow
    server` stopped after epoch 2 of 6: the job ends in about the time it
    takes without MLflow, with the same model, one warning line and no
    traceback; `fau mlflow-start` fails within seconds while the server is
    down; restarted, `fau mlflow-sync` logs the whole run."""
    import subprocess

    import torch

    from workflow_helpers import start_mlflow_server, stop_mlflow_server

    out = local_run["out"]
    common = ["--annotations", str(out / "annotations.csv"), "--folds", str(out / "folds.json"), "--fold", "fold1",
              "--threads", "1"]
    server_dir = tmp_path / "server"
    proc, url = start_mlflow_server(server_dir)
    try:
        cfg = write_config(tmp_path / "c.yaml", tmp_path, mlflow={"uri": url, "experiment": "outage",
                                                                  "system_metrics_interval": 1},
                           train={"epochs": 6})
        start = _fau("mlflow-start", "--config", str(cfg), "--out", str(tmp_path / "mlflow" / "parent.json"),
                     "--annotations", str(out / "annotations.csv"), cwd=tmp_path)
        assert start.wait(timeout=300) == 0
        log = tmp_path / "train.log"
        t0 = time.time()
        with open(log, "w") as err:
            job = _fau("train", "--config", str(cfg), *common, "--model", str(tmp_path / "m.pt"), "--history",
                       str(tmp_path / "h.csv"), "--parent", str(tmp_path / "mlflow" / "parent.json"), "--run-file",
                       str(tmp_path / "mlflow" / "fold1.json"), cwd=tmp_path, stderr=err, stdout=subprocess.PIPE)
            while "fold1 epoch 2/6" not in log.read_text() and job.poll() is None:
                time.sleep(0.2)
            stop_mlflow_server(proc)  # the server dies mid-training
            assert job.wait(timeout=600) == 0, log.read_text()[-3000:]
        with_outage = time.time() - t0
        t1 = time.time()
        down = _fau("mlflow-start", "--config", str(cfg), "--out", str(tmp_path / "p2.json"), cwd=tmp_path,
                    stderr=subprocess.PIPE)
        down_err = down.communicate(timeout=120)[1]
        start_down_s = time.time() - t1
        assert down.returncode == 2 and len(down_err.strip().splitlines()) == 1, down_err
        assert "no server answers" in down_err
        # The same job without MLflow, for the time and the weights.
        t2 = time.time()
        plain = _fau("train", "--config", str(cfg), "--set", "mlflow.enabled=false", *common, "--model",
                     str(tmp_path / "plain.pt"), "--history", str(tmp_path / "plain.csv"), cwd=tmp_path,
                     stderr=subprocess.PIPE, stdout=subprocess.PIPE)
        assert plain.wait(timeout=600) == 0
        without = time.time() - t2
        text = log.read_text()
        assert "Traceback" not in text, text
        warnings = [line for line in text.splitlines() if "MLflow" in line and "warning" in line.lower()]
        assert len(warnings) == 1 and "unreachable" in warnings[0], text
        a = torch.load(tmp_path / "m.pt", weights_only=True)["state_dict"]
        b = torch.load(tmp_path / "plain.pt", weights_only=True)["state_dict"]
        assert all(torch.equal(a[k], b[k]) for k in a)
        print(f"training with the server stopped after epoch 2 of 6: {with_outage:.1f} s; without MLflow: "
              f"{without:.1f} s; fau mlflow-start with the server down: {start_down_s:.1f} s")
        assert not json.loads((tmp_path / "mlflow" / "fold1.json").read_text())["synced"]

        proc, url = start_mlflow_server(server_dir, port=int(url.rsplit(":", 1)[1]))  # back, same address
        sync = _fau("mlflow-sync", str(tmp_path / "mlflow" / "fold1.json"), cwd=tmp_path, stdout=subprocess.PIPE,
                    stderr=subprocess.PIPE)
        sync_out, sync_err = sync.communicate(timeout=300)
        assert sync.returncode == 0, sync_out + sync_err
        rec = json.loads((tmp_path / "mlflow" / "fold1.json").read_text())
        assert rec["synced"]
        run = _get(url, "/api/2.0/mlflow/runs/get", run_id=rec["run_id"])["run"]
        assert run["info"]["status"] == "FINISHED"
        parent = json.loads((tmp_path / "mlflow" / "parent.json").read_text())
        assert _tags(run)["mlflow.parentRunId"] == parent["run_id"]
        params = {p["key"]: p["value"] for p in run["data"]["params"]}
        assert params["train.epochs"] == "6" and params["model.backbone"] == "resnet18"
        history = _get(url, "/api/2.0/mlflow/metrics/get-history", run_id=rec["run_id"], metric_key="loss")
        steps = sorted(m["step"] for m in history["metrics"])
        assert steps == [1, 2, 3, 4, 5, 6], steps  # each epoch once, live or caught up
        expected = pd.read_csv(tmp_path / "h.csv")["loss"].tolist()
        got = {m["step"]: m["value"] for m in history["metrics"]}
        assert [got[e] for e in range(1, 7)] == pytest.approx(expected, rel=1e-9)
        files = {f["path"]: int(f.get("file_size", 0)) for f in
                 _get(url, "/api/2.0/mlflow/artifacts/list", run_id=rec["run_id"], path="model")["files"]}
        assert files["model/model.pt"] == (tmp_path / "m.pt").stat().st_size
        assert "model/history.csv" in files
        assert {i["dataset"]["name"] for i in run["inputs"]["dataset_inputs"]} == {"tiny/fold1/train",
                                                                                   "tiny/fold1/test"}
        # A second sync has nothing left to send.
        again = _fau("mlflow-sync", str(tmp_path), cwd=tmp_path, stdout=subprocess.PIPE)
        assert again.wait(timeout=300) == 0 and "0 runs logged, 0 not" in again.communicate()[0]
    finally:
        stop_mlflow_server(proc)


def test_interrupted_invocation_ends_its_runs_and_the_fold_resumes_its_own_run(local_run, tmp_path):
    """Ctrl-C of `snakemake` during training: the fold run and the parent end
    KILLED (no run left RUNNING); run again, the fold resumes from its
    checkpoint in the same MLflow run, each epoch logged once."""
    import os
    import shutil
    import signal
    import subprocess

    from workflow_helpers import SNAKEMAKE, env

    src = local_run["out"]
    out = tmp_path / "results" / "tiny"
    out.mkdir(parents=True)
    for name in ("index", "landmarks", "crops", "annotations.csv", "annotations.json", "folds.json"):
        (shutil.copytree if (src / name).is_dir() else shutil.copy2)(src / name, out / name)
    cfg = write_config(tmp_path / "c.yaml", tmp_path, mlflow={"uri": local_run["url"], "experiment": "interrupt"},
                       dataset={"root": str(local_run["base"] / "data" / "BP4D")}, train={"epochs": 8})
    target = str(out / "models" / "fold1.pt")
    args = [SNAKEMAKE, "--cores", "1", "--configfile", str(cfg), "--", target]
    # A terminal's Ctrl-C reaches a snakemake whose SIGINT has its default
    # action; a test runner started in the background (`cmd &` in a script)
    # hands its children SIGINT ignored, and snakemake would never see it.
    job = subprocess.Popen(args, cwd=local_run["wf"], env=env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                           text=True, start_new_session=True,
                           preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    ckpt = out / "checkpoints" / "fold1.pt"
    deadline = time.time() + 600
    while not ckpt.exists() and job.poll() is None and time.time() < deadline:
        time.sleep(0.2)
    os.killpg(job.pid, signal.SIGINT)  # Ctrl-C in the terminal: the whole foreground group
    console = job.communicate(timeout=300)[0]
    assert job.returncode != 0, console[-3000:]
    rec = json.loads((out / "mlflow" / "fold1.json").read_text())
    parent_id = json.loads((out / "mlflow" / "parent.json").read_text())["run_id"]
    first = _get(local_run["url"], "/api/2.0/mlflow/runs/get", run_id=rec["run_id"])["run"]["info"]["status"]
    parent = _get(local_run["url"], "/api/2.0/mlflow/runs/get", run_id=parent_id)["run"]["info"]["status"]
    assert (first, parent) == ("KILLED", "KILLED"), console[-3000:]
    assert not (out / "models" / "fold1.pt").exists()

    proc = snakemake(["--cores", "1", "--configfile", str(cfg), "--", target], cwd=local_run["wf"])
    assert "resuming after epoch" in (out / "logs" / "train" / "fold1.log").read_text(), proc.stdout[-2000:]
    again = json.loads((out / "mlflow" / "fold1.json").read_text())
    assert again["run_id"] == rec["run_id"]  # the same child run, continued
    run = _get(local_run["url"], "/api/2.0/mlflow/runs/get", run_id=rec["run_id"])["run"]
    assert run["info"]["status"] == "FINISHED"
    history = _get(local_run["url"], "/api/2.0/mlflow/metrics/get-history", run_id=rec["run_id"], metric_key="loss")
    assert sorted(m["step"] for m in history["metrics"]) == list(range(1, 9))
    assert _get(local_run["url"], "/api/2.0/mlflow/runs/get", run_id=parent_id)["run"]["info"]["status"] == \
        "FINISHED"


def test_fau_train_and_evaluate_by_hand_log_to_a_run_of_their_own(local_run, tmp_path):
    """`fau train` / `fau evaluate` without --parent and with mlflow.enabled
    (the default) log to one run of their own, recorded beside the model."""
    import subprocess

    from mlflow.tracking import MlflowClient

    out = local_run["out"]
    store = f"sqlite:///{tmp_path / 'mlflow.db'}"
    common = ["--config", str(local_run["cfg"]), "--set", f"mlflow.uri={store}", "--set", "mlflow.experiment=by-hand",
              "--set", "train.epochs=1", "--annotations", str(out / "annotations.csv"), "--folds",
              str(out / "folds.json"), "--fold", "fold2", "--model", str(tmp_path / "m.pt"), "--threads", "1"]
    for cmd in (["train", *common, "--history", str(tmp_path / "h.csv")],
                ["evaluate", *common, "--predictions", str(tmp_path / "p.csv"), "--metrics", str(tmp_path / "x.csv")]):
        proc = _fau(*cmd, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        stdout, stderr = proc.communicate(timeout=600)
        assert proc.returncode == 0, stderr[-3000:]
        assert "MLflow run fold2" in stdout, stdout
    rec = json.loads((tmp_path / "m.mlflow.json").read_text())
    client = MlflowClient(store)
    runs = client.search_runs([client.get_experiment_by_name("by-hand").experiment_id])
    assert [r.info.run_id for r in runs] == [rec["run_id"]]
    run = runs[0]
    assert run.info.status == "FINISHED" and "mlflow.parentRunId" not in run.data.tags
    assert {"loss", "icc_mean", "mae_AU12"} <= run.data.metrics.keys()
    assert {i.dataset.name for i in run.inputs.dataset_inputs} == {"tiny/fold2/train", "tiny/fold2/test"}


def test_ablation_target_trains_the_variant_on_the_same_folds_and_adds_the_table(local_run):
    """`snakemake ablation` after the run: only the variant's jobs run (same
    folds, same seed), each fold its own MLflow child run `no_scc/<fold>`, and
    report_ablation.md is the report plus a table whose numbers are the two
    runs' pooled metrics (read here from their metrics.json)."""
    wf, out, url = local_run["wf"], local_run["out"], local_run["url"]
    proc = snakemake(["ablation", "--cores", "2", "--configfile", str(local_run["cfg"])], cwd=wf)
    log = proc.stdout + proc.stderr
    assert "rule train_variant" in log and not re.search(r"rule train:\n", log)  # the main folds are not retrained
    variant = json.loads((out / "ablation" / "no_scc" / "metrics.json").read_text())
    main = json.loads((out / "metrics.json").read_text())
    folds = json.loads((out / "folds.json").read_text())
    var_preds = pd.concat([pd.read_csv(out / "ablation" / "no_scc" / "predictions" / f"{f['name']}.csv") for f in folds])
    main_preds = pd.concat([pd.read_csv(out / "predictions" / f"{f['name']}.csv") for f in folds])
    assert sorted(zip(var_preds["video"], var_preds["frame"])) == sorted(zip(main_preds["video"], main_preds["frame"]))
    import torch

    state = torch.load(out / "ablation" / "no_scc" / "models" / "fold1.pt", weights_only=True)
    assert state["model_config"]["scc"]["enabled"] is False and not any(".scc." in k for k in state["state_dict"])
    table = pd.read_csv(out / "ablation" / "ablation.csv").set_index("variant")
    assert list(table.index) == ["main", "no_scc"]
    assert table.loc["main", "icc"] == pytest.approx(main["mean"]["icc"])
    assert table.loc["no_scc", "mae"] == pytest.approx(variant["mean"]["mae"])
    report = (out / "report_ablation.md").read_text()
    assert report.startswith((out / "report.md").read_text().rstrip("\n"))
    assert "## Ablation" in report and "| no_scc |" in report and "ablation.png" in report
    assert f"{variant['mean']['icc']:.2f}" in report.split("## Ablation")[1]
    _, runs = _runs(url, "e2e")
    names = {r["info"]["run_name"]: r for r in runs}
    for f in folds:
        run = names[f"no_scc/{f['name']}"]
        tags = {t["key"]: t["value"] for t in run["data"].get("tags", [])}
        assert tags.get("fau.variant") == "no_scc" and "mlflow.parentRunId" in tags
        params = {p["key"]: p["value"] for p in run["data"].get("params", [])}
        assert params["model.scc.enabled"] == "False"
