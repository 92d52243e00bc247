# `fau predict` as a workflow: one job per input matched by predict.input
# (videos, images or image folders), so a folder of recordings fans out on
# Slurm like training; outputs under <results>/predict/.
#   snakemake predict --configfile config/predict.yaml [--keep-going]
# predict.model null: this config's final model (trained if missing).
# The target `predict` is in the Snakefile; PREDICT_INPUTS, PREDICT_MODEL,
# predict_outputs: common.smk.


rule predict_input:
    input:
        media=lambda wc: PREDICT_INPUTS[wc.name],
        model=[] if is_mlflow_uri(PREDICT_MODEL) else [PREDICT_MODEL],
    output:
        csv=f"{PREDICT}/{{name}}.csv",
        **({"overlay": directory(f"{PREDICT}/overlays/{{name}}")} if CFG.predict.overlay else {}),
    wildcard_constraints:
        name="|".join(re.escape(n) for n in PREDICT_INPUTS) or "(?!)",
    params:
        cfg=sections("predict", "eval", "mlflow"),  # eval.flip_test: as evaluation
        model=lambda wc, input: input.model[0] if input.model else PREDICT_MODEL,  # a file, or an MLflow URI
    log:
        f"{PREDICT}/logs/{{name}}.log",
    benchmark:
        f"{PREDICT}/benchmarks/{{name}}.tsv"
    threads: CFG.resources.train_threads
    resources:
        mem_mb=CFG.resources.train_mem_mb,
        runtime=CFG.resources.train_runtime,
        **gpu_resources(),
    conda:
        "../../envs/fau.yaml"
    script:
        "../scripts/predict.py"
