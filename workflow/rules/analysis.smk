# The study's answers: what the embeddings and metric files say about the paper's claims.
# Per dataset: energy and probe performance, linear-probe transfer, convergence of alignment
# with accuracy, ID/OOD regimes, property maps and the model tree; then one answers page over
# every dataset (results/answers.html, with answers.json), registered in the report.
# (the analysis keys were checked with the rest of the config in common.smk's check_config)
from matteralign.datasets import registered_datasets

ANALYSIS = config["analysis"]
DATASET_KINDS = {d: registered_datasets()[d].kind for d in config["datasets"]}
# convergence, regimes and the tree read CKNNA; regimes also the intrinsic dimension and the
# information imbalance: without them those analyses are skipped (the answers page says so)
HAS_CKNNA = "cknna" in METRICS
HAS_REGIME_METRICS = {"cknna", "intrinsic_dim", "information_imbalance"} <= set(METRICS)


wildcard_constraints:
    property="[A-Za-z0-9_]+",


def analysis_file(name):
    return f"{RESULTS}/{{dataset}}/{name}"


def map_properties(dataset):
    return list(ANALYSIS["map_properties"].get(dataset, []))


def reference_arg(wildcards):
    """--reference when the configured reference model is in this dataset's grid."""
    reference = ANALYSIS["reference"]
    if reference and reference in GRID[wildcards.dataset]:
        return f"--reference {shlex.quote(reference)}"
    return ""


def transfer_property_arg(wildcards):
    prop = ANALYSIS["transfer_property"].get(wildcards.dataset)
    return f"--property {shlex.quote(prop)}" if prop else ""


def domains_arg(wildcards):
    domains = ANALYSIS["domains"]
    return f"--domains {shlex.quote(json.dumps(domains, sort_keys=True))}" if domains else ""


def dataset_figures(dataset):
    """Every figure the answers page shows for one dataset."""
    figures = [f"{RESULTS}/{dataset}/figures/{name}.png" for name in ("probes", "probe_transfer")]
    if HAS_CKNNA:
        figures += [f"{RESULTS}/{dataset}/figures/{name}.png" for name in ("convergence", "tree")]
    if HAS_REGIME_METRICS:
        figures += [f"{RESULTS}/{dataset}/figures/{name}.png"
                    for name in ("intrinsic_dim_regimes", "ii_plane")]
    figures += [f"{RESULTS}/{dataset}/figures/maps_{p}.png" for p in map_properties(dataset)]
    return figures


def dataset_analysis_files(dataset):
    files = [f"{RESULTS}/{dataset}/{name}.h5" for name in ("performance", "probes", "transfer")]
    if HAS_CKNNA:
        files.append(f"{RESULTS}/{dataset}/convergence.h5")
    if HAS_REGIME_METRICS:
        files.append(f"{RESULTS}/{dataset}/regimes.h5")
    return files


def answers_inputs(wildcards):
    inputs = []
    for dataset in GRID:
        inputs += dataset_analysis_files(dataset) + dataset_figures(dataset)
        inputs += [f"{RESULTS}/{dataset}/{metric}.h5" for metric in METRICS]
        inputs += [f"{RESULTS}/{dataset}/figures/{metric}.png" for metric in METRICS]
    return inputs


def answers_config():
    """The parts of the study config the answers page reads, as one JSON argument."""
    keys = ("results", "seed", "datasets", "models", "metrics", "analysis")
    return shlex.quote(json.dumps({k: config[k] for k in keys}, sort_keys=True))


def analysis_targets():
    if not ANALYSIS["enabled"]:
        return []
    targets = [f"{RESULTS}/answers.html", f"{RESULTS}/answers.json"]
    for dataset in GRID:
        targets += dataset_analysis_files(dataset) + dataset_figures(dataset)
    return targets


