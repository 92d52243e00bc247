# The final model: after cross-validation, one model trained on all subjects
# with the same config, logged to MLflow as a model and registered in the
# Model Registry (final.registered_model), and the report with a section
# naming the registered version (report_final.md, beside report.md).
#   snakemake final          (target in the Snakefile; or final.enabled: true for the default target)
# Like training, the checkpoint and the MLflow run file are not outputs.


rule train_final:
    input:
        annotations=f"{OUT}/annotations.csv",
        parent=f"{OUT}/mlflow/parent.json",
    output:
        model=f"{OUT}/models/final.pt",
        history=f"{OUT}/history/final.csv",
    params:
        cfg=sections("landmarks", "crops", "model", "train", "mlflow", seed=True),
        checkpoint=f"{OUT}/checkpoints/final.pt",
        mlflow_run=f"{OUT}/mlflow/final.json",
    log:
        f"{OUT}/logs/train/final.log",
    benchmark:
        f"{OUT}/benchmarks/train/final.tsv"
    threads: CFG.resources.train_threads
    resources:
        mem_mb=CFG.resources.train_mem_mb,
        runtime=CFG.resources.train_runtime,
        **gpu_resources(),
    conda:
        "../../envs/fau.yaml"
    script:
        "../scripts/train_final.py"


rule register_final:
    input:
        model=f"{OUT}/models/final.pt",
        annotations=f"{OUT}/annotations.csv",
    output:
        registered=f"{OUT}/models/final.json",
    params:
        cfg=sections("model", "train", "eval", "mlflow", "final"),  # eval: the flip test travels with the model
        mlflow_run=f"{OUT}/mlflow/final.json",
    log:
        f"{OUT}/logs/register_final.log",
    conda:
        "../../envs/fau.yaml"
    script:
        "../scripts/register_final.py"


rule report_final:
    input:
        report=f"{OUT}/report.md",
        registered=f"{OUT}/models/final.json",
        history=f"{OUT}/history/final.csv",
    output:
        report=f"{OUT}/report_final.md",
    params:
        cfg=sections(),
    log:
        f"{OUT}/logs/report_final.log",
    conda:
        "../../envs/fau.yaml"
    script:
        "../scripts/report_final.py"
