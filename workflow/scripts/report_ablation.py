# Rule report_ablation: report.md plus the ablation section, logged to the MLflow parent run.
from fau import stages
from fau.snakemake_job import job

with job(snakemake) as cfg:
    print(stages.report_ablation(snakemake.input.report, snakemake.input.table, snakemake.input.figure,
                                 cfg.ablation.variants, snakemake.output.report, parent=snakemake.input.parent))
