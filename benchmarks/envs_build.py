"""Build the family environments twice from one uv cache: cold (empty cache), then warm.

Prints the wall time of each pass, each family's build time and the disk both passes take
(`du` over the roots and the cache together, so hard-linked files count once). Run from the
repository root with the driver environment:

    PYTHONPATH=src .venv/bin/python benchmarks/envs_build.py --out /tmp/envbench --jobs 2
    ... --families chgnet sevenn   # a subset
    ... --compiled ~/.cache/uv-compiled-wheels   # start with the PyG wheels already compiled
"""

import argparse
import json
import shutil
import subprocess
import time
from pathlib import Path

from matteralign.envs import build_all, family_env_files


def du_gb(*paths: Path) -> float:
    out = subprocess.run(["du", "-scb", *map(str, paths)], check=True, capture_output=True,
                         text=True).stdout.splitlines()[-1]
    return int(out.split()[0]) / 1e9


def build_pass(families: list[str], root: Path, cache: Path, jobs: int) -> float:
    start = time.perf_counter()
    build_all("workflow/envs", root, jobs=jobs, log=lambda _: None, cache=cache, only=families)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True, help="scratch folder (emptied)")
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--families", nargs="*", help="default: every family")
    parser.add_argument("--compiled", type=Path,
                        help="a compiled-wheels folder to start from (the torch-scatter and "
                             "torch-sparse compiles then do not count)")
    args = parser.parse_args()
    files = [f for f in family_env_files("workflow/envs")
             if not args.families or f.stem in args.families]
    shutil.rmtree(args.out, ignore_errors=True)
    cache, cold, warm = args.out / "uv-cache", args.out / "cold", args.out / "warm"
    if args.compiled:
        shutil.copytree(args.compiled, args.out / "uv-cache-compiled-wheels")
    print(f"{len(files)} families, {args.jobs} at a time: {' '.join(f.stem for f in files)}")
    for name, root in (("cold cache", cold), ("warm cache", warm)):
        wall = build_pass([f.stem for f in files], root, cache, args.jobs)
        seconds = {f.stem: json.loads((root / f.stem / "matteralign-env.json").read_text())[
            "build_seconds"] for f in files}
        print(f"{name}: {wall:.0f} s wall; per family (s): "
              + ", ".join(f"{k} {v:.0f}" for k, v in seconds.items()), flush=True)
    print(f"disk: cold envs + cache {du_gb(cold, cache):.2f} GB; "
          f"the warm pass adds {du_gb(cold, cache, warm) - du_gb(cold, cache):.2f} GB "
          f"(cache alone {du_gb(cache):.2f} GB)")


if __name__ == "__main__":
    main()
