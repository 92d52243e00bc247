"""MLflow runs: one parent run per workflow invocation, one child run per fold.

The parent run is created once, before the fan-out (`fau mlflow-start`,
Snakemake rule `mlflow_parent`), and its IDs are written to a parent file
(the workflow's `mlflow/parent.json`, never changed afterwards). Each
fold's training job opens a child run under it (`fold1`; an ablation
variant's `<variant>/<fold>`; the final model's `final`) and keeps the
run's record in a run file (the workflow's `mlflow/<fold>.json`), so that a
resumed training and the evaluation job log to the same run. Pooled metrics
and the report go to the parent (its record: `mlflow/parent.run.json`).
`fau train` / `fau evaluate` without a parent file log to a run of their
own (`mlflow.enabled`), recorded beside the model file.

What a run holds (tags, flat config params, its data as MLflow dataset
inputs, the per-epoch history file, per-AU / pooled metrics, artefact
files, its status) is written to the record first and sent to MLflow
second, so that training never depends on the tracking server:

- every request is bounded (MLflow's HTTP retries and timeout, below; the
  user's own MLFLOW_HTTP_REQUEST_* environment wins);
- when the server cannot be reached the job prints one warning line and
  goes on; the record is marked unsynced, and the run is caught up from its
  record and files when the server is back: by the same job (it looks
  again every RETRY_S seconds, first with a 2 s health check), by the next
  job that opens the run (evaluation after training, the report for every
  record beside the parent file), or by `fau mlflow-sync`.
- a sync is idempotent: it sends only what the server lacks (params, tags,
  dataset inputs, epochs of the history, metrics, artefact files by size,
  the status with the recorded end time).

The data version of a run is DVC's: the md5 of the annotation table's bytes
(what `dvc.lock` records for it), the digest of its MLflow dataset inputs
(`<dataset>/<fold>/train` with context `training`, `<dataset>/<fold>/test`
with `testing`; the parent: `<dataset>` with `cross_validation`).

No run is left RUNNING: a training job ends its run KILLED on SIGINT or
SIGTERM (SIGTERM is turned into KeyboardInterrupt while it trains) and
FAILED on an error; the workflow's `onerror` / `onsuccess` hooks
(`end_invocation`) end the parent and any child still RUNNING.

Everything goes through `MlflowClient` with an explicit tracking URI: no
global MLflow state (the HTTP limits are set in the environment only around
this module's calls). The default URI is a SQLite file under results/; for
a cluster, a `mlflow server` URI.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import json
import logging
import math
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Iterator, Optional

from . import atomic
from .config import Config
from .errors import FauError, read_json

# Bounded requests (MLflow's defaults: 7 retries, backoff factor 2, 120 s
# per attempt: about 250 s before an error when the server is down). While a
# job trains, one attempt of at most 5 s (whatever is not sent is caught up
# from the record later); catching up and uploading files: 2 attempts of at
# most 30 s. A value the user set in the environment wins. The variables are
# only ever given values, never removed (other threads read the environment).
LIVE = {"retries": 0, "timeout": 5}
BULK = {"retries": 1, "timeout": 30}
_HTTP_VARS = {"MLFLOW_HTTP_REQUEST_MAX_RETRIES": ("retries", "7"),
              "MLFLOW_HTTP_REQUEST_TIMEOUT": ("timeout", "120"),
              "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR": (None, "2"),
              "MLFLOW_HTTP_REQUEST_BACKOFF_JITTER": (None, "1.0")}
_OURS = {"MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR": "1", "MLFLOW_HTTP_REQUEST_BACKOFF_JITTER": "0.5"}
_USER_SET = {k for k in _HTTP_VARS if k in os.environ}
# MLflow's usage telemetry (a thread posting to MLflow's servers) off unless
# the user asks for it: no traffic beyond the tracking server from a job.
os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
RETRY_S = 60.0  # while unreachable: look again at most this often
EXPERIMENT_KIND_TAG = "mlflow.experimentKind"
EXPERIMENT_KIND = "custom_model_development"  # MLflow's "model training" experiment type
CONTEXT_TAG = "mlflow.data.context"
RECORD = 1  # marks a run record (format version)
TERMINAL = ("FINISHED", "FAILED", "KILLED")
_QUIET = ("urllib3.connectionpool", "mlflow.system_metrics", "mlflow.utils.autologging_utils",
          "mlflow.tracking._tracking_service.client")


def say(msg: str) -> None:
    """One line on stderr (through tqdm, so that a progress bar stays intact)."""
    from tqdm import tqdm

    tqdm.write(msg, file=sys.stderr)


def _http_values(limits: dict) -> dict[str, str]:
    return {k: str(limits[key]) if key else _OURS[k] for k, (key, _) in _HTTP_VARS.items() if k not in _USER_SET}


@contextlib.contextmanager
def bounded_http(limits: dict = BULK) -> Iterator[None]:
    """MLflow's HTTP retries and timeout bounded (LIVE or BULK) for the block,
    and the retry chatter of urllib3 / MLflow's loggers quiet."""
    values = _http_values(limits)
    previous = {k: os.environ.get(k, _HTTP_VARS[k][1]) for k in values}
    os.environ.update(values)
    loggers = [logging.getLogger(n) for n in _QUIET]
    levels = [lg.level for lg in loggers]
    for lg in loggers:
        lg.setLevel(logging.CRITICAL)
    try:
        yield
    finally:
        os.environ.update(previous)
        for lg, level in zip(loggers, levels):
            lg.setLevel(level)


