# Rule annotations: the per-video crop tables -> the annotation table and JSON.
from fau import stages
from fau.snakemake_job import job

with job(snakemake) as cfg:
    print(stages.annotations(cfg, snakemake.input.tables, snakemake.output.csv, snakemake.output.json,
                             frames_csv=snakemake.input.frames))
