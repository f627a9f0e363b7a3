# One figure per metric file, registered in the report with its caption from the metric table.
from matteralign.metrics import SPECS


rule plot_metric:
    input:
        METRIC_FILE,
    output:
        report(
            METRIC_FIGURE,
            caption="../report/metric.rst",
            category="Alignment",
            subcategory="{dataset}",
            labels={"dataset": "{dataset}", "metric": "{metric}"},
        ),
    params:
        cluster="" if config["plots"]["cluster"] else "--no-cluster",
        # read by the report's caption template (report/metric.rst)
        caption=lambda wc: SPECS[wc.metric].caption,
    log:
        f"{LOGS}/plots/{{dataset}}/{{metric}}.log",
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
