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


use rule plot_metric as plot_atom_metric with:
    input:
        ATOM_METRIC_FILE,
    output:
        report(
            ATOM_METRIC_FIGURE,
            caption="../report/atom_metric.rst",
            category="Atom-level alignment",
            subcategory="{dataset}",
            labels={"dataset": "{dataset}", "metric": "{metric}"},
        ),
    log:
        f"{LOGS}/plots/{{dataset}}/atoms.{{metric}}.log",
    wildcard_constraints:
        dataset=alternatives(ATOM_GRID),


def level_inputs(wildcards):
    """The pooled and atom-level metric files of a dataset (and its by-element files)."""
    pairwise = [m for m in METRICS if not SPECS[m].per_model]
    inputs = {
        "pooled": expand(METRIC_FILE, dataset=wildcards.dataset, metric=pairwise),
        "atoms": expand(ATOM_METRIC_FILE, dataset=wildcards.dataset, metric=pairwise),
    }
    if config["datasets"][wildcards.dataset]["by_element"]:
        inputs["by_element"] = expand(ATOM_ELEMENT_FILE, dataset=wildcards.dataset,
                                      name=pairwise)
    return inputs


rule pooled_vs_atoms:
    input:
        unpack(level_inputs),
    output:
        figure=report(
            pattern(FIGURE, name="pooled_vs_atoms"),
            caption="../report/pooled_vs_atoms.rst",
            category="Atom-level alignment",
            subcategory="{dataset}",
            labels={"dataset": "{dataset}", "figure": "pooled vs atom level"},
        ),
        table=f"{RESULTS}/{{dataset}}/atoms/pooled_vs_atoms.tsv",
    params:
        by_element=lambda wc, input: "--by-element " + " ".join(
            shlex.quote(p) for p in input.get("by_element", [])
        ),
    log:
        f"{LOGS}/plots/{{dataset}}/pooled_vs_atoms.log",
    conda:
        "../envs/study.yaml"
    threads: 1
    resources:
        mem_mb=2000,
        runtime=10,
    wildcard_constraints:
        dataset=alternatives(ATOM_GRID),
    shell:
        "{RUN} {DRIVER_PYTHON} -m matteralign pooled-vs-atoms --pooled {input.pooled:q}"
        " --atoms {input.atoms:q} {params.by_element} --table {output.table:q}"
        " --figure {output.figure:q} > {log:q} 2>&1"
