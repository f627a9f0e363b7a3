# The study's answers: what the embeddings and metric files say about the paper's claims.
# Per dataset: energy and probe performance, linear-probe transfer, convergence of alignment
# with accuracy, ID/OOD regimes, property maps and the model tree; then one answers page over
# every dataset (results/answers.html, with answers.json), registered in the report.
# (the analysis keys were checked with the rest of the config in common.smk's check_config)
from matteralign.datasets import registered_datasets

ANSWERS_PAGE = f"{RESULTS}/answers.html"
ANSWERS_JSON = f"{RESULTS}/answers.json"

ANALYSIS = config["analysis"]
DATASET_KINDS = {d: registered_datasets()[d].kind for d in config["datasets"]}
# convergence, regimes and the tree read CKNNA; regimes also the intrinsic dimension and the
# information imbalance: without them those analyses are skipped (the answers page says so)
HAS_CKNNA = "cknna" in METRICS
HAS_REGIME_METRICS = {"cknna", "intrinsic_dim", "information_imbalance"} <= set(METRICS)


wildcard_constraints:
    property="[A-Za-z0-9_]+",


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
    names = ["probes", "probe_transfer"]
    if HAS_CKNNA:
        names += ["convergence", "tree"]
    if HAS_REGIME_METRICS:
        names += ["intrinsic_dim_regimes", "ii_plane"]
    names += [f"maps_{p}" for p in map_properties(dataset)]
    return expand(FIGURE, dataset=dataset, name=names)


def dataset_analysis_files(dataset):
    names = ["performance", "probes", "transfer"]
    if HAS_CKNNA:
        names.append("convergence")
    if HAS_REGIME_METRICS:
        names.append("regimes")
    return expand(DATASET_FILE, dataset=dataset, name=names)


def answers_inputs(wildcards):
    inputs = []
    for dataset in GRID:
        inputs += dataset_analysis_files(dataset) + dataset_figures(dataset)
        inputs += expand(METRIC_FILE, dataset=dataset, metric=METRICS)
        inputs += expand(METRIC_FIGURE, dataset=dataset, metric=METRICS)
    return inputs + ladder_targets()


def answers_config():
    """The parts of the study config the answers page reads, as one JSON argument."""
    keys = ("results", "seed", "datasets", "models", "metrics", "analysis", "ladder")
    return shlex.quote(json.dumps({k: config[k] for k in keys}, sort_keys=True))


def analysis_targets():
    if not ANALYSIS["enabled"]:
        return []
    targets = [ANSWERS_PAGE, ANSWERS_JSON]
    for dataset in GRID:
        targets += dataset_analysis_files(dataset) + dataset_figures(dataset)
    return targets


