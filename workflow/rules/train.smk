# Stage 3: one MLflow parent run for this invocation (before the fan-out),
# then one training job per fold (GPU job on a cluster when resources.gpu > 0).


rule mlflow_parent:
    input:
        f"{OUT}/folds.json",
    output:
        f"{OUT}/mlflow/parent.json",
    params:
        cfg=config_json("crops", "folds", "model", "train", "mlflow"),
    log:
        f"{OUT}/logs/mlflow_parent.log",
    conda:
        "../../envs/train.yaml"
    shell:
        "fau mlflow-start --config-json {params.cfg} --out {output} 2> {log}"


rule train:
    input:
        annotations=f"{OUT}/annotations.csv",
        folds=f"{OUT}/folds.json",
        parent=f"{OUT}/mlflow/parent.json",
    output:
        model=f"{OUT}/{{fold}}/model.pt",
        history=f"{OUT}/{{fold}}/history.csv",
    params:
        cfg=config_json("landmarks", "crops", "model", "train", "mlflow"),
    log:
        f"{OUT}/logs/train/{{fold}}.log",
    benchmark:
        f"{OUT}/benchmarks/train/{{fold}}.tsv"
    threads: CFG.resources.train_threads
    resources:
        mem_mb=CFG.resources.train_mem_mb,
        runtime=CFG.resources.train_runtime,
        **gpu_resources(),
    conda:
        "../../envs/train.yaml"
    shell:
        "fau train --config-json {params.cfg} --fold {wildcards.fold} --threads {threads} "
        "--parent {input.parent} 2> {log}"
