"""The Snakemake workflow: dry-runs of all three configs, lint, and config
errors that stop the run before any job."""

from pathlib import Path

import pytest
import yaml

from workflow_helpers import ROOT, copy_workflow, snakemake, write_config


@pytest.fixture(scope="module")
def wf(tmp_path_factory) -> Path:
    return copy_workflow(tmp_path_factory.mktemp("wf"))


def _jobs(stdout: str) -> dict[str, int]:
    """Parse Snakemake's 'Job stats' table."""
    counts, inside = {}, False
    for line in stdout.splitlines():
        parts = line.split()
        if parts[:2] == ["job", "count"]:
            inside = True
            continue
        if inside and len(parts) == 2 and parts[1].isdigit():
            counts[parts[0]] = int(parts[1])
        elif inside and parts and not set(parts[0]) <= {"-"}:
            if counts:
                break
    return counts


def test_dry_run_default_config(wf):
    proc = snakemake(["-n", "--cores", "2"], cwd=wf)
    jobs = _jobs(proc.stdout)
    # Before the index checkpoint ran, the DAG reaches up to it.
    assert jobs.get("synth") == 1 and jobs.get("index") == 1, proc.stdout
    assert jobs.get("all") == 1


@pytest.mark.parametrize("name", ["bp4d.yaml", "disfa.yaml"])
def test_dry_run_dataset_configs(wf, tmp_path, name):
    root = tmp_path / "dataset"
    root.mkdir()
    over = tmp_path / "root.yaml"
    over.write_text(yaml.safe_dump({"dataset": {"root": str(root)}, "results": str(tmp_path / "results")}))
    proc = snakemake(["-n", "--cores", "2", "--configfile", f"config/{name}", str(over)], cwd=wf)
    jobs = _jobs(proc.stdout)
    assert "synth" not in jobs and jobs.get("index") == 1, proc.stdout


def test_lint_is_clean(wf):
    proc = snakemake(["--lint"], cwd=wf, check=False)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out
    assert "Congratulations, your workflow is in a good condition!" in out, out


@pytest.mark.parametrize(
    "override, expected",
    [
        ({"train": {"epoch": 2}}, "train.epoch"),
        ({"model": {"input_size": "big"}}, "input_size"),
        ({"folds": {"k": 1}}, "k"),
    ],
)
def test_config_error_stops_before_any_job(wf, tmp_path, override, expected):
    cfg = write_config(tmp_path / "bad.yaml", tmp_path, **override)
    proc = snakemake(["--cores", "1", "--configfile", str(cfg)], cwd=wf, check=False)
    out = proc.stdout + proc.stderr
    assert proc.returncode != 0
    assert expected in out, out
    assert not (tmp_path / "results").exists() and not (tmp_path / "data").exists()


def test_missing_dataset_root_is_named(wf, tmp_path):
    over = tmp_path / "root.yaml"
    over.write_text(yaml.safe_dump({"dataset": {"root": str(tmp_path / "nowhere")}}))
    proc = snakemake(["-n", "--cores", "1", "--configfile", "config/bp4d.yaml", str(over)], cwd=wf, check=False)
    out = proc.stdout + proc.stderr
    assert proc.returncode != 0
    assert "dataset.root" in out and "nowhere" in out, out


def test_rules_declare_logs_threads_and_resources():
    text = "".join(p.read_text() for p in (ROOT / "workflow" / "rules").glob("*.smk"))
    for rule in ["landmarks", "crops", "train", "evaluate", "report"]:
        assert f"rule {rule}:" in text
    assert text.count("log:") >= 10 and text.count("benchmark:") >= 7
    assert "**gpu_resources()" in text and "threads: CFG.resources.train_threads" in text
