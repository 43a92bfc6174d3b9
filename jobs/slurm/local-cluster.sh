#!/usr/bin/env bash
# A single-node Slurm cluster on this machine (slurmctld + slurmd + munge), for tests and trying
# the job scripts: no systemd, no cgroups, run as root. Idempotent.
#
#   jobs/slurm/local-cluster.sh start   configure (CPUs, fake GPUs), start the daemons, wait until
#                                       the node is idle; a changed configuration restarts them
#   jobs/slurm/local-cluster.sh stop    cancel jobs, stop the daemons (munged only if started here)
#   jobs/slurm/local-cluster.sh status  exit 0 when the controller answers and the node is usable
#   jobs/slurm/local-cluster.sh install install what is missing (slurmctld, slurmd, munge, ...), as
#                                       start does (local-nodes-slurm.sh uses it)
#
# The configuration is the cluster's own, $SLURM_LOCAL_DIR/etc/slurm.conf (ports 6917/6918), so a
# machine's /etc/slurm and a Slurm already running there are left alone: clients find it through
#   export SLURM_CONF=/var/tmp/textscale-slurm/etc/slurm.conf      (printed by `start`)
#
# Environment: SLURM_LOCAL_DIR (state, logs, pid files; default /var/tmp/textscale-slurm),
# SLURM_LOCAL_CPUS (CPUs the node advertises, may exceed the cores; default nproc),
# SLURM_LOCAL_GPUS (fake GPUs: gres "gpu" backed by /dev/null, so --gpus-per-task jobs are
# accepted on a machine without GPUs; default 0), SLURM_LOCAL_TIMEOUT (seconds to wait; 60).
#
# Facts this relies on (Slurm 22.05, Debian 12): MpiDefault=pmix because Debian's Open MPI has no
# PMI-1/2 client; EnforcePartLimits=ALL + MaxNodes=1 reject a job that cannot fit instead of
# leaving it pending; SlurmdParameters=config_overrides lets the node advertise more CPUs than it
# has; gres File= must name character devices (symlinks to /dev/null) or CUDA_VISIBLE_DEVICES is
# never set; without systemd, /run/munge must be created and munged started as user munge.
set -euo pipefail
source "$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/slurm-common.sh"
action=${1:-start}
dir=${SLURM_LOCAL_DIR:-/var/tmp/textscale-slurm}
cpus=${SLURM_LOCAL_CPUS:-$(nproc)}
gpus=${SLURM_LOCAL_GPUS:-0}
timeout=${SLURM_LOCAL_TIMEOUT:-60}
conf=$dir/etc/slurm.conf
gres_conf=$dir/etc/gres.conf # beside slurm.conf, where Slurm looks for it
export SLURM_CONF=$conf
node=$(hostname -s)

say() { echo "[local-cluster] $*" >&2; }
show_logs() {
  for f in "$dir/log/slurmctld.log" "$dir/log/slurmd.log"; do
    [ -f "$f" ] && { echo "--- $f" >&2; tail -n 20 "$f" >&2; }
  done
  return 0
}
die() {
  say "error: $*"
  show_logs
  exit 1
}
# pid_of PIDFILE NAME: print the pid in PIDFILE if that process is alive and is NAME (not a reused
# pid). Read the file once: a daemon that is shutting down removes it at any moment.
pid_of() {
  local pid
  pid=$(cat "$1" 2> /dev/null) && [ -n "$pid" ] && [ "$(cat "/proc/$pid/comm" 2> /dev/null)" = "$2" ] && echo "$pid"
}
running() { pid_of "$1" "$2" > /dev/null; }
# end PIDFILE NAME SECONDS: wait for the process to exit, then TERM, then KILL
end() {
  local pid i
  pid=$(pid_of "$1" "$2") || return 0
  for ((i = 0; i < $3 * 10; i++)); do kill -0 "$pid" 2> /dev/null || return 0; sleep 0.1; done
  kill -TERM "$pid" 2> /dev/null || true
  for ((i = 0; i < 50; i++)); do kill -0 "$pid" 2> /dev/null || return 0; sleep 0.1; done
  kill -KILL "$pid" 2> /dev/null || true
}

install_packages() {
  local missing=() p
  for p in slurmctld slurmd slurm-client munge openmpi-bin; do
    dpkg-query -W -f='${Status}' "$p" 2> /dev/null | grep -q "install ok installed" || missing+=("$p")
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  say "installing ${missing[*]}"
  # The packages' scripts would start the daemons through /etc/init.d: forbid it for the install.
  local policy=/usr/sbin/policy-rc.d made=0
  if [ ! -e $policy ]; then
    printf '#!/bin/sh\nexit 101\n' > $policy
    chmod 755 $policy
    made=1
  fi
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends \
    -o Dpkg::Options::=--force-confold "${missing[@]}" ||
    { apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends \
      -o Dpkg::Options::=--force-confold "${missing[@]}"; }
  [ $made = 1 ] && rm -f $policy
  return 0
}