rule performance:
    input:
        structures=analysis_file("structures.h5"),
        embeddings=embedding_files,
    output:
        analysis_file("performance.h5"),
    params:
        seed=config["seed"],
    log:
        f"{RESULTS}/logs/analysis/{{dataset}}/performance.log",
    benchmark:
        f"{RESULTS}/benchmarks/analysis/{{dataset}}/performance.tsv"
    conda:
        "../envs/study.yaml"
    threads: 1
    resources:
        mem_mb=4000,
        runtime=30,
    shell:
        "{RUN} {DRIVER_PYTHON} -m matteralign performance --structures {input.structures:q}"
        " --embeddings {input.embeddings:q} --out {output:q} --seed {params.seed}"
        " > {log:q} 2>&1"


rule probes:
    input:
        structures=analysis_file("structures.h5"),
        embeddings=embedding_files,
    output:
        data=analysis_file("probes.h5"),
        figure=report(
            analysis_file("figures/probes.png"),
            caption="../report/probes.rst",
            category="Answers",
            subcategory="{dataset}",
            labels={"dataset": "{dataset}", "figure": "linear probes"},
        ),
    params:
        seed=config["seed"],
    log:
        f"{RESULTS}/logs/analysis/{{dataset}}/probes.log",
    benchmark:
        f"{RESULTS}/benchmarks/analysis/{{dataset}}/probes.tsv"
    conda:
        "../envs/study.yaml"
    threads: 1
    resources:
        mem_mb=4000,
        runtime=30,
    shell:
        "{RUN} {DRIVER_PYTHON} -m matteralign probes --structures {input.structures:q}"
        " --embeddings {input.embeddings:q} --out {output.data:q}"
        " --figure {output.figure:q} --seed {params.seed} > {log:q} 2>&1"


rule transfer:
    input:
        structures=analysis_file("structures.h5"),
        embeddings=embedding_files,
    output:
        data=analysis_file("transfer.h5"),
        figure=report(
            analysis_file("figures/probe_transfer.png"),
            caption="../report/transfer.rst",
            category="Answers",
            subcategory="{dataset}",
            labels={"dataset": "{dataset}", "figure": "probe transfer"},
        ),
    params:
        prop=transfer_property_arg,
        seed=config["seed"],
    log:
        f"{RESULTS}/logs/analysis/{{dataset}}/transfer.log",
    benchmark:
        f"{RESULTS}/benchmarks/analysis/{{dataset}}/transfer.tsv"
    conda:
        "../envs/study.yaml"
    threads: 1
    resources:
        mem_mb=4000,
        runtime=30,
    shell:
        "{RUN} {DRIVER_PYTHON} -m matteralign transfer --structures {input.structures:q}"
        " --embeddings {input.embeddings:q} --out {output.data:q}"
        " --figure {output.figure:q} {params.prop} --seed {params.seed} > {log:q} 2>&1"


rule convergence:
    input:
        performance=analysis_file("performance.h5"),
        cknna=analysis_file("cknna.h5"),
    output:
        data=analysis_file("convergence.h5"),
        figure=report(
            analysis_file("figures/convergence.png"),
            caption="../report/convergence.rst",
            category="Answers",
            subcategory="{dataset}",
            labels={"dataset": "{dataset}", "figure": "convergence"},
        ),
    params:
        reference=reference_arg,
        seed=config["seed"],
    log:
        f"{RESULTS}/logs/analysis/{{dataset}}/convergence.log",
    benchmark:
        f"{RESULTS}/benchmarks/analysis/{{dataset}}/convergence.tsv"
    conda:
        "../envs/study.yaml"
    threads: 1
    resources:
        mem_mb=2000,
        runtime=10,
    shell:
        "{RUN} {DRIVER_PYTHON} -m matteralign convergence --performance {input.performance:q}"
        " --metric-file {input.cknna:q} --out {output.data:q} --figure {output.figure:q}"
        " {params.reference} --seed {params.seed} > {log:q} 2>&1"


