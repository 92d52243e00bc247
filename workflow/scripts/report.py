# Rule report: report.md and its figures, logged to the MLflow parent run.
from fau import stages
from fau.snakemake_job import job, optional_input

with job(snakemake) as cfg:
    folds = snakemake.params.folds
    print(stages.report(cfg, metrics_json=snakemake.input.metrics, folds_json=snakemake.input.folds,
                        annotations_csv=snakemake.input.annotations,
                        predictions=dict(zip(folds, snakemake.input.predictions, strict=True)),
                        histories=dict(zip(folds, snakemake.input.histories, strict=True)),
                        models=dict(zip(folds, snakemake.input.models, strict=True)),
                        report_md=snakemake.output.report, figures_dir=snakemake.output.figures,
                        parent=snakemake.input.parent, manifest=optional_input(snakemake, "manifest")))
