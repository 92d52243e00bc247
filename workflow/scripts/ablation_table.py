# Rule ablation_table: the main model's and its variants' pooled metrics side by side.
from fau import stages
from fau.snakemake_job import job

with job(snakemake):
    runs = {"main": snakemake.input.main, **dict(zip(snakemake.params.variants, snakemake.input.variants, strict=True))}
    print(stages.ablation_table(runs, snakemake.output.csv, snakemake.output.figure))
