# Stage 4: predictions and ICC(3,1) / MAE / PCC per fold, then pooled over
# all folds' test frames (and mean +- sd over folds).


rule evaluate:
    input:
        model=f"{OUT}/{{fold}}/model.pt",
        annotations=f"{OUT}/annotations.csv",
        folds=f"{OUT}/folds.json",
        parent=f"{OUT}/mlflow/parent.json",
    output:
        predictions=f"{OUT}/{{fold}}/predictions.csv",
        metrics=f"{OUT}/{{fold}}/metrics.csv",
    params:
        cfg=config_json("model", "eval", "mlflow"),
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
        "../../envs/train.yaml"
    shell:
        "fau evaluate --config-json {params.cfg} --fold {wildcards.fold} --threads {threads} "
        "--parent {input.parent} 2> {log}"


rule pool:
    input:
        predictions=expand(f"{OUT}/{{fold}}/predictions.csv", fold=FOLDS, allow_missing=True),
        parent=f"{OUT}/mlflow/parent.json",
    output:
        csv=f"{OUT}/metrics.csv",
        json=f"{OUT}/metrics.json",
        folds=f"{OUT}/metrics_folds.csv",
    params:
        cfg=config_json("folds", "mlflow"),
    log:
        f"{OUT}/logs/pool.log",
    conda:
        "../../envs/train.yaml"
    shell:
        "fau pool --config-json {params.cfg} --parent {input.parent} 2> {log}"
