# Rule folds: subject-exclusive folds over the annotated subjects.
from fau import stages
from fau.snakemake_job import job

with job(snakemake) as cfg:
    manifest = [str(m) for m in ([snakemake.input.manifest] if isinstance(snakemake.input.manifest, str)
                                 else snakemake.input.manifest)]  # [] unless the run generates its data
    print(stages.folds(cfg, snakemake.input.annotations, snakemake.output.folds, manifest[0] if manifest else None))