rule regimes:
    input:
        intrinsic_dim=analysis_file("intrinsic_dim.h5"),
        ii=analysis_file("information_imbalance.h5"),
        cknna=analysis_file("cknna.h5"),
    output:
        data=analysis_file("regimes.h5"),
        # not figures/intrinsic_dim.png: that is plot_metric's bar chart of the metric file
        figure_id=report(
            analysis_file("figures/intrinsic_dim_regimes.png"),
            caption="../report/regimes.rst",
            category="Answers",
            subcategory="{dataset}",
            labels={"dataset": "{dataset}", "figure": "intrinsic dimension by regime"},
        ),
        figure_ii=report(
            analysis_file("figures/ii_plane.png"),
            caption="../report/ii_plane.rst",
            category="Answers",
            subcategory="{dataset}",
            labels={"dataset": "{dataset}", "figure": "information-imbalance plane"},
        ),
    params:
        kind=lambda wc: DATASET_KINDS[wc.dataset],
        domains=domains_arg,
    log:
        f"{RESULTS}/logs/analysis/{{dataset}}/regimes.log",
    benchmark:
        f"{RESULTS}/benchmarks/analysis/{{dataset}}/regimes.tsv"
    conda:
        "../envs/study.yaml"
    threads: 1
    resources:
        mem_mb=2000,
        runtime=10,
    shell:
        "{RUN} {DRIVER_PYTHON} -m matteralign regimes --dataset-kind {params.kind:q}"
        " --intrinsic-dim {input.intrinsic_dim:q} --ii {input.ii:q}"
        " --metric-file {input.cknna:q} --out {output.data:q}"
        " --figure-id {output.figure_id:q} --figure-ii {output.figure_ii:q}"
        " {params.domains} > {log:q} 2>&1"


rule maps:
    input:
        structures=analysis_file("structures.h5"),
        embeddings=embedding_files,
    output:
        report(
            analysis_file("figures/maps_{property}.png"),
            caption="../report/maps.rst",
            category="Answers",
            subcategory="{dataset}",
            labels={"dataset": "{dataset}", "figure": "maps by {property}"},
        ),
    params:
        preprocessing=config["metrics"]["preprocessing"],
        seed=config["seed"],
    log:
        f"{RESULTS}/logs/analysis/{{dataset}}/maps_{{property}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/analysis/{{dataset}}/maps_{{property}}.tsv"
    conda:
        "../envs/study.yaml"
    threads: 1
    resources:
        mem_mb=4000,
        runtime=20,
    shell:
        "{RUN} {DRIVER_PYTHON} -m matteralign maps --structures {input.structures:q}"
        " --embeddings {input.embeddings:q} --property {wildcards.property:q}"
        " --out {output:q} --preprocessing {params.preprocessing:q} --seed {params.seed}"
        " > {log:q} 2>&1"


rule tree:
    input:
        analysis_file("cknna.h5"),
    output:
        report(
            analysis_file("figures/tree.png"),
            caption="../report/tree.rst",
            category="Answers",
            subcategory="{dataset}",
            labels={"dataset": "{dataset}", "figure": "model tree"},
        ),
    log:
        f"{RESULTS}/logs/analysis/{{dataset}}/tree.log",
    benchmark:
        f"{RESULTS}/benchmarks/analysis/{{dataset}}/tree.tsv"
    conda:
        "../envs/study.yaml"
    threads: 1
    resources:
        mem_mb=2000,
        runtime=10,
    shell:
        "{RUN} {DRIVER_PYTHON} -m matteralign tree --metric-file {input:q} --out {output:q}"
        " > {log:q} 2>&1"


rule answers:
    input:
        answers_inputs,
    output:
        html=report(
            f"{RESULTS}/answers.html",
            caption="../report/answers.rst",
            category="Answers",
            subcategory="all datasets",
            labels={"page": "the paper's claims, tested"},
        ),
        json=f"{RESULTS}/answers.json",
    params:
        config=answers_config(),
        results=RESULTS,
    log:
        f"{RESULTS}/logs/analysis/answers.log",
    benchmark:
        f"{RESULTS}/benchmarks/analysis/answers.tsv"
    conda:
        "../envs/study.yaml"
    threads: 1
    resources:
        mem_mb=2000,
        runtime=10,
    shell:
        "{RUN} {DRIVER_PYTHON} -m matteralign answers --results {params.results:q}"
        " --config {params.config} --out {output.html:q} --json {output.json:q}"
        " > {log:q} 2>&1"
