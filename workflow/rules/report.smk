# The study summary: which weights and data every embedding came from, how many structures each
# model embedded, and how long it took. `snakemake --report results/report.html` gathers it
# with every figure (see workflow/report/).


rule summary:
    input:
        embeddings=lambda wc: [
            f"{RESULTS}/{d}/embeddings/{m}.h5" for d, models in GRID.items() for m in models
        ],
        metrics=lambda wc: [f"{RESULTS}/{d}/{m}.h5" for d in GRID for m in METRICS],
    output:
        report(
            f"{RESULTS}/summary.tsv",
            caption="../report/summary.rst",
            category="Provenance",
        ),
    log:
        f"{RESULTS}/logs/summary.log",
    conda:
        "../envs/study.yaml"
    threads: 1
    resources:
        mem_mb=2000,
        runtime=10,
    shell:
        "{RUN} {DRIVER_PYTHON} -m matteralign summary --embeddings {input.embeddings:q}"
        " --metrics {input.metrics:q} --out {output:q} > {log:q} 2>&1"
