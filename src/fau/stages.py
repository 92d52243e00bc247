"""The pipeline's stages as file-to-file functions.

Each takes the typed config and the explicit paths of its inputs and
outputs (the Snakemake rules own the layout; nothing here builds a results
path), writes its outputs atomically and returns a one-line summary. The
Snakemake scripts (`workflow/scripts/*.py`) and the `fau` command
(`fau.cli_*`) both call these, so a rule and its command do the same thing.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Mapping, Optional

from . import atomic
from .config import Config, to_plain
from .errors import FauError

log = logging.getLogger(__name__)

PathLike = str | Path


# ---------------------------------------------------------------- data chain


def synth(cfg: Config) -> str:
    """Write the synthetic dataset at `dataset.root` (its own official layout)."""
    from .synth import generate

    path = generate(cfg.dataset, cfg.synth, cfg.people_seed)
    return f"synthetic {cfg.dataset.kind} dataset at {cfg.dataset.root} (manifest {path})"


def index(cfg: Config, frames_csv: PathLike, videos_txt: Optional[PathLike] = None) -> str:
    """The dataset's frame table (and, if asked, its list of video IDs)."""
    from .datasets import read_frame_table

    table = read_frame_table(cfg.dataset)
    videos = sorted(table["video"].unique())
    atomic.write_csv(Path(frames_csv), table)
    if videos_txt is not None:
        atomic.write_text(Path(videos_txt), "".join(f"{v}\n" for v in videos))
    return f"index: {len(table)} labelled frames in {len(videos)} videos -> {frames_csv}"


def video_rows(frames_csv: PathLike, video: str):
    """The frame-table rows of one video, in frame order."""
    from .datasets import load_frame_table

    table = load_frame_table(frames_csv)
    rows = table[table["video"] == video]
    if rows.empty:
        raise FauError(f"{frames_csv}: no frames of video {video!r}")
    return rows.sort_values("frame", kind="stable").reset_index(drop=True)


def landmarks(cfg: Config, frames_csv: PathLike, video: str, out_csv: PathLike) -> str:
    """dlib 68-point landmarks for every labelled frame of one video."""
    from .landmarks import LandmarkDetector

    rows = video_rows(frames_csv, video)
    table = LandmarkDetector(cfg.landmarks).detect_rows(cfg.dataset.root, rows, desc=video)
    atomic.write_csv(Path(out_csv), table)
    return f"landmarks {video}: face found in {int(table['success'].sum())}/{len(table)} frames -> {out_csv}"


def crops(cfg: Config, frames_csv: PathLike, landmarks_csv: PathLike, video: str, table_csv: PathLike,
          images_dir: PathLike) -> str:
    """Aligned crops of one video into `images_dir` and its crop table."""
    from .crops import crop_video
    from .datasets.frames import iter_frames
    from .landmarks import read_landmarks

    rows = video_rows(frames_csv, video)
    lm = read_landmarks(Path(landmarks_csv))
    found = set(lm.loc[lm["success"] == 1, "frame"].astype(int))
    todo = rows[rows["frame"].isin(found)]
    table_csv = Path(table_csv)
    # All of the video's crops into a fresh folder, swapped in with the table
    # only when every frame is done: a failure (a truncated video) leaves the
    # earlier crops and table as they were, and a frame that lost its face
    # leaves no old crop behind.
    with atomic.replacing(table_csv) as tmp_csv, atomic.replacing_dir(images_dir) as tmp_dir:
        table = crop_video(iter_frames(cfg.dataset.root, todo), lm, rows, cfg.crops, cfg.dataset.aus, images_dir,
                           table_csv.parent, write_to=tmp_dir)
        table.to_csv(tmp_csv, index=False)
    return (f"crops {video}: {len(table)} crops, {len(rows) - len(table)} frames excluded (no landmarks) "
            f"-> {images_dir}")


def annotations(cfg: Config, crop_tables: list[PathLike], csv_path: PathLike, json_path: PathLike,
                frames_csv: Optional[PathLike] = None) -> str:
    """Merge the per-video crop tables into the annotation table and JSON."""
    from .annotations import merge_annotations

    n_rows, n_json = merge_annotations(crop_tables, csv_path, json_path, cfg.dataset.au_names)
    msg = f"annotations: {n_rows} frames with crops"
    if frames_csv is not None:
        from .datasets import load_frame_table

        n_frames = len(load_frame_table(frames_csv))
        msg = (f"annotations: {n_rows} of {n_frames} labelled frames have crops ({n_frames - n_rows} excluded: "
               "no landmarks)")
    return f"{msg}; {n_json} in the JSON ({n_rows - n_json} excluded: some AU not coded)"


