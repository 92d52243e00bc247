# Rule mlflow_parent: the MLflow parent run of this invocation.
from fau import stages
from fau.snakemake_job import job

with job(snakemake) as cfg:
    print(stages.mlflow_parent(cfg, snakemake.output.parent, snakemake.input.annotations))
