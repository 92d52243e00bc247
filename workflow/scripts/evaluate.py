# Rule evaluate: one fold's predictions and metrics, logged to its MLflow child run.
from fau import stages
from fau.snakemake_job import job

with job(snakemake) as cfg:
    print(stages.evaluate(cfg, snakemake.input.annotations, snakemake.input.folds, snakemake.wildcards.fold,
                          snakemake.input.model, snakemake.output.predictions, snakemake.output.metrics,
                          parent=snakemake.input.parent, run_file=snakemake.params.mlflow_run,
                          threads=snakemake.threads, variant=snakemake.params.get("variant")))
