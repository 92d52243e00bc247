"""MLflow runs: one parent run per workflow invocation, one child run per fold.

The parent run is created once, before the fan-out (`fau mlflow-start`,
Snakemake rule `mlflow_parent`), and its IDs are written to a parent file
(the workflow's `mlflow/parent.json`). Each fold's training job opens a
child run under it (params: the resolved config, git commit, dataset
fingerprint; metrics: per epoch) and records the child's ID in a run file
(the workflow's `mlflow/<fold>.json`), so that a resumed training and the
evaluation job log to the same run; the evaluation job adds the fold's
metrics and artefacts. Pooled metrics and the report go to the parent.

Everything goes through `MlflowClient` with an explicit tracking URI: no
global MLflow state. The default URI is a SQLite file under results/ (the file
store is deprecated); for a cluster, a `mlflow server` URI.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

from . import atomic
from .config import Config
from .errors import FauError

def _client(uri: str):
    from mlflow.tracking import MlflowClient

    return MlflowClient(tracking_uri=uri)


def resolve_uri(uri: str) -> str:
    """Make a relative `sqlite:///path` absolute (jobs may start elsewhere) and
    create its folder."""
    prefix = "sqlite:///"
    if uri.startswith(prefix) and not uri.startswith(prefix + "/"):
        path = Path(uri[len(prefix):]).resolve()
        path.parent.mkdir(parents=True, exist_ok=True)
        return prefix + str(path)
    return uri


def _experiment_id(client, cfg: Config) -> str:
    exp = client.get_experiment_by_name(cfg.mlflow.experiment)
    if exp is not None:
        return exp.experiment_id
    artifact_location = None
    if cfg.mlflow.uri.startswith("sqlite:"):
        # Local store: artefacts beside the results, not in the current folder.
        artifact_location = (Path(cfg.results).resolve() / "mlartifacts").as_uri()
    return client.create_experiment(cfg.mlflow.experiment, artifact_location=artifact_location)


def flatten(d: dict, prefix: str = "") -> dict[str, str]:
    """{'train': {'lr': 1}} -> {'train.lr': '1'} (MLflow params are strings)."""
    out: dict[str, str] = {}
    for k, v in d.items():
        key = f"{prefix}{k}"
        if isinstance(v, dict) and v:
            out.update(flatten(v, key + "."))
        else:
            out[key] = json.dumps(v) if isinstance(v, (list, dict)) else str(v)
    return out


def git_commit(repo: Path | None = None) -> str:
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], cwd=repo or Path.cwd(), capture_output=True,
                             text=True, timeout=10)
        return out.stdout.strip() if out.returncode == 0 else "unknown"
    except (OSError, subprocess.TimeoutExpired):
        return "unknown"


def fingerprint(path: Path) -> str:
    """sha256 (first 16 hex digits) of a file: the dataset's frame table."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()[:16]


def _read_json(path: Path) -> dict:
    try:
        return json.loads(Path(path).read_text())
    except FileNotFoundError:
        raise FauError(f"{path}: missing (run the mlflow_parent rule / `fau mlflow-start` first)") from None
    except json.JSONDecodeError as e:
        raise FauError(f"{path}: not valid JSON ({e.msg})") from None


def _log_params(client, run_id: str, params: dict[str, str]) -> None:
    from mlflow.entities import Param

    items = [Param(k, v[:6000]) for k, v in sorted(params.items())]
    for i in range(0, len(items), 100):
        client.log_batch(run_id, params=items[i:i + 100])


