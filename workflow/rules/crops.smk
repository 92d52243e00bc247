# Stage 2: aligned crops + AU centre points per video, merged into the
# dataset's annotation table and JSON (docs/formats.md); subject-exclusive folds.


rule crops:
    input:
        frames=f"{OUT}/index/frames.csv",
        landmarks=f"{OUT}/landmarks/{{video}}.csv",
    output:
        table=f"{OUT}/crops/{{video}}.csv",
        images=directory(f"{OUT}/crops/{{video}}"),
    params:
        cfg=sections("crops"),
    log:
        f"{OUT}/logs/crops/{{video}}.log",
    benchmark:
        f"{OUT}/benchmarks/crops/{{video}}.tsv"
    resources:
        mem_mb=CFG.resources.prep_mem_mb,
        runtime=CFG.resources.prep_runtime,
    conda:
        "../../envs/fau.yaml"
    script:
        "../scripts/crops.py"


rule annotations:
    input:
        frames=f"{OUT}/index/frames.csv",
        tables=lambda wc: expand(f"{OUT}/crops/{{video}}.csv", dataset=wc.dataset, video=videos(wc)),
    output:
        csv=f"{OUT}/annotations.csv",
        json=f"{OUT}/annotations.json",
    params:
        cfg=sections("crops"),
    log:
        f"{OUT}/logs/annotations.log",
    benchmark:
        f"{OUT}/benchmarks/annotations.tsv"
    conda:
        "../../envs/fau.yaml"
    script:
        "../scripts/annotations.py"


rule folds:
    input:
        annotations=f"{OUT}/annotations.csv",
        manifest=synth_manifest,  # folds.group_by: person reads the synthetic people's sources
    output:
        folds=f"{OUT}/folds.json",
    params:
        cfg=sections("folds"),
    log:
        f"{OUT}/logs/folds.log",
    conda:
        "../../envs/fau.yaml"
    script:
        "../scripts/folds.py"
