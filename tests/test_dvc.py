"""DVC over the Snakemake targets, in a temporary git repo with a local
remote: `dvc repro` after a plain Snakemake run (`make run`) only records
what Snakemake made, a no-op second repro, a param change that re-runs only
the stages after it, and push -> wipe -> pull restoring identical files."""

from __future__ import annotations

import hashlib
import shutil
import subprocess
import time
from pathlib import Path

import pytest
import yaml

from fau.config import deep_merge
from workflow_helpers import BIN, ROOT, copy_workflow, env, load_test_config, snakemake

pytestmark = pytest.mark.integration

STAGES = ["synth", "prepare", "train", "evaluate", "report"]


def run(cmd: list[str], cwd: Path, timeout: int = 900) -> str:
    e = env()
    e.update(GIT_AUTHOR_NAME="ci", GIT_AUTHOR_EMAIL="ci@localhost", GIT_COMMITTER_NAME="ci",
             GIT_COMMITTER_EMAIL="ci@localhost", DVC_NO_ANALYTICS="1")
    proc = subprocess.run(cmd, cwd=cwd, env=e, capture_output=True, text=True, timeout=timeout)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, f"{' '.join(cmd)} failed:\n{out[-6000:]}"
    return out


def digest(root: Path, rels: list[str]) -> dict[str, str]:
    out = {}
    for rel in rels:
        p = root / rel
        files = sorted(f for f in p.rglob("*") if f.is_file()) if p.is_dir() else [p]
        for f in files:
            out[str(f.relative_to(root))] = hashlib.sha256(f.read_bytes()).hexdigest()
    return out


def test_dvc_repro_push_pull(tmp_path):
    repo = copy_workflow(tmp_path / "repo", with_src=True)
    # The shipped config/config.yaml (every key dvc.yaml names as params), made small.
    cfg = deep_merge(yaml.safe_load((ROOT / "config" / "config.yaml").read_text()), load_test_config())
    cfg.update({"results": "results", "mlflow": {"enabled": False}})
    cfg["train"]["epochs"] = 1
    cfg["dataset"]["root"] = "data/synth/BP4D"
    (repo / "config" / "config.yaml").write_text(yaml.safe_dump(cfg, sort_keys=False))
    (repo / ".gitignore").write_text(".snakemake/\n__pycache__/\n")
    dvc = str(BIN / "dvc")
    run(["git", "init", "-q", "-b", "main"], repo)
    run([dvc, "init", "-q"], repo)
    run([dvc, "config", "core.autostage", "true"], repo)
    run(["git", "add", "-A"], repo)
    run(["git", "commit", "-qm", "workflow"], repo)

    # `make run`: the whole DAG by Snakemake alone; then `dvc repro` records it
    # without making anything again.
    snakemake(["--cores", "2"], cwd=repo)
    out = repo / "results" / "tiny"
    assert (out / "report.md").exists() and (out / "metrics.json").exists()
    t0 = time.time()
    first = run([dvc, "repro"], repo)
    record_s = time.time() - t0
    for stage in STAGES:
        assert f"Running stage '{stage}'" in first, first[-3000:]
    assert first.count("Nothing to be done") == len(STAGES), first[-4000:]
    assert "steps (100%) done" not in first, first[-4000:]  # Snakemake ran no job
    print(f"dvc repro after a Snakemake run: {record_s:.1f} s (only records)")
    lock = yaml.safe_load((repo / "dvc.lock").read_text())["stages"]
    assert set(lock) == set(STAGES)
    # The data version of the MLflow runs' dataset inputs is the one DVC records.
    from fau.mlflow_runs import data_version

    ann = next(o for o in lock["prepare"]["outs"] if o["path"].endswith("annotations.csv"))
    assert ann["md5"] == data_version(out / "annotations.csv")
    run(["git", "add", "-A"], repo)
    run(["git", "commit", "-qm", "results"], repo)

    second = run([dvc, "repro"], repo)
    assert "Running stage" not in second, second
    assert "up to date" in second.lower()

    # One training param changes: only train and the stages after it re-run,
    # and they run their Snakemake jobs again.
    prepared = digest(repo, ["data/synth/BP4D", "results/tiny/crops", "results/tiny/annotations.csv"])
    cfg["train"]["epochs"] = 2
    (repo / "config" / "config.yaml").write_text(yaml.safe_dump(cfg, sort_keys=False))
    third = run([dvc, "repro"], repo)
    assert "Running stage 'synth'" not in third and "Running stage 'prepare'" not in third, third[-3000:]
    for stage in ["train", "evaluate", "report"]:
        assert f"Running stage '{stage}'" in third, third[-3000:]
    assert digest(repo, ["data/synth/BP4D", "results/tiny/crops", "results/tiny/annotations.csv"]) == prepared
    assert third.count("forcing rules") == 3, third[-4000:]  # train, evaluate, report ran their jobs again
    for fold in ("fold1", "fold2", "fold3"):
        history = (out / "history" / f"{fold}.csv").read_text().strip().splitlines()
        assert len(history) == 3  # header + 2 epochs
    run(["git", "add", "-A"], repo)
    run(["git", "commit", "-qm", "two epochs"], repo)
    assert "up to date" in run([dvc, "status"], repo).lower()

    tracked = ["data/synth/BP4D", "results/tiny/annotations.json", "results/tiny/crops",
               "results/tiny/models", "results/tiny/metrics.csv", "results/tiny/report.md",
               "results/tiny/figures"]
    before = digest(repo, tracked)
    store = tmp_path / "store"
    run([dvc, "remote", "add", "-d", "local", str(store)], repo)
    run([dvc, "push"], repo)
    shutil.rmtree(repo / ".dvc" / "cache")
    shutil.rmtree(repo / "data")
    for rel in tracked[1:]:
        p = repo / rel
        shutil.rmtree(p) if p.is_dir() else p.unlink()
    run([dvc, "pull"], repo)
    after = digest(repo, tracked)
    assert before == after and len(before) > 50
    status = run([dvc, "status"], repo)
    assert "up to date" in status.lower(), status
