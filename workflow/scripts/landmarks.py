# Rule landmarks: dlib 68-point landmarks of one video.
from fau import stages
from fau.snakemake_job import job

with job(snakemake) as cfg:
    print(stages.landmarks(cfg, snakemake.input.frames, snakemake.wildcards.video, snakemake.output.landmarks))
