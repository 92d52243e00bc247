# Stage 5: report.md with the per-AU table (pooled, and mean +- sd over
# folds), the config summary and figures; also logged to the MLflow parent run.


rule report:
    input:
        metrics=f"{OUT}/metrics.json",
        folds_metrics=f"{OUT}/metrics_folds.csv",
        predictions=expand(f"{OUT}/{{fold}}/predictions.csv", fold=FOLDS, allow_missing=True),
        histories=expand(f"{OUT}/{{fold}}/history.csv", fold=FOLDS, allow_missing=True),
        models=expand(f"{OUT}/{{fold}}/model.pt", fold=FOLDS, allow_missing=True),
        parent=f"{OUT}/mlflow/parent.json",
    output:
        report=f"{OUT}/report.md",
        figures=directory(f"{OUT}/figures"),
    params:
        cfg=config_json("crops", "folds", "model", "train", "eval", "mlflow", "report"),
    log:
        f"{OUT}/logs/report.log",
    benchmark:
        f"{OUT}/benchmarks/report.tsv"
    conda:
        "../../envs/report.yaml"
    shell:
        "fau report --config-json {params.cfg} --parent {input.parent} 2> {log}"
