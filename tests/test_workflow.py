"""The Snakemake workflow: dry-runs of all three configs, lint, config
errors that stop the run before any job, rules -> scripts -> library, and a
job's bad input reported in one line."""

import re
from pathlib import Path

import pytest
import yaml

from workflow_helpers import ROOT, copy_workflow, job_counts, snakemake, write_config


@pytest.fixture(scope="module")
def wf(tmp_path_factory) -> Path:
    return copy_workflow(tmp_path_factory.mktemp("wf"))


def test_dry_run_default_config(wf):
    proc = snakemake(["-n", "--cores", "2"], cwd=wf)
    jobs = job_counts(proc.stdout)
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
    jobs = job_counts(proc.stdout)
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


def _rules() -> dict[str, str]:
    """rule name -> its text, over workflow/rules/*.smk."""
    out = {}
    for smk in sorted((ROOT / "workflow" / "rules").glob("*.smk")):
        parts = re.split(r"^(?:rule|checkpoint) (\w+):\n", smk.read_text(), flags=re.M)
        out.update(dict(zip(parts[1::2], parts[2::2])))
    return out


def test_rules_computing_intensities_get_the_eval_section():
    """A rule's job sees only the config sections its `params.cfg` names
    (`sections(...)` in common.smk): every job that turns crops into
    intensities must get `eval`, or a user's `eval.flip_test: false` would
    not reach it and `fau predict` / the registered model would disagree
    with evaluation."""
    rules = _rules()
    for name in ["evaluate", "evaluate_variant", "report", "register_final", "predict_input"]:
        cfg = re.search(r"cfg=(?:variant_)?sections\(([^)]*)\)", rules[name])
        assert cfg and '"eval"' in cfg.group(1), (name, cfg and cfg.group(1))


def test_every_rule_runs_a_short_script_with_explicit_paths():
    rules = _rules()
    assert {"synth", "index", "landmarks", "crops", "annotations", "folds", "mlflow_parent", "train",
            "evaluate", "pool", "report"} <= set(rules)
    for name, text in rules.items():
        assert "shell:" not in text and "run:" not in text, name
        script = re.search(r'script:\s*\n\s*"([^"]+)"', text)
        assert script, f"rule {name} has no script:"
        path = (ROOT / "workflow" / "rules" / script.group(1)).resolve()
        assert path.parent == ROOT / "workflow" / "scripts" and path.is_file(), (name, path)
        code = [ln for ln in path.read_text().splitlines() if ln.strip() and not ln.lstrip().startswith("#")]
        assert len(code) <= 15, f"{path.name}: {len(code)} lines of code (glue only)"
        assert "snakemake.log" not in path.read_text()  # routed by fau.snakemake_job
        assert "output:" in text and "log:" in text, name
    common = (ROOT / "workflow" / "rules" / "common.smk").read_text()
    assert "PATH" not in common and "envvars" not in common


def test_bad_input_in_a_job_is_one_line_without_traceback(wf, tmp_path):
    """An empty dataset folder: the index job fails; Snakemake's console and
    the job's log show one line naming the folder and the pattern."""
    root = tmp_path / "empty"
    root.mkdir()
    over = tmp_path / "root.yaml"
    over.write_text(yaml.safe_dump({"dataset": {"root": str(root)}, "results": str(tmp_path / "results"),
                                    "mlflow": {"enabled": False}}))
    proc = snakemake(["--cores", "1", "--configfile", "config/disfa.yaml", str(over)], cwd=wf, check=False)
    out = proc.stdout + proc.stderr
    assert proc.returncode != 0
    line = next(ln for ln in out.splitlines() if ln.startswith("index: error: "))
    assert str(root) in line and "Videos_LeftCamera/LeftVideo{subject}_comp.avi" in line, line
    log = (tmp_path / "results" / "disfa" / "logs" / "index.log").read_text()
    assert log.strip() == line.removeprefix("index: "), log
    assert "Traceback" not in out
