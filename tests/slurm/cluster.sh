#!/usr/bin/env bash
# A real single-node SLURM on this machine, for tests/slurm/test_slurm.py.
#
#   tests/slurm/cluster.sh start    install slurm-wlm + munge if missing, start the daemons,
#                                   wait until the node is idle (idempotent)
#   tests/slurm/cluster.sh stop     stop the daemons this script started (idempotent)
#   tests/slurm/cluster.sh status   print sinfo; exit 0 only when the node is up
#
# Needs root and Debian/Ubuntu (apt). No systemd: munged, slurmctld and slurmd are started by
# hand. Accounting is off (no slurmdbd), so `sacct` does not work: clients must poll squeue.
# The node declares one GPU as a GRES backed by /dev/null, so `--gpus=1` / `--gres=gpu:1` jobs
# run on machines without a GPU (with CUDA_VISIBLE_DEVICES=0 set in the job).
#
# State, spool, pid and log files live in $MATTERALIGN_SLURM_DIR (default
# /tmp/matteralign-slurm); slurmctld's log is $MATTERALIGN_SLURM_DIR/log/slurmctld.log.
# slurm.conf and gres.conf are written there and copied to /etc/slurm/, because the srun that
# snakemake-executor-plugin-slurm runs inside every job drops SLURM_CONF and reads the default
# path. An /etc/slurm/slurm.conf this script did not write is never overwritten.
set -euo pipefail

SCRATCH=${MATTERALIGN_SLURM_DIR:-/tmp/matteralign-slurm}
ETC=/etc/slurm
MARK="# written by matteralign tests/slurm/cluster.sh"
TIMEOUT=${MATTERALIGN_SLURM_TIMEOUT:-60}

log() { echo "cluster.sh: $*" >&2; }
die() { log "$*"; exit 1; }

pid_alive() { [[ -s $1 ]] && kill -0 "$(cat "$1")" 2>/dev/null; }

