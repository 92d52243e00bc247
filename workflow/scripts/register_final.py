# Rule register_final: the final model as an MLflow model of its run, registered.
from fau import final
from fau.snakemake_job import job

with job(snakemake) as cfg:
    print(final.register_final(cfg, snakemake.input.model, snakemake.input.annotations,
                               snakemake.params.mlflow_run, snakemake.output.registered))
