# Stage 1: the frame table (checkpoint: it decides the videos), then dlib
# 68-point landmarks per video / task.


checkpoint index:
    input:
        synth_manifest,
    output:
        frames=f"{OUT}/index/frames.csv",
        videos=f"{OUT}/index/videos.txt",
    params:
        cfg=config_json(),
    log:
        f"{OUT}/logs/index.log",
    benchmark:
        f"{OUT}/benchmarks/index.tsv"
    resources:
        mem_mb=CFG.resources.prep_mem_mb,
        runtime=CFG.resources.prep_runtime,
    conda:
        "../../envs/data.yaml"
    shell:
        "fau index --config-json {params.cfg} 2> {log}"


rule landmarks:
    input:
        frames=f"{OUT}/index/frames.csv",
    output:
        f"{OUT}/landmarks/{{video}}.csv",
    params:
        cfg=config_json("landmarks"),
    log:
        f"{OUT}/logs/landmarks/{{video}}.log",
    benchmark:
        f"{OUT}/benchmarks/landmarks/{{video}}.tsv"
    resources:
        mem_mb=CFG.resources.prep_mem_mb,
        runtime=CFG.resources.prep_runtime,
    conda:
        "../../envs/data.yaml"
    shell:
        "fau landmarks --config-json {params.cfg} --video {wildcards.video} 2> {log}"
