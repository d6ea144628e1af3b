#!/usr/bin/env bash
# A real one-node Slurm on this machine, for the Slurm tests and CI (run as root).
# Usage: tools/ci/slurm_local.sh start|stop|status
#   start: installs Debian's slurmctld slurmd slurm-client munge when missing, writes a one-node
#          config for this machine's cores (no GPUs), starts munged, slurmctld and slurmd, and
#          waits until `sinfo` shows the node idle. Idempotent: a running cluster is left as is.
#   stop:  cancels the jobs, stops the three daemons by their pid files and checks none is left.
# Environment: SLURM_LOCAL_PARTITION (default debug), SLURM_LOCAL_TIMEOUT (s to wait, 120).
set -euo pipefail
PARTITION=${SLURM_LOCAL_PARTITION:-debug}
TIMEOUT=${SLURM_LOCAL_TIMEOUT:-120}
CONF_DIR=/etc/slurm
STATE=/var/spool/slurmctld
SPOOL=/var/spool/slurmd
RUN=/run/slurm-local
log() { echo "slurm_local: $*" >&2; }
die() { log "$*"; exit 1; }

[ "$(id -u)" -eq 0 ] || die "run me as root (I install packages and start daemons)."

install_packages() {
    local missing=()
    command -v slurmctld >/dev/null || missing+=(slurmctld)
    command -v slurmd >/dev/null || missing+=(slurmd)
    command -v sbatch >/dev/null || missing+=(slurm-client)
    command -v munged >/dev/null || missing+=(munge)
    [ ${#missing[@]} -eq 0 ] && return
    log "installing ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    # Package lists may be absent on a fresh image; update once only if the install fails.
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null 2>&1 \
        || { apt-get update -qq >/dev/null && \
             apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null; } \
        || die "apt-get could not install ${missing[*]}; check the package sources."
}

write_config() {
    local host cpus mem
    host=$(hostname -s)
    cpus=$(nproc)
    # Leave 1 GiB to the system; Slurm does not schedule on memory here (CR_Core).
    mem=$(( $(awk '/MemTotal/ {print int($2 / 1024)}' /proc/meminfo) - 1024 ))
    mkdir -p "$CONF_DIR" "$STATE" "$SPOOL" "$RUN" /var/log/slurm
    cat > "$CONF_DIR/slurm.conf.new" <<CONF
# Written by dsc_mm tools/ci/slurm_local.sh: a one-node cluster for tests.
ClusterName=dsclocal
SlurmctldHost=$host
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
SchedulerType=sched/backfill
SchedulerParameters=kill_invalid_depend
ReturnToService=2
JobRequeue=1
# Keep finished jobs visible to scontrol for 30 min: there is no accounting daemon (sacct).
MinJobAge=1800
KillWait=5
StateSaveLocation=$STATE
SlurmdSpoolDir=$SPOOL
SlurmctldPidFile=$RUN/slurmctld.pid
SlurmdPidFile=$RUN/slurmd.pid
SlurmctldLogFile=/var/log/slurm/slurmctld.log
SlurmdLogFile=/var/log/slurm/slurmd.log
AccountingStorageType=accounting_storage/none
JobAcctGatherType=jobacct_gather/none
MpiDefault=none
NodeName=$host CPUs=$cpus RealMemory=$mem State=UNKNOWN
PartitionName=$PARTITION Nodes=$host Default=YES MaxTime=INFINITE State=UP OverSubscribe=NO
CONF
    mv "$CONF_DIR/slurm.conf.new" "$CONF_DIR/slurm.conf"
}

running() { [ -f "$RUN/$1.pid" ] && kill -0 "$(cat "$RUN/$1.pid")" 2>/dev/null; }

start_munge() {
    if [ -f /run/munge/munged.pid ] && kill -0 "$(cat /run/munge/munged.pid)" 2>/dev/null; then return; fi
    # munged needs its socket folder; slurmd started before munged keeps the node down.
    mkdir -p /run/munge /var/log/munge /var/lib/munge
    [ -s /etc/munge/munge.key ] || { log "creating /etc/munge/munge.key"; mungekey --create --force; }
    chown -R munge:munge /etc/munge /run/munge /var/log/munge /var/lib/munge
    chmod 0700 /etc/munge; chmod 0400 /etc/munge/munge.key; chmod 0755 /run/munge
    runuser -u munge -- /usr/sbin/munged
    for _ in $(seq 50); do munge -n </dev/null >/dev/null 2>&1 && return; sleep 0.1; done
    die "munged did not answer; see /var/log/munge/munged.log."
}

start() {
    local t0=$SECONDS
    install_packages
    start_munge
    if running slurmctld && running slurmd && sinfo -h -o %T 2>/dev/null | grep -qx idle; then
        log "already up ($(sinfo -h -o '%P %D %T %c'))"; return
    fi
    write_config
    running slurmctld || slurmctld -i
    running slurmd || slurmd
    local state=''
    for _ in $(seq "$TIMEOUT"); do
        state=$(sinfo -h -o %T 2>/dev/null | head -1 || true)
        case "$state" in
            idle|mixed|allocated) log "up in $(( SECONDS - t0 )) s: partition $PARTITION, node $(hostname -s), $(nproc) CPUs"; return;;
            down*|drain*) scontrol update nodename="$(hostname -s)" state=resume >/dev/null 2>&1 || true;;
        esac
        sleep 1
    done
    die "the node is '$state' after ${TIMEOUT} s; see /var/log/slurm/slurmd.log and slurmctld.log."
}

stop_pid() {  # pid file: TERM the daemon it names (started by this script), wait, then KILL.
    local pid
    [ -f "$1" ] || return 0
    pid=$(cat "$1")
    kill "$pid" 2>/dev/null || { rm -f "$1"; return 0; }
    for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || { rm -f "$1"; return 0; }; sleep 0.1; done
    kill -KILL "$pid" 2>/dev/null || true
    rm -f "$1"
}

stop() {
    # Cancel the test jobs first so that no slurmstepd outlives slurmd.
    if running slurmctld; then scancel --quiet --user=root 2>/dev/null || true; sleep 1; fi
    stop_pid "$RUN/slurmd.pid"
    stop_pid "$RUN/slurmctld.pid"
    stop_pid /run/munge/munged.pid
    local left
    left=$(for d in slurmctld slurmd munged; do pgrep -x $d; done | tr '\n' ' ' || true)
    [ -z "$left" ] || die "daemons still running after stop (pids $left); they were not started by this script."
    log "stopped"
}

case "${1:-}" in
    start) start;;
    stop) stop;;
    status) sinfo 2>/dev/null || { log "not up"; exit 1; };;
    *) echo "usage: $0 start|stop|status" >&2; exit 2;;
esac
