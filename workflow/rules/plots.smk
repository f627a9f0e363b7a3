# One figure per metric file, registered in the report with a caption.


rule plot_metric:
    input:
        f"{RESULTS}/{{dataset}}/{{metric}}.h5",
    output:
        report(
            f"{RESULTS}/{{dataset}}/figures/{{metric}}.png",
            caption="../report/metric.rst",
            category="Alignment",
            subcategory="{dataset}",
            labels={"dataset": "{dataset}", "metric": "{metric}"},
        ),
    params:
        cluster="" if config["plots"]["cluster"] else "--no-cluster",
    log:
        f"{RESULTS}/logs/plots/{{dataset}}/{{metric}}.log",
    conda:
        "../envs/study.yaml"
    threads: 1
    resources:
        mem_mb=2000,
        runtime=10,
    group:
        "metrics"
    shell:
        "{RUN} {DRIVER_PYTHON} -m matteralign plot {input:q} --out {output:q} {params.cluster}"
        " > {log:q} 2>&1"
