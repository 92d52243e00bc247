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


rule all:
    default_target: True
    input:
        report=f"{RESULTS}/{DATASET}/report.md",
        metrics=f"{RESULTS}/{DATASET}/metrics.json",