write_config() {
  local memory gres_node="" gres_types="" gres_lines="" changed=0
  memory=$(slurmd -C 2> /dev/null | sed -n 's/.*RealMemory=\([0-9]*\).*/\1/p')
  if [ "$gpus" -gt 0 ]; then
    make_fake_gpus "$gpus"
    gres_node="Gres=gpu:$gpus"
    gres_types="GresTypes=gpu"
    gres_lines="AutoDetect=off
NodeName=$node Name=gpu File=$dir/fake-gpu/gpu[0-$((gpus - 1))]"
  fi
  local new
  new="# written by textscale jobs/slurm/local-cluster.sh: one node, no cgroups, no accounting
ClusterName=textscale-local
SlurmctldHost=$node(127.0.0.1)
SlurmctldPort=6917
SlurmdPort=6918
SlurmdSpoolDir=$dir/spool
SlurmdPidFile=$dir/slurmd.pid
SlurmdLogFile=$dir/log/slurmd.log
$(slurm_common_settings)
$gres_types
NodeName=$node NodeAddr=127.0.0.1 CPUs=$cpus RealMemory=${memory:-1000} $gres_node State=UNKNOWN
EnforcePartLimits=ALL
PartitionName=debug Nodes=ALL Default=YES MaxNodes=1 MaxTime=INFINITE State=UP"
  mkdir -p "$dir/etc" "$dir/state" "$dir/spool" "$dir/log"
  if [ ! -f $conf ] || [ "$(cat $conf)" != "$new" ]; then
    printf '%s\n' "$new" > $conf
    changed=1
  fi
  if [ -n "$gres_lines" ]; then
    if [ ! -f $gres_conf ] || [ "$(cat $gres_conf)" != "$gres_lines" ]; then
      printf '%s\n' "$gres_lines" > $gres_conf
      changed=1
    fi
  elif [ -f $gres_conf ]; then
    rm -f $gres_conf
    changed=1
  fi
  echo $changed
}

node_state() { sinfo -h -n "$node" -o %t 2> /dev/null | head -n 1; }

stop() {
  if running "$dir/slurmctld.pid" slurmctld; then
    local jobs
    jobs=$(timeout 10 squeue -h -o %i 2> /dev/null | tr '\n' ' ')
    if [ -n "${jobs// /}" ]; then
      # shellcheck disable=SC2086
      timeout 10 scancel $jobs 2> /dev/null || true
      for _ in $(seq 100); do [ -z "$(timeout 5 squeue -h -o %i 2> /dev/null)" ] && break; sleep 0.1; done
    fi
    timeout 15 scontrol shutdown > /dev/null 2>&1 || true
  fi
  end "$dir/slurmctld.pid" slurmctld 20
  end "$dir/slurmd.pid" slurmd 20
  rm -f "$dir/slurmctld.pid" "$dir/slurmd.pid"
  if [ "${SLURM_LOCAL_KEEP_MUNGE:-0}" != 1 ] && [ -e "$dir/munged-started-here" ]; then
    end /run/munge/munged.pid munged 0
    rm -f "$dir/munged-started-here"
  fi
}

case $action in
  start)
    [ "$(id -u)" = 0 ] || die "run as root (the daemons run as root here)"
    exec < /dev/null
    install_packages
    mkdir -p "$dir"
    if [ "$(write_config)" = 1 ] && { running "$dir/slurmctld.pid" slurmctld || running "$dir/slurmd.pid" slurmd; }; then
      say "configuration changed: restarting the daemons"
      SLURM_LOCAL_KEEP_MUNGE=1 stop
    fi
    start_munge
    if ! running "$dir/slurmctld.pid" slurmctld; then
      slurmctld -c || die "slurmctld did not start" # -c: no jobs or nodes from an earlier state
    fi
    if ! running "$dir/slurmd.pid" slurmd; then
      slurmd || die "slurmd did not start"
    fi
    deadline=$((SECONDS + timeout))
    state=""
    while [ $SECONDS -lt $deadline ]; do
      if scontrol ping 2> /dev/null | grep -q UP; then
        state=$(node_state)
        case $state in
          idle | mix | alloc | comp) break ;;
          inval*) die "node $node rejected the configuration: $(sinfo -h -n "$node" -o %E)" ;;
          drain* | drng | down* | fail*) scontrol update NodeName="$node" State=RESUME > /dev/null 2>&1 || true ;;
        esac
      fi
      sleep 0.3
    done
    case $state in
      idle | mix | alloc | comp)
        say "ready: node $node, $cpus CPUs, $gpus fake GPUs (logs in $dir/log)"
        say "clients: export SLURM_CONF=$conf"
        ;;
      *) die "node $node not ready after ${timeout}s (state '$state')" ;;
    esac
    ;;
  stop) stop ;;
  install) install_packages ;;
  status)
    scontrol ping 2> /dev/null | grep -q UP || exit 1
    case $(node_state) in idle | mix | alloc | comp) exit 0 ;; *) exit 1 ;; esac
    ;;
  *)
    echo "usage: $0 start|stop|status|install" >&2
    exit 2
    ;;
esac
