# The ladder (docs/ladder.md): ANI potentials the study trains itself on QM9, one factor at a
# time (training-set size, seed), so convergence and the noise ceiling are tested under
# control. Its QM9 sets exclude the study's structures; each rung trains in the ani family's
# environment with torchani's own NeuroChem trainer, then embeds like any other model (its
# rung folder is the embedding job's checkpoint, see embedding_inputs).
LADDER = config["ladder"]
#: what a rung's training reads from the config (sizes and seeds are in the rung's name):
#: changing the ladder's list of sizes retrains no existing rung
LADDER_TRAINING = shlex.quote(json.dumps({"training": LADDER["training"],
                                          "hidden": LADDER["hidden"]}, sort_keys=True))
LADDER_SPLIT = shlex.quote(json.dumps(
    {k: LADDER[k] for k in ("split_seed", "test", "validation", "sizes", "seed",
                            "replicate_sizes", "replicate_seeds", "held_out")}, sort_keys=True))
#: the held-out design's pairs (rung trained without the element, its twin), read against
#: ANI-1x when the grid has it
HELD_OUT_PAIRS = [(r.name, t.name) for r, t in held_out_pairs(LADDER)] if LADDER_RUNGS else []
HELD_OUT_REFERENCE = "ani-1x"
HELD_OUT_READY = bool(HELD_OUT_PAIRS) and HELD_OUT_REFERENCE in GRID.get("qm9", [])


rule ladder_sets:
    input:
        ids=pattern(IDS, dataset="qm9"),
    output:
        LADDER_SETS,
    params:
        split=LADDER_SPLIT,
    log:
        f"{LOGS}/ladder/sets.log",
    benchmark:
        f"{BENCHMARKS}/ladder/sets.tsv"
    conda:
        "../envs/study.yaml"
    threads: 1
    resources:
        mem_mb=4000,
        runtime=30,
    shell:
        "{RUN} {DRIVER_PYTHON} -m matteralign ladder-sets --ladder {params.split}"
        " --ids {input.ids:q} --out {output:q} --force > {log:q} 2>&1"


rule train_model:
    input:
        unpack(lambda wc: {"sets": LADDER_SETS,
                           **({"env": env_marker("ani")} if LOCAL_ENVS else {})}),
    output:
        directory(LADDER_RUNG),
    params:
        python=shlex.quote(str(ENV_PREFIX / "ani" / "bin" / "python")) if LOCAL_ENVS else "python",
        training=LADDER_TRAINING,
        device=DEVICE,
    # QM9's align waits for every rung: train them before the other datasets' embeddings
    priority: 30
    log:
        f"{LOGS}/ladder/{{rung}}.log",
    benchmark:
        f"{BENCHMARKS}/ladder/{{rung}}.tsv"
    wildcard_constraints:
        rung=alternatives(LADDER_RUNGS),
    conda:
        env_file("ani")
    threads: LADDER["threads"]
    resources:
        mem_mb=4000,
        runtime=120,
        gpu=1 if DEVICE == "cuda" else 0,
    shell:
        "{RUN} {params.python} -m matteralign train-rung {wildcards.rung} --sets {input.sets:q}"
        " --ladder {params.training} --out {output:q} --threads {threads}"
        " --device {params.device} --force"
        " > {log:q} 2>&1"


rule ladder_summary:
    input:
        rungs=expand(LADDER_RUNG, rung=list(LADDER_RUNGS)),
    output:
        LADDER_SUMMARY,
    log:
        f"{LOGS}/ladder/summary.log",
    conda:
        "../envs/study.yaml"
    threads: 1
    resources:
        mem_mb=2000,
        runtime=10,
    shell:
        "{RUN} {DRIVER_PYTHON} -m matteralign ladder-summary --rungs {input.rungs:q}"
        " --out {output:q} --force > {log:q} 2>&1"


rule plot_ladder:
    input:
        ladder=LADDER_SUMMARY,
        cknna=pattern(METRIC_FILE, dataset="qm9", metric="cknna"),
    output:
        report(
            LADDER_FIGURE,
            caption="../report/ladder.rst",
            category="Ladder",
            labels={"figure": "learning curves, alignment against test MAE"},
        ),
    log:
        f"{LOGS}/ladder/figure.log",
    conda:
        "../envs/study.yaml"
    threads: 1
    resources:
        mem_mb=2000,
        runtime=10,
    shell:
        "{RUN} {DRIVER_PYTHON} -m matteralign plot-ladder --ladder {input.ladder:q}"
        " --cknna {input.cknna:q} --out {output:q} --force > {log:q} 2>&1"


rule held_out:
    input:
        embeddings=expand(EMBEDDING, dataset="qm9",
                          model=sorted({m for p in HELD_OUT_PAIRS for m in p}
                                       | {HELD_OUT_REFERENCE})),
        rungs=expand(LADDER_RUNG, rung=sorted({m for p in HELD_OUT_PAIRS for m in p})),
        sets=LADDER_SETS,
    output:
        LADDER_HELD_OUT,
    params:
        k=config["metrics"]["k"],
        preprocessing=config["metrics"]["preprocessing"],
        bootstrap=max(config["metrics"]["bootstrap"], 20),
        seed=config["seed"],
        reference=HELD_OUT_REFERENCE,
    log:
        f"{LOGS}/ladder/held_out.log",
    conda:
        "../envs/study.yaml"
    threads: 1
    resources:
        mem_mb=4000,
        runtime=30,
    shell:
        "{RUN} {DRIVER_PYTHON} -m matteralign held-out --embeddings {input.embeddings:q}"
        " --rungs {input.rungs:q} --sets {input.sets:q} --reference {params.reference}"
        " --k {params.k} --preprocessing {params.preprocessing}"
        " --bootstrap {params.bootstrap} --seed {params.seed} --out {output:q} --force"
        " > {log:q} 2>&1"


rule plot_held_out:
    input:
        LADDER_HELD_OUT,
    output:
        report(
            LADDER_HELD_OUT_FIGURE,
            caption="../report/held_out.rst",
            category="Ladder",
            labels={"figure": "held-in vs held-out chemistry"},
        ),
    log:
        f"{LOGS}/ladder/held_out_figure.log",
    conda:
        "../envs/study.yaml"
    threads: 1
    resources:
        mem_mb=2000,
        runtime=10,
    shell:
        "{RUN} {DRIVER_PYTHON} -m matteralign plot-held-out --held-out {input:q}"
        " --out {output:q} --force > {log:q} 2>&1"


def ladder_targets():
    """The ladder's files, when it is enabled (the answers page reads them too)."""
    if not LADDER_RUNGS:
        return []
    return ([LADDER_SUMMARY] + ([LADDER_FIGURE] if "cknna" in METRICS else [])
            + ([LADDER_HELD_OUT, LADDER_HELD_OUT_FIGURE] if HELD_OUT_READY else []))
