"""The final model: after cross-validation, one model trained on every
subject with the same config, logged to MLflow as a model and registered.

- `train_final`: `fau.train.train_fold` on a fold that trains on all
  subjects of the annotation table (and tests none), as an MLflow child run
  `final` (tag `fau.role=final`) under the workflow's parent run.
- `register_final`: that model as an MLflow pyfunc model of the run
  (`fau.registry.log_and_register`; input example: one training crop),
  registered as `final.registered_model` (default `fau-<dataset.name>`);
  the registered name, version and URI go to a small JSON file.
- `final_report`: the cross-validation report plus a section naming the
  registered version and how to run it (`fau predict ... --model
  models:/<name>/<version>`), written beside it (so its figure links hold).

The workflow's target `final` (`snakemake final`) makes all three; the
default target makes them too only with `final.enabled: true`, so that the
default run costs no extra training.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Optional

import numpy as np
import pandas as pd

from . import atomic
from .config import Config
from .errors import FauError

PathLike = str | Path


def registered_name(cfg: Config) -> str:
    return cfg.final.registered_model or f"fau-{cfg.dataset.name}"


def all_subjects(annotations_csv: PathLike) -> dict:
    """The final fold: every subject of the annotation table trains."""
    path = Path(annotations_csv)
    try:
        subjects = sorted(pd.read_csv(path, usecols=["subject"], dtype={"subject": str})["subject"].unique())
    except FileNotFoundError:
        raise FauError(f"{path}: annotation table missing (run the annotations stage first)") from None
    if not subjects:
        raise FauError(f"{path}: no rows")
    return {"name": "final", "train": list(subjects), "test": []}


def train_final(cfg: Config, annotations_csv: PathLike, model: PathLike, history: PathLike,
                checkpoint: Optional[PathLike] = None, parent: Optional[PathLike] = None,
                run_file: Optional[PathLike] = None, threads: Optional[int] = None) -> str:
    """Train the final model on all subjects (resumes from `checkpoint`);
    with `parent`, log to the child run `final` recorded in `run_file`."""
    from .mlflow_runs import FoldRun, open_fold_run
    from .train import train_fold

    fold = all_subjects(annotations_csv)
    run = FoldRun(None, None)
    if parent is not None:
        if run_file is None:
            raise FauError(f"{parent}: logging the final model to MLflow needs its run file too")
        run = open_fold_run(cfg, Path(parent), Path(run_file), "final", dataset_file=Path(annotations_csv),
                            role="final", fold_def=fold)
    # Interrupted: the run ends KILLED; an error: FAILED (fau.mlflow_runs).
    with run.training(cfg.mlflow.system_metrics, cfg.mlflow.system_metrics_interval):
        result = train_fold(cfg, annotations_csv, fold, model, history, checkpoint,
                            on_epoch=lambda epoch, m: run.log_metrics(m, step=epoch), threads=threads)
    if run.enabled:
        run.log_history(Path(history))
        run.log_artifact(Path(history), "history")
        run.finish()
    return (f"final: {result['n_train']} frames of {len(fold['train'])} subjects, {result['epochs']} epochs, "
            f"final loss {result['loss']} -> {result['model']}")


def example_crop(annotations_csv: PathLike) -> np.ndarray:
    """One training crop (1, C, C, 3) uint8 RGB, as the dataset reads it."""
    from .data import load_rgb

    path = Path(annotations_csv)
    table = pd.read_csv(path, usecols=["imgpath"])
    if table.empty:
        raise FauError(f"{path}: no crops")
    return load_rgb(path.parent / str(table["imgpath"].iloc[0]))[None]


def register_final(cfg: Config, model: PathLike, annotations_csv: PathLike, run_file: Optional[PathLike],
                   out_json: PathLike) -> str:
    """Log the final model to its MLflow run and register it; the
    registration (name, version, URIs) -> `out_json`. With MLflow disabled:
    `out_json` says so and nothing is registered."""
    from .mlflow_runs import sync_records
    from .registry import log_and_register

    if run_file is not None and Path(run_file).is_file() and cfg.mlflow.enabled:
        # The training's run, caught up if the server missed it (registering needs the server).
        if not all(ok for _, ok, _ in sync_records([Path(run_file)], pending_only=True)):
            raise FauError(f"{run_file}: the MLflow server does not answer; cannot register the final model")
    run = json.loads(Path(run_file).read_text()) if run_file is not None and Path(run_file).is_file() else None
    if not cfg.mlflow.enabled or run is None:
        info = {"name": None, "version": None, "model_uri": None, "registered": False,
                "reason": "MLflow logging is disabled (mlflow.enabled: false)" if not cfg.mlflow.enabled
                else f"{run_file}: no MLflow run of the final model"}
        atomic.write_text(out_json, json.dumps(info, indent=2) + "\n")
        return f"final model not registered: {info['reason']}"
    name = registered_name(cfg)
    info = log_and_register(model, run["uri"], run["run_id"], name, example_crop(annotations_csv),
                            description=f"fau-pipeline final model: {cfg.model.backbone}, {cfg.model.input_size} px, "
                                        f"all subjects of {cfg.dataset.name}, {cfg.train.epochs} epochs",
                            flip_test=cfg.eval.flip_test)
    info["registered"] = True
    atomic.write_text(out_json, json.dumps(info, indent=2) + "\n")
    return f"registered {info['model_uri']} (run {info['run_id']}) at {info['tracking_uri']}"


def final_section(info: dict, history: Optional[pd.DataFrame] = None) -> str:
    """Markdown: the registered final model and how to use it."""
    lines = ["## Final model", ""]
    if not info.get("registered"):
        lines += [f"Trained on all subjects with the same config; not registered: {info.get('reason', 'unknown')}.",
                  ""]
    else:
        lines += [f"Trained on all subjects with the same config and registered in the MLflow Model Registry as "
                  f"**`{info['name']}` version {info['version']}**: `{info['model_uri']}` "
                  f"(run `{info['run_id']}`, logged model `{info['model_id']}`, tracking URI "
                  f"`{info['tracking_uri']}`).", "",
                  "```console",
                  f"fau predict my_video.mp4 --model {info['model_uri']} --tracking-uri {info['tracking_uri']} "
                  "--out predictions/",
                  "```", ""]
    if history is not None and not history.empty:
        last = history.iloc[-1]
        lines += [f"Training: {int(last['epoch'])} epochs, final loss {float(last['loss']):.4g}.", ""]
    return "\n".join(lines)


def final_report(report_md: PathLike, registered_json: PathLike, out_md: PathLike,
                 history_csv: Optional[PathLike] = None) -> str:
    """The cross-validation report with the final model's section after
    its metrics table, written to `out_md` (same folder as `report_md`, so
    its figure links hold)."""
    report_md, out_md = Path(report_md), Path(out_md)
    if report_md.resolve().parent != out_md.resolve().parent:
        raise FauError(f"{out_md}: must sit beside {report_md} (its figure links are relative)")
    try:
        text = report_md.read_text()
        info = json.loads(Path(registered_json).read_text())
    except FileNotFoundError as e:
        raise FauError(f"{e.filename}: missing (run the report and register_final rules first)") from None
    history = pd.read_csv(history_csv) if history_csv is not None and Path(history_csv).is_file() else None
    section = final_section(info, history)
    m = re.search(r"^## ", text, flags=re.MULTILINE)  # the first section after the title and metrics table
    text = text[:m.start()] + section + "\n" + text[m.start():] if m else text.rstrip() + "\n\n" + section
    atomic.write_text(out_md, text)
    return f"final report: {out_md}" + (f" names {info['model_uri']}" if info.get("registered") else "")
