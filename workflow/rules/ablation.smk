# The ablation: every variant of `ablation.variants` (overrides of the model
# and train sections; default: the network without SCC) trained, evaluated
# and pooled on the same folds with the same seed as the main model, each
# fold its own MLflow child run (`<variant>/<fold>`); then a table and a
# figure, and the report with an Ablation section (report_ablation.md,
# beside report.md).
#   snakemake ablation


rule train_variant:
    input:
        annotations=f"{OUT}/annotations.csv",
        folds=f"{OUT}/folds.json",
        parent=f"{OUT}/mlflow/parent.json",
    output:
        model=f"{VOUT}/models/{{fold}}.pt",
        history=f"{VOUT}/history/{{fold}}.csv",
    params:
        cfg=variant_sections("landmarks", "crops", "model", "train", "mlflow", seed=True),
        checkpoint=f"{VOUT}/checkpoints/{{fold}}.pt",
        mlflow_run=f"{VOUT}/mlflow/{{fold}}.json",
        variant="{variant}",
    log:
        f"{OUT}/logs/ablation/{{variant}}/train/{{fold}}.log",
    benchmark:
        f"{OUT}/benchmarks/ablation/{{variant}}/train/{{fold}}.tsv"
    threads: CFG.resources.train_threads
    resources:
        mem_mb=CFG.resources.train_mem_mb,
        runtime=CFG.resources.train_runtime,
        **gpu_resources(),
    conda:
        "../../envs/fau.yaml"
    script:
        "../scripts/train.py"


rule evaluate_variant:
    input:
        model=f"{VOUT}/models/{{fold}}.pt",
        annotations=f"{OUT}/annotations.csv",
        folds=f"{OUT}/folds.json",
        parent=f"{OUT}/mlflow/parent.json",
    output:
        predictions=f"{VOUT}/predictions/{{fold}}.csv",
        metrics=f"{VOUT}/metrics/{{fold}}.csv",
    params:
        cfg=variant_sections("model", "eval", "mlflow"),
        mlflow_run=f"{VOUT}/mlflow/{{fold}}.json",
        variant="{variant}",
    log:
        f"{OUT}/logs/ablation/{{variant}}/evaluate/{{fold}}.log",
    threads: CFG.resources.train_threads
    resources:
        mem_mb=CFG.resources.train_mem_mb,
        runtime=CFG.resources.train_runtime,
        **gpu_resources(),
    conda:
        "../../envs/fau.yaml"
    script:
        "../scripts/evaluate.py"


rule pool_variant:
    input:
        predictions=expand(f"{VOUT}/predictions/{{fold}}.csv", fold=FOLDS, allow_missing=True),
    output:
        csv=f"{VOUT}/metrics.csv",
        json=f"{VOUT}/metrics.json",
        folds=f"{VOUT}/metrics_folds.csv",
    params:
        cfg=sections("folds"),
        folds=FOLDS,
    log:
        f"{OUT}/logs/ablation/{{variant}}/pool.log",
    conda:
        "../../envs/fau.yaml"
    script:
        "../scripts/pool.py"


rule ablation_table:
    input:
        main=f"{OUT}/metrics.json",
        variants=expand(f"{OUT}/ablation/{{variant}}/metrics.json", variant=VARIANTS, allow_missing=True),
    output:
        csv=f"{OUT}/ablation/ablation.csv",
        figure=f"{OUT}/ablation/ablation.png",
    params:
        cfg=sections("ablation"),
        variants=VARIANTS,
    log:
        f"{OUT}/logs/ablation/table.log",
    conda:
        "../../envs/fau.yaml"
    script:
        "../scripts/ablation_table.py"


rule report_ablation:
    input:
        report=f"{OUT}/report.md",
        table=f"{OUT}/ablation/ablation.csv",
        figure=f"{OUT}/ablation/ablation.png",
        parent=f"{OUT}/mlflow/parent.json",
    output:
        report=f"{OUT}/report_ablation.md",
    params:
        cfg=sections("ablation", "mlflow"),
    log:
        f"{OUT}/logs/ablation/report.log",
    conda:
        "../../envs/fau.yaml"
    script:
        "../scripts/report_ablation.py"