install_packages() {
    local missing=()
    command -v slurmctld >/dev/null || missing+=(slurmctld)
    command -v slurmd >/dev/null || missing+=(slurmd)
    command -v sbatch >/dev/null || missing+=(slurm-client)
    command -v munged >/dev/null || missing+=(munge)
    ((${#missing[@]})) || return 0
    command -v apt-get >/dev/null || die "slurm/munge missing and no apt-get: install ${missing[*]}"
    [[ $(id -u) == 0 ]] || die "slurm/munge missing: run as root to install ${missing[*]}"
    log "installing ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    # the package lists only once, and only when the install needs them
    if ! apt-get install -y -q --no-install-recommends "${missing[@]}" >"$SCRATCH/apt.log" 2>&1; then
        apt-get update -q >>"$SCRATCH/apt.log" 2>&1 || die "apt-get update failed: $SCRATCH/apt.log"
        apt-get install -y -q --no-install-recommends "${missing[@]}" >>"$SCRATCH/apt.log" 2>&1 \
            || die "apt-get install failed: $SCRATCH/apt.log"
    fi
}

munge_ok() { munge -n 2>/dev/null | unmunge >/dev/null 2>&1; }

start_munge() {
    if munge_ok; then return 0; fi
    install -d -o munge -g munge -m 0700 /etc/munge /var/lib/munge /var/log/munge
    install -d -o munge -g munge -m 0755 /run/munge
    if [[ ! -s /etc/munge/munge.key ]]; then
        if command -v mungekey >/dev/null; then
            mungekey --create --keyfile=/etc/munge/munge.key
        else
            dd if=/dev/urandom of=/etc/munge/munge.key bs=1 count=1024 status=none
        fi
    fi
    chown munge:munge /etc/munge/munge.key
    chmod 0400 /etc/munge/munge.key
    runuser -u munge -- /usr/sbin/munged
    touch "$SCRATCH/munged.started"  # stop stops it only then
    for _ in $(seq 50); do munge_ok && return 0; sleep 0.1; done
    die "munged does not answer (munge -n | unmunge)"
}

write_config() {
    mkdir -p "$SCRATCH"/{state,spool,log}
    local host node cpus mem
    host=$(hostname -s)
    # what slurmd itself detects, so the node is never drained for a mismatch
    node=$(slurmd -C | head -1)
    cpus=$(sed -n 's/.*CPUs=\([0-9]*\).*/\1/p' <<<"$node")
    mem=$(sed -n 's/.*RealMemory=\([0-9]*\).*/\1/p' <<<"$node")
    mem=$((mem > 2048 ? mem - 1024 : mem))  # a margin for the daemons
    cat >"$SCRATCH/slurm.conf" <<CONF
$MARK
ClusterName=matteralign
SlurmctldHost=$host
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
MpiDefault=none
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
# without it a job without --mem gets the whole node
DefMemPerCPU=1024
# finished jobs stay visible to squeue for 5 minutes: the executor polls squeue, not sacct
MinJobAge=300
ReturnToService=2
GresTypes=gpu
StateSaveLocation=$SCRATCH/state
SlurmdSpoolDir=$SCRATCH/spool
SlurmctldPidFile=$SCRATCH/slurmctld.pid
SlurmdPidFile=$SCRATCH/slurmd.pid
SlurmctldLogFile=$SCRATCH/log/slurmctld.log
SlurmdLogFile=$SCRATCH/log/slurmd.log
SlurmctldDebug=info
SlurmdDebug=info
NodeName=$host CPUs=$cpus RealMemory=$mem Gres=gpu:1 State=UNKNOWN
PartitionName=debug Nodes=$host Default=YES MaxTime=INFINITE State=UP
CONF
    cat >"$SCRATCH/gres.conf" <<CONF
$MARK
AutoDetect=off
NodeName=$host Name=gpu File=/dev/null
CONF
    mkdir -p "$ETC"
    for file in slurm.conf gres.conf; do
        if [[ -e $ETC/$file ]] && ! grep -qF "$MARK" "$ETC/$file"; then
            die "$ETC/$file exists and was not written by this script; not touching it"
        fi
        cp "$SCRATCH/$file" "$ETC/$file"
    done
}

node_state() { sinfo -h -N -o %T 2>/dev/null | head -1; }

start() {
    [[ $(id -u) == 0 ]] || die "start needs root (daemons run as root, packages via apt)"
    mkdir -p "$SCRATCH"
    install_packages
    start_munge
    if pid_alive "$SCRATCH/slurmctld.pid" && pid_alive "$SCRATCH/slurmd.pid"; then
        log "already running"
    else
        write_config
        pid_alive "$SCRATCH/slurmctld.pid" || /usr/sbin/slurmctld -f "$ETC/slurm.conf"
        pid_alive "$SCRATCH/slurmd.pid" || /usr/sbin/slurmd -f "$ETC/slurm.conf"
    fi
    local state=""
    for _ in $(seq $((TIMEOUT * 2))); do
        state=$(node_state)
        case $state in
            idle|mixed|allocated) sinfo; return 0 ;;
            drain*|down*) scontrol update nodename="$(hostname -s)" state=resume 2>/dev/null || true ;;
        esac
        sleep 0.5
    done
    die "node not idle after ${TIMEOUT}s (state: ${state:-none}); see $SCRATCH/log/"
}

stop() {
    local name pidfile pid
    for name in slurmd slurmctld; do
        pidfile=$SCRATCH/$name.pid
        if pid_alive "$pidfile"; then
            pid=$(cat "$pidfile")
            kill "$pid"
            for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
            kill -0 "$pid" 2>/dev/null && kill -9 "$pid"
            log "stopped $name ($pid)"
        fi
        rm -f "$pidfile"
    done
    # munged only if this script started it (another user of munge may rely on it)
    if [[ -e $SCRATCH/munged.started ]]; then
        pid=$(cat /run/munge/munged.pid 2>/dev/null || true)
        [[ -n $pid ]] && kill "$pid" 2>/dev/null && log "stopped munged ($pid)"
        rm -f "$SCRATCH/munged.started"
    fi
}

status() {
    if pid_alive "$SCRATCH/slurmctld.pid" && pid_alive "$SCRATCH/slurmd.pid"; then
        sinfo
        case $(node_state) in idle|mixed|allocated) return 0 ;; esac
    fi
    log "not running"
    return 1
}

case ${1:-} in
    start) start ;;
    stop) stop ;;
    status) status ;;
    *) echo "usage: $0 start|stop|status" >&2; exit 2 ;;
esac