def reachable(uri: str, timeout: float = 2.0) -> bool:
    """Whether an http(s) tracking server answers at all (any HTTP status
    counts); other URIs (a SQLite file) are always reachable."""
    if not uri.startswith(("http://", "https://")):
        return True
    try:
        with urllib.request.urlopen(uri.rstrip("/") + "/health", timeout=timeout):
            return True
    except urllib.error.HTTPError:
        return True
    except (OSError, ValueError):
        return False


@functools.lru_cache(maxsize=8)
def _client(uri: str):
    from mlflow.tracking import MlflowClient

    return MlflowClient(tracking_uri=uri)


def _first_line(e: BaseException) -> str:
    text = str(e).strip()
    for key, reason in (("Connection refused", "connection refused"), ("timed out", "no answer in time"),
                        ("Max retries exceeded", "no answer"), ("no answer", "no answer")):
        if key in text:
            return reason
    return f"{type(e).__name__}: {text.splitlines()[0][:200]}" if text else type(e).__name__


def resolve_uri(uri: str) -> str:
    """Make a relative `sqlite:///path` absolute (jobs may start elsewhere) and
    create its folder."""
    prefix = "sqlite:///"
    if uri.startswith(prefix) and not uri.startswith(prefix + "/"):
        path = Path(uri[len(prefix):]).resolve()
        path.parent.mkdir(parents=True, exist_ok=True)
        return prefix + str(path)
    return uri


def ensure_experiment(client, name: str, uri: str, results: str) -> str:
    """The experiment's ID; created as a model-training experiment (tag
    mlflow.experimentKind = custom_model_development), an existing one tagged."""
    exp = client.get_experiment_by_name(name)
    if exp is not None:
        if exp.tags.get(EXPERIMENT_KIND_TAG) != EXPERIMENT_KIND:
            client.set_experiment_tag(exp.experiment_id, EXPERIMENT_KIND_TAG, EXPERIMENT_KIND)
        return exp.experiment_id
    artifact_location = None
    if uri.startswith("sqlite:"):
        # Local store: artefacts beside the results, not in the current folder.
        artifact_location = (Path(results).resolve() / "mlartifacts").as_uri()
    return client.create_experiment(name, artifact_location=artifact_location,
                                    tags={EXPERIMENT_KIND_TAG: EXPERIMENT_KIND})


def runs_page(base_url: str, experiment_id: str) -> str:
    """The MLflow UI's runs table of an experiment. MLflow 3's UI opens an
    experiment on its GenAI pages unless told the workflow type (its
    experiment-kind tag alone does not switch it)."""
    return f"{base_url.rstrip('/')}/#/experiments/{experiment_id}/runs?workflowType=machine_learning"


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


@functools.lru_cache(maxsize=4)
def git_commit(repo: Path | None = None) -> str:
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], cwd=repo or Path.cwd(), capture_output=True,
                             text=True, timeout=10)
        return out.stdout.strip() if out.returncode == 0 else "unknown"
    except (OSError, subprocess.TimeoutExpired):
        return "unknown"


