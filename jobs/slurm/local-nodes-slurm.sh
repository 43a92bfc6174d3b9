#!/usr/bin/env bash
# A multi-node Slurm on one machine: the nodes of local-nodes.sh (network + UTS namespaces on a
# bridge), one slurmd in each (Debian's Slurm is built with multiple-slurmd support: `slurmd -N
# NAME`), slurmctld in the first node, munged shared (its socket is a file, which every namespace
# sees). Run as root, without systemd. Idempotent.
#
#   local-nodes-slurm.sh start N     N nodes, the daemons, wait until every node is idle
#   local-nodes-slurm.sh stop        cancel jobs, stop the daemons, remove the nodes
#   local-nodes-slurm.sh status      exit 0 when the controller answers and every node is usable
#   local-nodes-slurm.sh run CMD...  CMD in the first node with SLURM_CONF set (sbatch, srun, sinfo:
#                                    the controller is reachable from the nodes only)
#
# Its configuration is its own ($SLURM_NODES_DIR/etc/slurm.conf, ports 6937/6938; the nodes'
# addresses are their own, so these ports never meet the machine's or local-cluster.sh's). Each
# node advertises $SLURM_NODES_CPUS CPUs (default 1: one rank a node) and, with SLURM_NODES_GPUS=G,
# G fake GPUs (gres backed by /dev/null, as local-cluster.sh does), so that GPU job scripts are
# accepted; they then run with --device cpu.
#
# Environment: SLURM_NODES_DIR (/var/tmp/textscale-slurm-nodes), SLURM_NODES_CPUS (1),
# SLURM_NODES_GPUS (0), SLURM_NODES_TIMEOUT (60 s), and local-nodes.sh's LOCAL_NODES_*.
set -euo pipefail
action=${1:-}
shift || true
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
source "$here/slurm-common.sh"
dir=${SLURM_NODES_DIR:-/var/tmp/textscale-slurm-nodes}
cpus=${SLURM_NODES_CPUS:-1}
gpus=${SLURM_NODES_GPUS:-0}
timeout=${SLURM_NODES_TIMEOUT:-60}
conf=$dir/etc/slurm.conf
export SLURM_CONF=$conf
nodes() { bash "$here/local-nodes.sh" "$@"; }

say() { echo "[local-nodes-slurm] $*" >&2; }
die() {
  say "error: $*"
  for f in "$dir"/log/*.log; do [ -f "$f" ] && { echo "--- $f" >&2; tail -n 15 "$f" >&2; }; done
  exit 1
}
first() { nodes names | head -n 1; }
in_first() { nodes exec "$(first)" "$@"; }

write_config() {
  local names=("$@") list memory node gres_node="" gres_types=""
  list=$(IFS=,; echo "${names[*]}")
  memory=$(slurmd -C 2> /dev/null | sed -n 's/.*RealMemory=\([0-9]*\).*/\1/p')
  mkdir -p "$dir/etc" "$dir/state" "$dir/log" "$dir/spool"
  if [ "$gpus" -gt 0 ]; then
    make_fake_gpus "$gpus"
    gres_node="Gres=gpu:$gpus"
    gres_types="GresTypes=gpu"
    printf 'AutoDetect=off\nName=gpu File=%s/fake-gpu/gpu[0-%d]\n' "$dir" $((gpus - 1)) > "$dir/etc/gres.conf"
  else
    rm -f "$dir/etc/gres.conf"
  fi
  {
    echo "# written by textscale jobs/slurm/local-nodes-slurm.sh: one slurmd per namespace node"
    echo "ClusterName=textscale-nodes"
    echo "SlurmctldHost=${names[0]}($(nodes address "${names[0]}"))"
    cat << EOF
SlurmctldPort=6937
SlurmdPort=6938
SlurmdSpoolDir=$dir/spool/%n
TmpFS=$dir/tmp/%n
SlurmdPidFile=$dir/slurmd-%n.pid
SlurmdLogFile=$dir/log/slurmd-%n.log
$gres_types
EOF
    slurm_common_settings
    for node in "${names[@]}"; do
      echo "NodeName=$node NodeAddr=$(nodes address "$node") CPUs=$cpus RealMemory=${memory:-1000} $gres_node State=UNKNOWN"
    done
    echo "PartitionName=nodes Nodes=$list Default=YES MaxTime=INFINITE State=UP"
  } > "$conf"
  for node in "${names[@]}"; do mkdir -p "$dir/spool/$node" "$dir/tmp/$node"; done
}

# Every node's state, one word a line ("idle", "down*", ...)
states() { in_first sinfo -h -N -o %t 2> /dev/null; }

stop() {
  if [ -n "$(first)" ] && [ -f "$conf" ]; then
    in_first timeout 10 scancel --full --partition nodes > /dev/null 2>&1 || true
    in_first timeout 15 scontrol shutdown > /dev/null 2>&1 || true
  fi
  nodes stop # SIGKILLs whatever of the daemons and jobs is left in the nodes
  rm -f "$dir"/slurmctld.pid "$dir"/slurmd-*.pid
  if [ -e "$dir/munged-started-here" ]; then
    pid=$(cat /run/munge/munged.pid 2> /dev/null || true)
    [ -n "$pid" ] && [ "$(cat "/proc/$pid/comm" 2> /dev/null)" = munged ] && kill "$pid"
    rm -f "$dir/munged-started-here"
  fi
}

case $action in
  start)
    n=${1:?usage: local-nodes-slurm.sh start N}
    [ "$(id -u)" = 0 ] || die "run as root"
    exec < /dev/null
    bash "$here/local-cluster.sh" install # what is missing of Slurm and munge
    stop > /dev/null 2>&1 || true         # a fresh cluster: the configuration names the nodes
    nodes start "$n"
    mapfile -t names < <(nodes names)
    mkdir -p "$dir"
    write_config "${names[@]}"
    start_munge
    in_first slurmctld -c || die "slurmctld did not start"
    for node in "${names[@]}"; do nodes exec "$node" slurmd -N "$node" || die "slurmd on $node did not start"; done
    deadline=$((SECONDS + timeout))
    while [ $SECONDS -lt $deadline ]; do
      current=$(states | sort -u | tr '\n' ' ')
      [ "$current" = "idle " ] && break
      sleep 0.5
    done
    [ "$current" = "idle " ] || die "nodes not idle after ${timeout}s: $current"
    say "ready: ${names[*]} (${cpus} CPUs, $gpus fake GPUs each); run clients in a node: $0 run sinfo"
    ;;
  stop) stop ;;
  status)
    [ -n "$(first)" ] || exit 1
    in_first scontrol ping 2> /dev/null | grep -q UP || exit 1
    [ "$(states | sort -u | grep -cv -E '^(idle|mix|alloc|comp)$')" = 0 ] || exit 1
    ;;
  run)
    [ $# -ge 1 ] || die "usage: local-nodes-slurm.sh run CMD..."
    in_first "$@"
    ;;
  *)
    sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//' >&2
    exit 2
    ;;
esac
