# Stage 5: report.md with the per-AU table (pooled, and mean +- sd over
# folds), the config summary and figures; also logged to the MLflow parent run.


rule report:
    input:
        metrics=f"{OUT}/metrics.json",
        folds_metrics=f"{OUT}/metrics_folds.csv",
        folds=f"{OUT}/folds.json",
        annotations=f"{OUT}/annotations.csv",
        predictions=expand(f"{OUT}/predictions/{{fold}}.csv", fold=FOLDS, allow_missing=True),
        histories=expand(f"{OUT}/history/{{fold}}.csv", fold=FOLDS, allow_missing=True),
        models=expand(f"{OUT}/models/{{fold}}.pt", fold=FOLDS, allow_missing=True),
        parent=f"{OUT}/mlflow/parent.json",
        manifest=synth_manifest,  # the synthetic people, when this run made its data
    output:
        report=f"{OUT}/report.md",
        figures=directory(f"{OUT}/figures"),
    params:
        cfg=sections("synth", "crops", "folds", "model", "train", "eval", "mlflow", "report", seed=True),
        folds=FOLDS,
    log:
        f"{OUT}/logs/report.log",
    benchmark:
        f"{OUT}/benchmarks/report.tsv"
    conda:
        "../../envs/fau.yaml"
    script:
        "../scripts/report.py"
