# Stage 4: predictions and ICC(3,1) / MAE / PCC per fold, then pooled over
# all folds' test frames (and mean +- sd over folds).


rule evaluate:
    input:
        model=f"{OUT}/models/{{fold}}.pt",
        annotations=f"{OUT}/annotations.csv",
        folds=f"{OUT}/folds.json",
        parent=f"{OUT}/mlflow/parent.json",
    output:
        predictions=f"{OUT}/predictions/{{fold}}.csv",
        metrics=f"{OUT}/metrics/{{fold}}.csv",
    params:
        cfg=sections("model", "eval", "mlflow"),
        mlflow_run=f"{OUT}/mlflow/{{fold}}.json",
    log:
        f"{OUT}/logs/evaluate/{{fold}}.log",
    benchmark:
        f"{OUT}/benchmarks/evaluate/{{fold}}.tsv"
    threads: CFG.resources.train_threads
    resources:
        mem_mb=CFG.resources.train_mem_mb,
        runtime=CFG.resources.train_runtime,
        **gpu_resources(),
    conda:
        "../../envs/fau.yaml"
    script:
        "../scripts/evaluate.py"


rule pool:
    input:
        predictions=expand(f"{OUT}/predictions/{{fold}}.csv", fold=FOLDS, allow_missing=True),
        parent=f"{OUT}/mlflow/parent.json",
    output:
        csv=f"{OUT}/metrics.csv",
        json=f"{OUT}/metrics.json",
        folds=f"{OUT}/metrics_folds.csv",
    params:
        cfg=sections("folds", "mlflow"),
        folds=FOLDS,
    log:
        f"{OUT}/logs/pool.log",
    conda:
        "../../envs/fau.yaml"
    script:
        "../scripts/pool.py"
