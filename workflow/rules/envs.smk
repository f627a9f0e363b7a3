# Local mode: one isolated environment per model family, built from the same conda env file
# that `--sdm conda` uses on clusters (its pip section, torch pinned), under envs.prefix.


rule build_env:
    input:
        # a touched env file is not a changed one: only the content hash below (a params
        # rerun trigger) rebuilds the environment and so reruns the family's embeddings
        env_file=ancient(str(BASE / "workflow" / "envs" / "{family}.yaml")),
    output:
        str(ENV_PREFIX / "{family}" / "matteralign-env.json"),
    params:
        prefix=lambda wc: str(ENV_PREFIX / wc.family),
        env_sha256=env_sha256,
    log:
        f"{RESULTS}/logs/envs/{{family}}.log",
    threads: 1
    resources:
        mem_mb=4000,
        runtime=60,
    shell:
        "{RUN} {DRIVER_PYTHON} -m matteralign env build {input.env_file:q}"
        " --prefix {params.prefix:q} > {log:q} 2>&1"
