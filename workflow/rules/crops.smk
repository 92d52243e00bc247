# Stage 2: aligned crops + AU centre points per video, merged into the
# dataset's annotation JSON (seed format) and table; subject-exclusive folds.


rule crops:
    input:
        frames=f"{OUT}/index/frames.csv",
        landmarks=f"{OUT}/landmarks/{{video}}.csv",
    output:
        table=f"{OUT}/crops/{{video}}.csv",
        images=directory(f"{OUT}/crops/{{video}}"),
    params:
        cfg=config_json("crops"),
    log:
        f"{OUT}/logs/crops/{{video}}.log",
    benchmark:
        f"{OUT}/benchmarks/crops/{{video}}.tsv"
    resources:
        mem_mb=CFG.resources.prep_mem_mb,
        runtime=CFG.resources.prep_runtime,
    conda:
        "../../envs/data.yaml"
    shell:
        "fau crops --config-json {params.cfg} --video {wildcards.video} 2> {log}"


rule annotations:
    input:
        tables=lambda wc: expand(f"{OUT}/crops/{{video}}.csv", dataset=wc.dataset, video=videos(wc)),
    output:
        csv=f"{OUT}/annotations.csv",
        json=f"{OUT}/annotations.json",
    params:
        cfg=config_json("crops"),
    log:
        f"{OUT}/logs/annotations.log",
    benchmark:
        f"{OUT}/benchmarks/annotations.tsv"
    conda:
        "../../envs/data.yaml"
    shell:
        "fau annotations --config-json {params.cfg} 2> {log}"


rule folds:
    input:
        f"{OUT}/annotations.csv",
    output:
        f"{OUT}/folds.json",
    params:
        cfg=config_json("folds"),
    log:
        f"{OUT}/logs/folds.log",
    conda:
        "../../envs/data.yaml"
    shell:
        "fau folds --config-json {params.cfg} 2> {log}"
