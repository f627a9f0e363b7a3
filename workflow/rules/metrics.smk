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
