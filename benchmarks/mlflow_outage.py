"""Training time when the MLflow tracking server goes away mid-training,
against the same training without MLflow and with the server up (issue 13).

    python benchmarks/mlflow_outage.py [--quick] [--epochs 20] [--repeats 2] [--keep DIR]

Data: the tests' small synthetic run (.test/config/config.yaml) up to
folds.json, made once by Snakemake (--keep DIR reuses it). Then, rounds of
`fau train --parent` of fold1 as the workflow's rule runs it (the variants
interleaved in each round, the median over rounds):

  none     mlflow.enabled: false
  up       a real `mlflow server` up throughout
  stopped  the server killed after epoch 2 (its port refuses connections)
  frozen   the server stopped with SIGSTOP after epoch 2 (connections hang:
           the bounded timeouts are what ends each request)

Bars: stopped / up <= 1.15 (an outage costs nothing beyond tracking
itself) and frozen / up <= 1.5 (a server that stops answering costs one
5 s attempt and a 2 s health check, once: fau.mlflow_runs.LIVE; on a run
of 20 short epochs that is still a visible share). Printed too: each variant against
none (MLflow's fixed cost: importing it, creating the run, logging, the
model upload; a few seconds, whatever the training's length).
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import yaml

from _common import bar

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
VARIANTS = ("none", "up", "stopped", "frozen")
BARS = {"stopped": 1.15, "frozen": 1.5}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(workdir: Path, port: int) -> subprocess.Popen:
    workdir.mkdir(parents=True, exist_ok=True)
    proc = subprocess.Popen([str(BIN / "mlflow"), "server", "--host", "127.0.0.1", "--port", str(port),
                             "--backend-store-uri", f"sqlite:///{workdir / 'mlflow.db'}",
                             "--artifacts-destination", str(workdir / "artifacts"), "--workers", "1"],
                            stdout=open(workdir / "server.log", "a"), stderr=subprocess.STDOUT,
                            start_new_session=True, env={**os.environ, "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"})
    deadline = time.time() + 180
    while time.time() < deadline:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2):
                return proc
        except OSError:
            if proc.poll() is not None:
                break
            time.sleep(0.5)
    raise SystemExit(f"mlflow server did not start: {(workdir / 'server.log').read_text()[-2000:]}")


def stop_server(proc: subprocess.Popen) -> None:
    try:
        os.killpg(proc.pid, signal.SIGCONT)
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=30)
    except ProcessLookupError:
        pass
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)


def prepare(base: Path) -> tuple[Path, Path]:
    """The small synthetic run's annotation table and folds (Snakemake, once)."""
    cfg = yaml.safe_load((ROOT / ".test" / "config" / "config.yaml").read_text())
    cfg.update(results=str(base / "results"), mlflow={"enabled": False})
    cfg["dataset"]["root"] = str(base / "data" / "BP4D")
    path = base / "config.yaml"
    path.write_text(yaml.safe_dump(cfg, sort_keys=False))
    out = base / "results" / cfg["dataset"]["name"]
    if not (out / "folds.json").exists():
        print("preparing the data (snakemake, .test config) ...", flush=True)
        subprocess.run([str(BIN / "snakemake"), "--cores", "2", "--configfile", str(path), "--",
                        str(out / "annotations.csv"), str(out / "folds.json")], cwd=ROOT, check=True,
                       capture_output=True)
    return out / "annotations.csv", out / "folds.json"


def train_once(variant: str, base: Path, data: tuple[Path, Path], epochs: int, i: int) -> tuple[float, str]:
    """Wall time of one `fau train` of fold1 (and its stderr)."""
    run = base / f"{variant}-{i}"
    shutil.rmtree(run, ignore_errors=True)  # a fresh training: no checkpoint to resume from
    run.mkdir(parents=True)
    port, server = free_port(), None
    sets = ["--set", f"train.epochs={epochs}", "--set", "train.device=cpu", "--set", "mlflow.system_metrics=true"]
    extra: list[str] = []
    if variant == "none":
        sets += ["--set", "mlflow.enabled=false"]
    else:
        server = start_server(run / "server", port)
        sets += ["--set", f"mlflow.uri=http://127.0.0.1:{port}", "--set", "mlflow.experiment=bench"]
        subprocess.run([sys.executable, "-m", "fau.cli", "mlflow-start", *sets, "--out", str(run / "parent.json")],
                       check=True, capture_output=True)
        extra = ["--parent", str(run / "parent.json"), "--run-file", str(run / "fold1.json")]
    cmd = [sys.executable, "-m", "fau.cli", "train", "--config", str(ROOT / ".test" / "config" / "config.yaml"),
           *sets, "--annotations", str(data[0]), "--folds", str(data[1]), "--fold", "fold1", "--threads", "1",
           "--model", str(run / "m.pt"), "--history", str(run / "h.csv"), *extra]
    log = run / "train.log"
    t0 = time.perf_counter()
    with open(log, "w") as err:
        job = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=err, env={**os.environ, "OMP_NUM_THREADS": "1"})
        if variant in ("stopped", "frozen"):
            while f"epoch 2/{epochs}" not in log.read_text() and job.poll() is None:
                time.sleep(0.1)
            if variant == "stopped":
                stop_server(server)
            else:
                os.killpg(server.pid, signal.SIGSTOP)
        rc = job.wait()
    seconds = time.perf_counter() - t0
    if server is not None:
        stop_server(server)
    if rc != 0:
        raise SystemExit(f"{variant}: fau train exited {rc}:\n{log.read_text()[-3000:]}")
    return seconds, log.read_text()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="one round")
    ap.add_argument("--device", default="cpu", help=argparse.SUPPRESS)  # run_all.py passes it
    ap.add_argument("--threads", type=int, default=None, help=argparse.SUPPRESS)
    ap.add_argument("--epochs", type=int, default=20)
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--keep", type=Path, default=None, help="folder for the data and runs (kept; reused)")
    args = ap.parse_args()
    rounds = 1 if args.quick else args.repeats
    with tempfile.TemporaryDirectory(prefix="fau-bench-mlflow-") as tmp:
        base = args.keep or Path(tmp)
        base.mkdir(parents=True, exist_ok=True)
        data = prepare(base)
        times: dict[str, list[float]] = {v: [] for v in VARIANTS}
        for r in range(rounds):
            for v in VARIANTS:
                secs, text = train_once(v, base, data, args.epochs, r)
                warnings = [ln for ln in text.splitlines() if "warning: MLflow" in ln]
                times[v].append(secs)
                print(f"round {r + 1}/{rounds} {v:<8} {secs:6.1f} s  warning lines: {len(warnings)}"
                      + ("  TRACEBACK" if "Traceback" in text else ""), flush=True)
                if v in ("stopped", "frozen") and (len(warnings) != 1 or "Traceback" in text):
                    raise SystemExit(f"{v}: expected one warning line and no traceback:\n{text[-3000:]}")
        med = {v: statistics.median(t) for v, t in times.items()}
        print(f"\nfau train, fold1 of the tests' synthetic run, {args.epochs} epochs, median of {rounds} round(s):")
        for v in VARIANTS:
            print(f"  {v:<8} {med[v]:6.1f} s   / none {med[v] / med['none']:.2f}   / up {med[v] / med['up']:.2f}")
        ok = True
        for v, limit in BARS.items():
            ok &= bar(f"mlflow_outage {v} / up wall", med[v] / med["up"], limit, "<=")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