def data_version(path: Path) -> str:
    """The annotation table's version as DVC knows it: md5 of the file's
    bytes (`dvc.lock`'s `md5` for a file output)."""
    h = hashlib.md5()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def dataset_inputs(dataset: str, annotations_csv: Path, fold: Optional[dict] = None,
                   context: str = "training") -> list[dict]:
    """MLflow dataset inputs for a run on the annotation table: a fold's
    train and test subjects (`<dataset>/<fold>/train`, context training;
    `<dataset>/<fold>/test`, testing), or the whole table as `<dataset>`
    (`fold` None: with `context`; a fold without test subjects, the final
    model: training); digest: `data_version`."""
    import pandas as pd

    path = Path(annotations_csv)
    digest = data_version(path)
    head = pd.read_csv(path, nrows=200)
    kinds = {"f": "double", "i": "long", "b": "boolean"}
    schema = json.dumps({"mlflow_colspec": [{"type": kinds.get(head[c].dtype.kind, "string"), "name": str(c),
                                             "required": True} for c in head.columns]})
    subjects = pd.read_csv(path, usecols=["subject"], dtype={"subject": str})["subject"]
    source = json.dumps({"uri": path.resolve().as_uri()})

    def spec(name: str, ctx: str, subset: Optional[list[str]]) -> dict:
        rows = subjects if subset is None else subjects[subjects.isin([str(s) for s in subset])]
        profile = {"num_rows": int(len(rows)), "subjects": int(rows.nunique()), "table_rows": int(len(subjects))}
        tags = {CONTEXT_TAG: ctx}
        if subset is not None:
            tags["fau.subjects"] = " ".join(map(str, subset))[:4000]
        return {"name": name, "digest": digest, "source_type": "local", "source": source, "schema": schema,
                "profile": json.dumps(profile), "tags": tags}

    if fold is None:
        return [spec(dataset, context, None)]
    if not fold.get("test"):
        return [spec(dataset, "training", None)]
    return [spec(f"{dataset}/{fold['name']}/train", "training", list(fold["train"])),
            spec(f"{dataset}/{fold['name']}/test", "testing", list(fold["test"]))]


def _chunks(items: list, n: int = 100) -> Iterator[list]:
    for i in range(0, len(items), n):
        yield items[i:i + n]


def _now_ms() -> int:
    return int(time.time() * 1000)


def start_parent(cfg: Config, out_file: Path, annotations_csv: Optional[Path] = None) -> dict:
    """Create the workflow invocation's parent run; write its IDs to out_file.
    A server that cannot be reached is one line within seconds (FauError)."""
    if not cfg.mlflow.enabled:
        info = {"enabled": False}
        atomic.write_text(out_file, json.dumps(info, indent=2) + "\n")
        return info
    uri = resolve_uri(cfg.mlflow.uri)
    if not reachable(uri, timeout=5.0):
        raise FauError(f"MLflow URI {cfg.mlflow.uri}: no server answers (start `mlflow server`, fix mlflow.uri, "
                       "or set mlflow.enabled: false)")
    name = f"{cfg.dataset.name}-{time.strftime('%Y%m%d-%H%M%S')}"
    try:
        with bounded_http():
            client = _client(uri)
            exp_id = ensure_experiment(client, cfg.mlflow.experiment, uri, cfg.results)
            run = client.create_run(exp_id, run_name=name,
                                    tags={"fau.role": "workflow", "fau.dataset": cfg.dataset.name,
                                          "mlflow.source.git.commit": git_commit()})
            params = {**flatten(cfg.to_dict()), "git_commit": git_commit()}
            datasets = []
            if annotations_csv is not None and Path(annotations_csv).is_file():
                params["dataset_fingerprint"] = data_version(Path(annotations_csv))
                datasets = dataset_inputs(cfg.dataset.name, Path(annotations_csv), context="cross_validation")
            _send_params(client, run.info.run_id, params)
            if datasets:
                client.log_inputs(run.info.run_id, datasets=[_dataset_input(d) for d in datasets])
    except FauError:
        raise
    except Exception as e:  # mlflow raises many types; one line for the user
        raise FauError(f"MLflow URI {cfg.mlflow.uri}: cannot create the parent run ({_first_line(e)})") from None
    info = {"enabled": True, "uri": uri, "experiment_id": exp_id, "run_id": run.info.run_id, "run_name": name}
    atomic.write_text(out_file, json.dumps(info, indent=2) + "\n")
    return info


