# Rule crops: aligned crops of one video and its crop table.
from fau import stages
from fau.snakemake_job import job

with job(snakemake) as cfg:
    print(stages.crops(cfg, snakemake.input.frames, snakemake.input.landmarks, snakemake.wildcards.video,
                       snakemake.output.table, snakemake.output.images))
