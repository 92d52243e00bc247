# Stage 0: the embedded synthetic dataset, written in the official layout of
# dataset.kind at dataset.root (only when synth.enabled).


rule synth:
    output:
        manifest=f"{CFG.dataset.root}/.synth/manifest.json",
    params:
        cfg=sections("synth", results=False),  # the dataset, wherever the results go
    log:
        f"{RESULTS}/{DATASET}/logs/synth.log",
    benchmark:
        f"{RESULTS}/{DATASET}/benchmarks/synth.tsv"
    resources:
        mem_mb=CFG.resources.prep_mem_mb,
        runtime=CFG.resources.prep_runtime,
    conda:
        "../../envs/fau.yaml"
    script:
        "../scripts/synth.py"
