"""Pytest fixture for a real, single-node Slurm cluster (``scripts/slurm-cluster.sh``).

Use it in a test module with::

    from slurm_fixtures import slurm_cluster  # noqa: F401  (pytest fixture)

or, to share one fixture definition across modules, from a conftest.py with
``pytest_plugins = ["slurm_fixtures"]``. Either way the cluster starts at most
once per session: a cluster that is already up and healthy (started by CI, by
the developer or by another module's copy of the fixture) is reused and left
running; one this fixture started is stopped at the end of the session.

Skip rule: without Slurm installed (``slurmctld`` not on PATH), or without
root (the script starts daemons and links /etc/slurm/slurm.conf), tests using
the fixture are skipped with the reason -- unless ``CI=true``, where they fail
instead: CI installs the packages with scripts/ci-system-deps.sh and runs as
root (or with passwordless sudo).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SCRIPT = REPO / "scripts" / "slurm-cluster.sh"
SLURM_PROFILE = REPO / "profiles" / "slurm"
WORKFLOW_PROFILE = REPO / "profiles" / "default"
SNAKEMAKE = Path(sys.executable).parent / "snakemake"


def in_ci() -> bool:
    return os.environ.get("CI", "").lower() == "true"


def skip_or_fail(reason: str) -> None:
    """Skip locally; under CI=true a missing prerequisite is a failure."""
    if in_ci():
        pytest.fail(f"CI=true, so this must not be skipped: {reason}", pytrace=False)
    pytest.skip(reason)


@dataclass
class SlurmCluster:
    """What a test needs to use the running cluster."""

    base: Path  # SLURM_BASE: configs, logs (base / "log"), state
    profile: Path = SLURM_PROFILE
    workflow_profile: Path = WORKFLOW_PROFILE
    snakemake: Path = SNAKEMAKE
    started_here: bool = False
    env: dict = field(default_factory=dict)

    @property
    def logs(self) -> Path:
        return self.base / "log"

    def sacct(self, *args: str) -> str:
        """Run sacct (parsable output) and return stdout."""
        out = subprocess.run(
            ["sacct", "-n", "-P", *args],
            env=self.env, capture_output=True, text=True, timeout=60, check=True,
        )
        return out.stdout

    def snakemake_cmd(self, workdir: Path, *extra: str, timeout_s: int = 600) -> list[str]:
        """`timeout -k 10 <timeout_s> snakemake --profile profiles/slurm ...` for workdir.

        `timeout -k`: if status polling ever hangs, SIGTERM alone may not stop
        Snakemake; the KILL after 10 s does.
        """
        return [
            "timeout", "-k", "10", str(timeout_s),
            str(self.snakemake),
            "--profile", str(self.profile),
            "--workflow-profile", str(self.workflow_profile),
            "--directory", str(workdir),
            *extra,
        ]


def _script(action: str, env: dict, timeout: int = 300) -> subprocess.CompletedProcess:
    cmd = ["bash", str(SCRIPT), action]
    if os.geteuid() != 0:
        cmd = ["sudo", "-n", "--preserve-env=SLURM_BASE,FAKE_GPUS,NODE_CPUS,NODE_MEM,JOB_USER", *cmd]
    return subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=timeout)


# Shared between copies of the fixture imported into several modules.
_STATE: dict = {"cluster": None, "users": 0}


def _acquire() -> SlurmCluster:
    if _STATE["cluster"] is not None:
        _STATE["users"] += 1
        return _STATE["cluster"]
    if shutil.which("slurmctld") is None or shutil.which("sbatch") is None:
        skip_or_fail(
            "Slurm is not installed (no slurmctld/sbatch on PATH); "
            "install it with: sudo bash scripts/ci-system-deps.sh"
        )
    if os.geteuid() != 0:
        probe = subprocess.run(["sudo", "-n", "true"], capture_output=True)
        if probe.returncode != 0:
            skip_or_fail("starting the Slurm test cluster needs root or passwordless sudo")
    env = dict(os.environ)
    env.setdefault("SLURM_BASE", "/tmp/fau-slurm")
    env.setdefault("JOB_USER", os.environ.get("USER") or "root")
    env.pop("SLURM_CONF", None)  # clients use /etc/slurm/slurm.conf (our symlink), as jobs do
    base = Path(env["SLURM_BASE"])

    started_here = False
    if _script("status", env, timeout=60).returncode != 0:
        proc = _script("start", env)
        if proc.returncode != 0:
            pytest.fail(
                f"scripts/slurm-cluster.sh start failed (rc={proc.returncode}); logs in {base}/log\n"
                f"--- stdout ---\n{proc.stdout}\n--- stderr ---\n{proc.stderr}",
                pytrace=False,
            )
        started_here = True
    cluster = SlurmCluster(base=base, started_here=started_here, env=env)
    _STATE.update(cluster=cluster, users=1)
    return cluster


def _release() -> None:
    _STATE["users"] -= 1
    cluster = _STATE["cluster"]
    if _STATE["users"] > 0 or cluster is None:
        return
    _STATE["cluster"] = None
    if cluster.started_here:
        proc = _script("stop", cluster.env, timeout=120)
        if proc.returncode != 0:
            print(f"warning: slurm-cluster.sh stop failed:\n{proc.stdout}\n{proc.stderr}", file=sys.stderr)


@pytest.fixture(scope="session")
def slurm_cluster():
    """A running single-node Slurm (slurmdbd accounting, FAKE_GPUS=1 by default)."""
    cluster = _acquire()
    try:
        yield cluster
    finally:
        _release()