def folds(cfg: Config, annotations_csv: PathLike, out_json: PathLike, manifest: PathLike | None = None) -> str:
    """Subject-exclusive folds over the subjects of the annotation table
    (`manifest`: the synthetic dataset's, for `folds.group_by: person`)."""
    import pandas as pd

    from .folds import make_folds, person_groups, write_folds

    path = Path(annotations_csv)
    if not path.is_file():
        raise FauError(f"{path}: annotation table missing (run the annotations stage first)")
    subjects = sorted(pd.read_csv(path, usecols=["subject"], dtype={"subject": str})["subject"].unique())
    groups = person_groups(manifest) if cfg.folds.group_by == "person" and manifest else None
    result = make_folds(subjects, cfg.folds, groups)
    write_folds(result, out_json)
    return "; ".join(f"{f['name']}: train {len(f['train'])} subjects, test {len(f['test'])} ({' '.join(f['test'])})"
                     for f in result)


# ---------------------------------------------------------------- model


def mlflow_parent(cfg: Config, out_json: PathLike, annotations_csv: Optional[PathLike] = None) -> str:
    """Create the MLflow parent run of a workflow invocation (its data: the
    annotation table, when given); its IDs -> `out_json`."""
    from .mlflow_runs import start_parent

    info = start_parent(cfg, Path(out_json), Path(annotations_csv) if annotations_csv is not None else None)
    if info.get("enabled"):
        return f"MLflow parent run {info['run_name']} ({info['run_id']}) at {info['uri']}"
    return "MLflow logging disabled (mlflow.enabled: false)"


def _fold_run(cfg: Config, parent: Optional[PathLike], run_file: Optional[PathLike], fold: str,
              annotations_csv: PathLike, variant: Optional[str] = None, fold_def: Optional[dict] = None):
    """The fold's MLflow run: a child of `parent`'s run, or without `parent` a
    run of its own (mlflow.enabled), recorded in `run_file`."""
    from .mlflow_runs import FoldRun, open_fold_run

    if run_file is None:
        if parent is not None:
            raise FauError(f"{parent}: logging to MLflow needs the fold's run file too")
        return FoldRun(None, None)
    return open_fold_run(cfg, Path(parent) if parent is not None else None, Path(run_file), fold,
                         dataset_file=Path(annotations_csv), variant=variant, fold_def=fold_def)


def _mlflow_note(run) -> str:
    if not run.enabled:
        return ""
    if not run.data.get("synced"):
        return f" (MLflow: not logged yet; `fau mlflow-sync {run.record}` when the server is back)"
    return f" (MLflow run {run.name} {run.run_id})"


def train(cfg: Config, annotations_csv: PathLike, folds_json: PathLike, fold: str, model: PathLike,
          history: PathLike, checkpoint: Optional[PathLike] = None, parent: Optional[PathLike] = None,
          run_file: Optional[PathLike] = None, threads: Optional[int] = None, variant: Optional[str] = None) -> str:
    """Train one fold (resuming from `checkpoint`); with `parent` (the MLflow
    parent file) log to the fold's child run recorded in `run_file` (an
    ablation `variant`'s fold: its own child run, `<variant>/<fold>`)."""
    from .folds import find_fold
    from .train import train_fold

    f = find_fold(folds_json, fold)
    run = _fold_run(cfg, parent, run_file, fold, annotations_csv, variant, f)
    # Interrupted (SIGINT, SIGTERM): the run ends KILLED; an error: FAILED.
    with run.training(cfg.mlflow.system_metrics, cfg.mlflow.system_metrics_interval):
        result = train_fold(cfg, annotations_csv, f, model, history, checkpoint,
                            on_epoch=lambda epoch, m: run.log_metrics(m, step=epoch), threads=threads)
    if run.enabled:
        run.log_dict(to_plain(cfg), "config/config.json")
        run.log_history(Path(history))
        run.log_artifact(Path(model), "model", name="model.pt")
        run.log_artifact(Path(history), "model", name="history.csv")
        run.finish()
    return (f"{fold}: {result['n_train']} frames, {result['epochs']} epochs, final loss {result['loss']} "
            f"-> {result['model']}{_mlflow_note(run)}")