def _send_params(client, run_id: str, params: dict[str, str]) -> None:
    from mlflow.entities import Param

    items = [Param(k, str(v)[:6000]) for k, v in sorted(params.items())]
    for chunk in _chunks(items):
        client.log_batch(run_id, params=chunk)


def _dataset_input(d: dict):
    from mlflow.entities import Dataset, DatasetInput, InputTag

    return DatasetInput(Dataset(d["name"], d["digest"], d["source_type"], d["source"], d.get("schema"),
                                d.get("profile")), tags=[InputTag(k, v) for k, v in d.get("tags", {}).items()])


def _finite(v) -> bool:
    try:
        return v is not None and math.isfinite(float(v))
    except (TypeError, ValueError):
        return False


class FoldRun:
    """An MLflow run and its record (a run file): a fold's child run, the
    parent run, or a no-op when MLflow logging is disabled (`FoldRun(None, None)`).

    Each `log_*` call and `finish` writes the record, then sends the one
    change; when the server cannot be reached the run goes offline (one
    warning line) and later calls catch it up from the record (`sync`)."""

    def __init__(self, uri: Optional[str], run_id: Optional[str], record: Optional[Path] = None,
                 data: Optional[dict] = None):
        self.record = Path(record) if record is not None else None
        self.data = data if data is not None else ({"uri": uri, "run_id": run_id} if uri else None)
        self.offline = False
        self._retry_at = 0.0
        self._epochs: dict[int, dict] = {}  # this process's epochs, until the history file exists
        self._monitor = None

    # ---------------------------------------------------------------- state

    @property
    def enabled(self) -> bool:
        return self.data is not None

    @property
    def uri(self) -> Optional[str]:
        return self.data.get("uri") if self.data else None

    @property
    def run_id(self) -> Optional[str]:
        return self.data.get("run_id") if self.data else None

    @property
    def name(self) -> str:
        return (self.data or {}).get("run_name") or str(self.run_id)

    def _path(self, p: Path | str) -> str:
        """A file of the run, relative to the record's folder."""
        p = Path(p)
        return os.path.relpath(p.resolve(), self.record.parent.resolve()) if self.record else str(p.resolve())

    def _file(self, rel: str) -> Path:
        return (self.record.parent / rel) if self.record else Path(rel)

    def _save(self) -> None:
        if self.record is not None and self.data is not None:
            atomic.write_text(self.record, json.dumps(self.data, indent=1) + "\n")

    def _changed(self) -> None:
        self.data["synced"] = False
        self._save()

    # ---------------------------------------------------------------- sending

    def _send(self, op=None, force: bool = False, bulk: bool = False) -> bool:
        """Run `op(client)` (one attempt of at most 5 s; `bulk`: files, BULK
        limits); a full catch-up (`_sync_with`, BULK) instead when `op` is
        None, the run is not created yet, or the server was unreachable (then
        at most every RETRY_S seconds, unless `force`). True when MLflow has it."""
        if not self.enabled:
            return False
        if op is None or self.offline or not self.run_id:
            if self.offline and not force and time.monotonic() < self._retry_at:
                return False
            op, bulk = self._sync_with, True
        try:
            if not reachable(self.uri):
                raise ConnectionError("no answer")
            with bounded_http(BULK if bulk else LIVE):
                op(_client(self.uri))
        except Exception as e:  # any failure of the server or the network: go on without it
            self._went_offline(e)
            return False
        if self.offline:
            self.offline = False
            say(f"MLflow at {self.uri} answers again: run {self.name} caught up")
        return True

    def _went_offline(self, e: BaseException) -> None:
        self._retry_at = time.monotonic() + RETRY_S
        self.data["synced"] = False
        self._save()
        if not self.offline:
            where = (f" is kept in {self.record} and logged when the server is back (or by `fau mlflow-sync "
                     f"{self.record}`)") if self.record else " is logged when the server is back"
            say(f"warning: MLflow at {self.uri} unreachable ({_first_line(e)}): going on without it; run "
                f"{self.name}{where}")
        self.offline = True

    def sync(self) -> bool:
        """Send whatever MLflow lacks of this run (creating it if needed)."""
        return self._send(None, force=True)

    def _sync_with(self, client) -> None:
        from mlflow.entities import Metric, RunTag

        d = self.data
        if not d.get("run_id"):
            exp_id = d.get("experiment_id") or ensure_experiment(client, d["experiment"], d["uri"],
                                                                 d.get("results", "results"))
            d["experiment_id"] = exp_id
            run = client.create_run(exp_id, start_time=d.get("start_time"), tags=d.get("tags") or {},
                                    run_name=d.get("run_name"))
            d["run_id"] = run.info.run_id
            self._save()
        run = client.get_run(d["run_id"])
        rid = d["run_id"]
        # params, tags
        params = {k: v for k, v in (d.get("params") or {}).items() if k not in run.data.params}
        if params:
            _send_params(client, rid, params)
        tags = [RunTag(k, str(v)) for k, v in (d.get("tags") or {}).items() if run.data.tags.get(k) != str(v)]
        if tags:
            client.log_batch(rid, tags=tags)
        # dataset inputs
        have = {(i.dataset.name, i.dataset.digest) for i in (run.inputs.dataset_inputs if run.inputs else [])}
        new = [x for x in d.get("datasets") or [] if (x["name"], x["digest"]) not in have]
        if new:
            client.log_inputs(rid, datasets=[_dataset_input(x) for x in new])
        # the per-epoch history: the epochs MLflow lacks
        epochs = dict(self._epochs)
        if d.get("history") and self._file(d["history"]).is_file():
            import pandas as pd

            for row in pd.read_csv(self._file(d["history"])).to_dict("records"):
                epochs[int(row["epoch"])] = {"loss": row["loss"], "lr": row["lr"]}
        if epochs:
            logged = {m.step for m in client.get_metric_history(rid, "loss")}
            ts = _now_ms()
            items = [Metric(k, float(v), ts, step) for step, m in sorted(epochs.items()) if step not in logged
                     for k, v in m.items() if _finite(v)]
            for chunk in _chunks(items, 500):
                client.log_batch(rid, metrics=chunk)
        # metrics (per AU, pooled): those missing or different
        values = {k: float(v) for k, v in (d.get("metrics") or {}).items()
                  if _finite(v) and not (k in run.data.metrics and math.isclose(run.data.metrics[k], float(v),
                                                                                  rel_tol=1e-9, abs_tol=0.0))}
        if values:
            ts = _now_ms()
            for chunk in _chunks([Metric(k, v, ts, 0) for k, v in sorted(values.items())], 500):
                client.log_batch(rid, metrics=chunk)
        # artefacts: missing, or another size
        listed: dict[str, dict[str, int]] = {}

        def remote(folder: str) -> dict[str, int]:
            if folder not in listed:
                listed[folder] = {f.path: (f.file_size or 0) for f in client.list_artifacts(rid, folder or None)}
            return listed[folder]

        for folder, name, data in d.get("dicts") or []:
            path = f"{folder}/{name}" if folder else name
            if path not in remote(folder):
                client.log_dict(rid, data, path)
        for folder, name, rel in d.get("artifacts") or []:
            local = self._file(rel)
            path = f"{folder}/{name}" if folder else name
            if local.is_file() and remote(folder).get(path) != local.stat().st_size:
                _upload(client, rid, local, folder, name)
        # status
        status = d.get("status", "RUNNING")
        if status in TERMINAL and run.info.status != status:
            client.set_terminated(rid, status, end_time=d.get("end_time"))
        elif status == "RUNNING" and run.info.status != "RUNNING":
            client.update_run(rid, status="RUNNING")
        d["synced"] = True
        self._save()

    # ---------------------------------------------------------------- logging

    def log_metrics(self, metrics: dict, step: Optional[int] = None) -> None:
        """Per-epoch metrics (`step`: the epoch; replayed from the history
        file when they could not be sent) or the run's metrics (no step:
        kept in the record)."""
        if not self.enabled:
            return
        from mlflow.entities import Metric

        metrics = {k: float(v) for k, v in metrics.items() if _finite(v)}
        if step is None:
            self.data.setdefault("metrics", {}).update(metrics)
            self._changed()
        else:
            self._epochs[int(step)] = metrics
        ts = _now_ms()
        items = [Metric(k, v, ts, int(step or 0)) for k, v in metrics.items()]
        if items:
            self._send(lambda c: [c.log_batch(self.run_id, metrics=chunk) for chunk in _chunks(items, 500)])

    def log_history(self, path: Path) -> None:
        """The per-epoch history table (epoch, loss, lr, ...): what a sync
        replays of the epochs MLflow lacks."""
        if self.enabled:
            self.data["history"] = self._path(path)
            self._changed()

    def log_dict(self, data: dict, artifact_file: str) -> None:
        if not self.enabled:
            return
        folder, _, name = artifact_file.rpartition("/")
        entries = [e for e in self.data.get("dicts") or [] if (e[0], e[1]) != (folder, name)]
        self.data["dicts"] = entries + [[folder, name, data]]
        self._changed()
        self._send(lambda c: c.log_dict(self.run_id, data, artifact_file))

    def log_artifact(self, path: Path, artifact_path: Optional[str] = None, name: Optional[str] = None) -> None:
        """Log the file `path` (as `name`, when given: e.g. models/fold1.pt as model/model.pt)."""
        path = Path(path)
        if not (self.enabled and path.exists()):
            return
        folder, name = artifact_path or "", name or path.name
        entries = [e for e in self.data.get("artifacts") or [] if (e[0], e[1]) != (folder, name)]
        self.data["artifacts"] = entries + [[folder, name, self._path(path)]]
        self._changed()
        self._send(lambda c: _upload(c, self.run_id, path, folder, name), bulk=True)

    def finish(self, status: str = "FINISHED") -> None:
        """End the run (FINISHED, FAILED or KILLED) and catch up anything
        MLflow lacks."""
        if not self.enabled:
            return
        self.stop_system_metrics()
        self.data.update(status=status, end_time=_now_ms())
        self._changed()
        self._send(None, force=True)

    # ---------------------------------------------------------------- training

    def start_system_metrics(self, interval: float = 10.0) -> None:
        """MLflow's system metrics (CPU, memory, disk, network; GPU with
        nvidia-ml-py where there is one) for this run, when psutil is installed."""
        if not self.enabled or self.offline or not self.run_id or self._monitor is not None:
            return
        try:
            from mlflow.system_metrics.system_metrics_monitor import SystemMetricsMonitor
        except ImportError as e:  # psutil missing
            say(f"MLflow system metrics off ({e.name or 'psutil'} is not installed)")
            return
        try:
            with bounded_http(LIVE):
                monitor = SystemMetricsMonitor(self.run_id, sampling_interval=interval, resume_logging=True,
                                               tracking_uri=self.uri)
        except Exception as e:
            self._went_offline(e)
            return
        loggers = [logging.getLogger(n) for n in ("mlflow.system_metrics", "mlflow.utils.autologging_utils")]
        self._monitor_levels = [(lg, lg.level) for lg in loggers]
        for lg in loggers:
            lg.setLevel(logging.CRITICAL)  # a failure is our one warning line, not theirs
        # Its thread makes requests of its own: LIVE limits for the process while it runs.
        values = _http_values(LIVE)
        self._monitor_env = {k: os.environ.get(k, _HTTP_VARS[k][1]) for k in values}
        os.environ.update(values)
        monitor.start()
        self._monitor = monitor

    def stop_system_metrics(self) -> None:
        monitor, self._monitor = self._monitor, None
        if monitor is None:
            return
        if self.offline:
            monitor._shutdown_event.set()  # its thread ends by itself; nothing to flush to
        else:
            with bounded_http(LIVE):
                monitor.finish()
        os.environ.update(getattr(self, "_monitor_env", {}))
        for lg, level in getattr(self, "_monitor_levels", []):
            lg.setLevel(level)

    @contextlib.contextmanager
    def training(self, system_metrics: bool = True, interval: float = 10.0) -> Iterator["FoldRun"]:
        """Around a training: SIGTERM (Slurm's scancel, a killed workflow)
        raises KeyboardInterrupt; the run ends KILLED on an interrupt,
        FAILED on an error; system metrics while it runs."""
        previous = None
        if threading.current_thread() is threading.main_thread():
            def interrupt(signum, frame):
                raise KeyboardInterrupt(f"signal {signum}")

            previous = signal.signal(signal.SIGTERM, interrupt)
        if system_metrics:
            self.start_system_metrics(interval)
        try:
            yield self
        except KeyboardInterrupt:
            self.finish("KILLED")
            raise
        except BaseException:
            self.finish("FAILED")
            raise
        finally:
            self.stop_system_metrics()
            if previous is not None:
                signal.signal(signal.SIGTERM, previous)


