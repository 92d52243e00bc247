# Rule pool: metrics pooled over all folds' test frames, and mean +- sd over folds.
from fau import stages
from fau.snakemake_job import job

with job(snakemake) as cfg:
    predictions = dict(zip(snakemake.params.folds, snakemake.input.predictions, strict=True))
    print(stages.pool(cfg, predictions, snakemake.output.csv, snakemake.output.json, snakemake.output.folds,
                      parent=snakemake.input.get("parent")))
