# Rule report_final: report.md plus the registered final model's section.
from fau import final
from fau.snakemake_job import job

with job(snakemake):
    print(final.final_report(snakemake.input.report, snakemake.input.registered, snakemake.output.report,
                             history_csv=snakemake.input.history))
