# Local mode: one isolated environment per model family, built from the same conda env file
# that `--sdm conda` uses on clusters (its pip section, torch pinned), under envs.prefix.


rule build_env:
    input:
        env_file=str(BASE / "workflow" / "envs" / "{family}.yaml"),
    output:
        str(ENV_PREFIX / "{family}" / "matteralign-env.json"),
    params:
        prefix=lambda wc: shlex.quote(str(ENV_PREFIX / wc.family)),
    log:
        f"{RESULTS}/logs/envs/{{family}}.log",
    threads: 1
    resources:
        mem_mb=4000,
        runtime=60,
    shell:
        "{RUN} {DRIVER_PYTHON} -m matteralign env build {input.env_file}"
        " --prefix {params.prefix} > {log} 2>&1"
