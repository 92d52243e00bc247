"""Scale: a BP4D-sized layout's DAG and Slurm job count; flat memory of the
per-video stages on a DISFA-length video.

    python benchmarks/scale.py [--quick] [--keep DIR] [--only dag,memory]

(1) DAG. A BP4D-sized layout, 41 subjects x 8 tasks (328 videos), 2 frames
    each at 160 x 200 (`fau synth`; the number of frames does not change the
    DAG). The index checkpoint runs first (the videos come from it), then
    `snakemake -n` for the whole run, on one machine and with
    `--profile profiles/slurm`: wall time of each, and the jobs each sends
    out. The Slurm profile groups each video's landmarks + crops jobs and
    puts 16 videos in one Slurm job (group "prep", group-components); the
    number of such jobs is Snakemake's own partition of the DAG into group
    jobs (read from `DAG.update_groups` in the dry run).
    Bars: the Slurm profile's dry run (DAG included) <= 30 s (the issue's
    number; the only absolute time here); Slurm jobs of the whole run < 100
    ("tens, not hundreds").

(2) Memory. `fau landmarks` then `fau crops` (the pipeline's per-video stages,
    as the workflow runs them) on a DISFA-layout video at DISFA's 1024 x 768,
    short (--short frames, default 300) and DISFA-length (4845 frames; the
    frames of a 60-frame synthetic clip played back and forth, with their
    labels): peak resident memory of the stage's process tree (psutil, sampled
    every 20 ms; the landmark stage's frame reader is a child process).
    Frames are streamed, so memory must not grow with the video's length.
    Bar per stage: peak RSS long / short <= 1.25 (holding the long video's
    frames would take gigabytes).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT / "src"))

DISFA_FRAMES = 4845
DISFA_AUS = [1, 2, 4, 5, 6, 9, 12, 15, 17, 20, 25, 26]
DAG_BAR_S = 30.0
JOBS_BAR = 100
RSS_BAR = 1.25


def env() -> dict:
    e = dict(os.environ)
    e["PYTHONPATH"] = f"{ROOT / 'src'}{os.pathsep}{e.get('PYTHONPATH', '')}"
    e["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{e.get('PATH', '')}"
    return e


def run(cmd: list[str], cwd: Path, **kw) -> subprocess.CompletedProcess:
    proc = subprocess.run(cmd, cwd=cwd, env=env(), capture_output=True, text=True, **kw)
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(map(str, cmd))} failed ({proc.returncode}):\n{proc.stdout[-3000:]}\n"
                         f"{proc.stderr[-3000:]}")
    return proc


def fau(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return run([sys.executable, "-m", "fau.cli", *args], cwd)


# ---------------------------------------------------------------- (1) DAG


def count_groups(argv: list[str]) -> None:
    """`snakemake *argv` (a dry run) with Snakemake's first partition of the
    DAG into group jobs printed as `GROUPS {"jobs": [...sizes]}`."""
    import snakemake.api  # noqa: F401  (import order: snakemake.dag needs the API loaded)
    from snakemake import dag as dagmod
    from snakemake.cli import main

    first: list[list[int]] = []
    update = dagmod.DAG.update_groups

    def recording(self):
        update(self)
        if not first:
            first.append(sorted(len(g.jobs) for g in set(self._group.values())))
    dagmod.DAG.update_groups = recording
    try:
        main(argv)
    except SystemExit as e:
        if e.code:
            raise
    print("GROUPS " + json.dumps({"jobs": first[0] if first else []}), flush=True)


def job_stats(text: str) -> dict[str, int]:
    block = text.split("Job stats:")[-1].split("\n\n")[0]
    return {r: int(n) for r, n in re.findall(r"^(\w+)\s+(\d+)$", block, flags=re.MULTILINE) if r != "total"}


def dag(work: Path) -> list[bool]:
    import yaml
    from _common import copy_workflow

    print("\n== (1) BP4D-sized layout: DAG and Slurm jobs", flush=True)
    data, wf = work / "BP4D", work / "wf"
    t0 = time.perf_counter()
    fau("synth", "--set", f"dataset.root={data}", "--set", "synth.subjects=41", "--set", "synth.tasks=8",
        "--set", "synth.frames=2", "--set", "synth.width=160", "--set", "synth.height=200", cwd=work)
    n_videos = len(list((data / "AUCoding" / "AU_INT" / "AU06").glob("*.csv")))
    print(f"fau synth: 41 subjects x 8 tasks = {n_videos} videos, 2 frames each, in "
          f"{time.perf_counter() - t0:.0f} s", flush=True)
    copy_workflow(wf)
    cfg = work / "bp4d_size.yaml"
    cfg.write_text(yaml.safe_dump({"results": str(work / "results"), "mlflow": {"enabled": False},
                                   "synth": {"enabled": False},
                                   "dataset": {"name": "bp4d_size", "kind": "bp4d", "root": str(data)}}))
    smk = [sys.executable, "-m", "snakemake", "--configfile", str(cfg)]
    run([*smk, "--cores", "2", "--", str(work / "results" / "bp4d_size" / "index" / "videos.txt")], wf)

    t0 = time.perf_counter()
    local = run([*smk, "-n", "--cores", "2"], wf)
    t_local = time.perf_counter() - t0
    t0 = time.perf_counter()
    slurm = run([sys.executable, str(HERE / "scale.py"), "--count-groups", "-n", "--profile", "profiles/slurm",
                 "--configfile", str(cfg)], wf)
    t_slurm = time.perf_counter() - t0
    stats = job_stats(local.stdout + local.stderr)
    groups = json.loads(next(ln for ln in slurm.stdout.splitlines() if ln.startswith("GROUPS "))[7:])["jobs"]
    grouped = sum(groups)
    per_video = stats.get("landmarks", 0) + stats.get("crops", 0)
    others = sum(n for r, n in stats.items() if r not in ("landmarks", "crops", "all"))  # `all` runs locally
    jobs_plain, jobs_slurm = 1 + per_video + others, 1 + len(groups) + others  # 1: the index job
    print(f"jobs of the whole run (index included; `all` runs on the submitting machine):\n"
          f"  per rule: index 1, {', '.join(f'{r} {n}' for r, n in stats.items() if r != 'all')}\n"
          f"  without grouping: {jobs_plain} Slurm jobs ({per_video} of them per video)\n"
          f"  --profile profiles/slurm: {jobs_slurm} Slurm jobs: {len(groups)} prep jobs holding the "
          f"{grouped} per-video jobs (sizes {min(groups)}..{max(groups)} jobs = up to "
          f"{max(groups) // 2} videos each) + {1 + others} others")
    print(f"dry run (DAG + schedule): one machine {t_local:.1f} s, Slurm profile {t_slurm:.1f} s "
          f"(ratio {t_slurm / t_local:.2f}: Snakemake's group bookkeeping)", flush=True)
    import _common as C

    assert grouped == per_video, (grouped, per_video)
    return [C.bar("scale[BP4D-sized, 328 videos] dry run with the Slurm profile, s", t_slurm, DAG_BAR_S, "<=",
                  note=f"one machine {t_local:.1f} s; the issue's bar, an absolute time"),
            C.bar("scale[BP4D-sized, 328 videos] Slurm jobs of the whole run", jobs_slurm, JOBS_BAR - 1, "<=",
                  note=f"{jobs_plain} without the profile's grouping")]


# ---------------------------------------------------------------- (2) memory


def peak_rss(cmd: list[str], cwd: Path) -> tuple[float, float]:
    """Run `cmd`; (peak RSS of its process tree in MiB, wall seconds)."""
    import psutil

    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, cwd=cwd, env=env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    peak = 0
    ps = psutil.Process(proc.pid)
    while proc.poll() is None:
        try:
            total = ps.memory_info().rss + sum(c.memory_info().rss for c in ps.children(recursive=True))
            peak = max(peak, total)
        except psutil.Error:
            pass
        time.sleep(0.02)
    out, err = proc.communicate()
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed:\n{err[-3000:]}")
    return peak / 2**20, time.perf_counter() - t0


def disfa_video(clip_root: Path, root: Path, n: int) -> None:
    """A DISFA-layout dataset at `root` whose video SN001 has `n` frames: the
    clip's frames and labels played back and forth."""
    import cv2

    cap = cv2.VideoCapture(str(clip_root / "Videos_LeftCamera" / "LeftVideoSN001_comp.avi"))
    frames = []
    while True:
        ok, img = cap.read()
        if not ok:
            break
        frames.append(img)
    order = list(range(len(frames))) + list(range(len(frames) - 2, 0, -1))  # ping-pong: no jump
    pick = [order[i % len(order)] for i in range(n)]
    (root / "Videos_LeftCamera").mkdir(parents=True)
    h, w = frames[0].shape[:2]
    out = cv2.VideoWriter(str(root / "Videos_LeftCamera" / "LeftVideoSN001_comp.avi"),
                          cv2.VideoWriter_fourcc(*"MJPG"), 20, (w, h))
    for i in pick:
        out.write(frames[i])
    out.release()
    (root / "ActionUnit_Labels" / "SN001").mkdir(parents=True)
    for au in DISFA_AUS:
        src = clip_root / "ActionUnit_Labels" / "SN001" / f"SN001_au{au}.txt"
        values = [line.split(",")[1] for line in src.read_text().split()]
        (root / "ActionUnit_Labels" / "SN001" / f"SN001_au{au}.txt").write_text(
            "".join(f"{k + 1},{values[i]}\n" for k, i in enumerate(pick)))