def _upload(client, run_id: str, path: Path, folder: str, name: str) -> None:
    if name == path.name:
        client.log_artifact(run_id, str(path), folder or None)
        return
    with tempfile.TemporaryDirectory() as tmp:
        named = Path(tmp) / name
        shutil.copyfile(path, named)
        client.log_artifact(run_id, str(named), folder or None)


def _load_record(path: Path) -> Optional[dict]:
    try:
        data = json.loads(Path(path).read_text())
    except (OSError, json.JSONDecodeError):
        return None
    return data if isinstance(data, dict) and "uri" in data else None


def open_fold_run(cfg: Config, parent_file: Optional[Path], run_file: Path, fold: str,
                  dataset_file: Optional[Path] = None, variant: Optional[str] = None, role: Optional[str] = None,
                  fold_def: Optional[dict] = None) -> FoldRun:
    """The fold's run: re-used (status RUNNING again) when `run_file` holds
    one under the same parent (resume, evaluation), else a new one recorded
    in `run_file`. Under the parent of `parent_file`, or with `parent_file`
    None a run of its own (`mlflow.enabled`). An ablation variant's fold is
    its own child run, `<variant>/<fold>`; `role` tags it (`final`).
    `fold_def` ({name, train, test}) names its dataset inputs."""
    if parent_file is not None:
        parent = read_json(parent_file, "run the mlflow_parent rule / `fau mlflow-start` first")
        if not parent.get("enabled"):
            return FoldRun(None, None)
    elif cfg.mlflow.enabled:
        parent = {"uri": resolve_uri(cfg.mlflow.uri), "run_id": None, "experiment_id": None}
    else:
        return FoldRun(None, None)
    run_file = Path(run_file)
    old = _load_record(run_file) if run_file.exists() else None
    if old is not None and old.get("parent_run_id") == parent["run_id"] and old.get("uri") == parent["uri"] \
            and (parent["run_id"] is not None or old.get("experiment") == cfg.mlflow.experiment):
        run = FoldRun(None, None, run_file, {**old, "record": RECORD})
        run.data["status"] = "RUNNING"
        run.data.pop("end_time", None)
        run._changed()
        run.sync()  # also whatever an earlier job could not send
        _parent_running(parent)
        return run
    name = f"{variant}/{fold}" if variant else fold
    tags = {"fau.role": role or ("ablation" if variant else "fold"), "fau.fold": fold,
            "fau.dataset": cfg.dataset.name, "mlflow.source.git.commit": git_commit()}
    if parent["run_id"]:
        tags["mlflow.parentRunId"] = parent["run_id"]
    if variant:
        tags["fau.variant"] = variant
    params = {**flatten(cfg.to_dict()), "git_commit": git_commit(), "fold": fold}
    if variant:
        params["variant"] = variant
    datasets = []
    if dataset_file is not None and Path(dataset_file).is_file():
        params["dataset_fingerprint"] = data_version(Path(dataset_file))
        datasets = dataset_inputs(cfg.dataset.name, Path(dataset_file), fold_def)
    data = {"record": RECORD, "uri": parent["uri"], "experiment_id": parent.get("experiment_id"),
            "experiment": cfg.mlflow.experiment, "results": cfg.results, "run_id": None,
            "parent_run_id": parent["run_id"], "run_name": name, "start_time": _now_ms(), "tags": tags,
            "params": params, "datasets": datasets, "status": "RUNNING", "synced": False}
    run = FoldRun(None, None, run_file, data)
    run._save()
    run.sync()
    _parent_running(parent)
    return run


