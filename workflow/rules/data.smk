# Deterministic subsample of each dataset, in every modality, into one structures file.


rule prepare_dataset:
    output:
        structures=STRUCTURES,
        ids=IDS,
    params:
        n=lambda wc: config["datasets"][wc.dataset]["n"],
        seed=config["seed"],
        options=lambda wc: shlex.quote(
            json.dumps(config["datasets"][wc.dataset].get("options", {}), sort_keys=True)
        ),
    log:
        f"{LOGS}/prepare/{{dataset}}.log",
    benchmark:
        f"{BENCHMARKS}/prepare/{{dataset}}.tsv"
    conda:
        "../envs/study.yaml"
    threads: 1
    resources:
        mem_mb=8000,
        runtime=30,
    shell:
        "{RUN} {DRIVER_PYTHON} -m matteralign prepare {wildcards.dataset} --n {params.n}"
        " --seed {params.seed} --options {params.options} --out {output.structures:q}"
        " > {log:q} 2>&1"
