# Shared definitions: the typed config (checked once, against the schema,
# before any job), the results layout's root, wildcard constraints, the
# checkpoint-driven list of videos, and each rule's config sections.
import json
from pathlib import Path

from snakemake.exceptions import WorkflowError

from fau.ablation import variant_config
from fau.config import from_dict, reread_overrides
from fau.errors import FauError
from fau.folds import fold_names

# A nested --config value ('synth={seed: 0}') reaches `config` as strings.
config.update(reread_overrides(config, workflow.config_settings.overwrite_config))
try:
    CFG = from_dict(config)
except FauError as err:
    raise WorkflowError(f"config error: {err}")

if not CFG.synth.enabled and not Path(CFG.dataset.root).is_dir():
    raise WorkflowError(
        f"config error: config key 'dataset.root' is '{CFG.dataset.root}', which is not a folder "
        "(point it at your copy of the dataset, or enable synth)"
    )

RESULTS = CFG.results
DATASET = CFG.dataset.name
# Every result path is written out in the rules below, under this folder.
OUT = f"{RESULTS}/{{dataset}}"
FOLDS = fold_names(CFG.folds)


# The ablation's variants (workflow/rules/ablation.smk) and their results' root.
VARIANTS = list(CFG.ablation.variants)
VOUT = f"{OUT}/ablation/{{variant}}"


wildcard_constraints:
    dataset=DATASET,
    variant="|".join(VARIANTS) or "no-variant-configured",
    fold="|".join(FOLDS),
    video=r"[A-Za-z0-9_.-]+",


def sections(*names, config=config, results=True, seed=False):
    """The config sections a rule reads (its `params.cfg`, from which its
    script builds the typed config): a change re-runs exactly the rules that
    read it. Keys sorted, so that only a changed value counts. `results`:
    False for a rule whose output does not depend on the results folder.
    `seed`: True for a rule whose work draws from the top-level seed (the
    training), so that another seed re-runs the training and what follows,
    not the landmarks and crops of a real dataset. The `synth` section comes
    with the people's seed resolved (`Config.people_seed`):
    the same people whichever way their seed is given, so another training
    seed with synth.seed set re-runs none of the data chain."""
    keep = {"dataset", *names} | ({"results"} if results else set()) | ({"seed"} if seed else set())
    out = json.loads(json.dumps({k: v for k, v in config.items() if k in keep}, sort_keys=True))
    if "synth" in out:
        out["synth"]["seed"] = CFG.people_seed
    return out


def variant_sections(*names, seed=False):
    """Like `sections`, for the ablation variant of the job's wildcards: the
    config with the variant's model / train overrides merged in."""
    return lambda wc: sections(*names, config=variant_config(config, CFG.ablation.variants[wc.variant]), seed=seed)


def videos(wildcards):
    """Video / task IDs of the dataset, known once the index checkpoint ran."""
    out = checkpoints.index.get(dataset=wildcards.dataset).output.videos
    return Path(out).read_text().split()


def synth_manifest(wildcards):
    """The synthetic dataset's manifest, when this run generates its data."""
    return [f"{CFG.dataset.root}/.synth/manifest.json"] if CFG.synth.enabled else []


def gpu_resources():
    """GPU request of training / evaluation jobs, as Slurm's executor reads it."""
    res = {}
    if CFG.resources.gres:
        res["gres"] = CFG.resources.gres
    elif CFG.resources.gpu > 0:
        res["gpu"] = CFG.resources.gpu
        if CFG.resources.gpu_model:
            res["gpu_model"] = CFG.resources.gpu_model
    return res


# `fau predict` as a workflow (predict.smk): the inputs predict.input matches,
# by output name; the model (null: this config's final model).
import glob
import re

from fau.cli_predict import output_names
from fau.registry import is_mlflow_uri


def predict_inputs():
    """Output name -> input path, for the files / folders predict.input matches."""
    if not CFG.predict.input:
        return {}
    paths = [Path(p) for p in sorted(glob.glob(CFG.predict.input))]
    try:
        return {name: str(path) for path, name in output_names(paths).items()}
    except FauError as err:
        raise WorkflowError(f"config error: predict.input: {err}")


PREDICT_INPUTS = predict_inputs()
PREDICT_MODEL = CFG.predict.model or f"{RESULTS}/{DATASET}/models/final.pt"
PREDICT = f"{RESULTS}/predict"


def predict_outputs(wildcards):
    """The predict target's files: a CSV (and an overlay folder) per input."""
    if not PREDICT_INPUTS:
        what = "is not set" if not CFG.predict.input else f"is {CFG.predict.input!r}, which matches nothing"
        raise WorkflowError(
            f"config error: config key 'predict.input' {what}: it takes a glob of videos, images or image "
            "folders (see config/predict.yaml)"
        )
    out = expand(f"{PREDICT}/{{name}}.csv", name=PREDICT_INPUTS)
    if CFG.predict.overlay:
        out += expand(f"{PREDICT}/overlays/{{name}}", name=PREDICT_INPUTS)
    return out


# No MLflow run left RUNNING: when an invocation ends, the parent run and any
# child run still RUNNING end (after an error FAILED, after Ctrl-C KILLED, the
# parent FINISHED after success), and runs that a tracking server which was
# down missed are caught up (fau.mlflow_runs.end_invocation).
def mlflow_end(failed, log):
    parent = Path(f"{RESULTS}/{DATASET}/mlflow/parent.json")
    if CFG.mlflow.enabled and parent.is_file():
        import sys

        from fau.mlflow_runs import end_invocation

        print(end_invocation(parent, failed, log), file=sys.stderr)


onsuccess:
    mlflow_end(False, log)


onerror:
    mlflow_end(True, log)