def _parent_running(parent: dict) -> None:
    """A child runs again: so does its parent (best effort)."""
    if not parent.get("run_id") or not reachable(parent["uri"]):
        return
    try:
        with bounded_http(LIVE):
            client = _client(parent["uri"])
            if client.get_run(parent["run_id"]).info.status != "RUNNING":
                client.update_run(parent["run_id"], status="RUNNING")
    except Exception:
        pass  # the fold's own run reported the server's state already


def parent_record(parent_file: Path) -> Path:
    """Where the parent run's record lives (the parent file itself never changes)."""
    parent_file = Path(parent_file)
    return parent_file.with_name(f"{parent_file.stem}.run.json")


def parent_run(parent_file: Path) -> FoldRun:
    """The parent run, for pooled metrics and the report."""
    parent = read_json(parent_file, "run the mlflow_parent rule / `fau mlflow-start` first")
    if not parent.get("enabled"):
        return FoldRun(None, None)
    record = parent_record(parent_file)
    data = _load_record(record) if record.exists() else None
    if data is None or data.get("run_id") != parent["run_id"]:
        data = {"record": RECORD, "uri": parent["uri"], "experiment_id": parent["experiment_id"],
                "run_id": parent["run_id"], "parent_run_id": None, "run_name": parent.get("run_name"),
                "status": "RUNNING", "synced": True}
    return FoldRun(None, None, record, data)


