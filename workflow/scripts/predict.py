# Rule predict_input: `fau predict` on one input (a video, an image or an image folder).
from fau.predict import predict_file
from fau.snakemake_job import job

with job(snakemake) as cfg:
    print(predict_file(cfg, snakemake.params.model, snakemake.input.media, snakemake.output.csv,
                       overlay_dir=snakemake.output.get("overlay"), threads=snakemake.threads))