def memory(work: Path, short: int, long: int) -> list[bool]:
    from fau.config import DatasetConfig, SynthConfig
    from fau.synth import generate

    import _common as C

    print(f"\n== (2) DISFA-length video: peak memory of the landmark and crop stages, {short} vs {long} frames",
          flush=True)
    clip = work / "clip"
    generate(DatasetConfig(name="clip", kind="disfa", root=str(clip), aus=tuple(DISFA_AUS)),
             SynthConfig(subjects=1, tasks=1, frames=60, width=1024, height=768, codec="MJPG"), 0)
    aus = "[" + ",".join(map(str, DISFA_AUS)) + "]"
    rows = []
    for n in (short, long):
        root, out = work / f"DISFA_{n}", work / f"out_{n}"
        disfa_video(clip, root, n)
        ds = ["--set", "dataset.kind=disfa", "--set", f"dataset.root={root}", "--set", f"dataset.aus={aus}"]
        fau("index", *ds, "--out", str(out / "frames.csv"), cwd=work)
        cli = [sys.executable, "-m", "fau.cli"]
        lm_mib, lm_s = peak_rss([*cli, "landmarks", *ds, "--frames", str(out / "frames.csv"), "--video", "SN001",
                                 "--out", str(out / "SN001_landmarks.csv")], work)
        cr_mib, cr_s = peak_rss([*cli, "crops", *ds, "--frames", str(out / "frames.csv"), "--landmarks",
                                 str(out / "SN001_landmarks.csv"), "--video", "SN001", "--out",
                                 str(out / "crops" / "SN001.csv")], work)
        n_crops = len(list((out / "crops" / "SN001").glob("*.jpg")))
        rows.append({"frames": n, "crops written": n_crops, "landmarks peak MiB": lm_mib, "landmarks s": lm_s,
                     "crops peak MiB": cr_mib, "crops s": cr_s})
        print(f"  {n} frames: landmarks {lm_mib:.0f} MiB ({lm_s:.0f} s), crops {cr_mib:.0f} MiB ({cr_s:.0f} s), "
              f"{n_crops} crops", flush=True)
        shutil.rmtree(root)
    print(C.table(rows))
    a, b = rows
    return [C.bar(f"scale[DISFA 1024x768] landmarks peak RSS, {long} / {short} frames",
                  b["landmarks peak MiB"] / a["landmarks peak MiB"], RSS_BAR, "<="),
            C.bar(f"scale[DISFA 1024x768] crops peak RSS, {long} / {short} frames",
                  b["crops peak MiB"] / a["crops peak MiB"], RSS_BAR, "<=")]


def main() -> int:
    import _common as C

    ap = C.parser(__doc__)
    ap.add_argument("--keep", type=Path, default=None, help="work in this folder and keep it")
    ap.add_argument("--only", default="dag,memory", help="dag, memory or both (default)")
    ap.add_argument("--short", type=int, default=300, help="frames of the short video (default 300)")
    args = ap.parse_args()
    long = 1500 if args.quick else DISFA_FRAMES
    print(f"scale: {C.cpu_info()}; --device ignored (no network here)")
    work = args.keep or Path(tempfile.mkdtemp(prefix="fau-bench-scale-"))
    work.mkdir(parents=True, exist_ok=True)
    ok = []
    try:
        if "dag" in args.only:
            ok += dag(work)
        if "memory" in args.only:
            ok += memory(work, args.short, long)
    finally:
        if args.keep is None:
            shutil.rmtree(work, ignore_errors=True)
    return 0 if all(ok) else 1  # a failed bar fails the script


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--count-groups":
        count_groups(sys.argv[2:])
        sys.exit(0)
    sys.exit(main())
