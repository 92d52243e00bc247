"""`fau mlflow-sync` and `fau mlflow-ui`: MLflow beside the workflow.

`fau mlflow-sync PATH...` logs what a tracking server that was down missed:
each run file (`mlflow/<fold>.json`, `mlflow/parent.run.json`, a model's
`<model>.mlflow.json`; folders are searched) records its run, and whatever
MLflow lacks of it is sent (fau.mlflow_runs). `fau mlflow-ui` starts
`mlflow ui` on the config's local store (`make ui`) and prints the address
of the experiment's runs table; for a tracking server it prints that
server's address only.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from .config import Config
from .errors import FauError


def add_mlflow_sync(p: argparse.ArgumentParser) -> None:
    p.add_argument("paths", nargs="+", type=Path, metavar="PATH",
                   help="run files, or folders holding them (e.g. results/synth_bp4d)")
    p.add_argument("--all", action="store_true",
                   help="check every run, not only those marked as not logged yet")


def run_mlflow_sync(args: argparse.Namespace, cfg: Config) -> int:
    from .mlflow_runs import records, sync_records

    missing = [p for p in args.paths if not p.exists()]
    if missing:
        raise FauError(f"{missing[0]}: no such file or folder")
    if not records(args.paths):
        raise FauError(f"{', '.join(map(str, args.paths))}: no MLflow run files (mlflow/<fold>.json) there")
    done = sync_records(args.paths, pending_only=not args.all)
    for path, ok, name in done:
        print(f"{path}: run {name} {'logged' if ok else 'NOT logged: the server does not answer'}")
    failed = sum(not ok for _, ok, _ in done)
    print(f"mlflow-sync: {len(done) - failed} runs logged, {failed} not"
          + ("" if done else " (every run was logged already; --all checks them again)"))
    return 1 if failed else 0


def add_mlflow_ui(p: argparse.ArgumentParser) -> None:
    p.add_argument("--host", default="127.0.0.1", help="address to serve on (default: loopback only)")
    p.add_argument("--port", type=int, default=5000)
    p.add_argument("--print-url", action="store_true", help="print the runs table's address and exit")


def run_mlflow_ui(args: argparse.Namespace, cfg: Config) -> int:
    from .mlflow_runs import LIVE, _client, bounded_http, resolve_uri, runs_page

    uri = resolve_uri(cfg.mlflow.uri)
    remote = uri.startswith(("http://", "https://"))
    base = uri if remote else f"http://{args.host}:{args.port}"
    exp = None
    if remote or not uri.startswith("sqlite:///") or Path(uri[len("sqlite:///"):]).is_file():
        try:
            with bounded_http(LIVE):
                exp = _client(uri).get_experiment_by_name(cfg.mlflow.experiment)
        except Exception as e:  # a server that does not answer: its address all the same
            print(f"fau mlflow-ui: {uri}: {type(e).__name__}", file=sys.stderr)
    url = runs_page(base, exp.experiment_id) if exp is not None else \
        f"{base.rstrip('/')}/#/experiments?workflowType=machine_learning"
    print(f"MLflow UI, experiment {cfg.mlflow.experiment!r}: {url}", flush=True)
    if remote or args.print_url:
        return 0
    cmd = [sys.executable, "-m", "mlflow", "ui", "--backend-store-uri", uri, "--host", args.host,
           "--port", str(args.port)]
    # The runs need no GenAI job runner (a dozen worker processes); set it to true to have one.
    os.environ.setdefault("MLFLOW_SERVER_ENABLE_JOB_EXECUTION", "false")
    os.execv(sys.executable, cmd)
    return 0  # pragma: no cover (execv does not return)
