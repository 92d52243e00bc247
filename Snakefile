# fau-pipeline: raw BP4D / DISFA -> dlib landmarks -> aligned crops + JSON ->
# per-fold SCC heatmap network -> ICC(3,1) / MAE / PCC per AU -> report.
#
#   snakemake --cores all                                   # embedded synthetic default
#   snakemake --profile profiles/slurm --configfile config/bp4d.yaml
#
# Thin entry: the config and the stage files. Snakefile -> rules (they own
# every path: workflow/rules/*.smk) -> scripts (a few lines of glue each:
# workflow/scripts/*.py) -> the `fau` library (src/fau/). The config is
# checked once, against workflow/schemas/config.schema.yaml, by
# fau.config.from_dict in common.smk (before any job, naming the bad key).
from snakemake.utils import min_version

min_version("9.0")


configfile: "config/config.yaml"


include: "workflow/rules/common.smk"
include: "workflow/rules/synth.smk"
include: "workflow/rules/landmarks.smk"
include: "workflow/rules/crops.smk"
include: "workflow/rules/train.smk"
include: "workflow/rules/evaluate.smk"
include: "workflow/rules/report.smk"
include: "workflow/rules/ablation.smk"
include: "workflow/rules/final.smk"
include: "workflow/rules/predict.smk"


rule all:
    default_target: True
    input:
        report=f"{RESULTS}/{DATASET}/report.md",
        metrics=f"{RESULTS}/{DATASET}/metrics.json",
        # the final model and the report naming its registered version, only when asked for
        final=[f"{RESULTS}/{DATASET}/report_final.md"] if CFG.final.enabled else [],


# `snakemake final`: the final model (all subjects, registered in MLflow) and
# report_final.md naming its registered version (workflow/rules/final.smk).
rule final:
    input:
        f"{RESULTS}/{DATASET}/report_final.md",


# `snakemake ablation`: every variant of ablation.variants (default: without
# SCC) on the same folds and seed, and report_ablation.md with the ablation
# table (workflow/rules/ablation.smk).
rule ablation:
    input:
        f"{RESULTS}/{DATASET}/report_ablation.md",


# `snakemake predict --configfile config/predict.yaml`: `fau predict` on every
# input predict.input matches, one job each (workflow/rules/predict.smk).
rule predict:
    input:
        predict_outputs,
