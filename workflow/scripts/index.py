# Checkpoint index: the frame table and the list of videos.
from fau import stages
from fau.snakemake_job import job

with job(snakemake) as cfg:
    print(stages.index(cfg, snakemake.output.frames, snakemake.output.videos))
