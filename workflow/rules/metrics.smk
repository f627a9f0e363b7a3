# All metrics of one dataset in one job: `pairwise` computes every model's neighbour lists and
# distance statistics once and reuses them for every pair and metric.


rule align:
    input:
        embedding_files,
    output:
        expand(METRIC_FILE, metric=METRICS, allow_missing=True),
    params:
        outs=lambda wc, output: " ".join(
            shlex.quote(f"{m}={p}") for m, p in zip(METRICS, output)
        ),
        k=config["metrics"]["k"],
        preprocessing=config["metrics"]["preprocessing"],
        bootstrap=config["metrics"]["bootstrap"],
        permutations=config["metrics"]["permutations"],
        seed=config["seed"],
        device="" if DEVICE == "cpu" else f"--device {DEVICE}",
    # on the critical path (its inputs include the ladder's rungs): first when ready
    priority: 40
    log:
        f"{LOGS}/align/{{dataset}}.log",
    benchmark:
        f"{BENCHMARKS}/align/{{dataset}}.tsv"
    conda:
        "../envs/study.yaml"
    threads: 2
    resources:
        mem_mb=lambda wc, attempt: 16000 * attempt,
        runtime=lambda wc, attempt: 120 * attempt,
        gpu=1 if DEVICE == "cuda" else 0,
    # with plot_metric: on a cluster one job per dataset computes the metrics and draws them
    group:
        "metrics"
    shell:
        "{RUN} {DRIVER_PYTHON} -m matteralign align --embeddings {input:q} --out {params.outs}"
        " --k {params.k} --preprocessing {params.preprocessing}"
        " --bootstrap {params.bootstrap} --permutations {params.permutations}"
        " --seed {params.seed} {params.device} > {log:q} 2>&1"


# The atom-level study (datasets with `atoms: true`): the same metrics over every atom the
# potentials embedded, the bootstrap drawing structures with all their atoms.
rule align_atoms:
    input:
        atom_embedding_files,
    output:
        expand(ATOM_METRIC_FILE, metric=METRICS, allow_missing=True),
    params:
        outs=lambda wc, output: "--out " + " ".join(
            shlex.quote(f"{m}={p}") for m, p in zip(METRICS, output)
        ),
        k=config["metrics"]["k"],
        preprocessing=config["metrics"]["preprocessing"],
        bootstrap=ATOM_BOOTSTRAP,
        permutations=ATOM_PERMUTATIONS,
        seed=config["seed"],
        device="" if DEVICE == "cpu" else f"--device {DEVICE}",
    log:
        f"{LOGS}/align_atoms/{{dataset}}.log",
    benchmark:
        f"{BENCHMARKS}/align_atoms/{{dataset}}.tsv"
    conda:
        "../envs/study.yaml"
    threads: 2
    resources:
        mem_mb=lambda wc, attempt: 16000 * attempt,
        runtime=lambda wc, attempt: 240 * attempt,
        gpu=1 if DEVICE == "cuda" else 0,
    wildcard_constraints:
        dataset=alternatives(ATOM_GRID),
    shell:
        "{RUN} {DRIVER_PYTHON} -m matteralign align-atoms --atoms {input:q} {params.outs}"
        " --k {params.k} --preprocessing {params.preprocessing}"
        " --bootstrap {params.bootstrap} --permutations {params.permutations}"
        " --seed {params.seed} {params.device} > {log:q} 2>&1"


use rule align_atoms as align_atoms_by_element with:
    output:
        expand(ATOM_ELEMENT_FILE, name=METRICS, allow_missing=True),
    params:
        outs=lambda wc, output: "--by-element " + " ".join(
            shlex.quote(f"{m}={p}") for m, p in zip(METRICS, output)
        ),
        k=config["metrics"]["k"],
        preprocessing=config["metrics"]["preprocessing"],
        bootstrap=ATOM_BOOTSTRAP,
        permutations=ATOM_PERMUTATIONS,
        seed=config["seed"],
        device="" if DEVICE == "cpu" else f"--device {DEVICE}",
    log:
        f"{LOGS}/align_atoms/{{dataset}}.by_element.log",
    benchmark:
        f"{BENCHMARKS}/align_atoms/{{dataset}}.by_element.tsv"
