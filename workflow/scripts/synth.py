# Rule synth: the synthetic dataset at dataset.root (its manifest is the output).
from fau import stages
from fau.snakemake_job import job

with job(snakemake) as cfg:
    print(stages.synth(cfg))
