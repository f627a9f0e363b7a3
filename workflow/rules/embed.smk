# One job per (dataset, model): last-hidden-layer embeddings, mean-pooled, in the model's own
# environment. Structures the model cannot take are kept as invalid rows with their reason.


rule embed:
    input:
        unpack(embedding_inputs),
    output:
        EMBEDDING,
    params:
        python=model_python,
        weights=weights_arg,
        batch=batch_arg,
        options=options_arg,
        device=DEVICE,
    log:
        f"{LOGS}/embed/{{dataset}}/{{model}}.log",
    benchmark:
        f"{BENCHMARKS}/embed/{{dataset}}/{{model}}.tsv"
    conda:
        lambda wc: env_file(family_of(wc.model))
    threads: 2
    resources:
        # a retried job (profiles/slurm: retries) gets more memory and time, and resumes
        # from the shards the failed attempt finished
        mem_mb=lambda wc, attempt: 16000 * attempt,
        runtime=lambda wc, attempt: 240 * attempt,
        gpu=1 if DEVICE == "cuda" else 0,
    shell:
        "{RUN} HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 {params.python} -m matteralign embed"
        " {wildcards.model} --structures {input.structures:q} --out {output:q}"
        " --device {params.device} {params.weights} {params.batch}"
        " {params.options} > {log:q} 2>&1"
