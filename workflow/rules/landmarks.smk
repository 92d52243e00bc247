# Stage 1: the frame table (checkpoint: it decides the videos), then dlib
# 68-point landmarks per video / task.


checkpoint index:
    input:
        synth_manifest,
    output:
        frames=f"{OUT}/index/frames.csv",
        videos=f"{OUT}/index/videos.txt",
    params:
        cfg=sections(),
    log:
        f"{OUT}/logs/index.log",
    benchmark:
        f"{OUT}/benchmarks/index.tsv"
    resources:
        mem_mb=CFG.resources.prep_mem_mb,
        runtime=CFG.resources.prep_runtime,
    conda:
        "../../envs/fau.yaml"
    script:
        "../scripts/index.py"


rule landmarks:
    input:
        frames=f"{OUT}/index/frames.csv",
    output:
        landmarks=f"{OUT}/landmarks/{{video}}.csv",
    params:
        cfg=sections("landmarks"),
    log:
        f"{OUT}/logs/landmarks/{{video}}.log",
    benchmark:
        f"{OUT}/benchmarks/landmarks/{{video}}.tsv"
    resources:
        mem_mb=CFG.resources.prep_mem_mb,
        runtime=CFG.resources.prep_runtime,
    conda:
        "../../envs/fau.yaml"
    script:
        "../scripts/landmarks.py"
