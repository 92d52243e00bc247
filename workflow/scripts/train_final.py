# Rule train_final: the final model on all subjects, logged to its MLflow child run.
from fau import final
from fau.snakemake_job import job

with job(snakemake) as cfg:
    print(final.train_final(cfg, snakemake.input.annotations, snakemake.output.model, snakemake.output.history,
                            checkpoint=snakemake.params.checkpoint, parent=snakemake.input.parent,
                            run_file=snakemake.params.mlflow_run, threads=snakemake.threads))
