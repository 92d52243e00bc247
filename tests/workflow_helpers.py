"""Helpers for the workflow tests: the small test config
(.test/config/config.yaml), running Snakemake/DVC, a real `mlflow server` on a
free loopback port."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from contextlib import contextmanager
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
SNAKEMAKE = str(BIN / "snakemake")
# The tests' small run (snakemake-workflows convention), smaller than the
# embedded default (config/config.yaml) so that the integration tests keep
# CI short.
TEST_CONFIG = ROOT / ".test" / "config" / "config.yaml"


def load_test_config() -> dict:
    return yaml.safe_load(TEST_CONFIG.read_text())


def env() -> dict:
    e = dict(os.environ)
    e["PATH"] = f"{BIN}{os.pathsep}{e.get('PATH', '')}"
    e.setdefault("OMP_NUM_THREADS", "1")
    e["PYTHONUNBUFFERED"] = "1"
    return e


def write_config(path: Path, base: Path, **overrides) -> Path:
    """The test config with results/data under `base`, plus overrides (deep-merged)."""
    from fau.config import deep_merge

    cfg = deep_merge(load_test_config(), {"results": str(base / "results"),
                            "dataset": {"root": str(base / "data" / "BP4D")},
                            "mlflow": {"uri": f"sqlite:///{base / 'results' / 'mlflow.db'}"}})
    cfg = deep_merge(cfg, overrides)
    path.write_text(yaml.safe_dump(cfg, sort_keys=False))
    return path


def copy_workflow(dest: Path, with_src: bool = False) -> Path:
    """The files a user's clone holds for running the workflow."""
    dest.mkdir(parents=True, exist_ok=True)
    for name in ["Snakefile", "dvc.yaml"]:
        shutil.copy2(ROOT / name, dest / name)
    for name in ["workflow", "config", "profiles", "envs", ".test"] + (["src"] if with_src else []):
        shutil.copytree(ROOT / name, dest / name, ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
    return dest


def snakemake(args: list[str], cwd: Path, timeout: int = 900, check: bool = True) -> subprocess.CompletedProcess:
    cmd = ["timeout", "-k", "10", str(timeout), SNAKEMAKE, *args]
    proc = subprocess.run(cmd, cwd=cwd, env=env(), capture_output=True, text=True)
    if check and proc.returncode != 0:
        raise AssertionError(f"snakemake {' '.join(args)} failed ({proc.returncode}):\n"
                             f"{proc.stdout[-4000:]}\n{proc.stderr[-6000:]}")
    return proc


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def server_env() -> dict:
    """A test server's environment: without MLflow 3's job runner (a dozen
    worker processes for GenAI jobs, CPU the tests need) and telemetry."""
    return {**env(), "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false", "MLFLOW_DISABLE_TELEMETRY": "true"}


def start_mlflow_server(workdir: Path, port: int | None = None) -> tuple[subprocess.Popen, str]:
    """A real `mlflow server` (SQLite backend, served artefacts) on loopback,
    on `port` (default: a free one); returns once it answers."""
    port = port or free_port()
    workdir.mkdir(parents=True, exist_ok=True)
    log = open(workdir / "mlflow-server.log", "a")
    proc = subprocess.Popen(
        [str(BIN / "mlflow"), "server", "--host", "127.0.0.1", "--port", str(port),
         "--backend-store-uri", f"sqlite:///{workdir / 'mlflow.db'}",
         "--artifacts-destination", str(workdir / "artifacts"), "--workers", "1"],
        cwd=workdir, env=server_env(), stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    proc.log_file = log
    url = f"http://127.0.0.1:{port}"
    deadline = time.time() + 120
    while True:
        try:
            with urllib.request.urlopen(f"{url}/health", timeout=2) as r:
                if r.status == 200:
                    return proc, url
        except OSError:
            pass
        if proc.poll() is not None or time.time() > deadline:
            stop_mlflow_server(proc)
            raise AssertionError(f"mlflow server did not start:\n{(workdir / 'mlflow-server.log').read_text()[-3000:]}")
        time.sleep(0.5)


def stop_mlflow_server(proc: subprocess.Popen) -> None:
    """Stop the server and its workers (a no-op when it is gone already)."""
    try:
        os.killpg(proc.pid, 15)
        proc.wait(timeout=20)
    except ProcessLookupError:
        pass
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, 9)
        proc.wait(timeout=20)
    proc.log_file.close()


@contextmanager
def mlflow_server(workdir: Path):
    """A real `mlflow server` (SQLite backend, served artefacts) on loopback."""
    proc, url = start_mlflow_server(workdir)
    try:
        yield url
    finally:
        stop_mlflow_server(proc)


def job_counts(stdout: str) -> dict[str, int]:
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