rule performance:
    input:
        structures=STRUCTURES,
        embeddings=embedding_files,
    output:
        pattern(DATASET_FILE, name="performance"),
    params:
        seed=config["seed"],
    log:
        f"{LOGS}/analysis/{{dataset}}/performance.log",
    benchmark:
        f"{BENCHMARKS}/analysis/{{dataset}}/performance.tsv"
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
        structures=STRUCTURES,
        embeddings=embedding_files,
    output:
        data=pattern(DATASET_FILE, name="probes"),
        figure=report(
            pattern(FIGURE, name="probes"),
            caption="../report/probes.rst",
            category="Answers",
            subcategory="{dataset}",
            labels={"dataset": "{dataset}", "figure": "linear probes"},
        ),
    params:
        seed=config["seed"],
    log:
        f"{LOGS}/analysis/{{dataset}}/probes.log",
    benchmark:
        f"{BENCHMARKS}/analysis/{{dataset}}/probes.tsv"
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
        structures=STRUCTURES,
        embeddings=pretrained_embedding_files,
    output:
        data=pattern(DATASET_FILE, name="transfer"),
        figure=report(
            pattern(FIGURE, name="probe_transfer"),
            caption="../report/transfer.rst",
            category="Answers",
            subcategory="{dataset}",
            labels={"dataset": "{dataset}", "figure": "probe transfer"},
        ),
    params:
        prop=transfer_property_arg,
        seed=config["seed"],
    # the longest analysis job: started as soon as its embeddings exist, beside the ladder's
    # training, rather than last on the critical path
    priority: 50
    log:
        f"{LOGS}/analysis/{{dataset}}/transfer.log",
    benchmark:
        f"{BENCHMARKS}/analysis/{{dataset}}/transfer.tsv"
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
        performance=pattern(DATASET_FILE, name="performance"),
        cknna=pattern(METRIC_FILE, metric="cknna"),
    output:
        data=pattern(DATASET_FILE, name="convergence"),
        figure=report(
            pattern(FIGURE, name="convergence"),
            caption="../report/convergence.rst",
            category="Answers",
            subcategory="{dataset}",
            labels={"dataset": "{dataset}", "figure": "convergence"},
        ),
    params:
        reference=reference_arg,
        seed=config["seed"],
    log:
        f"{LOGS}/analysis/{{dataset}}/convergence.log",
    benchmark:
        f"{BENCHMARKS}/analysis/{{dataset}}/convergence.tsv"
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
        intrinsic_dim=pattern(METRIC_FILE, metric="intrinsic_dim"),
        ii=pattern(METRIC_FILE, metric="information_imbalance"),
        cknna=pattern(METRIC_FILE, metric="cknna"),
    output:
        data=pattern(DATASET_FILE, name="regimes"),
        # not figures/intrinsic_dim.png: that is plot_metric's bar chart of the metric file
        figure_id=report(
            pattern(FIGURE, name="intrinsic_dim_regimes"),
            caption="../report/regimes.rst",
            category="Answers",
            subcategory="{dataset}",
            labels={"dataset": "{dataset}", "figure": "intrinsic dimension by regime"},
        ),
        figure_ii=report(
            pattern(FIGURE, name="ii_plane"),
            caption="../report/ii_plane.rst",
            category="Answers",
            subcategory="{dataset}",
            labels={"dataset": "{dataset}", "figure": "information-imbalance plane"},
        ),
    params:
        kind=lambda wc: DATASET_KINDS[wc.dataset],
        domains=domains_arg,
    log:
        f"{LOGS}/analysis/{{dataset}}/regimes.log",
    benchmark:
        f"{BENCHMARKS}/analysis/{{dataset}}/regimes.tsv"
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
        structures=STRUCTURES,
        embeddings=pretrained_embedding_files,
    output:
        report(
            pattern(FIGURE, name="maps_{property}"),
            caption="../report/maps.rst",
            category="Answers",
            subcategory="{dataset}",
            labels={"dataset": "{dataset}", "figure": "maps by {property}"},
        ),
    params:
        preprocessing=config["metrics"]["preprocessing"],
        seed=config["seed"],
        umap=(f"--umap-neighbors {config['plots']['umap']['n_neighbors']}"
              f" --umap-min-dist {config['plots']['umap']['min_dist']}"
              if config["plots"]["umap"]["enabled"] else "--no-umap"),
    log:
        f"{LOGS}/analysis/{{dataset}}/maps_{{property}}.log",
    benchmark:
        f"{BENCHMARKS}/analysis/{{dataset}}/maps_{{property}}.tsv"
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
        " {params.umap} > {log:q} 2>&1"


rule tree:
    input:
        unpack(lambda wc: {"cknna": pattern(METRIC_FILE, dataset=wc.dataset, metric="cknna"),
                           **({"knn": pattern(METRIC_FILE, dataset=wc.dataset,
                                              metric="mutual_knn")}
                              if "mutual_knn" in METRICS else {})}),
    output:
        report(
            pattern(FIGURE, name="tree"),
            caption="../report/tree.rst",
            category="Answers",
            subcategory="{dataset}",
            labels={"dataset": "{dataset}", "figure": "model tree"},
        ),
    params:
        knn=lambda wc, input: (f"--neighbourhood-file {shlex.quote(input.knn)}"
                               if "knn" in input.keys() else ""),
    log:
        f"{LOGS}/analysis/{{dataset}}/tree.log",
    benchmark:
        f"{BENCHMARKS}/analysis/{{dataset}}/tree.tsv"
    conda:
        "../envs/study.yaml"
    threads: 1
    resources:
        mem_mb=2000,
        runtime=10,
    shell:
        "{RUN} {DRIVER_PYTHON} -m matteralign tree --metric-file {input.cknna:q}"
        " {params.knn} --out {output:q} > {log:q} 2>&1"


rule answers:
    input:
        answers_inputs,
    output:
        html=report(
            ANSWERS_PAGE,
            caption="../report/answers.rst",
            category="Answers",
            subcategory="all datasets",
            labels={"page": "the paper's claims, tested"},
        ),
        json=ANSWERS_JSON,
    params:
        config=answers_config(),
        results=RESULTS,
    log:
        f"{LOGS}/analysis/answers.log",
    benchmark:
        f"{BENCHMARKS}/analysis/answers.tsv"
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
