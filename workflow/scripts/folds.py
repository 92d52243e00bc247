# Rule folds: subject-exclusive folds over the annotated subjects.
from fau import stages
from fau.snakemake_job import job, optional_input

with job(snakemake) as cfg:
    print(stages.folds(cfg, snakemake.input.annotations, snakemake.output.folds,
                       optional_input(snakemake, "manifest")))  # None unless the run makes its data