def start_parent(cfg: Config, out_file: Path) -> dict:
    """Create the workflow invocation's parent run; write its IDs to out_file."""
    if not cfg.mlflow.enabled:
        info = {"enabled": False}
        atomic.write_text(out_file, json.dumps(info, indent=2) + "\n")
        return info
    uri = resolve_uri(cfg.mlflow.uri)
    try:
        client = _client(uri)
        exp_id = _experiment_id(client, cfg)
        name = f"{cfg.dataset.name}-{time.strftime('%Y%m%d-%H%M%S')}"
        run = client.create_run(exp_id, run_name=name, tags={"fau.role": "workflow", "fau.dataset": cfg.dataset.name,
                                                               "mlflow.source.git.commit": git_commit()})
        _log_params(client, run.info.run_id, {**flatten(cfg.to_dict()), "git_commit": git_commit()})
    except FauError:
        raise
    except Exception as e:  # mlflow raises many types; one line for the user
        raise FauError(f"MLflow URI {cfg.mlflow.uri}: cannot create the parent run ({type(e).__name__}: "
                       f"{str(e).splitlines()[0] if str(e) else ''})") from None
    info = {"enabled": True, "uri": uri, "experiment_id": exp_id, "run_id": run.info.run_id, "run_name": name}
    atomic.write_text(out_file, json.dumps(info, indent=2) + "\n")
    return info


@dataclass
class FoldRun:
    """A fold's child run (or a no-op when MLflow logging is disabled)."""

    uri: Optional[str]
    run_id: Optional[str]

    @property
    def enabled(self) -> bool:
        return self.run_id is not None

    def log_metrics(self, metrics: dict, step: Optional[int] = None) -> None:
        if not self.enabled:
            return
        from mlflow.entities import Metric

        ts = int(time.time() * 1000)
        items = [Metric(k, float(v), ts, step or 0) for k, v in metrics.items() if v is not None and v == v]
        if items:
            _client(self.uri).log_batch(self.run_id, metrics=items)

    def log_dict(self, data: dict, artifact_file: str) -> None:
        if self.enabled:
            _client(self.uri).log_dict(self.run_id, data, artifact_file)

    def log_artifact(self, path: Path, artifact_path: Optional[str] = None, name: Optional[str] = None) -> None:
        """Log the file `path` (as `name`, when given: e.g. models/fold1.pt as model/model.pt)."""
        path = Path(path)
        if not (self.enabled and path.exists()):
            return
        if name is None or name == path.name:
            _client(self.uri).log_artifact(self.run_id, str(path), artifact_path)
            return
        with tempfile.TemporaryDirectory() as tmp:
            named = Path(tmp) / name
            shutil.copyfile(path, named)
            _client(self.uri).log_artifact(self.run_id, str(named), artifact_path)

    def finish(self, status: str = "FINISHED") -> None:
        if self.enabled:
            _client(self.uri).set_terminated(self.run_id, status)


def open_fold_run(cfg: Config, parent_file: Path, run_file: Path, fold: str, dataset_file: Optional[Path] = None
                  ) -> FoldRun:
    """The fold's child run: re-used when `run_file` names one under the same
    parent (resume, evaluation), else created and recorded in `run_file`."""
    parent = _read_json(parent_file)
    if not parent.get("enabled"):
        return FoldRun(None, None)
    uri = parent["uri"]
    client = _client(uri)
    marker = Path(run_file)
    if marker.exists():
        info = json.loads(marker.read_text())
        if info.get("parent_run_id") == parent["run_id"]:
            client.update_run(info["run_id"], status="RUNNING")
            return FoldRun(uri, info["run_id"])
    run = client.create_run(parent["experiment_id"], run_name=fold,
                            tags={"mlflow.parentRunId": parent["run_id"], "fau.role": "fold", "fau.fold": fold,
                                  "mlflow.source.git.commit": git_commit()})
    params = {**flatten(cfg.to_dict()), "git_commit": git_commit(), "fold": fold}
    if dataset_file is not None and Path(dataset_file).exists():
        params["dataset_fingerprint"] = fingerprint(Path(dataset_file))
    _log_params(client, run.info.run_id, params)
    marker_info = {"run_id": run.info.run_id, "parent_run_id": parent["run_id"], "uri": uri}
    atomic.write_text(marker, json.dumps(marker_info) + "\n")
    return FoldRun(uri, run.info.run_id)


def parent_run(parent_file: Path) -> FoldRun:
    """The parent run, for pooled metrics and the report."""
    parent = _read_json(parent_file)
    if not parent.get("enabled"):
        return FoldRun(None, None)
    return FoldRun(parent["uri"], parent["run_id"])
