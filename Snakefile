# fau-pipeline: raw BP4D / DISFA -> dlib landmarks -> aligned crops + JSON ->
# per-fold SCC heatmap network -> ICC(3,1) / MAE / PCC per AU -> report.
#
#   snakemake --cores all                                   # embedded synthetic default
#   snakemake --profile profiles/slurm --configfile config/bp4d.yaml
#
# Thin entry: config, schema validation, the stage files. The logic lives in
# the `fau` package (src/fau/); each rule calls one `fau` command.
from snakemake.utils import min_version, validate

min_version("9.0")


configfile: "config/config.yaml"


# The typed config (src/fau/config.py) names a wrong key with a suggestion;
# the JSON schema documents every key and checks ranges.
include: "workflow/rules/common.smk"


validate(config, "workflow/schemas/config.schema.yaml")


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
