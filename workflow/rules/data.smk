# Deterministic subsample of each dataset, in every modality, into one structures file.
# The job first checks that the subsample can feed the metrics (k + 2 rows valid in every
# model, k + 2 atoms for the atom-level study) before any embedding job. Those checks are not
# params: changing k or the models must not prepare the dataset again (and so re-embed it).
PREPARE_CHECKS = shlex.quote(json.dumps(prepare_checks(config), sort_keys=True))


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
        " --seed {params.seed} --options {params.options} --check {PREPARE_CHECKS}"
        " --out {output.structures:q}"
        " > {log:q} 2>&1"