def evaluate(cfg: Config, annotations_csv: PathLike, folds_json: PathLike, fold: str, model: PathLike,
             predictions: PathLike, metrics: PathLike, parent: Optional[PathLike] = None,
             run_file: Optional[PathLike] = None, threads: Optional[int] = None, variant: Optional[str] = None) -> str:
    """Predict one fold's test subjects; its ICC(3,1) / MAE / PCC per AU."""
    from .evaluate import evaluate_fold
    from .folds import find_fold

    f = find_fold(folds_json, fold)
    table = evaluate_fold(cfg, annotations_csv, f, model, predictions, metrics, threads=threads)
    run = _fold_run(cfg, parent, run_file, fold, annotations_csv, variant, f)
    if run.enabled:
        run.log_metrics({f"{m}_{r['au']}": r[m] for _, r in table.iterrows() for m in ("icc", "mae", "pcc")})
        run.log_artifact(Path(predictions), "evaluation", name="predictions.csv")
        run.log_artifact(Path(metrics), "evaluation", name="metrics.csv")
        run.finish()
    return table.to_string(index=False, float_format=lambda v: f"{v:.3f}") + _mlflow_note(run)


def pool(cfg: Config, predictions: Mapping[str, PathLike], metrics_csv: PathLike, metrics_json: PathLike,
         folds_csv: PathLike, parent: Optional[PathLike] = None) -> str:
    """Pooled metrics over all folds' test frames, and mean +- sd over folds."""
    from .evaluate import pool as pool_folds
    from .mlflow_runs import parent_run

    result = pool_folds(predictions, metrics_csv, metrics_json, folds_csv)
    if parent is not None:
        run = parent_run(Path(parent))
        rows = {**result["pooled"], "mean": result["mean"]}
        run.log_metrics({f"pooled_{m}_{au}": v[m] for au, v in rows.items() for m in ("icc", "mae", "pcc")})
        for path, name in ((metrics_json, "metrics.json"), (metrics_csv, "metrics.csv"),
                           (folds_csv, "metrics_folds.csv")):
            run.log_artifact(Path(path), "metrics", name=name)
    m = result["mean"]
    return f"pooled mean over AUs: ICC(3,1) {m['icc']:.3f}  MAE {m['mae']:.3f}  PCC {m['pcc']:.3f} -> {metrics_json}"


def report(cfg: Config, *, metrics_json: PathLike, folds_json: PathLike, annotations_csv: PathLike,
           predictions: Mapping[str, PathLike], histories: Mapping[str, PathLike], models: Mapping[str, PathLike],
           report_md: PathLike, figures_dir: PathLike, parent: Optional[PathLike] = None,
           manifest: Optional[PathLike] = None) -> str:
    """The report (tables and figures); with `parent`, logged to the MLflow
    parent run, and the runs recorded beside the parent file that MLflow
    still lacks (a server that was down) caught up."""
    from .mlflow_runs import parent_run, sync_records
    from .report import write_report

    path = write_report(cfg, metrics_json=metrics_json, folds_json=folds_json, annotations_csv=annotations_csv,
                        predictions=predictions, histories=histories, models=models, report_md=report_md,
                        figures_dir=figures_dir, manifest=manifest)
    note = ""
    if parent is not None:
        run = parent_run(Path(parent))
        run.log_artifact(path, "report", name="report.md")
        for fig in sorted(Path(figures_dir).glob("*.png")):
            run.log_artifact(fig, "report/figures")
        run.finish()
        if run.enabled:
            pending = [r for r in sync_records([Path(parent).parent], pending_only=True) if not r[1]]
            note = (f" (MLflow: {len(pending)} runs not logged yet; `fau mlflow-sync {Path(parent).parent}` when "
                    "the server is back)") if pending else _mlflow_note(run)
    return f"report: {path}{note}"


# ---------------------------------------------------------------- ablation


def ablation_table(runs: Mapping[str, PathLike], out_csv: PathLike, out_png: PathLike) -> str:
    """The main model's and its variants' pooled metrics side by side."""
    from .ablation import ablation_table as table

    t = table(runs, out_csv, out_png)
    return t[["variant", "icc", "mae", "pcc", "icc_fold_mean", "icc_fold_sd"]].to_string(
        index=False, float_format=lambda v: f"{v:.3f}")


def report_ablation(report_md: PathLike, table_csv: PathLike, figure: PathLike, variants: Mapping[str, Mapping],
                    out_md: PathLike, parent: Optional[PathLike] = None) -> str:
    """The report with the ablation section; with `parent`, logged to the MLflow parent run."""
    from .ablation import ablation_report
    from .mlflow_runs import parent_run

    path = ablation_report(report_md, table_csv, figure, variants, out_md)
    if parent is not None:
        run = parent_run(Path(parent))
        run.log_artifact(path, "report", name=Path(out_md).name)
        run.log_artifact(Path(table_csv), "ablation", name="ablation.csv")
        run.log_artifact(Path(figure), "ablation", name=Path(figure).name)
    return f"report with the ablation: {path}"
