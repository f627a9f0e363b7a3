"""The cluster profile against a real SLURM: a single-node cluster on this machine.

`tests/slurm/cluster.sh start` installs Debian's slurm-wlm + munge if missing and starts them
(root needed). A small study of the default grid then goes through
`snakemake --profile profiles/slurm --profile profiles/slurm-local-test` (the overlay only adapts
the status command and polling to a cluster without accounting), with the model environments
of `.envs/` (MATTERALIGN_ENVS=local: no conda here). Checked: every job went through sbatch,
the outputs equal a local run's array for array, and a cancelled embedding job leaves no corrupt
output and its rerun resumes from the shards that had finished.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import h5py
import numpy as np
import pytest
import yaml

from tests.conftest import ROOT, family_python

pytestmark = pytest.mark.slurm

CLUSTER = ROOT / "tests" / "slurm" / "cluster.sh"
SLURM_DIR = Path(os.environ.get("MATTERALIGN_SLURM_DIR", "/tmp/matteralign-slurm"))
CTLD_LOG = SLURM_DIR / "log" / "slurmctld.log"
PROFILES = ["--profile", "profiles/slurm", "--profile", "profiles/slurm-local-test"]

MODELS = ["chgnet-0.3.0", "morgan-fp", "composition"]
FAMILIES = {"chgnet-0.3.0": "chgnet", "morgan-fp": "baseline", "composition": "baseline"}
METRICS = ["cknna", "mutual_knn", "cka", "dcor", "information_imbalance", "intrinsic_dim",
           "gfre", "lfre"]
# jobs of the small study, and the SLURM jobs they make: align and its 6 figures share one
# group job (group "metrics"); `all` is Snakemake's local target rule and runs no command
JOBS = {"prepare_dataset": 1, "embed": len(MODELS), "align": 1, "plot_metric": len(METRICS),
        "summary": 1}
SUBMISSIONS = 1 + len(MODELS) + 1 + 1


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("SLURM_", "SBATCH_", "SRUN_", "SNAKEMAKE_PROFILE"))}
    env.update(MATTERALIGN_ENVS="local", **extra)
    return env


def _command(config: Path, *args: str, timeout: int, slurm: bool = True) -> list[str]:
    # `timeout -k`: a snakemake that cannot see its jobs any more ignores SIGTERM
    executor = [*PROFILES, "--slurm-logdir", str(config.parent / "slurm_logs")] if slurm \
        else ["--cores", "2"]
    # targets first: --configfile takes several values and would swallow them
    return ["timeout", "-k", "10", str(timeout), sys.executable, "-m", "snakemake", *args,
            *executor, "--configfile", str(config)]


def snakemake(config: Path, *args: str, timeout: int = 300, slurm: bool = True,
              env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    proc = subprocess.run(_command(config, *args, timeout=timeout, slurm=slurm), cwd=ROOT,
                          env=env or _env(), capture_output=True, text=True)
    if proc.returncode in (124, 137):  # timed out: a killed snakemake leaves its lock behind
        subprocess.run([sys.executable, "-m", "snakemake", "--unlock", "--configfile",
                        str(config)], cwd=ROOT, capture_output=True, timeout=120)
    return proc


def write_config(path: Path, datasets: dict, models: list[str]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    config = {
        "results": str(path.parent / "results"),
        "seed": 3,
        "datasets": datasets,
        "models": {m: {} for m in models},
        "metrics": {"names": METRICS, "k": 5},
        # the executor's mechanics (sbatch, groups, requeue) are what is tested here; the
        # analysis rules run the same commands on any executor (tests/workflow)
        "analysis": {"enabled": False},
    }
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


def log_size() -> int:
    return CTLD_LOG.stat().st_size if CTLD_LOG.exists() else 0


def ctld_log_since(offset: int) -> str:
    with open(CTLD_LOG, errors="replace") as handle:
        handle.seek(offset)
        return handle.read()


def datasets_of(path: Path) -> dict[str, np.ndarray]:
    """Every dataset of an HDF5 file by name (attributes, with their timestamps, left out)."""
    out = {}
    with h5py.File(path, "r") as handle:
        handle.visititems(lambda name, obj: out.__setitem__(name, obj[()])
                          if isinstance(obj, h5py.Dataset) else None)
    return out


@pytest.fixture(scope="session")
def cluster():
    if not CLUSTER.exists():
        pytest.fail(f"{CLUSTER} missing")
    was_running = subprocess.run(["bash", str(CLUSTER), "status"],
                                 capture_output=True).returncode == 0
    try:
        proc = subprocess.run(["bash", str(CLUSTER), "start"], capture_output=True, text=True,
                              timeout=600)
        error = None if proc.returncode == 0 else proc.stderr.strip()[-2000:]
    except subprocess.TimeoutExpired:
        error = "cluster.sh start timed out"
    if error:
        message = f"no local SLURM cluster: {error}"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    for family in set(FAMILIES.values()):
        family_python(family)
    yield SLURM_DIR
    if not was_running:  # leave the machine as it was
        subprocess.run(["bash", str(CLUSTER), "stop"], capture_output=True, timeout=60)


@pytest.fixture(scope="module")
def slurm_study(cluster, tmp_path_factory):
    """The small study through SLURM, with what slurmctld logged meanwhile."""
    config = write_config(tmp_path_factory.mktemp("slurm") / "config.yaml",
                          {"qm9": {"n": 40}}, MODELS)
    offset = log_size()
    start = time.monotonic()
    proc = snakemake(config, timeout=600)
    wall = time.monotonic() - start
    assert proc.returncode == 0, proc.stderr[-6000:]
    print(f"\nSLURM run: {wall:.0f} s wall time")
    return config, proc.stderr, ctld_log_since(offset), wall


@pytest.fixture(scope="module")
def local_study(slurm_study, tmp_path_factory):
    """The same study without SLURM: the reference for the outputs."""
    config, *_ = slurm_study
    local = tmp_path_factory.mktemp("local") / "config.yaml"
    settings = yaml.safe_load(config.read_text())
    settings["results"] = str(local.parent / "results")
    local.write_text(yaml.safe_dump(settings, sort_keys=False))
    proc = snakemake(local, timeout=600, slurm=False)
    assert proc.returncode == 0, proc.stderr[-6000:]
    return local


def test_every_job_went_through_sbatch(slurm_study):
    config, log, ctld, wall = slurm_study
    submitted = re.findall(r"has been submitted with SLURM jobid (\d+)", log)
    assert len(submitted) == len(set(submitted)) == SUBMISSIONS, log[-4000:]
    # slurmctld accepted exactly those batch jobs, and each ended with exit status 0
    accepted = re.findall(r"_slurm_rpc_submit_batch_job: JobId=(\d+)", ctld)
    assert sorted(accepted, key=int) == sorted(submitted, key=int)
    for job in submitted:
        assert re.search(rf"_job_complete: JobId={job} WEXITSTATUS 0\b", ctld), job
    # every rule's jobs finished, and none of them ran on the submitting host
    finished = re.findall(r"Finished jobid: \S+ \(Rule: (\w+)\)", log)
    assert {rule: finished.count(rule) for rule in set(finished) - {"all"}} == JOBS
    assert re.findall(r"^localrule (\w+):", log, re.M) == ["all"]
    # align and the figures of the dataset were one group job (group "metrics")
    assert len(re.findall(r"submitted with SLURM jobid \d+ \(log: \S*group_metrics", log)) == 1
    # SLURM's own logs (kept by the test overlay) where the plugin writes them
    assert len(list((config.parent / "slurm_logs").rglob("*.log"))) == SUBMISSIONS
    print(f"\n{SUBMISSIONS} sbatch submissions for {sum(JOBS.values())} jobs in {wall:.0f} s")


def test_outputs_equal_a_local_run(slurm_study, local_study):
    config, *_ = slurm_study
    cluster_results = config.parent / "results"
    local_results = local_study.parent / "results"
    files = sorted(p.relative_to(cluster_results) for p in cluster_results.rglob("*.h5"))
    expected = {Path("qm9/structures.h5")} | {Path(f"qm9/{m}.h5") for m in METRICS} \
        | {Path(f"qm9/embeddings/{m}.h5") for m in MODELS}
    assert set(files) == expected
    for name in files:
        ours, theirs = datasets_of(cluster_results / name), datasets_of(local_results / name)
        assert ours.keys() == theirs.keys(), name
        for key, value in ours.items():
            np.testing.assert_array_equal(value, theirs[key], err_msg=f"{name}:{key}")
    for metric in METRICS:
        assert (cluster_results / "qm9" / "figures" / f"{metric}.png").stat().st_size > 0
    summary = (cluster_results / "summary.tsv").read_text().splitlines()
    assert len(summary) == 1 + len(MODELS)


def test_gpu_resources_in_the_profile(cluster, tmp_path):
    """With device: cuda, embedding and metric jobs ask SLURM for a GPU; others do not."""
    config = write_config(tmp_path / "config.yaml", {"qm9": {"n": 40}}, MODELS)
    for device, gpus in (("cuda", 1), ("cpu", 0)):
        settings = yaml.safe_load(config.read_text())
        settings["device"] = device
        config.write_text(yaml.safe_dump(settings))
        proc = snakemake(config, "-n", timeout=120)
        assert proc.returncode == 0, proc.stderr[-3000:]
        out = proc.stdout + proc.stderr
        for rule in ("embed", "align"):
            blocks = re.findall(rf"rule {rule}:\n(?:.*\n)*?\s+resources: (.*)", out)
            assert blocks, rule
            assert all(f"gpu={gpus}" in b for b in blocks), (rule, blocks)
        prepare = re.findall(r"rule prepare_dataset:\n(?:.*\n)*?\s+resources: (.*)", out)
        assert prepare and "gpu=" not in prepare[0]


def _running_embed_job(wildcards: str) -> str | None:
    out = subprocess.run(["squeue", "-h", "-t", "R", "-o", "%i|%k"], capture_output=True,
                         text=True).stdout
    for line in out.splitlines():
        job, _, comment = line.partition("|")
        if comment.startswith("rule_embed") and wildcards in comment:
            return job.strip()
    return None


def test_cancelled_embedding_resumes_from_its_finished_shards(cluster, tmp_path):
    model, n, shard = "chgnet-0.3.0", 60, 5
    config = write_config(tmp_path / "config.yaml", {"qm9": {"n": n}}, [model, "composition"])
    target = tmp_path / "results" / "qm9" / "embeddings" / f"{model}.h5"
    parts = Path(f"{target}.parts")
    env = _env(MATTERALIGN_SHARD_SIZE=str(shard))
    run = subprocess.Popen(_command(config, str(target), timeout=300), cwd=ROOT, env=env,
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                           start_new_session=True)
    try:
        job = finished = None
        started = time.monotonic()
        deadline = time.monotonic() + 240
        while time.monotonic() < deadline and run.poll() is None:
            job = job or _running_embed_job(f"qm9_{model}")
            finished = sorted(parts.glob("shard-*.h5")) if parts.exists() else []
            if job and finished:
                break
            time.sleep(0.2)
        assert job and finished, f"no running embedding job with a finished shard: {run.poll()}"
        subprocess.run(["scancel", job], check=True)
        cancelled = time.monotonic()
        print(f"\nscancel {job} with {len(finished)} shards done, {cancelled - started:.0f} s in")
        output, _ = run.communicate(timeout=240)
        print(f"snakemake exited {time.monotonic() - cancelled:.0f} s after the scancel")
    finally:
        if run.poll() is None:  # a failed check above: leave nothing running
            os.killpg(run.pid, signal.SIGKILL)
            run.wait()
            subprocess.run([sys.executable, "-m", "snakemake", "--unlock", "--configfile",
                            str(config)], cwd=ROOT, capture_output=True, timeout=120)
    assert run.returncode not in (0, 124, 137), output[-4000:]
    assert "SLURM status is: 'CANCELLED'" in output, output[-4000:]

    # no corrupt output: no final file, and every shard left behind is whole
    assert not target.exists()
    shards = sorted(parts.glob("shard-*.h5"))
    assert 0 < len(shards) < n // shard, "the job was cancelled before or after all shards"
    kept = {}
    for path in shards:
        with h5py.File(path, "r") as handle:
            rows, done = handle["indices"][()], handle["done"][()]
            kept.update(zip(rows[done].tolist(), handle["vectors"][()][done], strict=True))
    assert kept

    rerun_start = time.monotonic()
    rerun = snakemake(config, str(target), "--rerun-incomplete", timeout=300, env=env)
    print(f"rerun: {time.monotonic() - rerun_start:.0f} s")
    assert rerun.returncode == 0, rerun.stderr[-6000:]
    assert re.findall(r"^localrule (\w+):", rerun.stderr, re.M) == []
    assert "has been submitted with SLURM jobid" in rerun.stderr
    with h5py.File(target, "r") as handle:
        attrs = dict(handle.attrs)
        embeddings, valid = handle["embeddings"][()], handle["valid"][()]
    # resumed at least what had finished at the cancel; recomputed only the rest
    assert attrs["resumed_structures"] >= len(kept) > 0
    assert attrs["resumed_structures"] < n
    assert valid.all() and attrs["n_valid"] == n
    for row, vector in kept.items():
        np.testing.assert_array_equal(embeddings[row], vector)
    assert not parts.exists()
