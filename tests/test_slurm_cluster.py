"""A toy two-rule workflow through `snakemake --profile profiles/slurm` on a real Slurm.

The cluster comes from scripts/slurm-cluster.sh (fixture in slurm_fixtures.py):
single node on loopback, slurmdbd accounting (the plugin polls with sacct) and
one fake GPU, so the `gpu: 1` request of a rule is granted for real.
"""

from __future__ import annotations

import re
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
from slurm_fixtures import slurm_cluster  # noqa: E402,F401  (pytest fixture)

pytestmark = pytest.mark.integration

TOY_SNAKEFILE = textwrap.dedent(
    """
    localrules: all

    rule all:
        input: "prep.txt", "gpu.txt"

    rule prep:
        output: "prep.txt"
        threads: 1
        resources: mem_mb=500, runtime=5
        shell: "echo SLURM_JOB_ID=${{SLURM_JOB_ID:-none}} > {output}"

    rule gpu_step:
        input: "prep.txt"
        output: "gpu.txt"
        threads: 1
        resources: gpu=1, mem_mb=500, runtime=5
        shell:
            "echo SLURM_JOB_ID=${{SLURM_JOB_ID:-none}} > {output}; "
            "echo CUDA_VISIBLE_DEVICES=${{CUDA_VISIBLE_DEVICES-unset}} >> {output}"
    """
)


def _kv(path: Path) -> dict[str, str]:
    return dict(line.split("=", 1) for line in path.read_text().split() if "=" in line)


def _debug(proc: subprocess.CompletedProcess, workdir: Path, cluster) -> str:
    parts = [f"rc={proc.returncode}", "--- snakemake output (tail) ---", proc.stdout[-6000:]]
    for log in sorted((workdir / ".snakemake" / "slurm_logs").rglob("*.log")):
        parts += [f"--- {log.relative_to(workdir)} ---", log.read_text()[-2000:]]
    parts.append(f"(cluster logs: {cluster.logs})")
    return "\n".join(parts)


def test_toy_workflow_runs_as_slurm_jobs(slurm_cluster, tmp_path):  # noqa: F811  (the imported fixture)
    cluster = slurm_cluster
    (tmp_path / "Snakefile").write_text(TOY_SNAKEFILE)

    t0 = time.monotonic()
    proc = subprocess.run(
        cluster.snakemake_cmd(tmp_path, "--snakefile", str(tmp_path / "Snakefile")),
        cwd=tmp_path, env=cluster.env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
        text=True,
    )
    wall = time.monotonic() - t0
    assert proc.returncode == 0, _debug(proc, tmp_path, cluster)

    # outputs exist and were written inside Slurm jobs
    prep, gpu = _kv(tmp_path / "prep.txt"), _kv(tmp_path / "gpu.txt")
    assert prep["SLURM_JOB_ID"].isdigit(), prep
    assert gpu["SLURM_JOB_ID"].isdigit(), gpu
    # the GPU request reached Slurm: it set CUDA_VISIBLE_DEVICES in the job
    assert gpu["CUDA_VISIBLE_DEVICES"] not in ("", "unset"), gpu

    # sacct (slurmdbd) knows exactly these jobs of this run, all COMPLETED
    m = re.search(r"SLURM run ID: (\S+)", proc.stdout)
    assert m, _debug(proc, tmp_path, cluster)
    run_id = m.group(1)
    rows = [
        line.split("|")
        for line in cluster.sacct(
            "-X", "--name", run_id, "-S", "now-1days", "-o", "JobID,JobName,State,Comment,AllocTRES"
        ).splitlines()
        if line.strip()
    ]
    jobs = {comment: (jobid, state, tres) for jobid, name, state, comment, tres in rows if name == run_id}
    assert len(rows) == 2, rows
    assert set(jobs) == {"rule_prep", "rule_gpu_step"}, rows
    assert all(state == "COMPLETED" for _, state, _ in jobs.values()), rows
    assert jobs["rule_prep"][0] == prep["SLURM_JOB_ID"], (rows, prep)
    assert jobs["rule_gpu_step"][0] == gpu["SLURM_JOB_ID"], (rows, gpu)
    assert "gres/gpu=1" in jobs["rule_gpu_step"][2], rows
    assert "gres/gpu" not in jobs["rule_prep"][2], rows
    print(f"toy workflow: {len(rows)} Slurm jobs in {wall:.1f} s (run {run_id})")
