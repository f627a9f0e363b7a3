# One job per (dataset, model): last-hidden-layer embeddings, mean-pooled, in the model's own
# environment. Structures the model cannot take are kept as invalid rows with their reason.


rule embed:
    input:
        unpack(embedding_inputs),
    output:
        embedding=EMBEDDING,
    params:
        python=model_python,
        weights=weights_arg,
        batch=batch_arg,
        options=options_arg,
        atoms=atoms_arg,
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
        " {wildcards.model} --structures {input.structures:q} --out {output.embedding:q}"
        " --device {params.device} {params.weights} {params.batch}"
        " {params.options} {params.atoms} > {log:q} 2>&1"


# The atom-level study's potentials: the same job, whose forward passes also give each atom's
# features before pooling (rule embed's `atoms` parameter adds --atoms-out).
use rule embed as embed_with_atoms with:
    output:
        embedding=EMBEDDING,
        atoms=ATOM_EMBEDDING,
    wildcard_constraints:
        dataset=alternatives(ATOM_GRID),
        model=alternatives({m for models in ATOM_GRID.values() for m in models}),


ruleorder: embed_with_atoms > embed
