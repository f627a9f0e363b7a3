# The study summary: which weights and data every embedding came from, how many structures each
# model embedded, and how long it took. `snakemake --report results/report.html` gathers it
# with every figure (see workflow/report/).


rule summary:
    input:
        embeddings=[
            path for d, models in GRID.items() for path in expand(EMBEDDING, dataset=d, model=models)
        ],
        metrics=expand(METRIC_FILE, dataset=list(GRID), metric=METRICS),
    output:
        report(
            SUMMARY,
            caption="../report/summary.rst",
            category="Provenance",
        ),
    log:
        f"{LOGS}/summary.log",
    conda:
        "../envs/study.yaml"
    threads: 1
    resources:
        mem_mb=2000,
        runtime=10,
    shell:
        "{RUN} {DRIVER_PYTHON} -m matteralign summary --embeddings {input.embeddings:q}"
        " --metrics {input.metrics:q} --out {output:q} > {log:q} 2>&1"
