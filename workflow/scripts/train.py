# Rule train: one fold's model (resumes from its checkpoint), logged to its MLflow child run.
from fau import stages
from fau.snakemake_job import job

with job(snakemake) as cfg:
    print(stages.train(cfg, snakemake.input.annotations, snakemake.input.folds, snakemake.wildcards.fold,
                       snakemake.output.model, snakemake.output.history, checkpoint=snakemake.params.checkpoint,
                       parent=snakemake.input.parent, run_file=snakemake.params.mlflow_run,
                       threads=snakemake.threads, variant=snakemake.params.get("variant")))