def records(paths: list[Path]) -> list[Path]:
    """Run records among `paths`: files, or folders searched recursively for
    `mlflow/*.json` and `*.mlflow.json` (where the workflow and `fau train`
    keep them)."""
    out: list[Path] = []
    for p in map(Path, paths):
        files = sorted(f for f in p.rglob("*.json") if f.parent.name == "mlflow" or f.name.endswith(".mlflow.json")) \
            if p.is_dir() else [p]
        for f in files:
            if f.stat().st_size > (4 << 20):  # a record is small; not an annotation table
                continue
            data = _load_record(f)
            if data is not None and data.get("record") == RECORD:
                out.append(f)
    return out


def sync_records(paths: list[Path], pending_only: bool = False) -> list[tuple[Path, bool, str]]:
    """Catch up the runs recorded in `paths` (run files or folders): (record,
    ok, run name) each."""
    out = []
    for path in records(paths):
        run = FoldRun(None, None, path, _load_record(path))
        if pending_only and run.data.get("synced"):
            continue
        out.append((path, run.sync(), run.name))
    return out


def end_invocation(parent_file: Path, failed: bool = False, log=None) -> str:
    """The workflow's onerror / onsuccess hook: the parent run and the child
    runs recorded beside the parent file that are still RUNNING end
    (onsuccess: FINISHED; onerror (`failed`): KILLED when Snakemake was
    interrupted, as its `log` file(s) say, else FAILED); unsynced records are
    caught up."""
    parent_file = Path(parent_file)
    if not parent_file.is_file():
        return "no MLflow parent run"
    try:
        parent = json.loads(parent_file.read_text())
    except json.JSONDecodeError:
        return f"{parent_file}: not valid JSON"
    if not parent.get("enabled"):
        return "MLflow logging disabled"
    if not failed:
        status = "FINISHED"
    else:
        logs = [log] if isinstance(log, (str, Path)) else list(log or [])
        text = "".join(Path(f).read_text(errors="replace") for f in logs if Path(f).is_file())
        status = "KILLED" if "Terminating processes on user request" in text else "FAILED"
    ended = []
    for path in records([parent_file.parent]):
        run = FoldRun(None, None, path, _load_record(path))
        if run.data.get("parent_run_id") != parent["run_id"] and run.run_id != parent["run_id"]:
            continue
        if run.data.get("status") == "RUNNING" and run.run_id != parent["run_id"]:
            run.finish("FAILED" if status == "FINISHED" else status)
            ended.append(run.name)
        elif not run.data.get("synced"):
            run.sync()
    prun = parent_run(parent_file)
    # Children on the server still RUNNING (a job killed without a word), then the parent.
    if reachable(prun.uri):
        try:
            with bounded_http():
                client = _client(prun.uri)
                for r in client.search_runs([parent["experiment_id"]],
                                            f"tags.mlflow.parentRunId = '{parent['run_id']}' "
                                            "and attributes.status = 'RUNNING'"):
                    client.set_terminated(r.info.run_id, "FAILED" if status == "FINISHED" else status)
                    ended.append(r.info.run_name)
                running = client.get_run(parent["run_id"]).info.status == "RUNNING"
        except Exception as e:
            prun._went_offline(e)
            running = prun.data.get("status") == "RUNNING"
    else:
        running = prun.data.get("status") == "RUNNING"
    if running:
        prun.finish(status)
        ended.append(prun.name)
    if not ended:
        return "MLflow: no run of the invocation left running"
    return f"MLflow: {', '.join(ended)} ended {status if status != 'FINISHED' else 'FINISHED (or FAILED: a child)'}"
