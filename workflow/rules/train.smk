# Stage 3: one MLflow parent run for this invocation (before the fan-out),
# then one training job per fold (GPU job on a cluster when resources.gpu > 0).
# The checkpoint and the MLflow run file are not outputs: Snakemake deletes a
# failed job's outputs, and a restarted job resumes from them.


rule mlflow_parent:
    input:
        folds=f"{OUT}/folds.json",
        annotations=f"{OUT}/annotations.csv",
    output:
        parent=f"{OUT}/mlflow/parent.json",
    params:
        # the parent run's params: the training seed and (synth.seed) the synthetic people's
        cfg=sections("synth", "crops", "folds", "model", "train", "mlflow", seed=True),
    log:
        f"{OUT}/logs/mlflow_parent.log",
    conda:
        "../../envs/fau.yaml"
    script:
        "../scripts/mlflow_parent.py"


rule train:
    input:
        annotations=f"{OUT}/annotations.csv",
        folds=f"{OUT}/folds.json",
        parent=f"{OUT}/mlflow/parent.json",
    output:
        model=f"{OUT}/models/{{fold}}.pt",
        history=f"{OUT}/history/{{fold}}.csv",
    params:
        cfg=sections("landmarks", "crops", "model", "train", "mlflow", seed=True),
        checkpoint=f"{OUT}/checkpoints/{{fold}}.pt",
        mlflow_run=f"{OUT}/mlflow/{{fold}}.json",
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
        "../../envs/fau.yaml"
    script:
        "../scripts/train.py"
